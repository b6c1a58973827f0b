// The HTTP transport request by request, and the declarative options around it: enabled
// transports, CORS on HTTP replies, the Durable Object binding name, per-request auth, and
// malformed bodies, each answered without touching the store.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { groupProcesses, groupRss, OK, openSocket, withSocket } from './lib/helpers.mjs'
import { postSync, rawHttp, streamChunked, UPGRADE_HEADERS } from './lib/http.mjs'
import { liveEvents, makeEvents, openLivePull, request } from './lib/raw.mjs'
import { DEFAULT_TOKEN, RUNTIME, startWorker, storeId, syncQuery, withWorker } from './lib/worker.mjs'

// Any path will do for sync; this one shows it.
const post = (w, store, body, opts) => postSync(w, store, body, { path: '/any/path', ...opts })
const rpc = async (w, store, tag, payload, opts) => {
  const res = await post(w, store, request(tag, payload), opts)
  assert.equal(res.status, 200, res.body)
  return JSON.parse(res.body)
}
const pullEvents = async (w, store) =>
  (await rpc(w, store, 'SyncHttpRpc.Pull', { storeId: store, cursor: { _tag: 'None' } }))
    .filter((m) => m._tag === 'Chunk')
    .flatMap((m) => m.values[0].batch.map((b) => b.eventEncoded))

describe('HTTP transport', () => {
  let w
  before(async () => (w = await startWorker({ label: 'http-protocol' })))
  after(() => w?.stop())

  test('ping, push, pull and a cursor pull answer one JSON array each, as captured from the reference', async () => {
    const store = storeId('http-basic')
    const ping = await rpc(w, store, 'SyncHttpRpc.Ping', { storeId: store, payload: { authToken: DEFAULT_TOKEN } })
    assert.deepEqual(ping.map((m) => m.exit), [{ _tag: 'Success', value: { _tag: 'SyncMessage.Pong' } }])
    const events = makeEvents(3)
    const pushed = await rpc(w, store, 'SyncHttpRpc.Push', { storeId: store, batch: events, backendId: { _tag: 'None' } })
    assert.deepEqual(pushed.map((m) => [m._tag, m.exit]), [['Exit', OK]])
    const pulled = await rpc(w, store, 'SyncHttpRpc.Pull', { storeId: store, cursor: { _tag: 'None' } })
    assert.deepEqual(pulled.map((m) => m._tag), ['Chunk', 'Exit'])
    assert.deepEqual(pulled[1].exit, { _tag: 'Success' })
    assert.deepEqual(pulled[0].values[0].batch.map((b) => b.eventEncoded), events)
    const backendId = pulled[0].values[0].backendId
    const after1 = await rpc(w, store, 'SyncHttpRpc.Pull', {
      storeId: store,
      cursor: { _tag: 'Some', value: { backendId, eventSequenceNumber: 1 } },
    })
    assert.deepEqual(after1[0].values[0].batch.map((b) => b.eventEncoded.seqNum), [2, 3])
    const stale = await rpc(w, store, 'SyncHttpRpc.Push', { storeId: store, batch: makeEvents(1, { start: 9, parent: 8 }), backendId: { _tag: 'Some', value: backendId } })
    assert.deepEqual(stale[0].exit.cause.error, { _tag: 'ServerAheadError', minimumExpectedNum: 3, providedNum: 8 })
  })

  test('a pull returns every page in one reply, with exact remaining counts', async () => {
    const store = storeId('http-pages')
    const events = makeEvents(250)
    for (let i = 0; i < 250; i += 50) {
      await rpc(w, store, 'SyncHttpRpc.Push', { storeId: store, batch: events.slice(i, i + 50), backendId: { _tag: 'None' } })
    }
    const pulled = await rpc(w, store, 'SyncHttpRpc.Pull', { storeId: store, cursor: { _tag: 'None' } })
    const pages = pulled.filter((m) => m._tag === 'Chunk').map((m) => m.values[0])
    assert.deepEqual(pages.map((p) => p.batch.length), [100, 100, 50])
    assert.deepEqual(pages.map((p) => p.pageInfo), [
      { _tag: 'MoreKnown', remaining: 150 },
      { _tag: 'MoreKnown', remaining: 50 },
      { _tag: 'NoMore' },
    ])
  })

  test('a push over HTTP reaches WebSocket live pulls', async () => {
    const store = storeId('http-to-ws')
    await withSocket(w, store, async (sock) => {
      await openLivePull(sock, store, 'live')
      const events = makeEvents(2)
      await rpc(w, store, 'SyncHttpRpc.Push', { storeId: store, batch: events, backendId: { _tag: 'None' } })
      await sock.next((m) => m._tag === 'Chunk' && m.values[0].batch.length > 0)
      assert.deepEqual(liveEvents(sock, 'live'), events)
    })
  })

  test('the token is checked on every request', async () => {
    const store = storeId('http-auth')
    const res = await post(w, store, request('SyncHttpRpc.Ping', { storeId: store }), { payload: { authToken: 'wrong' } })
    assert.equal(res.status, 400)
    assert.match(res.body, /Invalid auth token/)
  })

  test('HTTP replies carry the CORS origin header, so browser apps can read them', async () => {
    const store = storeId('http-cors')
    const res = await post(w, store, request('SyncHttpRpc.Ping', { storeId: store }))
    assert.equal(res.headers['access-control-allow-origin'], '*')
  })

  describe('bad bodies: a clear answer, and the store unchanged', () => {
    const store = storeId('http-bad')
    let baseline
    before(async () => {
      await rpc(w, store, 'SyncHttpRpc.Push', { storeId: store, batch: makeEvents(2), backendId: { _tag: 'None' } })
      baseline = await pullEvents(w, store)
    })
    const defect = (reply) => reply.length === 1 && reply[0]._tag === 'Defect'
    const oversize = () =>
      request('SyncHttpRpc.Push', { storeId: store, batch: makeEvents(1, { start: 3, parent: 2, text: () => 'o'.repeat(1_200_000) }), backendId: { _tag: 'None' } })
    const failure = (name) => (reply) => reply.length === 1 && reply[0].exit?.cause?.error?.cause?.name === name
    // Bodies that are no RPC message at all are 400, with the defect an RPC client can read.
    const cases = [
      ['empty body', '', defect, {}, 400],
      ['not JSON', 'nope', defect, {}, 400],
      ['an array of requests', JSON.stringify([request('SyncHttpRpc.Ping', { storeId: store })]), defect, {}, 400],
      ['an unknown envelope tag', JSON.stringify({ _tag: 'Hello' }), defect, {}, 400],
      ['unknown RPC tag', request('SyncHttpRpc.Drop', { storeId: store }), failure('UnknownRpcError')],
      ['a WebSocket RPC tag', request('SyncWsRpc.Push', { storeId: store, batch: [], backendId: { _tag: 'None' } }), failure('UnknownRpcError')],
      ['push with a string seqNum', request('SyncHttpRpc.Push', { storeId: store, batch: [{ ...makeEvents(1, { start: 3, parent: 2 })[0], seqNum: '3' }], backendId: { _tag: 'None' } }), failure('InvalidRequestError')],
      ['push going backwards', request('SyncHttpRpc.Push', { storeId: store, batch: makeEvents(2, { start: 3, parent: 2 }).reverse(), backendId: { _tag: 'None' } }), failure('InvalidPushBatchError')],
      ['pull with a bad cursor', request('SyncHttpRpc.Pull', { storeId: store, cursor: { _tag: 'Some' } }), failure('InvalidRequestError')],
      ['another store in the payload', request('SyncHttpRpc.Push', { storeId: 'elsewhere', batch: makeEvents(1, { start: 3, parent: 2 }), backendId: { _tag: 'None' } }), failure('InvalidRequestError')],
      // Refused from its Content-Length, before the body is read. workerd alone then closes the
      // connection, which a client still sending sees as a reset (Node's does; curl reads the
      // answer): there the client asks first, and the body is never sent.
      ['an oversize body', oversize(), defect, { expectContinue: RUNTIME === 'workerd' }, 413],
      // Without a length up front: read only up to the limit, then refused the same way.
      ['an oversize body sent chunked', oversize(), defect, { chunked: true }, 413],
    ]
    for (const [name, body, answered, opts, status = 200] of cases) {
      test(name, async () => {
        const res = await post(w, store, body, opts)
        assert.equal(res.status, status)
        const reply = JSON.parse(res.body)
        assert.ok(answered(reply), res.body.slice(0, 500))
        assert.deepEqual(await pullEvents(w, store), baseline)
      })
    }

    // The limit (MAX_MESSAGE_BYTES, 1 MiB by default) holds however long the client goes on: a
    // body of no declared length is read only up to it, never held whole in memory, and the
    // answer comes while the client is still sending.
    test('a chunked body of 64 MiB, streamed, is refused with 413 once past the limit; the worker keeps serving', { timeout: 120_000 }, async () => {
      const total = 64 * 1024 * 1024
      const rssBefore = groupRss(w.pid)
      const runtimes = () => groupProcesses(w.pid).filter((p) => p.name === 'workerd').map((p) => p.pid).sort().join(',')
      const runtimesBefore = runtimes()
      assert.notEqual(runtimesBefore, '', 'no workerd process in the worker\'s process group')
      // Sampled while the body streams, and once more after the answer: the peak is what counts.
      let rssPeak = rssBefore
      const sample = () => (rssPeak = Math.max(rssPeak, groupRss(w.pid)))
      const sampler = setInterval(sample, 100)
      const answers = []
      // wrangler dev's own proxy answers 503 with this text when its hop to the runtime fails
      // while it counts the runtime as reloading; it is not our worker's answer (the runtime's
      // processes are checked unchanged below, so a real restart still fails the test).
      // Or it resets the client's connection before any answer reached it (status undefined).
      const devProxyLost = (a) =>
        RUNTIME !== 'workerd' && (a.status === undefined || (a.status === 503 && a.body?.startsWith('Your worker restarted mid-request.')))
      // Our answer got through when its body did, or, under wrangler dev, its 413 status line
      // did: there the reset that follows loses the body to the proxy more often than not (one
      // CI run lost it in 8 of 8 attempts); the body itself is checked by the test before this.
      const answered = (a) => !devProxyLost(a) && (a.body !== undefined || (RUNTIME !== 'workerd' && a.status === 413))
      try {
        // The server answers and stops reading; closing a connection with unread data in it
        // resets it, which can destroy the answer's body before the client reads it (the status
        // line got through). Under wrangler dev its proxy does so for about half the attempts
        // (workerd alone measured none in 20), and in CI runs lost a whole answer to the reset
        // (devProxyLost: its 503, or a reset before any answer). Every answer that got through
        // must be a 413 sent early, and a body that arrives must be the defect: attempts until one
        // is answered, up to 8.
        while (answers.length < 8 && !answers.some(answered)) {
          answers.push(await streamChunked(`${w.url}/?${syncQuery(store, { transport: 'http' })}`, { total }))
        }
      } finally {
        clearInterval(sampler)
      }
      sample()
      const seen = answers
        .map((a) => `${a.status ?? 'no answer'} after ${(a.sentBeforeAnswer / 2 ** 20).toFixed(1)} MiB, ${devProxyLost(a) ? `lost at wrangler's proxy (${a.reset?.code ?? a.status})` : a.body === undefined ? `body lost (${a.reset?.code})` : 'body read'}`)
        .join('; ')
      assert.equal(runtimes(), runtimesBefore, `the runtime restarted (attempts: ${seen})`)
      for (const res of answers) {
        // Even an attempt whose answer the proxy lost ended before the whole body was sent.
        assert.ok(res.sentBeforeAnswer < total, `the answer came before the whole body was sent (${res.sentBeforeAnswer} of ${total} bytes; attempts: ${seen})`)
        if (devProxyLost(res)) continue
        assert.equal(res.status, 413, `${res.body?.slice(0, 300)} (attempts: ${seen})`)
        if (res.body !== undefined) assert.ok(defect(JSON.parse(res.body)), res.body.slice(0, 500))
      }
      assert.ok(answers.some(answered), `no answer of ours got through the reset (attempts: ${seen})`)
      // A measurement, not a timing: the runtime must not have buffered the body.
      const grew = rssPeak - rssBefore
      console.log(`[figures] 64 MiB chunked body: ${seen}; worker group RSS ${(rssBefore / 2 ** 20).toFixed(0)} MiB, peak ${(rssPeak / 2 ** 20).toFixed(0)} MiB`)
      assert.ok(grew < 100 * 2 ** 20, `the worker's process group grew by ${(grew / 2 ** 20).toFixed(0)} MiB`)
      // Nothing was stored, and a push and a pull work as before.
      assert.deepEqual(await pullEvents(w, store), baseline)
      const next = makeEvents(1, { start: 3, parent: 2 })
      assert.deepEqual((await rpc(w, store, 'SyncHttpRpc.Push', { storeId: store, batch: next, backendId: { _tag: 'None' } })).map((m) => m.exit), [OK])
      assert.deepEqual(await pullEvents(w, store), [...baseline, ...next])
    })
  })
})

describe('only WebSocket enabled, with a renamed Durable Object binding', () => {
  let w
  before(async () => {
    w = await startWorker({
      label: 'ws-only',
      vars: { AUTH_TOKEN: DEFAULT_TOKEN, ENABLED_TRANSPORTS: 'ws', SYNC_BACKEND_BINDING: 'STORES' },
      editConfig: (text) => text.replace('name = "SYNC_BACKEND_DO"', 'name = "STORES"'),
    })
  })
  after(() => w?.stop())

  test('HTTP is refused with a clear error; WebSocket works through the renamed binding', async () => {
    const store = storeId('ws-only')
    const res = await post(w, store, request('SyncHttpRpc.Ping', { storeId: store }))
    assert.equal(res.status, 400)
    assert.match(res.body, /Transport http is not enabled/)
    await withSocket(w, store, async (sock) => {
      sock.send(request('SyncWsRpc.Push', { storeId: store, batch: makeEvents(1), backendId: { _tag: 'None' } }, 'p'))
      assert.deepEqual((await sock.exit('p')).exit, OK)
    })
  })
})

describe('only HTTP enabled, and a binding name that does not exist', () => {
  let w
  before(async () => {
    w = await startWorker({ label: 'http-only', vars: { AUTH_TOKEN: DEFAULT_TOKEN, ENABLED_TRANSPORTS: 'http' } })
  })
  after(() => w?.stop())

  test('WebSocket is refused with a clear error before the upgrade', async () => {
    await assert.rejects(openSocket(w, storeId('http-only')), { status: 400 })
    const res = await rawHttp(`${w.url}/?${syncQuery('x')}`, { headers: UPGRADE_HEADERS })
    assert.match(res.body, /Transport ws is not enabled/)
  })

  test('a missing binding is 424, as in the reference', async () => {
    await withWorker({ label: 'no-binding', vars: { AUTH_TOKEN: DEFAULT_TOKEN, SYNC_BACKEND_BINDING: 'NOPE' } }, async (other) => {
      const res = await post(other, 's', request('SyncHttpRpc.Ping', { storeId: 's' }))
      assert.equal(res.status, 424)
      assert.equal(res.body, "Failed dependency: Required Durable Object binding 'NOPE' not available")
    })
  })
})
