// Malformed input, systematically: one table across the URL, the search parameters, the sync
// payload, WebSocket frames and HTTP bodies. Every row must get a clear answer of its kind (an
// HTTP status with a readable body, a typed `Exit` failure naming the problem, or a protocol
// `Defect` when a frame names no request); afterwards the store's log is exactly what it was, the
// probing socket still works, and a live pull on another socket saw nothing but real pushes.
// ws-protocol.test.mjs and http-protocol.test.mjs hold more frame- and body-level cases.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { closeSockets, OK, openSocket } from './lib/helpers.mjs'
import { rawHttp, UPGRADE_HEADERS as upgrade } from './lib/http.mjs'
import { liveEvents, makeEvents, openLivePull, pullAll, push, request } from './lib/raw.mjs'
import { DEFAULT_TOKEN, RUNTIME, STORAGE, startWorker, storeId, syncQuery } from './lib/worker.mjs'

// A payload search parameter as the URL carries it: JSON, percent-encoded twice.
const encodedPayload = (value) => encodeURIComponent(encodeURIComponent(JSON.stringify(value)))

let worker
before(async () => {
  worker = await startWorker({ label: 'bad-input' })
})
after(() => {
  closeSockets()
  return worker?.stop()
})
const open = (store) => openSocket(worker, store)

describe('a table of malformed inputs', () => {
  const store = storeId('bad-table')
  const ev = (over = {}) => ({ ...makeEvents(1, { start: 3, parent: 2 })[0], ...over })
  const wsPush = (batch, extra = {}) => request('SyncWsRpc.Push', { storeId: store, batch, backendId: { _tag: 'None' }, ...extra })
  const httpPush = (batch, extra = {}) => request('SyncHttpRpc.Push', { storeId: store, batch, backendId: { _tag: 'None' }, ...extra })

  // How answers are recognised.
  const typed = (name) => (m) => m._tag === 'Exit' && m.exit?._tag === 'Failure' && m.exit.cause?.error?._tag === 'UnknownError' && (!name || m.exit.cause.error.cause.name === name)
  const tagged = (tag) => (m) => m._tag === 'Exit' && m.exit?.cause?.error?._tag === tag
  const defect = (m) => m._tag === 'Defect' && typeof m.defect === 'string' && m.defect.length > 0

  let probe // the socket that sends the bad frames
  let watcher // another client of the same store, with a live pull
  let baseline

  // Each row: [category, name, run] where run() sends the input and asserts its answer.
  const url = (name, query, { path = '/', headers = upgrade, method = 'GET', status, body }) => [
    'url',
    name,
    async () => {
      const res = await rawHttp(`${worker.url}${path}?${query}`, { method, headers })
      assert.equal(res.status, status, res.body)
      if (body) assert.match(res.body, body)
    },
  ]
  const frame = (name, data, answered) => [
    'ws-frame',
    name,
    async () => {
      const from = probe.frames.length
      probe.send(data)
      await probe.next(answered, { from })
      assert.ok(!probe.closed, 'the socket stays open')
    },
  ]
  const httpBody = (name, body, { status = 200, answered, headers = {}, method = 'POST', query = syncQuery(store, { transport: 'http' }) }) => [
    'http-body',
    name,
    async () => {
      const data = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body)
      const res = await rawHttp(`${worker.url}/?${query}`, {
        method,
        headers: method === 'GET' ? headers : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(data)), ...headers },
        body: method === 'GET' ? undefined : data,
      })
      assert.equal(res.status, status, res.body.slice(0, 300))
      if (answered) {
        const reply = JSON.parse(res.body)
        assert.equal(reply.length, 1, res.body.slice(0, 300))
        assert.ok(answered(reply[0]), res.body.slice(0, 300))
      }
    },
  ]

  const cases = [
    // The URL and its search parameters, refused before they reach the store.
    url('empty storeId', `storeId=&transport=ws&payload=${encodedPayload({ authToken: DEFAULT_TOKEN })}`, { status: 400, body: /storeId/ }),
    url('storeId one byte over the limit', syncQuery('s'.repeat(513)), { status: 400, body: /1 to 512 bytes/ }),
    url('storeId of 6,000 bytes', syncQuery('x'.repeat(6000)), { status: 400, body: /storeId/ }),
    // Meant as sync but malformed: 400 with a message naming what is wrong, never the info page.
    url('unknown transport', `storeId=${store}&transport=carrier-pigeon`, { path: '/sync', headers: {}, status: 400, body: /unknown transport/ }),
    url('transport in capitals', `storeId=${store}&transport=WS`, { path: '/sync', status: 400, body: /unknown transport/ }),
    url('payload that is not percent-encoded JSON', `storeId=${store}&transport=ws&payload=%25zz`, { path: '/sync', status: 400, body: /not percent-encoded/ }),
    url('payload that is not JSON', `storeId=${store}&transport=ws&payload=not-json`, { path: '/sync', status: 400, body: /not JSON/ }),
    url('a WebSocket upgrade without storeId', `transport=ws`, { status: 400, body: /storeId/ }),
    url('a WebSocket upgrade with no sync parameters', `hello=1`, { status: 400, body: /storeId and transport=ws/ }),
    // Decoded lossily, %FF-x and %FE-x would be one store; such ids are refused.
    url('storeId that is not UTF-8', `storeId=%FF-${store}&transport=ws&payload=${encodedPayload({ authToken: DEFAULT_TOKEN })}`, { status: 400, body: /UTF-8/ }),
    url('payload truncated JSON', `storeId=${store}&transport=ws&payload=${encodeURIComponent(encodeURIComponent('{"authToken":"insec'))}`, { path: '/sync', status: 400 }),
    url('payload is a number', `storeId=${store}&transport=ws&payload=${encodedPayload(5)}`, { status: 400, body: /Invalid auth token/ }),
    url('payload authToken is an array', `storeId=${store}&transport=ws&payload=${encodedPayload({ authToken: [DEFAULT_TOKEN] })}`, { status: 400, body: /Invalid auth token/ }),
    url('payload authToken with a NUL byte', `storeId=${store}&transport=ws&payload=${encodedPayload({ authToken: DEFAULT_TOKEN + '\u0000' })}`, { status: 400, body: /Invalid auth token/ }),
    // Over wrangler dev's header budget: it answers 431 itself, before the Worker runs. workerd
    // alone lets the URL through, and the Worker refuses the token.
    url('payload of 64 KB', `storeId=${store}&transport=ws&payload=${encodedPayload({ authToken: 'x'.repeat(65_536) })}`, RUNTIME === 'workerd' ? { status: 400, body: /Invalid auth token/ } : { status: 431 }),
    url('deeply nested payload', `storeId=${store}&transport=ws&payload=${encodeURIComponent(encodeURIComponent('['.repeat(2000) + ']'.repeat(2000)))}`, { path: '/sync', status: 400 }),
    url('invalid UTF-8 in the payload', `storeId=${store}&transport=ws&payload=%FF%FE`, { path: '/sync', status: 400 }),
    url('WebSocket transport without Upgrade', syncQuery(store), { headers: { Upgrade: 'h2c' }, status: 426, body: /Upgrade: websocket/ }),

    // WebSocket frames on an open connection.
    frame('empty text frame', '', defect),
    frame('whitespace only', '   \n\t ', defect),
    frame('JSON null', 'null', defect),
    frame('byte-order mark before JSON', '\uFEFF{"_tag":"Ping"}', defect),
    frame('Request with an empty id', { ...request('SyncWsRpc.Pull', { storeId: store, live: false, cursor: { _tag: 'None' } }), id: '' }, defect),
    frame('Request id with a quote and a newline', { ...request('SyncWsRpc.Push', { storeId: store, batch: 'x', backendId: { _tag: 'None' } }), id: 'a"\nb' }, (m) => typed('InvalidRequestError')(m) && m.requestId === 'a"\nb'),
    frame('Request without a tag', { _tag: 'Request', id: '77', payload: {} }, (m) => typed()(m) || defect(m)),
    frame('push batch is null', wsPush(null), typed('InvalidRequestError')),
    frame('push of 101 events', wsPush(makeEvents(101, { start: 3, parent: 2 })), typed('TooManyEventsError')),
    frame('parentSeqNum far ahead of the head', wsPush([ev({ seqNum: 2 ** 53 - 1, parentSeqNum: 2 ** 53 - 2 })]), tagged('ServerAheadError')),
    frame('seqNum zero', wsPush([ev({ seqNum: 0, parentSeqNum: 0 })]), typed('InvalidPushBatchError')),
    frame('event clientId is a number', wsPush([ev({ clientId: 7 })]), typed('InvalidRequestError')),
    frame('event name is a number', wsPush([ev({ name: 12 })]), typed('InvalidRequestError')),
    frame('backendId Some without a value', wsPush([ev()], { backendId: { _tag: 'Some' } }), typed('InvalidRequestError')),
    frame('backendId from another incarnation', wsPush([ev()], { backendId: { _tag: 'Some', value: 'not-this-store' } }), tagged('BackendIdMismatchError')),
    frame('pull cursor with a negative seqNum', request('SyncWsRpc.Pull', { storeId: store, live: false, cursor: { _tag: 'Some', value: { backendId: 'x', eventSequenceNumber: -5 } } }), (m) => m._tag === 'Exit' && m.exit._tag === 'Failure'),
    frame('pull without storeId', request('SyncWsRpc.Pull', { live: false, cursor: { _tag: 'None' } }), typed('InvalidRequestError')),
    frame('Ack without a requestId', '{"_tag":"Ack"}', defect),
    // Nested past the 256 levels the server takes, but well within what its JSON parser reads:
    // the client's fault, a typed error, nothing stored.
    frame('event args nested 999 levels', JSON.stringify(wsPush([ev({ args: 'DEEP' })])).replace('"DEEP"', '['.repeat(999) + ']'.repeat(999)), typed('ArgsTooDeepError')),
    frame('4 MB frame', wsPush([ev({ args: { text: 'o'.repeat(4_000_000) } })]), typed('MessageTooLargeError')),

    // HTTP transport bodies.
    httpBody('body is JSON null', 'null', { status: 400, answered: defect }),
    httpBody('body is a number', '12', { status: 400, answered: defect }),
    httpBody('invalid UTF-8 body', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), { status: 400, answered: defect }),
    httpBody('deeply nested body', '['.repeat(100_000) + ']'.repeat(100_000), { status: 400, answered: defect }),
    httpBody('truncated request', JSON.stringify(httpPush([ev()])).slice(0, 60), { status: 400, answered: defect }),
    httpBody('request id is a number', { ...request('SyncHttpRpc.Ping', { storeId: store }), id: 5 }, { status: 400, answered: defect }),
    httpBody('a GET instead of a POST', '', { method: 'GET', status: 400, answered: defect }),
    // Nested past SQLite's JSON limit: the client's fault, refused before storage.
    httpBody('event args nested 999 levels', JSON.stringify(httpPush([ev({ args: 'DEEP' })])).replace('"DEEP"', '['.repeat(999) + ']'.repeat(999)), { answered: typed('ArgsTooDeepError') }),
    httpBody('push of 101 events', httpPush(makeEvents(101, { start: 3, parent: 2 })), { answered: typed('TooManyEventsError') }),
    httpBody('duplicate seqNums', httpPush([ev(), ev({ parentSeqNum: 3 })]), { answered: typed('InvalidPushBatchError') }),
    httpBody('non-integer parentSeqNum', httpPush([ev({ parentSeqNum: 2.5 })]), { answered: typed('InvalidRequestError') }),
    httpBody('pull cursor of the wrong shape', request('SyncHttpRpc.Pull', { storeId: store, cursor: { _tag: 'Some', value: 'three' } }), { answered: typed('InvalidRequestError') }),
    httpBody('ping for another store', request('SyncHttpRpc.Ping', { storeId: 'not-' + store }), { answered: typed('InvalidRequestError') }),
    httpBody('a wrong token', request('SyncHttpRpc.Ping', { storeId: store }), { status: 400, query: syncQuery(store, { transport: 'http', payload: { authToken: 'nope' } }) }),
    httpBody('a 3 MB body', request('SyncHttpRpc.Ping', { storeId: store, payload: { pad: 'p'.repeat(3_000_000) } }), { status: 413 }),
  ]

  before(async () => {
    probe = await open(store)
    watcher = await open(store)
    await push(probe, store, makeEvents(2))
    baseline = (await pullAll(probe, store)).events
    await openLivePull(watcher, store, '9')
  })

  const tried = { url: 0, 'ws-frame': 0, 'http-body': 0 }
  for (const [category, name, run] of cases) {
    test(`${category}: ${name} → a clear answer, log unchanged`, { timeout: 60_000 }, async () => {
      await run()
      tried[category]++
      const { exit, events } = await pullAll(probe, store)
      assert.equal(exit.exit._tag, 'Success')
      assert.deepEqual(events, baseline)
    })
  }

  test('afterwards both clients still work, and the live pull saw only real pushes', async () => {
    const next = makeEvents(1, { start: 3, parent: 2 })
    assert.deepEqual((await push(probe, store, next)).exit, OK)
    await watcher.next((m) => m._tag === 'Chunk' && m.requestId === '9' && m.values[0].batch.some((x) => x.eventEncoded.seqNum === 3))
    assert.deepEqual(liveEvents(watcher, '9'), [...baseline, ...next])
    const total = Object.values(tried).reduce((a, b) => a + b, 0)
    console.log(`[figures] bad inputs answered with the log unchanged: ${total} (${JSON.stringify(tried)})`)
    assert.equal(total, cases.length)
    assert.ok(total >= 40)
  })
})

test('a lone surrogate escape in event args is valid JSON text: stored and returned as sent', async () => {
  // JavaScript's JSON.parse accepts it, so a LiveStore client can produce it; refusing it would
  // wedge that client, and decoding it would change the bytes.
  const store = storeId('surrogate')
  const s = await open(store)
  const frame = `{"_tag":"Request","id":"4242","tag":"SyncWsRpc.Push","payload":{"storeId":"${store}","batch":[{"name":"n","args":{"t":"\\ud800"},"seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"s"}],"backendId":{"_tag":"None"}}}`
  s.send(frame)
  const exit = (await s.exit('4242')).exit
  if (STORAGE === 'postgres') {
    // Postgres's JSONB (sync-electric's layout) cannot hold a lone surrogate at all: a typed
    // refusal, the client's fault, and the store takes the next push.
    assert.equal(exit.cause.error.cause.name, 'UnstorableEventError', JSON.stringify(exit))
    assert.deepEqual((await push(s, store, makeEvents(1))).exit, OK)
    return
  }
  assert.equal(exit._tag, 'Success')
  const req = request('SyncWsRpc.Pull', { storeId: store, live: false, cursor: { _tag: 'None' } })
  const from = s.frames.length
  s.send(req)
  await s.exit(req.id, { from })
  const chunk = s.frames.slice(from).find((f) => f.startsWith('{"_tag":"Chunk"'))
  assert.ok(chunk.includes('"args":{"t":"\\ud800"}'), chunk)
})

describe('odd storeIds are ordinary, separate stores', () => {
  const odd = [
    `"; DROP TABLE eventlog_7_x; --`,
    `'); DELETE FROM context_7; --`,
    'eventlog_7_other',
    '../../etc/passwd',
    'with space and\ttab',
    'crab 🦀 ünïcödé Ω',
    'café',
    'cafe\u0301',
    'Upper',
    'upper',
    'percent%20sign',
    'nul\u0000inside',
    '\uFFFD\uFFFD',
    'z'.repeat(512),
  ]

  test(`${odd.length} odd storeIds each hold exactly their own events`, { timeout: 120_000 }, async () => {
    const suffix = storeId('odd')
    const ids = odd.map((s) => `${s}-${suffix}`.slice(-512))
    for (const [i, id] of ids.entries()) {
      const s = await open(id)
      const events = makeEvents(i + 1, { text: (n) => `${i}:${n}` })
      assert.deepEqual((await push(s, id, events)).exit, OK, JSON.stringify(id))
    }
    for (const [i, id] of ids.entries()) {
      const s = await open(id)
      const { events } = await pullAll(s, id)
      assert.deepEqual(events, makeEvents(i + 1, { text: (n) => `${i}:${n}` }), `store ${JSON.stringify(id)} holds only its own events`)
    }
    console.log(`[figures] odd storeIds isolated: ${ids.length}`)
  })
})
