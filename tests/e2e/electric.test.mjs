// The sync-electric endpoint (/electric) with the real, unmodified @livestore/sync-electric@0.4.0
// client: ping, pulls (empty, paged, live), pushes (accepted, stale, refused), one store shared
// with sync-cf clients, a reset, and malformed input answered without losing the store. The
// figures it prints (a live pull's delivery) are for the docs, never asserted against a clock.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { after, before, describe, test } from 'node:test'

import { connectClient } from './lib/client.mjs'
import { connectElectric, cursorOf, electricEndpoint, electricLivePull, Option } from './lib/electric.mjs'
import { OK, openSocket, closeSockets, waitFor } from './lib/helpers.mjs'
import { rawHttp } from './lib/http.mjs'
import { makeEvents, pullAll, push } from './lib/raw.mjs'
import { DEFAULT_TOKEN, startWorker, storeId } from './lib/worker.mjs'

const ADMIN = 'electric-admin-secret'
const admin = (w, path, init = {}) =>
  fetch(`${w.url}/_admin${path}`, { ...init, headers: { authorization: `Bearer ${ADMIN}`, ...init.headers } })

const argsOf = (store, { handle, live = false, payload = { authToken: DEFAULT_TOKEN } } = {}) =>
  encodeURIComponent(
    JSON.stringify({
      _tag: '@livestore/sync-electric.Pull',
      storeId: store,
      ...(payload ? { payload } : {}),
      handle: handle ? { _tag: 'Some', value: handle } : { _tag: 'None' },
      live,
    }),
  )
const rawPull = (w, store, options = {}) => rawHttp(`${w.url}/electric?args=${argsOf(store, options)}`)
const rawPush = (w, store, batch, { token = DEFAULT_TOKEN, body } = {}) =>
  rawHttp(electricEndpoint(w, token), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: body ?? JSON.stringify({ _tag: '@livestore/sync-electric.Push', storeId: store, batch }),
  })
const events = (pages) => pages.flatMap((p) => p.batch.map((b) => b.eventEncoded))

let w
before(async () => {
  w = await startWorker({ label: 'electric', vars: { AUTH_TOKEN: DEFAULT_TOKEN, ADMIN_TOKEN: ADMIN } })
})
after(async () => {
  closeSockets()
  await w?.stop()
})

describe('the real client', () => {
  test('ping, an empty pull, a push, and a fresh pull of what it pushed', async () => {
    const store = storeId('el-basic')
    const c = await connectElectric({ endpoint: electricEndpoint(w), storeId: store })
    await c.ping()
    assert.equal(await c.isConnected(), true)
    const empty = await c.pullPages()
    assert.deepEqual(empty.map((p) => [p.batch.length, p.pageInfo._tag]), [[0, 'NoMore']])
    const batch = makeEvents(2)
    await c.push(batch)
    const pages = await c.pullPages()
    assert.deepEqual(events(pages), batch)
    assert.equal(pages[0].pageInfo._tag, 'MoreUnknown')
    // The cursor the client keeps: the answer's handle and offset, "<seqNum>_1" after data.
    assert.match(pages[0].batch.at(-1).metadata.value.offset, /^2_1$/)
    await c.close()
  })

  test('250 events come back in pages of at most 100, in order', async () => {
    const store = storeId('el-paged')
    const c = await connectElectric({ endpoint: electricEndpoint(w), storeId: store })
    for (let start = 1; start <= 250; start += 100) {
      await c.push(makeEvents(Math.min(100, 251 - start), { start, parent: start - 1 }))
    }
    const pages = await c.pullPages()
    assert.deepEqual(pages.filter((p) => p.batch.length > 0).map((p) => p.batch.length), [100, 100, 50])
    assert.deepEqual(events(pages).map((e) => e.seqNum), Array.from({ length: 250 }, (_, i) => i + 1))
    assert.equal(pages.at(-1).batch.at(-1).metadata.value.offset, '250_1')
    await c.close()
  })

  test('a stale push is refused (non-2xx) and stores nothing', async () => {
    const store = storeId('el-stale')
    const c = await connectElectric({ endpoint: electricEndpoint(w), storeId: store })
    await c.push(makeEvents(2))
    const exit = await c.pushExit(makeEvents(1, { start: 2, parent: 1, clientId: 'b' }))
    assert.equal(exit._tag, 'Failure')
    assert.equal(exit.cause.error._tag, 'UnknownError')
    // What the server said, for a client that reads it.
    const raw = await rawPush(w, store, makeEvents(1, { start: 2, parent: 1, clientId: 'b' }))
    assert.equal(raw.status, 409)
    assert.deepEqual(
      { ...JSON.parse(raw.body), message: undefined },
      { success: false, error: 'ServerAheadError', message: undefined, minimumExpectedSeqNum: 2, providedSeqNum: 1 },
    )
    assert.deepEqual(events(await c.pullPages()).map((e) => e.clientId), ['client-a', 'client-a'])
    await c.close()
  })

  test('a live pull receives pushes from another client at once, and one after its own page without waiting', async () => {
    const store = storeId('el-live')
    const a = await connectElectric({ endpoint: electricEndpoint(w), storeId: store, clientId: 'a' })
    const b = await connectElectric({ endpoint: electricEndpoint(w), storeId: store, clientId: 'b' })
    await a.push(makeEvents(1))
    const live = electricLivePull(b)
    await waitFor(() => live.events().length === 1, { message: 'the first page' })
    const sentAt = Date.now()
    await a.push(makeEvents(1, { start: 2, parent: 1 }))
    await waitFor(() => live.events().length === 2, { message: 'the pushed event on the live pull' })
    const latency = Date.now() - sentAt
    await a.push(makeEvents(1, { start: 3, parent: 2 }))
    await waitFor(() => live.events().length === 3, { message: 'the next one' })
    assert.deepEqual(live.events().map((e) => e.seqNum), [1, 2, 3])
    assert.equal(live.failure(), undefined)
    console.log(`[figures] sync-electric live pull: event delivered ${latency} ms after its push was sent`)
    await live.stop()
    await a.close()
    await b.close()
  })

  test('sync-cf and sync-electric clients share one store, with the same seqNums both ways', async () => {
    const store = storeId('el-shared')
    const e = await connectElectric({ endpoint: electricEndpoint(w), storeId: store })
    const ws = await connectClient({ url: w.wsUrl, storeId: store })
    await e.push(makeEvents(2, { clientId: 'electric' }))
    assert.deepEqual((await ws.pullPages()).flatMap((p) => p.batch.map((b) => b.eventEncoded.seqNum)), [1, 2])
    await ws.push(makeEvents(2, { start: 3, parent: 2, clientId: 'sync-cf' }))
    const pulled = events(await e.pullPages())
    assert.deepEqual(pulled.map((e) => [e.seqNum, e.clientId]), [[1, 'electric'], [2, 'electric'], [3, 'sync-cf'], [4, 'sync-cf']])
    // The shape handle is the store's backendId.
    const sock = await openSocket(w, store)
    const backendId = (await pullAll(sock, store)).pages[0].backendId
    assert.equal((await rawPull(w, store)).headers['electric-handle'], backendId)
    // An Electric live pull sees an Electric push and a WebSocket push alike.
    const live = electricLivePull(e, Option.some({ eventSequenceNumber: 4, metadata: Option.some({ handle: backendId, offset: '4_0' }) }))
    await e.push(makeEvents(1, { start: 5, parent: 4, clientId: 'electric' }))
    await push(sock, store, makeEvents(1, { start: 6, parent: 5, clientId: 'raw-ws' }), backendId)
    await waitFor(() => live.events().length === 2, { message: 'both on the Electric live pull' })
    assert.deepEqual(live.events().map((e) => e.seqNum), [5, 6])
    assert.deepEqual((await pullAll(sock, store)).events.map((e) => e.seqNum), [1, 2, 3, 4, 5, 6])
    await live.stop()
    await e.close()
    await ws.close()
  })

  test('a reset store answers 409 must-refetch, which the 0.4.0 client cannot survive', async () => {
    const store = storeId('el-reset')
    const c = await connectElectric({ endpoint: electricEndpoint(w), storeId: store })
    await c.push(makeEvents(1))
    const pages = await c.pullPages()
    const res = await admin(w, `/stores/${store}/reset`, { method: 'POST' })
    assert.equal(res.status, 200)
    const exit = await c.pullExit(cursorOf(pages[0]))
    assert.equal(exit._tag, 'Failure')
    assert.match(String(exit.cause), /Electric shape not found/)
    const raw = await rawPull(w, store, { handle: pages[0].batch[0].metadata.value })
    assert.equal(raw.status, 409)
    assert.deepEqual(JSON.parse(raw.body), [{ headers: { control: 'must-refetch' } }])
    assert.notEqual(raw.headers['electric-handle'], pages[0].batch[0].metadata.value.handle)
    await c.close()
  })
})

describe('auth with the same tokens', () => {
  test('a push needs a token for its store: in the path, or as a Bearer header', async () => {
    const store = storeId('el-auth')
    for (const token of [null, 'wrong-token']) {
      const res = await rawPush(w, store, makeEvents(1), { token })
      assert.equal(res.status, 401, String(token))
      assert.equal(JSON.parse(res.body).success, false)
    }
    const bearer = await rawHttp(`${w.url}/electric`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${DEFAULT_TOKEN}` },
      body: JSON.stringify({ _tag: '@livestore/sync-electric.Push', storeId: store, batch: makeEvents(1) }),
    })
    assert.equal(bearer.status, 200)
    assert.deepEqual(JSON.parse(bearer.body), { success: true })
    // Only the authorised push was stored.
    const pulled = JSON.parse((await rawPull(w, store)).body).filter((r) => r.value)
    assert.deepEqual(pulled.map((r) => r.value.seqNum), ['1'])
  })

  test('a pull is admitted by the token in its payload, as sync-cf clients send it', async () => {
    const store = storeId('el-pull-auth')
    assert.equal((await rawPull(w, store)).status, 200)
    assert.equal((await rawPull(w, store, { payload: { authToken: 'nope' } })).status, 401)
    assert.equal((await rawPull(w, store, { payload: null })).status, 401)
    const c = await connectElectric({ endpoint: electricEndpoint(w, null), storeId: store, payload: { authToken: DEFAULT_TOKEN } })
    assert.deepEqual((await c.pullPages()).length, 1)
    await c.close()
  })
})

describe('the wire', () => {
  test('rows are strings, with a relation; headers say where the client is; nothing is cached', async () => {
    const store = storeId('el-wire')
    await rawPush(w, store, makeEvents(1))
    const res = await rawPull(w, store)
    assert.equal(res.status, 200)
    assert.equal(res.headers['cache-control'], 'no-store')
    assert.equal(res.headers['access-control-allow-origin'], '*')
    assert.equal(res.headers['access-control-expose-headers'], 'electric-handle, electric-offset')
    assert.equal(res.headers['electric-offset'], '1_1')
    const [row] = JSON.parse(res.body)
    assert.equal(row.value.seqNum, '1')
    assert.equal(row.value.parentSeqNum, '0')
    assert.equal(typeof row.value.args, 'string')
    assert.deepEqual(JSON.parse(row.value.args), makeEvents(1)[0].args)
    assert.equal(row.headers.operation, 'insert')
    assert.equal(row.headers.relation.length, 2)
    // Caught up: an empty page with the up-to-date control item, the flag cleared.
    const next = await rawPull(w, store, { handle: { handle: res.headers['electric-handle'], offset: '1_1' }, live: true })
    assert.deepEqual(JSON.parse(next.body), [{ headers: { control: 'up-to-date' } }])
    assert.equal(next.headers['electric-offset'], '1_0')
  })

  test('HEAD answers 2xx, OPTIONS the CORS preflight', async () => {
    assert.equal((await rawHttp(`${w.url}/electric`, { method: 'HEAD' })).status, 200)
    assert.equal((await rawHttp(electricEndpoint(w), { method: 'HEAD' })).status, 200)
    const pre = await rawHttp(`${w.url}/electric/tok`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    })
    assert.equal(pre.status, 204)
    assert.equal(pre.headers['access-control-allow-origin'], '*')
    assert.match(pre.headers['access-control-allow-methods'], /POST/)
  })

  test('bad input gets a clear answer and the store is unchanged; a client with data never gets a 400', async () => {
    const store = storeId('el-bad')
    await rawPush(w, store, makeEvents(2))
    const handle = (await rawPull(w, store)).headers['electric-handle']
    const before = (await rawPull(w, store)).body
    const bad = [
      // Args the client never sends: a client without data, so 400 restarts nothing.
      [`${w.url}/electric?args=not-json`, {}, 400],
      [`${w.url}/electric?args=${encodeURIComponent(JSON.stringify({ _tag: 'Other', storeId: store, handle: { _tag: 'None' }, live: false }))}`, {}, 400],
      [`${w.url}/electric?args=${encodeURIComponent(JSON.stringify({ _tag: '@livestore/sync-electric.Pull', handle: { _tag: 'None' }, live: false }))}`, {}, 400],
      [`${w.url}/electric`, {}, 400],
      // Offsets this server never wrote, from a client that has data: the shape cannot go on.
      ...['-1', '-5_0', 'abc', '99999999999999999999_0', '3_0', '1_7'].map((offset) => [
        `${w.url}/electric?args=${argsOf(store, { handle: { handle, offset } })}`,
        {},
        409,
      ]),
      // Push bodies that are no push, an oversize one, a push for a store the token does not name.
      [electricEndpoint(w), { method: 'POST', body: '{"nope":1}' }, 400],
      [electricEndpoint(w), { method: 'POST', body: JSON.stringify({ _tag: '@livestore/sync-electric.Push', storeId: store, batch: 'x' }) }, 400],
      [electricEndpoint(w), { method: 'POST', body: JSON.stringify({ _tag: '@livestore/sync-electric.Push', storeId: store, batch: makeEvents(1, { start: 3, parent: 2, text: () => 'o'.repeat(1_200_000) }) }) }, 413],
      [electricEndpoint(w), { method: 'PUT', body: '{}' }, 405],
    ]
    for (const [url, init, status] of bad) {
      const res = await rawHttp(url, { method: 'GET', ...init, headers: { 'content-type': 'application/json' } })
      assert.equal(res.status, status, `${init.method ?? 'GET'} ${url.slice(0, 160)}: ${res.body.slice(0, 200)}`)
    }
    assert.equal((await rawPull(w, store)).body, before)
  })

  test('a scoped token opens only its stores, here too', async () => {
    const secret = 'electric-scoped-secret-0123456789abcdef'
    const scoped = await startWorker({ label: 'electric-jwt', vars: { JWT_SECRET: secret } })
    try {
      const token = hs256(['store-a'], secret)
      const ok = await rawPush(scoped, 'store-a', makeEvents(1), { token })
      assert.equal(ok.status, 200)
      const refused = await rawPush(scoped, 'store-b', makeEvents(1), { token })
      assert.equal(refused.status, 401)
      assert.match(refused.body, /not valid for this store/)
    } finally {
      await scoped.stop()
    }
  })
})

test('with electric left out of ENABLED_TRANSPORTS, the endpoint refuses with a clear answer', async () => {
  const off = await startWorker({ label: 'electric-off', vars: { AUTH_TOKEN: DEFAULT_TOKEN, ENABLED_TRANSPORTS: 'ws,http' } })
  try {
    for (const res of [await rawPull(off, 'x'), await rawPush(off, 'x', makeEvents(1))]) {
      assert.equal(res.status, 400)
      assert.match(res.body, /Transport electric is not enabled/)
    }
  } finally {
    await off.stop()
  }
})

describe('held pulls', () => {
  test('a held pull is answered by a push on any transport, or empty when its hold ends', async () => {
    const held = await startWorker({ label: 'electric-hold', vars: { AUTH_TOKEN: DEFAULT_TOKEN, ADMIN_TOKEN: ADMIN, ELECTRIC_HOLD_SECONDS: '2' } })
    try {
      const store = storeId('el-hold')
      await rawPush(held, store, makeEvents(1))
      const handle = (await rawPull(held, store)).headers['electric-handle']
      const waiting = rawPull(held, store, { handle: { handle, offset: '1_0' }, live: true })
      const sock = await openSocket(held, store)
      await waitFor(async () => (await (await admin(held, `/stores/${store}`)).json()).heldPulls === 1, { message: 'the pull to be held' })
      assert.deepEqual((await push(sock, store, makeEvents(1, { start: 2, parent: 1 }), handle)).exit, OK)
      const answered = await waiting
      assert.deepEqual(JSON.parse(answered.body).map((r) => r.value?.seqNum), ['2'])
      assert.equal(answered.headers['electric-offset'], '2_1')
      // Nothing new: answered empty once the hold ends, with the same position.
      const empty = await rawPull(held, store, { handle: { handle, offset: '2_0' }, live: true })
      assert.deepEqual(JSON.parse(empty.body), [{ headers: { control: 'up-to-date' } }])
      assert.equal(empty.headers['electric-offset'], '2_0')
      sock.close()
    } finally {
      await held.stop()
    }
  })
})

/** An HS256 token for `stores`, valid for an hour. */
function hs256(stores, secret) {
  const b64 = (data) => Buffer.from(data).toString('base64url')
  const header = b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))
  const claims = b64(JSON.stringify({ stores, exp: Math.floor(Date.now() / 1000) + 3600 }))
  return `${header}.${claims}.${crypto.createHmac('sha256', secret).update(`${header}.${claims}`).digest('base64url')}`
}
