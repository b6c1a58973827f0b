// Store governance, part 1: read-only access (READ_TOKEN, a signed token's `access` claim), a
// WebSocket closed by the Durable Object's alarm once its signed token has expired, and the event
// rules (ALLOWED_EVENTS, MAX_ARGS_BYTES, MAX_STORE_EVENTS, MAX_STORE_BYTES). Every refusal is
// checked on each transport it concerns (WebSocket, HTTP, /electric), and after every refused push
// the store holds exactly what it held before (a pull from 0 and the admin API's info).
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { after, before, describe, test } from 'node:test'

import { connectClient, livePull } from './lib/client.mjs'
import { connectElectric, electricEndpoint } from './lib/electric.mjs'
import { closeSockets, OK, openSocket, storeOpenings, waitFor } from './lib/helpers.mjs'
import { INVALID_TOKEN, postSync, rawHttp, tokenRefused, UPGRADE_HEADERS } from './lib/http.mjs'
import { liveEvents, makeEvents, openLivePull, pullAll, push, request } from './lib/raw.mjs'
import { DEFAULT_TOKEN, engineOnly, startWorker, storeId, syncQuery, withWorker } from './lib/worker.mjs'

/** The clock skew the worker allows on exp (src/jwt.rs LEEWAY_SECS); a socket closes once it has passed too. */
const LEEWAY = 30
const SECRET = crypto.randomBytes(32).toString('base64url')
const READ = 'governance-read-only-token-3b9f'
const ADMIN = 'governance-admin-token-0123456789'
const ALLOWED = 'v1.Todo*,!v1.TodoPurged'
const MAX_ARGS = 1000
const MAX_EVENTS = 10
const MAX_BYTES = 6000

const b64 = (data) => Buffer.from(data).toString('base64url')
const now = () => Math.floor(Date.now() / 1000)
/** An HS256 JWT for `stores`, valid for `ttl` seconds unless `claims` say otherwise. */
const jwt = (stores, { ttl = 600, ...claims } = {}) => {
  const input = `${b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64(JSON.stringify({ sub: 'user-1', stores, iat: now(), exp: now() + ttl, ...claims }))}`
  return `${input}.${b64(crypto.createHmac('sha256', SECRET).update(input).digest())}`
}

const events = (count, start = 1, opts = {}) => makeEvents(count, { start, parent: start - 1, ...opts })
const named = (name, event) => ({ ...event, name })
const noBackend = { _tag: 'None' }

/** The `{ name, message }` of a typed refusal in an `Exit` frame (WebSocket or HTTP). */
const refusal = (frame) => {
  assert.equal(frame._tag, 'Exit', JSON.stringify(frame))
  assert.equal(frame.exit._tag, 'Failure', JSON.stringify(frame))
  assert.equal(frame.exit.cause.error._tag, 'UnknownError', JSON.stringify(frame))
  return frame.exit.cause.error.cause
}
const assertRefused = (frame, name, message) => {
  const cause = refusal(frame)
  assert.equal(cause.name, name, JSON.stringify(cause))
  if (message) assert.match(cause.message, message)
  return cause
}

/** Resolves with a socket's close: code, reason and time. Attach it as soon as the socket opens. */
const closeOf = (sock) => new Promise((resolve) => sock.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString(), at: Date.now() })))
/**
 * A socket closed for its expired token: 1008 TokenExpired, not before exp + leeway (1 s slack for
 * whole seconds), nor long after it (the alarm is due then; 5 s for a busy machine).
 * The socket must have sent a frame: the runtime ends the TCP connection of a socket that never
 * did only about 10 s after the close handshake, and `ws` reports the close then.
 */
const assertExpiredClose = ({ code, reason, at }, exp, label) => {
  assert.equal(code, 1008, `${label}: close code (reason ${reason})`)
  assert.match(reason, /^TokenExpired/, `${label}: close reason`)
  const due = (exp + LEEWAY) * 1000
  assert.ok(at >= due - 1000, `${label}: closed ${(due - at) / 1000} s before exp + leeway`)
  assert.ok(at <= due + 5000, `${label}: closed ${(at - due) / 1000} s after exp + leeway`)
  console.log(`[figures] ${label}: closed ${at - due} ms after exp + leeway`)
}

let w
// A store left alone from the start of the file until its last test: its object is evicted
// (its sockets hibernate) long before the alarm closes its expiring socket.
const IDLE_SECS = 25
const idle = {}
before(async () => {
  w = await startWorker({
    label: 'governance',
    vars: {
      AUTH_TOKEN: DEFAULT_TOKEN,
      READ_TOKEN: READ,
      JWT_SECRET: SECRET,
      // Tokens valid past any date an alarm can be set for are accepted (see the expiry test).
      JWT_MAX_LIFETIME: '0',
      ADMIN_TOKEN: ADMIN,
      ALLOWED_EVENTS: ALLOWED,
      MAX_ARGS_BYTES: String(MAX_ARGS),
      MAX_STORE_EVENTS: String(MAX_EVENTS),
      MAX_STORE_BYTES: String(MAX_BYTES),
    },
  })
  idle.store = storeId('gov-idle-expiry')
  const wr = await openSocket(w, idle.store)
  assert.deepEqual((await push(wr, idle.store, events(1))).exit, OK)
  wr.close()
  idle.exp = now() - LEEWAY + IDLE_SECS
  idle.expiring = await openSocket(w, idle.store, { payload: { authToken: jwt([idle.store], { exp: idle.exp }) } })
  idle.closed = closeOf(idle.expiring)
  await idle.expiring.fence()
  idle.reader = await openSocket(w, idle.store, { payload: { authToken: READ } })
  await openLivePull(idle.reader, idle.store, 'live-idle')
})
// Real clients are closed before their worker stops, so no HTTP client polls a stopped server.
const clients = []
after(async () => {
  closeSockets()
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => {})))
  await w?.stop()
})
const client = async (opts) => {
  const c = await connectClient({ url: w.url, clientId: 'test-client', ...opts })
  clients.push(c)
  return c
}

const writer = (store) => openSocket(w, store)
const reader = (store) => openSocket(w, store, { payload: { authToken: READ } })
const httpRpc = (store, tag, payload, { token = DEFAULT_TOKEN, headers } = {}) =>
  postSync(w, store, request(tag, { storeId: store, ...payload }), { payload: token === null ? null : { authToken: token }, headers })
const httpPush = async (store, batch, opts) => {
  const res = await httpRpc(store, 'SyncHttpRpc.Push', { batch, backendId: noBackend }, opts)
  assert.equal(res.status, 200, res.body)
  return JSON.parse(res.body).at(-1)
}
const httpPullEvents = async (store, opts) => {
  const res = await httpRpc(store, 'SyncHttpRpc.Pull', { cursor: noBackend }, opts)
  assert.equal(res.status, 200, res.body)
  const frames = JSON.parse(res.body)
  assert.equal(frames.at(-1).exit._tag, 'Success', res.body)
  return frames.filter((m) => m._tag === 'Chunk').flatMap((m) => m.values[0].batch.map((b) => b.eventEncoded))
}
const electricPush = (store, batch, { token = DEFAULT_TOKEN, headers = {} } = {}) =>
  rawHttp(electricEndpoint(w, token), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ _tag: '@livestore/sync-electric.Push', storeId: store, batch }),
  })
const electricPull = (store, token = DEFAULT_TOKEN) =>
  rawHttp(
    `${w.url}/electric?args=${encodeURIComponent(JSON.stringify({ _tag: '@livestore/sync-electric.Pull', storeId: store, payload: { authToken: token }, handle: { _tag: 'None' }, live: false }))}`,
  )
/** A refused /electric push: its status, and the JSON body naming the error. */
const assertElectricRefused = (res, status, error, message) => {
  assert.equal(res.status, status, res.body)
  const body = JSON.parse(res.body)
  assert.equal(body.success, false, res.body)
  assert.equal(body.error, error, res.body)
  assert.equal(typeof body.message, 'string', res.body)
  if (message) assert.match(body.message, message)
}

const info = async (store) => {
  const res = await fetch(`${w.url}/_admin/stores/${encodeURIComponent(store)}`, { headers: { authorization: `Bearer ${ADMIN}` } })
  assert.equal(res.status, 200)
  return res.json()
}
/**
 * The store holds exactly `expected` (events in order): a pull from 0 on a writer's socket, and
 * the admin API's head and event count.
 */
const assertStored = async (store, expected) => {
  const sock = await writer(store)
  try {
    assert.deepEqual((await pullAll(sock, store)).events, expected, `${store}: the stored events`)
  } finally {
    sock.close()
  }
  const i = await info(store)
  assert.deepEqual([i.head, i.eventCount], [expected.length, expected.length], `${store}: head and eventCount`)
  return i
}

/** The store's push lines with `outcome` were logged at warn, on each of `transports`. */
const assertPushLines = async (store, outcome, transports) => {
  const lines = () => w.logLines().filter((l) => l.event === 'push' && l.storeId === store && l.outcome === outcome)
  await waitFor(() => transports.every((t) => lines().some((l) => l.transport === t)), {
    timeout: 10_000,
    message: `${store}: push lines with outcome ${outcome} on ${transports} (have ${JSON.stringify(w.logLines().filter((l) => l.storeId === store && l.event === 'push'))})`,
  })
  for (const l of lines()) assert.equal(l.level, 'warn', JSON.stringify(l))
}

describe('read-only access', () => {
  test('READ_TOKEN over WebSocket: push refused with ReadOnlyError, nothing stored; live pull gets a writer\'s events; the socket stays open', async () => {
    const store = storeId('gov-ro-ws')
    const r = await reader(store)
    await openLivePull(r, store, 'live-r')
    const refused = await push(r, store, events(2))
    assertRefused(refused, 'ReadOnlyError', /read-only/i)
    await r.fence()
    assert.deepEqual(liveEvents(r, 'live-r'), [], 'the refused batch was never broadcast')
    assert.deepEqual((await pullAll(r, store)).events, [])
    await assertStored(store, [])
    // A writer's pushes reach the reader's live pull on the same store.
    const wr = await writer(store)
    assert.deepEqual((await push(wr, store, events(2))).exit, OK)
    await r.until(() => liveEvents(r, 'live-r').length >= 2, { what: 'the writer\'s events on the reader\'s live pull' })
    assert.deepEqual(liveEvents(r, 'live-r'), events(2))
    // A push that would be the next one in the log is refused just the same.
    assertRefused(await push(r, store, events(1, 3, { clientId: 'reader' })), 'ReadOnlyError', /read-only/i)
    assert.ok(!r.closed, 'the reader\'s socket stays open')
    assert.deepEqual((await pullAll(r, store)).events, events(2))
    await r.fence()
    assert.deepEqual(liveEvents(r, 'live-r'), events(2))
    await assertStored(store, events(2))
    await assertPushLines(store, 'ReadOnlyError', ['ws'])
  })

  test('READ_TOKEN over HTTP: ping and pull work, push is refused with ReadOnlyError and stores nothing', async () => {
    const store = storeId('gov-ro-http')
    const ping = await httpRpc(store, 'SyncHttpRpc.Ping', {}, { token: READ })
    assert.equal(ping.status, 200, ping.body)
    assert.deepEqual(JSON.parse(ping.body).at(-1).exit, { _tag: 'Success', value: { _tag: 'SyncMessage.Pong' } })
    assertRefused(await httpPush(store, events(1), { token: READ }), 'ReadOnlyError', /read-only/i)
    await assertStored(store, [])
    assert.deepEqual((await httpPush(store, events(2))).exit, OK)
    assert.deepEqual(await httpPullEvents(store, { token: READ }), events(2))
    assertRefused(await httpPush(store, events(1, 3), { token: READ }), 'ReadOnlyError', /read-only/i)
    await assertStored(store, events(2))
    await assertPushLines(store, 'ReadOnlyError', ['http'])
  })

  test('READ_TOKEN on /electric: a push answers 403 ReadOnlyError (token in the path or as Bearer), a pull works', async () => {
    const store = storeId('gov-ro-electric')
    assertElectricRefused(await electricPush(store, events(1), { token: READ }), 403, 'ReadOnlyError', /read-only/i)
    assertElectricRefused(await electricPush(store, events(1), { token: null, headers: { authorization: `Bearer ${READ}` } }), 403, 'ReadOnlyError', /read-only/i)
    await assertStored(store, [])
    assert.equal((await electricPush(store, events(2))).status, 200)
    const pulled = await electricPull(store, READ)
    assert.equal(pulled.status, 200, pulled.body)
    assert.deepEqual(JSON.parse(pulled.body).filter((r) => r.value).map((r) => r.value.seqNum), ['1', '2'])
    // The real electric client surfaces the refusal.
    const c = await connectElectric({ endpoint: electricEndpoint(w, READ), storeId: store, payload: { authToken: READ } })
    try {
      const exit = await c.pushExit(events(1, 3))
      assert.equal(exit._tag, 'Failure')
      assert.deepEqual((await c.pullPages()).flatMap((p) => p.batch.map((b) => b.eventEncoded.seqNum)), [1, 2])
    } finally {
      await c.close()
    }
    await assertStored(store, events(2))
    await assertPushLines(store, 'ReadOnlyError', ['electric'])
  })

  for (const transport of ['ws', 'http']) {
    test(`the real ${transport} client with READ_TOKEN: its push fails with ReadOnlyError, its live pull receives a writer's events`, async () => {
      const store = storeId(`gov-ro-client-${transport}`)
      const r = await client({ storeId: store, transport, payload: { authToken: READ }, clientId: 'reader' })
      const live = livePull(r)
      await waitFor(() => live.items.length > 0, { message: 'the reader\'s first live page' })
      const exit = await r.runExit(r.backend.push(events(1, 1, { clientId: 'reader' })))
      assert.equal(exit._tag, 'Failure', JSON.stringify(exit))
      assert.equal(exit.cause._tag, 'Fail')
      assert.equal(exit.cause.error._tag, 'UnknownError')
      assert.match(exit.cause.error.cause.message, /read-only/i)
      assert.equal(exit.cause.error.cause.name, 'ReadOnlyError')
      const wr = await client({ storeId: store, transport: 'ws', clientId: 'writer' })
      await wr.push(events(2, 1, { clientId: 'writer' }))
      await waitFor(() => live.events().length >= 2, { message: 'the writer\'s events on the reader\'s live pull' })
      assert.deepEqual(live.events(), events(2, 1, { clientId: 'writer' }))
      // Refused again once it is up to date, and the live pull goes on.
      const again = await r.runExit(r.backend.push(events(1, 3, { clientId: 'reader' })))
      assert.equal(again.cause?.error?.cause?.name, 'ReadOnlyError', JSON.stringify(again))
      await wr.push(events(1, 3, { clientId: 'writer' }))
      await waitFor(() => live.events().length >= 3, { message: 'the writer\'s next event' })
      assert.equal(live.poll()._tag, 'None', 'the live pull is still running')
      await live.stop()
      await assertStored(store, events(3, 1, { clientId: 'writer' }))
    })
  }

  test('a client cannot grant itself more with the Worker\'s internal x-livestore-grant header', async () => {
    const store = storeId('gov-ro-spoof')
    const spoof = { 'x-livestore-grant': 'write' }
    const sock = await openSocket(w, store, { payload: { authToken: READ }, headers: spoof })
    assertRefused(await push(sock, store, events(1)), 'ReadOnlyError')
    assertRefused(await httpPush(store, events(1), { token: READ, headers: spoof }), 'ReadOnlyError')
    assertElectricRefused(await electricPush(store, events(1), { token: READ, headers: spoof }), 403, 'ReadOnlyError')
    const readJwt = jwt([store], { access: 'read' })
    const jwtSock = await openSocket(w, store, { payload: { authToken: readJwt }, headers: { 'x-livestore-grant': 'write; exp=99999999999' } })
    assertRefused(await push(jwtSock, store, events(1)), 'ReadOnlyError')
    await assertStored(store, [])
    // Nor take rights from a writer by it: the Worker drops the header as sent.
    const wr = await openSocket(w, store, { headers: { 'x-livestore-grant': 'read' } })
    assert.deepEqual((await push(wr, store, events(1))).exit, OK)
    assert.deepEqual((await httpPush(store, events(1, 2), { headers: { 'x-livestore-grant': 'read' } })).exit, OK)
    await assertStored(store, events(2))
  })

  test('a signed token\'s access claim: "read" is read-only on every transport, "readwrite" and none read and write', async () => {
    const store = storeId('gov-ro-jwt')
    const readJwt = jwt([store], { access: 'read' })
    const sock = await openSocket(w, store, { payload: { authToken: readJwt } })
    assertRefused(await push(sock, store, events(1)), 'ReadOnlyError', /read-only/i)
    assertRefused(await httpPush(store, events(1), { token: readJwt }), 'ReadOnlyError', /read-only/i)
    assertElectricRefused(await electricPush(store, events(1), { token: readJwt }), 403, 'ReadOnlyError', /read-only/i)
    // The same token in an Authorization header, on a socket without a payload.
    const bearer = await openSocket(w, store, { payload: null, headers: { authorization: `Bearer ${readJwt}` } })
    assertRefused(await push(bearer, store, events(1)), 'ReadOnlyError', /read-only/i)
    await assertStored(store, [])
    // Read and write.
    const rw = await openSocket(w, store, { payload: { authToken: jwt([store], { access: 'readwrite' }) } })
    assert.deepEqual((await push(rw, store, events(1))).exit, OK)
    assert.deepEqual((await httpPush(store, events(1, 2), { token: jwt([store]) })).exit, OK)
    assert.equal((await electricPush(store, events(1, 3), { token: jwt([store], { access: 'readwrite' }) })).status, 200)
    // The read-only socket pulls all of it, and is still refused.
    assert.deepEqual((await pullAll(sock, store)).events, events(3))
    assertRefused(await push(sock, store, events(1, 4)), 'ReadOnlyError')
    await assertStored(store, events(3))
  })

  test('any other access claim refuses the token: 400 "bad access claim" on upgrade and HTTP, 401 on /electric', async () => {
    const store = storeId('gov-bad-access')
    for (const access of ['admin', 123, 'READ', ['read'], '']) {
      const token = jwt([store], { access })
      const what = JSON.stringify(access)
      const upgrade = await rawHttp(`${w.url}/?${syncQuery(store, { payload: { authToken: token } })}`, { headers: UPGRADE_HEADERS })
      assert.equal(upgrade.status, 400, what)
      assert.equal(upgrade.body, tokenRefused('bad access claim'), what)
      const ping = await httpRpc(store, 'SyncHttpRpc.Ping', {}, { token })
      assert.equal(ping.status, 400, what)
      assert.equal(ping.body, tokenRefused('bad access claim'), what)
      const el = await electricPush(store, events(1), { token })
      assert.equal(el.status, 401, `${what}: ${el.body}`)
      assert.match(el.body, /bad access claim/, what)
    }
    await assertStored(store, [])
  })
})

describe('a WebSocket closes when its signed token expires', () => {
  test('closed by the alarm at exp + leeway with 1008 TokenExpired, each at its own time; other sockets of the store stay open', { timeout: 60_000 }, async () => {
    const store = storeId('gov-expiry')
    // Accepted thanks to the leeway; they expire for good in about 5 and 8 seconds.
    const exp1 = now() - LEEWAY + 5
    const exp2 = exp1 + 3
    // First a token valid past any date an alarm can be set for (accepted: JWT_MAX_LIFETIME=0).
    const endless = await openSocket(w, store, { payload: { authToken: jwt([store], { exp: 1e13 }) } })
    const expiring1 = await openSocket(w, store, { payload: { authToken: jwt([store], { exp: exp1 }) } })
    const closed1 = closeOf(expiring1)
    // The Worker's internal header, sent by the client, does not keep it open.
    const expiring2 = await openSocket(w, store, { payload: { authToken: jwt([store], { exp: exp2 }) }, headers: { 'x-livestore-grant': 'write' } })
    const closed2 = closeOf(expiring2)
    const lasting = await openSocket(w, store, { payload: { authToken: jwt([store], { ttl: 3600 }) } })
    const shared = await writer(store)
    const readOnly = await reader(store)
    const others = [endless, lasting, shared, readOnly]
    // The expiring sockets work until then; a live pull on one does not keep it open.
    assert.deepEqual((await push(expiring1, store, events(1))).exit, OK)
    await openLivePull(expiring2, store, 'live-exp')
    assertExpiredClose(await closed1, exp1, 'first')
    assertExpiredClose(await closed2, exp2, 'second')
    assert.ok((await closed2).at > (await closed1).at, 'the sockets closed in the order of their exp')
    // The others are open and answer.
    for (const sock of others) {
      assert.ok(!sock.closed)
      await sock.fence()
    }
    assert.deepEqual((await push(shared, store, events(1, 2))).exit, OK)
    assert.deepEqual((await pullAll(lasting, store)).events, events(2))
    await assertStored(store, events(2))
    const errors = w.logLines().filter((l) => l.level === 'error')
    assert.deepEqual(errors, [], 'nothing logged at error')
  })
})

describe('event rules', () => {
  test('ALLOWED_EVENTS: a batch with one event that does not pass is refused whole, on every transport', async () => {
    const store = storeId('gov-allowed')
    const [a, b] = events(2)
    assert.deepEqual((await push(await writer(store), store, [a, named('v1.TodoPurgedLater', b)])).exit, OK, 'v1.TodoPurgedLater passes v1.Todo* and is not v1.TodoPurged')
    const stored = [a, named('v1.TodoPurgedLater', b)]
    const sock = await writer(store)
    const [c, d, e] = events(3, 3)
    const refused = assertRefused(await push(sock, store, [c, d, named('v1.TodoPurged', e)]), 'EventNotAllowedError')
    assert.match(refused.message, /v1\.TodoPurged\b/)
    assert.match(refused.message, /ALLOWED_EVENTS/)
    // The event's index in the batch, counted from 0.
    assert.match(refused.message, /\b2\b/)
    const other = assertRefused(await push(sock, store, [named('v1.UserCreated', c)]), 'EventNotAllowedError')
    assert.match(other.message, /v1\.UserCreated/)
    assertRefused(await httpPush(store, [c, named('v1.TodoPurged', d)]), 'EventNotAllowedError', /v1\.TodoPurged/)
    assertElectricRefused(await electricPush(store, [named('v1.Other', c)]), 403, 'EventNotAllowedError', /v1\.Other/)
    await assertStored(store, stored)
    // The socket goes on; an allowed push after the refusals is stored.
    assert.deepEqual((await push(sock, store, [c, named('v1.TodoCompleted', d)])).exit, OK)
    await assertStored(store, [...stored, c, named('v1.TodoCompleted', d)])
    await assertPushLines(store, 'EventNotAllowedError', ['ws', 'http', 'electric'])
  })

  test('MAX_ARGS_BYTES: args of exactly the limit are stored, one byte more (or multi-byte text over it) is refused whole', async () => {
    const store = storeId('gov-args')
    /** Args whose JSON text is exactly `bytes` long, in UTF-8, made of `char`. */
    const argsOf = (bytes, char = 'x') => {
      const base = Buffer.byteLength(JSON.stringify({ id: 'a', text: '' }))
      const n = (bytes - base) / Buffer.byteLength(char)
      assert.ok(Number.isInteger(n))
      const args = { id: 'a', text: char.repeat(n) }
      assert.equal(Buffer.byteLength(JSON.stringify(args)), bytes)
      return args
    }
    const withArgs = (event, args) => ({ ...event, args })
    const sock = await writer(store)
    const [e1, e2] = events(2)
    const atLimit = withArgs(e1, argsOf(MAX_ARGS))
    assert.deepEqual((await push(sock, store, [atLimit])).exit, OK)
    const over = assertRefused(await push(sock, store, [e2, withArgs(events(1, 3)[0], argsOf(MAX_ARGS + 1))]), 'ArgsTooLargeError')
    assert.match(over.message, /MAX_ARGS_BYTES/)
    // Two bytes a character: over the limit in bytes, well within it in characters.
    const wide = argsOf(MAX_ARGS + 2, 'é')
    assert.ok(JSON.stringify(wide).length < MAX_ARGS - 400, 'far fewer characters than the limit')
    assertRefused(await push(sock, store, [withArgs(e2, wide)]), 'ArgsTooLargeError', /MAX_ARGS_BYTES/)
    assertRefused(await httpPush(store, [withArgs(e2, argsOf(MAX_ARGS + 1))]), 'ArgsTooLargeError', /MAX_ARGS_BYTES/)
    assertElectricRefused(await electricPush(store, [withArgs(e2, argsOf(MAX_ARGS + 1))]), 413, 'ArgsTooLargeError', /MAX_ARGS_BYTES/)
    await assertStored(store, [atLimit])
    assert.deepEqual((await push(sock, store, [e2])).exit, OK)
    await assertStored(store, [atLimit, e2])
    await assertPushLines(store, 'ArgsTooLargeError', ['ws', 'http', 'electric'])
  })

  test('MAX_STORE_EVENTS: a push that would take the store past it is refused whole; one that reaches it exactly is stored', async () => {
    const store = storeId('gov-store-events')
    const sock = await writer(store)
    assert.deepEqual((await push(sock, store, events(MAX_EVENTS - 2))).exit, OK)
    const refused = assertRefused(await push(sock, store, events(3, MAX_EVENTS - 1)), 'StoreQuotaError')
    assert.match(refused.message, /MAX_STORE_EVENTS/)
    await assertStored(store, events(MAX_EVENTS - 2))
    assert.deepEqual((await push(sock, store, events(2, MAX_EVENTS - 1))).exit, OK)
    const full = events(MAX_EVENTS)
    assertRefused(await push(sock, store, events(1, MAX_EVENTS + 1)), 'StoreQuotaError', /MAX_STORE_EVENTS/)
    assertRefused(await httpPush(store, events(1, MAX_EVENTS + 1)), 'StoreQuotaError', /MAX_STORE_EVENTS/)
    assertElectricRefused(await electricPush(store, events(1, MAX_EVENTS + 1)), 403, 'StoreQuotaError', /MAX_STORE_EVENTS/)
    // Existing events are untouched, and pulls keep working.
    await assertStored(store, full)
    assert.deepEqual(await httpPullEvents(store), full)
    await assertPushLines(store, 'StoreQuotaError', ['ws', 'http', 'electric'])
  })

  test('MAX_STORE_BYTES, counted as approxSizeBytes: refused whole past it, stored up to exactly it', async () => {
    const store = storeId('gov-store-bytes')
    const sock = await writer(store)
    // One small event; its size as the admin API counts it: name + args + createdAt + clientId + sessionId + 16.
    const first = events(1)
    assert.deepEqual((await push(sock, store, first)).exit, OK)
    const { pages } = await pullAll(sock, store)
    const createdAt = pages[0].batch[0].metadata.value.createdAt
    const sizeOf = (e) => e.name.length + JSON.stringify(e.args).length + createdAt.length + e.clientId.length + e.sessionId.length + 16
    assert.equal((await info(store)).approxSizeBytes, sizeOf(first[0]), 'approxSizeBytes counts as documented')
    /** Events `start`, … whose sizes are `sizes` exactly (ASCII args). */
    const sized = (start, sizes) =>
      events(sizes.length, start).map((e, i) => {
        const bare = { ...e, args: { id: 'a', text: '' } }
        const event = { ...bare, args: { id: 'a', text: 'x'.repeat(sizes[i] - sizeOf(bare)) } }
        assert.equal(sizeOf(event), sizes[i])
        return event
      })
    const filler = 950
    let used = sizeOf(first[0])
    const fits = Math.floor((MAX_BYTES - used) / filler)
    // One filler more than fits: refused whole.
    const tooMany = assertRefused(await push(sock, store, sized(2, Array(fits + 1).fill(filler))), 'StoreQuotaError')
    assert.match(tooMany.message, /MAX_STORE_BYTES/)
    await assertStored(store, first)
    const fillers = sized(2, Array(fits).fill(filler))
    assert.deepEqual((await push(sock, store, fillers)).exit, OK)
    used += fits * filler
    assert.equal((await info(store)).approxSizeBytes, used)
    const left = MAX_BYTES - used
    const next = 2 + fits
    // One byte over what is left: refused on every transport; exactly what is left: stored.
    assertRefused(await push(sock, store, sized(next, [left + 1])), 'StoreQuotaError', /MAX_STORE_BYTES/)
    assertRefused(await httpPush(store, sized(next, [left + 1])), 'StoreQuotaError', /MAX_STORE_BYTES/)
    assertElectricRefused(await electricPush(store, sized(next, [left + 1])), 403, 'StoreQuotaError', /MAX_STORE_BYTES/)
    await assertStored(store, [...first, ...fillers])
    const last = sized(next, [left])
    assert.deepEqual((await push(sock, store, last)).exit, OK)
    const all = [...first, ...fillers, ...last]
    assert.equal((await assertStored(store, all)).approxSizeBytes, MAX_BYTES)
    // Full: even the smallest event is refused, and the store keeps serving pulls.
    assertRefused(await push(sock, store, events(1, next + 1)), 'StoreQuotaError', /MAX_STORE_BYTES/)
    assert.deepEqual(await httpPullEvents(store), all)
    await assertStored(store, all)
    await assertPushLines(store, 'StoreQuotaError', ['ws', 'http', 'electric'])
  })
})

describe('READ_TOKEN alone', () => {
  test('clients can only read: the read token pulls, its pushes are refused, any other token is invalid', { timeout: 60_000 }, async () => {
    await withWorker({ label: 'gov-read-only', vars: { READ_TOKEN: READ } }, async (ro) => {
      const store = storeId('gov-read-alone')
      for (const payload of [{ authToken: DEFAULT_TOKEN }, { authToken: `${READ}x` }, null]) {
        const upgrade = await rawHttp(`${ro.url}/?${syncQuery(store, { payload })}`, { headers: UPGRADE_HEADERS })
        assert.equal(upgrade.status, 400, JSON.stringify(payload))
        assert.equal(upgrade.body, INVALID_TOKEN)
        const res = await postSync(ro, store, request('SyncHttpRpc.Push', { storeId: store, batch: events(1), backendId: noBackend }), { payload })
        assert.equal(res.status, 400)
        assert.equal(res.body, INVALID_TOKEN)
      }
      const sock = await openSocket(ro, store, { payload: { authToken: READ } })
      await openLivePull(sock, store, 'live-alone')
      assertRefused(await push(sock, store, events(1)), 'ReadOnlyError', /read-only/i)
      const http = await postSync(ro, store, request('SyncHttpRpc.Push', { storeId: store, batch: events(1), backendId: noBackend }), { payload: { authToken: READ } })
      assertRefused(JSON.parse(http.body).at(-1), 'ReadOnlyError', /read-only/i)
      assert.deepEqual((await pullAll(sock, store)).events, [])
      await sock.fence()
      assert.deepEqual(liveEvents(sock, 'live-alone'), [])
      sock.close()
    })
  })
})

describe('settings that cannot be used', { skip: engineOnly(['do-sqlite'], 'configuration does not depend on the engine') }, () => {
  for (const [setting, value] of [
    ['ALLOWED_EVENTS', '!'],
    ['MAX_ARGS_BYTES', 'lots'],
    ['MAX_STORE_EVENTS', '-5'],
    ['MAX_STORE_BYTES', '1.5'],
  ]) {
    test(`${setting}=${value}: every request answers 500 naming the setting`, { timeout: 60_000 }, async () => {
      await withWorker({ label: 'gov-bad-config', vars: { AUTH_TOKEN: DEFAULT_TOKEN, [setting]: value }, readyStatus: 500 }, async (bad) => {
        const store = storeId('gov-bad-config')
        for (const res of [
          await rawHttp(`${bad.url}/`),
          await rawHttp(`${bad.url}/?${syncQuery(store)}`, { headers: UPGRADE_HEADERS }),
          await postSync(bad, store, request('SyncHttpRpc.Ping', { storeId: store })),
        ]) {
          assert.equal(res.status, 500)
          assert.match(res.body, new RegExp(setting))
        }
      })
    })
  }
})

describe('a hibernated store', () => {
  test('the alarm wakes an evicted object and closes the expired socket; the read-only socket is still read-only', { timeout: 90_000 }, async () => {
    const { store, exp, reader: r } = idle
    assert.equal(storeOpenings(w, store), 1, 'nothing has touched the store since the start')
    assertExpiredClose(await idle.closed, exp, 'the idle store\'s socket')
    assert.ok(!r.closed)
    assertRefused(await push(r, store, events(1, 2)), 'ReadOnlyError')
    assert.deepEqual((await pullAll(r, store)).events, events(1))
    // The object had been evicted in the idle time: it opened the store anew for that pull.
    await waitFor(() => storeOpenings(w, store) >= 2, { timeout: 5_000, message: 'a second store_opened line' })
    // Its live pull still receives.
    const wr = await writer(store)
    assert.deepEqual((await push(wr, store, events(1, 2))).exit, OK)
    await r.until(() => liveEvents(r, 'live-idle').length === 2, { what: 'the live pull after the wake' })
    assert.deepEqual(liveEvents(r, 'live-idle'), events(2))
  })
})
