// Structured logs (issue 7): one JSON line per connect, push, pull and refusal, with the store,
// transport, sizes, durations and outcome, as `wrangler dev` prints them; never the auth token,
// an Authorization header or an event's args; LOG_LEVEL filters them.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { OK, openSocket as openRaw, waitFor } from './lib/helpers.mjs'
import { postSync } from './lib/http.mjs'
import { makeEvents, pullAll, push, request } from './lib/raw.mjs'
import { RUNTIME, startWorker, storeId, withWorker } from './lib/worker.mjs'

const SECRET = 'log-test-secret-7f3a9c1e5b'
// Looks like a signed token; sent as `Authorization: Bearer`, it must not be logged either.
const BEARER = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJsb2ctdGVzdCJ9.bWFya2VyLXNpZ25hdHVyZQ'
// In every event's args and in the invalid payloads, so a leaked payload shows.
const MARKER = 'payload-marker-d41d8cd98f'
const auth = { authToken: SECRET }

const events = (count, opts) => makeEvents(count, { ...opts, text: (i) => `${MARKER} ${i}` })

const httpRpc = (w, store, tag, payload) => postSync(w, store, request(tag, payload), { payload: auth, headers: { authorization: `Bearer ${BEARER}` } })

const openSocket = (w, store, payload = auth) => openRaw(w, store, { payload, headers: { authorization: `Bearer ${BEARER}` } })

/**
 * One store's traffic: over WebSocket a connect, a push of 3, a pull, an invalid push, a
 * malformed frame and a stale push; over HTTP a push, a cursor pull and an invalid push; and a connect with a wrong token.
 */
async function traffic(w, store) {
  const sock = await openSocket(w, store)
  try {
    assert.deepEqual((await push(sock, store, events(3))).exit, OK)
    const pulled = await pullAll(sock, store)
    assert.equal(pulled.events.length, 3)
    const invalid = request('SyncWsRpc.Push', { storeId: store, payload: auth, batch: [{ name: MARKER, args: { x: MARKER }, seqNum: MARKER }] })
    sock.send(invalid)
    const refused = (await sock.exit(invalid.id)).exit
    assert.equal(refused._tag, 'Failure')
    // The client is told what was wrong, quoting its payload; the log line must not be.
    assert.ok(JSON.stringify(refused).includes(MARKER), JSON.stringify(refused))
    const before = sock.frames.length
    sock.send(`{"_tag":"Request","id":"x","tag":"SyncWsRpc.Push","payload":{"args":"${MARKER}"`)
    await sock.next((m) => m._tag === 'Defect' || m._tag === 'Exit', { from: before })
    const stale = await push(sock, store, events(1, { start: 2, parent: 1 }))
    assert.equal(stale.exit.cause.error._tag, 'ServerAheadError')
    const backendId = pulled.pages[0].backendId

    const pushed = await httpRpc(w, store, 'SyncHttpRpc.Push', { storeId: store, payload: auth, batch: events(2, { start: 4, parent: 3 }), backendId: { _tag: 'Some', value: backendId } })
    assert.equal(pushed.status, 200, pushed.body)
    assert.deepEqual(JSON.parse(pushed.body).at(-1).exit, OK)
    const httpPull = await httpRpc(w, store, 'SyncHttpRpc.Pull', { storeId: store, payload: auth, cursor: { _tag: 'Some', value: { backendId, eventSequenceNumber: 1 } } })
    assert.equal(JSON.parse(httpPull.body).at(-1).exit._tag, 'Success')
    const httpInvalid = await httpRpc(w, store, 'SyncHttpRpc.Push', { storeId: store, batch: MARKER })
    assert.equal(JSON.parse(httpInvalid.body).at(-1).exit._tag, 'Failure')
  } finally {
    sock.close()
  }
  await assert.rejects(openSocket(w, store, { authToken: `not-${SECRET}` }), (e) => e.status === 400)
}

/** Nothing secret in any output, and no log line carries a field that could hold a payload. */
function assertNothingLeaked(w) {
  const output = w.logs()
  for (const secret of [SECRET, BEARER, MARKER]) assert.ok(!output.includes(secret), `${secret} in the output`)
  for (const line of w.logLines()) {
    for (const key of ['payload', 'args', 'batch', 'authToken', 'authorization', 'token', 'headers']) {
      assert.ok(!(key in line), `${key} in ${JSON.stringify(line)}`)
    }
  }
}

describe('structured logs at the default level (info)', () => {
  let w
  const store = storeId('logs-info')
  let lines
  before(async () => {
    w = await startWorker({ label: 'logs-info', vars: { AUTH_TOKEN: SECRET } })
    await traffic(w, store)
    // The refused connect is the last thing done, so its line comes last.
    const refused = (l) => l.event === 'connect' && l.outcome === 'refused' && l.storeId === store
    await waitFor(() => w.logLines().some(refused), { timeout: 20_000, message: 'the refused connect line' })
    lines = w.logLines().filter((l) => l.storeId === store)
  })
  after(() => w?.stop())

  const one = (predicate, what) => {
    const found = lines.filter(predicate)
    assert.equal(found.length, 1, `one ${what} line in ${JSON.stringify(lines, null, 1)}`)
    return found[0]
  }
  const durationOk = (line) => assert.ok(Number.isInteger(line.ms) && line.ms >= 0, JSON.stringify(line))

  test('connect: accepted over WebSocket, refused with a reason for a wrong token', () => {
    const accepted = one((l) => l.event === 'connect' && l.outcome === 'accepted', 'accepted connect')
    assert.deepEqual(accepted, { level: 'info', event: 'connect', storeId: store, transport: 'ws', outcome: 'accepted', sockets: 1 })
    const refused = one((l) => l.event === 'connect' && l.outcome === 'refused', 'refused connect')
    assert.deepEqual(refused, { level: 'warn', event: 'connect', storeId: store, transport: 'ws', outcome: 'refused', reason: 'InvalidAuthToken', status: 400 })
  })

  test('push: batch size, bytes, duration and outcome, per transport', () => {
    const wsOk = one((l) => l.event === 'push' && l.transport === 'ws' && l.outcome === 'ok', 'ws push')
    assert.equal(wsOk.level, 'info')
    assert.equal(wsOk.events, 3)
    assert.ok(wsOk.bytes > 3 * MARKER.length, `bytes ${wsOk.bytes}`)
    durationOk(wsOk)
    const invalid = one((l) => l.event === 'push' && l.transport === 'ws' && l.outcome === 'InvalidRequestError', 'invalid ws push')
    assert.equal(invalid.level, 'warn')
    assert.equal(invalid.events, null, 'the batch could not be read')
    const malformed = one((l) => l.event === 'request', 'malformed frame')
    assert.deepEqual(malformed, { level: 'warn', event: 'request', storeId: store, transport: 'ws', bytes: malformed.bytes, outcome: 'InvalidMessage' })
    const stale = one((l) => l.event === 'push' && l.outcome === 'ServerAheadError', 'stale push')
    assert.deepEqual([stale.level, stale.transport, stale.events], ['info', 'ws', 1])
    const httpOk = one((l) => l.event === 'push' && l.transport === 'http' && l.outcome === 'ok', 'http push')
    assert.deepEqual([httpOk.level, httpOk.events], ['info', 2])
    durationOk(httpOk)
    const httpInvalid = one((l) => l.event === 'push' && l.transport === 'http' && l.outcome !== 'ok', 'invalid http push')
    assert.deepEqual([httpInvalid.level, httpInvalid.outcome], ['warn', 'InvalidRequestError'])
  })

  test('pull: live or not, cursor, events and pages sent, duration', () => {
    const wsPull = one((l) => l.event === 'pull' && l.transport === 'ws', 'ws pull')
    const { ms, ...rest } = wsPull
    assert.deepEqual(rest, { level: 'info', event: 'pull', storeId: store, transport: 'ws', live: false, cursor: null, events: 3, pages: 1, outcome: 'ok' })
    durationOk(wsPull)
    const httpPull = one((l) => l.event === 'pull' && l.transport === 'http', 'http pull')
    assert.deepEqual([httpPull.cursor, httpPull.events, httpPull.pages, httpPull.outcome], [1, 4, 1, 'ok'])
  })

  test('event args nested 999 levels: refused as the client\'s fault, a warn push line and no error line', async () => {
    const deep = storeId('logs-deep')
    const sock = await openSocket(w, deep)
    try {
      const req = request('SyncWsRpc.Push', { storeId: deep, batch: [{ ...events(1)[0], args: 'DEEP' }], backendId: { _tag: 'None' } })
      // Built as text: nested past the 256 levels the server takes, within what its parser reads.
      sock.send(JSON.stringify(req).replace('"DEEP"', '['.repeat(999) + ']'.repeat(999)))
      const { exit } = await sock.exit(req.id)
      assert.equal(exit._tag, 'Failure', JSON.stringify(exit))
      assert.equal(exit.cause.error._tag, 'UnknownError')
      assert.equal(exit.cause.error.cause.name, 'ArgsTooDeepError')
      assert.deepEqual((await pullAll(sock, deep)).events, [], 'nothing was stored')
    } finally {
      sock.close()
    }
    const pushLine = () => w.logLines().find((l) => l.event === 'push' && l.storeId === deep)
    await waitFor(() => pushLine() !== undefined, { timeout: 20_000, message: 'the push line' })
    assert.deepEqual([pushLine().level, pushLine().transport, pushLine().outcome], ['warn', 'ws', 'ArgsTooDeepError'])
    // An error line (the backend's fault) would have come just before the push line.
    assert.deepEqual(w.logLines().filter((l) => l.event === 'error'), [])
  })

  test('every line is one JSON object with a level and an event; no secrets, no payloads', () => {
    for (const line of lines) {
      assert.ok(['error', 'warn', 'info'].includes(line.level), JSON.stringify(line))
      assert.equal(typeof line.event, 'string')
    }
    assert.ok(!lines.some((l) => l.event === 'disconnect'), 'disconnects are debug lines')
    assertNothingLeaked(w)
  })
})

describe('LOG_LEVEL', () => {
  test('warn: refusals only, no info lines', { timeout: 120_000 }, async () => {
    await withWorker({ label: 'logs-warn', vars: { AUTH_TOKEN: SECRET, LOG_LEVEL: 'warn' } }, async (w) => {
      const store = storeId('logs-warn')
      await traffic(w, store)
      await waitFor(() => w.logLines().some((l) => l.event === 'connect' && l.outcome === 'refused'), { timeout: 20_000, message: 'the refused connect line' })
      const lines = w.logLines()
      assert.deepEqual(lines.filter((l) => l.level !== 'warn' && l.level !== 'error'), [])
      assert.deepEqual(
        lines.map((l) => [l.event, l.transport, l.outcome]),
        [
          ['push', 'ws', 'InvalidRequestError'],
          ['request', 'ws', 'InvalidMessage'],
          ['push', 'http', 'InvalidRequestError'],
          ['connect', 'ws', 'refused'],
        ],
      )
      assertNothingLeaked(w)
    })
  })

  test('debug adds disconnects; an unknown value warns once and logs as info', { timeout: 120_000 }, async () => {
    await withWorker({ label: 'logs-debug', vars: { AUTH_TOKEN: SECRET, LOG_LEVEL: 'DEBUG' } }, async (debug) => {
      const store = storeId('logs-debug')
      const sock = await openSocket(debug, store)
      assert.deepEqual((await push(sock, store, events(1))).exit, OK)
      sock.close()
      await waitFor(() => debug.logLines().some((l) => l.event === 'disconnect' && l.storeId === store), { timeout: 20_000, message: 'the disconnect line' })
      const line = debug.logLines().find((l) => l.event === 'disconnect')
      assert.deepEqual([line.level, line.transport], ['debug', 'ws'])
    })
    await withWorker({ label: 'logs-typo', vars: { AUTH_TOKEN: SECRET, LOG_LEVEL: 'verbose' } }, async (typo) => {
      const store = storeId('logs-typo')
      const sock = await openSocket(typo, store)
      assert.deepEqual((await push(sock, store, events(1))).exit, OK)
      sock.close()
      await waitFor(() => typo.logLines().some((l) => l.event === 'push' && l.storeId === store), { timeout: 20_000, message: 'the push line' })
      const config = typo.logLines().filter((l) => l.event === 'config')
      assert.equal(config.length, 1, JSON.stringify(config))
      assert.deepEqual([config[0].level, config[0].var, config[0].value], ['warn', 'LOG_LEVEL', 'verbose'])
      assert.ok(!typo.logLines().some((l) => l.level === 'debug'))
    })
  })

  test('off: no lines at all', { timeout: 120_000 }, async () => {
    await withWorker({ label: 'logs-off', vars: { AUTH_TOKEN: SECRET, LOG_LEVEL: 'off' } }, async (w) => {
      await traffic(w, storeId('logs-off'))
      // No line of ours can mark the end here; wrangler's own request lines can: each reply
      // follows the worker's console output for it, and the refused connect is the last request.
      // workerd alone prints no request lines, but writes console output as the worker calls it,
      // before the reply: once it is stopped and its output read to the end, all of it is there.
      if (RUNTIME === 'workerd') await w.stop()
      else await waitFor(() => /\[wrangler:info\] GET \/ 400/.test(w.logs()), { timeout: 20_000, message: "wrangler's line for the refused connect" })
      assert.deepEqual(w.logLines(), [])
      assertNothingLeaked(w)
    })
  })
})
