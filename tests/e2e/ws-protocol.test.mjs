// The WebSocket protocol frame by frame, with a bare socket: exact bytes, fan-out, hibernation
// state, persistence across restarts, and malformed input. Each bad frame must get a clear
// answer (a typed Exit failure for its request, or a protocol Defect when the frame names no
// request), and the socket, the store and every other client must keep working with the log
// unchanged.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { closeSockets, OK, openSocket } from './lib/helpers.mjs'
import { liveEvents, makeEvents, openLivePull as livePull, pullAll, push, request } from './lib/raw.mjs'
import { STORAGE, startWorker, storeId } from './lib/worker.mjs'

let worker
before(async () => {
  worker = await startWorker({ label: 'ws-protocol' })
})
after(() => worker?.stop())
after(closeSockets)

const open = (store, opts) => openSocket(worker, store, opts)

describe('exact frames', () => {
  test('Ping is answered with the exact Pong bytes, also when spelled differently', async () => {
    const s = await open(storeId('ping'))
    s.send('{"_tag":"Ping"}')
    s.send('{ "_tag" : "Ping" }')
    await s.next(() => s.frames.length >= 2)
    assert.deepEqual(s.frames.slice(0, 2), ['{"_tag":"Pong"}', '{"_tag":"Pong"}'])
  })

  test('an empty pull is one empty NoMore chunk, then Exit Success without a value', async () => {
    const store = storeId('empty')
    const s = await open(store)
    const req = request('SyncWsRpc.Pull', { storeId: store, live: false, cursor: { _tag: 'None' } }, '7')
    s.send(req)
    await s.exit('7')
    assert.equal(s.frames.length, 2)
    const chunk = JSON.parse(s.frames[0])
    assert.match(chunk.values[0].backendId, /^[A-Za-z0-9_-]{21}$/)
    assert.equal(
      s.frames[0],
      `{"_tag":"Chunk","requestId":"7","values":[{"batch":[],"pageInfo":{"_tag":"NoMore"},"backendId":"${chunk.values[0].backendId}"}]}`,
    )
    assert.equal(s.frames[1], '{"_tag":"Exit","requestId":"7","exit":{"_tag":"Success"}}')
  })

  test('push: empty batch → {}, captured shapes for success and ServerAheadError', async () => {
    const store = storeId('push-shapes')
    const s = await open(store)
    assert.deepEqual((await push(s, store, [])).exit, OK)
    assert.deepEqual((await push(s, store, makeEvents(2))).exit, OK)
    const stale = await push(s, store, makeEvents(1, { start: 9, parent: 8 }))
    assert.deepEqual(stale.exit, {
      _tag: 'Failure',
      cause: { _tag: 'Fail', error: { _tag: 'ServerAheadError', minimumExpectedNum: 2, providedNum: 8 } },
    })
  })

  test('BackendIdMismatchError on push and on pull, as typed failures', async () => {
    const store = storeId('mismatch')
    const s = await open(store)
    await push(s, store, makeEvents(1))
    const { pages } = await pullAll(s, store)
    const backendId = pages[0].backendId
    const failure = (received) => ({
      _tag: 'Failure',
      cause: { _tag: 'Fail', error: { _tag: 'BackendIdMismatchError', expected: backendId, received } },
    })
    assert.deepEqual((await push(s, store, makeEvents(1, { start: 2, parent: 1 }), 'old-backend')).exit, failure('old-backend'))
    const pulled = await pullAll(s, store, { cursor: { backendId: 'old-backend', eventSequenceNumber: 1 } })
    assert.deepEqual(pulled.exit.exit, failure('old-backend'))
    assert.deepEqual(pulled.pages, [])
    // The right backendId works.
    assert.deepEqual((await push(s, store, makeEvents(1, { start: 2, parent: 1 }), backendId)).exit, OK)
  })
})

describe('pipelined pushes', () => {
  // Sent back to back on one socket without waiting for answers, each batch chained to the one
  // before: every one is valid in arrival order, and must be applied in that order. (On D1, whose
  // writes await, pushes that overtook each other were refused with ServerAheadError
  // {minimumExpectedNum: 104, providedNum: 314}.)
  test(`eight pushes pipelined on one socket are applied in arrival order (${STORAGE})`, async () => {
    const store = storeId('pipelined')
    const s = await open(store)
    const sizes = [5, 21, 78, 3, 60, 1, 40, 12]
    const requests = []
    let head = 0
    for (const size of sizes) {
      requests.push(request('SyncWsRpc.Push', { storeId: store, batch: makeEvents(size, { start: head + 1, parent: head }), backendId: { _tag: 'None' } }))
      head += size
    }
    for (const req of requests) s.send(req)
    const exits = await Promise.all(requests.map((req) => s.exit(req.id, { timeout: 60_000 })))
    assert.deepEqual(exits.map((e) => e.exit), sizes.map(() => OK))
    const { exit, events } = await pullAll(s, store)
    assert.equal(exit.exit._tag, 'Success')
    assert.deepEqual(events.map((e) => e.seqNum), Array.from({ length: 220 }, (_, i) => i + 1))
    assert.deepEqual(events, makeEvents(220))
  })
})

describe('live pulls', () => {
  test('every accepted push reaches every live pull, the pusher\'s own included, before its Exit', async () => {
    const store = storeId('fanout')
    const a = await open(store)
    const b = await open(store)
    await livePull(a, store, '1')
    await livePull(b, store, '1')
    await livePull(b, store, '2')
    const events = makeEvents(3)
    const req = request('SyncWsRpc.Push', { storeId: store, batch: events, backendId: { _tag: 'None' } }, '5')
    a.send(req)
    await a.exit('5')
    await b.next((m) => m._tag === 'Chunk' && m.requestId === '2' && m.values[0].batch.length > 0)
    const echoIndex = a.frames.findIndex((f) => f.includes('"requestId":"1"') && f.includes('v1.TodoCreated'))
    const exitIndex = a.frames.findIndex((f) => f.includes('"_tag":"Exit","requestId":"5"'))
    assert.ok(echoIndex >= 0 && echoIndex < exitIndex, 'the echo precedes the push Exit')
    for (const [sock, id] of [[a, '1'], [b, '1'], [b, '2']]) {
      assert.deepEqual(liveEvents(sock, id), events, `socket/request ${id}`)
      assert.deepEqual(sock.chunks(id).at(-1).pageInfo, { _tag: 'NoMore' })
    }
    // A live pull never sends an Exit of its own.
    assert.equal(b.messages().filter((m) => m._tag === 'Exit').length, 0)
  })

  test('Interrupt ends a live pull; Ack and Interrupt for unknown ids are accepted silently', async () => {
    const store = storeId('interrupt')
    const a = await open(store)
    const b = await open(store)
    await livePull(b, store, '3')
    b.send({ _tag: 'Ack', requestId: '3' })
    b.send({ _tag: 'Ack', requestId: 'never-seen' })
    b.send({ _tag: 'Interrupt', requestId: 'never-seen' })
    b.send({ _tag: 'Interrupt', requestId: '3' })
    const exit = await b.exit('3')
    assert.deepEqual(exit.exit, { _tag: 'Failure', cause: { _tag: 'Interrupt', fiberId: { _tag: 'None' } } })
    await push(a, store, makeEvents(1))
    await pullAll(b, store)
    assert.equal(b.chunks('3').length, 1, 'no broadcast after the interrupt')
    assert.ok(!b.frames.some((f) => f.includes('never-seen')), 'unknown ids get no reply')
  })

  // The object keeps its live sockets grouped by request id between pushes; every change in
  // between (a pull registered, interrupted, a socket closed) must show in the next broadcast.
  test('each broadcast reaches exactly the live pulls registered at that moment', async () => {
    const store = storeId('fanout-changes')
    const pusher = await open(store)
    const [a, b, c] = [await open(store), await open(store), await open(store)]
    await livePull(a, store, '1')
    await livePull(b, store, '1')
    const first = makeEvents(1)
    assert.deepEqual((await push(pusher, store, first)).exit, OK)
    await b.next(() => liveEvents(b, '1').length === 1)
    // Between the pushes: c joins under a new id, b trades '1' for '7', a's socket closes.
    await livePull(c, store, '9')
    b.send({ _tag: 'Interrupt', requestId: '1' })
    await b.exit('1')
    await livePull(b, store, '7')
    a.close()
    await a.whenClosed()
    const second = makeEvents(1, { start: 2, parent: 1 })
    assert.deepEqual((await push(pusher, store, second)).exit, OK)
    await c.next(() => liveEvents(c, '9').some((e) => e.seqNum === 2))
    await b.next(() => liveEvents(b, '7').some((e) => e.seqNum === 2))
    assert.deepEqual(liveEvents(b, '1'), first, "b's interrupted pull got nothing more")
    assert.deepEqual(liveEvents(b, '7').map((e) => e.seqNum), [1, 2])
    assert.deepEqual(liveEvents(c, '9').map((e) => e.seqNum), [1, 2])
    // The broadcast after a registration went once to each pull: no duplicate from a stale group.
    const third = makeEvents(1, { start: 3, parent: 2 })
    assert.deepEqual((await push(pusher, store, third)).exit, OK)
    await c.next(() => liveEvents(c, '9').some((e) => e.seqNum === 3))
    await b.next(() => liveEvents(b, '7').some((e) => e.seqNum === 3))
    assert.deepEqual(liveEvents(c, '9').map((e) => e.seqNum), [1, 2, 3])
    assert.deepEqual(liveEvents(b, '7').map((e) => e.seqNum), [1, 2, 3])
  })

  test('a big push is broadcast in pages of at most 100 events and 900 KB', async () => {
    const store = storeId('fanout-pages')
    const a = await open(store)
    await livePull(a, store, '1')
    // 100 events (the most one push may carry) of ~9.5 KB: one frame under the 1 MiB message
    // limit, but one page of them would be over 900 KB, so the broadcast must split by bytes.
    const events = makeEvents(100, { text: () => 'p'.repeat(9_500) })
    assert.deepEqual((await push(a, store, events)).exit, OK)
    await a.next(() => a.chunks('1').reduce((n, v) => n + v.batch.length, 0) === 100)
    const pages = a.chunks('1').filter((v) => v.batch.length > 0)
    assert.ok(pages.length >= 2)
    assert.ok(pages[0].batch.length < 100, 'the first page was cut by bytes')
    for (const p of pages) {
      assert.ok(p.batch.length <= 100)
      assert.ok(JSON.stringify(p).length <= 900_000)
      assert.deepEqual(p.pageInfo, { _tag: 'NoMore' })
    }
    assert.deepEqual(pages.flatMap((p) => p.batch.map((b) => b.eventEncoded.seqNum)), events.map((e) => e.seqNum))
  })
})

describe('bad input', () => {
  const store = storeId('bad-input')
  const ev = (over = {}) => ({ ...makeEvents(1, { start: 3, parent: 2 })[0], ...over })
  const pushReq = (batch, extra = {}) => request('SyncWsRpc.Push', { storeId: store, batch, backendId: { _tag: 'None' }, ...extra })
  const typed = (name) => (m) => m._tag === 'Exit' && m.exit?.cause?.error?._tag === 'UnknownError' && (!name || m.exit.cause.error.cause.name === name)
  const defect = (m) => m._tag === 'Defect' && typeof m.defect === 'string' && m.defect.length > 0

  // [name, frame, how the answer is recognised]
  const cases = [
    ['not JSON', 'this is not json', defect],
    ['truncated JSON', '{"_tag":"Request","id":"1","tag":"SyncWsRpc.Pull","payload":{"storeId"', defect],
    ['a JSON array', '[{"_tag":"Ping"}]', defect],
    ['a JSON string', '"Ping"', defect],
    ['no _tag', '{"id":"1"}', defect],
    ['unknown message _tag', '{"_tag":"Hello"}', defect],
    ['request id is a number', { _tag: 'Request', id: 1, tag: 'SyncWsRpc.Pull', payload: {} }, defect],
    ['request id is too long', { _tag: 'Request', id: '9'.repeat(100), tag: 'SyncWsRpc.Pull', payload: {} }, defect],
    ['request tag is not a string', { _tag: 'Request', id: 'bad-tag', tag: 42, payload: {} }, typed('InvalidRequestError')],
    ['unknown RPC tag', request('SyncWsRpc.Delete', { storeId: store }), typed('UnknownRpcError')],
    ['HTTP RPC tag on the socket', request('SyncHttpRpc.Ping', { storeId: store }), typed('UnknownRpcError')],
    ['push without payload', { _tag: 'Request', id: 'np', tag: 'SyncWsRpc.Push' }, typed('InvalidRequestError')],
    ['push payload is an array', request('SyncWsRpc.Push', []), typed('InvalidRequestError')],
    ['batch is an object', pushReq({}), typed('InvalidRequestError')],
    ['event without name', pushReq([{ ...ev(), name: undefined }]), typed('InvalidRequestError')],
    ['seqNum is a string', pushReq([ev({ seqNum: '3' })]), typed('InvalidRequestError')],
    ['seqNum is not an integer', pushReq([ev({ seqNum: 3.5 })]), typed('InvalidRequestError')],
    ['seqNum is huge', pushReq([ev({ seqNum: 1e300 })]), typed('InvalidRequestError')],
    ['seqNum beyond 2^53', '{"_tag":"Request","id":"big","tag":"SyncWsRpc.Push","payload":{"storeId":"' + store + '","batch":[{"name":"n","args":{},"seqNum":9007199254740993,"parentSeqNum":2,"clientId":"c","sessionId":"s"}],"backendId":{"_tag":"None"}}}', typed('InvalidRequestError')],
    ['negative seqNum', pushReq([ev({ seqNum: -3, parentSeqNum: -4 })]), typed('InvalidPushBatchError')],
    ['negative parentSeqNum', pushReq([ev({ parentSeqNum: -1 })]), typed('InvalidPushBatchError')],
    ['seqNum not after its parent', pushReq([ev({ seqNum: 2, parentSeqNum: 2 })]), typed('InvalidPushBatchError')],
    ['duplicate seqNums in a batch', pushReq([ev(), ev({ parentSeqNum: 3 })]), typed('InvalidPushBatchError')],
    ['seqNums going backwards', pushReq([ev({ seqNum: 4 }), ev({ seqNum: 3, parentSeqNum: 4 })]), typed('InvalidPushBatchError')],
    ['backendId is a bare string', pushReq([ev()], { backendId: 'x' }), typed('InvalidRequestError')],
    ['pull cursor is a number', request('SyncWsRpc.Pull', { storeId: store, live: false, cursor: 5 }), typed('InvalidRequestError')],
    ['pull live is a string', request('SyncWsRpc.Pull', { storeId: store, live: 'yes', cursor: { _tag: 'None' } }), typed('InvalidRequestError')],
    ['another store\'s id', pushReq([ev()], { storeId: 'someone-else' }), typed('InvalidRequestError')],
    ['deeply nested args', `{"_tag":"Request","id":"deep","tag":"SyncWsRpc.Push","payload":{"storeId":"${store}","batch":[{"name":"n","args":${'['.repeat(50_000)}${']'.repeat(50_000)},"seqNum":3,"parentSeqNum":2,"clientId":"c","sessionId":"s"}],"backendId":{"_tag":"None"}}}`, typed()],
    ['oversize frame (1.5 MB)', pushReq([ev({ args: { text: 'o'.repeat(1_500_000) } })]), typed('MessageTooLargeError')],
    ['binary frame', Buffer.from([0x7b, 0x00, 0xff, 0xfe]), defect],
    ['invalid UTF-8 in a binary frame', Buffer.from([0xc3, 0x28]), defect],
  ]

  let a
  let b
  let baseline
  before(async () => {
    a = await open(store)
    b = await open(store)
    await push(a, store, makeEvents(2))
    baseline = (await pullAll(a, store)).events
    await livePull(b, store, 'watch')
  })

  for (const [name, frame, answered] of cases) {
    test(`${name}: answered, socket and store keep working, log unchanged`, async () => {
      const from = a.frames.length
      a.send(frame)
      await a.next(answered, { from })
      assert.ok(!a.closed, 'the socket stays open')
      const { exit, events } = await pullAll(a, store)
      assert.equal(exit.exit._tag, 'Success')
      assert.deepEqual(events, baseline)
    })
  }

  test('after all of that, the same socket pushes normally and the other client receives it', async () => {
    const next = makeEvents(1, { start: 3, parent: 2 })
    assert.deepEqual((await push(a, store, next)).exit, OK)
    await b.next((m) => m._tag === 'Chunk' && m.requestId === 'watch' && m.values[0].batch.some((x) => x.eventEncoded.seqNum === 3))
    // The live pull saw the two initial events and then exactly this push: nothing from the bad frames.
    assert.deepEqual(liveEvents(b, 'watch'), [...baseline, ...next])
    assert.deepEqual((await pullAll(a, store)).events, [...baseline, ...next])
  })
})

describe('HTTP-level refusals of the upgrade', () => {
  test('a wrong or missing token is refused with 400 before the upgrade', async () => {
    await assert.rejects(open('x', { payload: { authToken: 'wrong' } }), { status: 400 })
    await assert.rejects(open('x', { payload: null }), { status: 400 })
  })
})
