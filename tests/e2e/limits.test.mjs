// The configurable limits: each is enforced with a clear, typed answer and never by dropping data
// silently; what was accepted before the limit stays, and the store keeps serving.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { closeSockets, OK, openSocket, sleep, waitFor } from './lib/helpers.mjs'
import { postSync, rawHttp, UPGRADE_HEADERS } from './lib/http.mjs'
import { makeEvents, pullAll, push, request } from './lib/raw.mjs'
import { DEFAULT_TOKEN, startWorker, storeId, syncQuery } from './lib/worker.mjs'

const failureName = (exit) => exit.exit?.cause?.error?.cause?.name

describe('limits set low', () => {
  let w
  before(async () => {
    w = await startWorker({
      label: 'limits',
      vars: {
        AUTH_TOKEN: DEFAULT_TOKEN,
        MAX_PUSH_EVENTS: '5',
        MAX_SOCKETS_PER_STORE: '3',
        MAX_PUSHES_PER_SECOND: '4',
        MAX_MESSAGE_BYTES: '20000',
        MAX_STORE_ID_BYTES: '40',
      },
    })
  })
  after(() => {
    closeSockets()
    return w?.stop()
  })
  const open = (store) => openSocket(w, store)

  test('MAX_PUSH_EVENTS: a bigger batch is refused whole, over both transports', async () => {
    const store = storeId('lim-events')
    const s = await open(store)
    const tooMany = await push(s, store, makeEvents(6))
    assert.equal(failureName(tooMany), 'TooManyEventsError')
    assert.match(tooMany.exit.cause.error.cause.message, /at most 5 events/)
    const res = await postSync(w, store, request('SyncHttpRpc.Push', { storeId: store, batch: makeEvents(6), backendId: { _tag: 'None' } }))
    assert.equal(failureName(JSON.parse(res.body)[0]), 'TooManyEventsError')
    assert.deepEqual((await pullAll(s, store)).events, [])
    assert.deepEqual((await push(s, store, makeEvents(5))).exit, OK)
  })

  test('MAX_PUSHES_PER_SECOND: pushes over the rate are refused, nothing is lost, the next second works', async () => {
    const store = storeId('lim-rate')
    const s = await open(store)
    // Pipelined with the same parent: at most one can be accepted, and the rest of those within
    // the rate must fail with ServerAheadError, the ones over it with RateLimitError.
    const batches = Array.from({ length: 10 }, (_, i) => makeEvents(1, { start: 1, text: () => `try ${i}` }))
    const reqs = batches.map((batch) => request('SyncWsRpc.Push', { storeId: store, batch, backendId: { _tag: 'None' } }))
    // Sent just after a second starts, so the burst falls into one window of the server's clock
    // (the window is time itself: nothing to await but the clock).
    while (Date.now() % 1000 > 50) await sleep(5)
    const from = s.frames.length
    for (const r of reqs) s.send(r)
    const exits = await Promise.all(reqs.map((r) => s.exit(r.id, { from })))
    const names = exits.map((e) => (e.exit._tag === 'Success' ? 'ok' : (failureName(e) ?? e.exit.cause.error._tag)))
    const limited = names.filter((n) => n === 'RateLimitError').length
    assert.ok(limited >= 6, `at least 6 of 10 pushes in one burst are over a rate of 4/s: ${names}`)
    assert.ok(names.every((n) => ['ok', 'ServerAheadError', 'RateLimitError'].includes(n)), names.join())
    assert.match(exits[names.indexOf('RateLimitError')].exit.cause.error.cause.message, /at most 4 times per second/)
    const accepted = names.filter((n) => n === 'ok').length
    assert.equal((await pullAll(s, store)).events.length, accepted, 'exactly the acknowledged pushes are stored')
    // The window passes (a wait for the clock, which is what the limit counts); the same
    // connection may push again.
    await sleep(1100)
    const head = accepted
    assert.deepEqual((await push(s, store, makeEvents(1, { start: head + 1, parent: head }))).exit, OK)
  })

  test('MAX_SOCKETS_PER_STORE: a connection over the limit is refused with 429; others stores are unaffected', async () => {
    const store = storeId('lim-sockets')
    const first = await Promise.all([open(store), open(store), open(store)])
    await assert.rejects(open(store), { status: 429 })
    const refused = await rawHttp(`${w.url}/?${syncQuery(store)}`, { headers: UPGRADE_HEADERS })
    assert.equal(refused.status, 429)
    assert.match(refused.body, /TooManyConnectionsError/)
    // The open ones keep working; another store is not affected.
    assert.deepEqual((await push(first[0], store, makeEvents(1))).exit, OK)
    await open(storeId('lim-sockets-other'))
    // Once one closes, a new connection is accepted: the close handshake is over when the
    // server has taken the close, and the object counts the sockets it still holds a moment
    // later, so the new connection is retried until it is let in.
    first[1].close()
    await first[1].whenClosed()
    let reopened
    await waitFor(async () => (reopened = await open(store).catch(() => undefined)), { timeout: 5_000, interval: 100, message: 'a slot to free up when a connection closes' })
    assert.ok(reopened, 'a slot frees up when a connection closes')
    assert.equal((await pullAll(reopened, store)).events.length, 1)
  })

  test('MAX_MESSAGE_BYTES and MAX_STORE_ID_BYTES as configured', async () => {
    const store = storeId('lim-size').slice(0, 40)
    const s = await open(store)
    const big = await push(s, store, makeEvents(1, { text: () => 'b'.repeat(25_000) }))
    assert.equal(failureName(big), 'MessageTooLargeError')
    assert.deepEqual((await pullAll(s, store)).events, [])
    await assert.rejects(open('s'.repeat(41)), { status: 400 })
  })
})
