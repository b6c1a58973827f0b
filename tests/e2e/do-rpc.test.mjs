// The DO RPC transport with the real client: a Durable Object of another Worker script
// (tests/e2e/apps/do-rpc-client.mjs) runs `makeDoRpcSync` from @livestore/sync-cf 0.4.0 against
// our SyncBackendDO through a cross-script Durable Object binding, and our object calls back its
// `syncUpdateRpc`. Both Workers run in one `wrangler dev` (tests/e2e/lib/do-rpc.mjs).
//
// Covered: ping, push, paged pull, typed errors; live pulls fed by pushes from any transport
// (a WebSocket push reaching the DO RPC subscriber, and its push reaching the WebSocket live
// pull); several subscribers per store; and subscriptions surviving the eviction of the sync
// object (which the reference loses: LiveStore #1462, #1541, #1601), of the client object, and
// of both. Evictions are observed, not assumed: an idle period that did not evict is repeated,
// longer.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'

import { RpcSerialization } from '@livestore/utils/effect'

import { clientCall, startDoRpcPair } from './lib/do-rpc.mjs'
import { closeSockets, OK, openSocket, sleep, storeOpenings, untilEvicted, waitFor, withSocket } from './lib/helpers.mjs'
import { liveEvents, makeEvents, openLivePull, push } from './lib/raw.mjs'
import { fullPull } from './lib/reliability.mjs'
import { storeId, withServer } from './lib/worker.mjs'

const ADMIN_TOKEN = 'admin-token-for-do-rpc-tests'
let pair
before(async () => {
  pair = await startDoRpcPair({ vars: { ADMIN_TOKEN } })
})
after(() => pair?.stop())
after(closeSockets)

const open = (store) => openSocket(pair, store)
const state = (name) => clientCall(pair, name, 'state')
const seqs = (events) => events.map((e) => e.seqNum).sort((a, b) => a - b)
const updateSeqs = (updates) => updates.flatMap((u) => u.values[0].batch.map((b) => b.eventEncoded.seqNum))
const opened = (store) => storeOpenings(pair, store)

test('ping, push and a paged pull through makeDoRpcSync', async () => {
  const store = storeId('do-rpc-basic')
  assert.deepEqual(await clientCall(pair, 'basic', 'ping', store), { ok: true, value: null })

  // 250 events: the client splits its push (100 per request); the pull comes back in pages.
  const events = makeEvents(250)
  assert.deepEqual(await clientCall(pair, 'basic', 'push', store, events), { ok: true, value: null })

  const pulled = await clientCall(pair, 'basic', 'pull', store)
  assert.equal(pulled.ok, true, JSON.stringify(pulled))
  const pages = pulled.value.pages
  assert.deepEqual(
    pages.map((p) => [p.batch.length, p.pageInfo]),
    [
      [100, { _tag: 'MoreKnown', remaining: 150 }],
      [100, { _tag: 'MoreKnown', remaining: 50 }],
      [50, { _tag: 'NoMore' }],
    ],
  )
  assert.deepEqual(
    pages.flatMap((p) => p.batch.map((b) => b.eventEncoded)),
    events,
  )
  assert.ok(pages.every((p) => typeof p.rpcRequestId === 'string'))
  assert.equal(pages[0].batch[0].metadata._tag, 'Some')

  // The same log over WebSocket.
  const sock = await open(store)
  assert.deepEqual((await fullPull(sock, store)).events, events)

  // Structured log lines, as for the other transports: sizes and outcome, never the events.
  const lines = () => pair.logLines().filter((l) => l.storeId === store && l.transport === 'do-rpc')
  await waitFor(() => lines().filter((l) => l.event === 'push').length === 3 && lines().some((l) => l.event === 'pull'), {
    timeout: 10_000,
    message: 'the DO RPC push and pull lines',
  })
  assert.deepEqual(lines().filter((l) => l.event === 'push').map((l) => [l.events, l.outcome]), [[100, 'ok'], [100, 'ok'], [50, 'ok']])
  assert.deepEqual(
    lines().filter((l) => l.event === 'pull').map((l) => [l.live, l.events, l.pages, l.outcome]),
    [[false, 250, 3, 'ok']],
  )
  assert.ok(!pair.logs().includes('todo 17'), 'no event args in the logs')
})

test('a stale push fails with a typed ServerAheadError', async () => {
  const store = storeId('do-rpc-ahead')
  assert.equal((await clientCall(pair, 'ahead', 'push', store, makeEvents(3))).ok, true)
  const res = await clientCall(pair, 'ahead', 'push', store, makeEvents(1, { start: 2, parent: 1 }))
  assert.equal(res.ok, false)
  const error = JSON.stringify(res.error)
  assert.match(error, /ServerAheadError/)
  assert.match(error, /"minimumExpectedNum":3/)
  assert.match(error, /"providedNum":1/)
})

test('a WebSocket push reaches the DO RPC live pull, and its push reaches the WebSocket live pull', async () => {
  const store = storeId('do-rpc-ws')
  const sock = await open(store)
  await openLivePull(sock, store, 'w')
  const backendId = sock.chunks('w')[0].backendId

  await clientCall(pair, 'ws-peer', 'start', store)
  assert.deepEqual((await push(sock, store, makeEvents(2), backendId)).exit, OK)
  await waitFor(async () => seqs((await state('ws-peer')).events).length === 2, { timeout: 30_000, message: 'the DO client to see the WebSocket push' })
  const seen = await state('ws-peer')
  assert.deepEqual(seqs(seen.events), [1, 2])
  assert.equal(seen.restarts, 0, 'delivered to the running pull, not by restarting it')
  assert.deepEqual(updateSeqs(seen.updates), [1, 2])

  // And back: the DO client pushes; the WebSocket live pull gets it (after its own two events).
  assert.deepEqual(await clientCall(pair, 'ws-peer', 'push', store, makeEvents(1, { start: 3, parent: 2, clientId: 'do' })), { ok: true, value: null })
  await sock.next((m) => m._tag === 'Chunk' && m.requestId === 'w' && m.values[0].batch.some((b) => b.eventEncoded.seqNum === 3), { timeout: 30_000 })
  assert.deepEqual(liveEvents(sock, 'w').map((e) => e.seqNum), [1, 2, 3])
  // The pusher's own live pull gets the echo too.
  await waitFor(async () => seqs((await state('ws-peer')).events).includes(3), { timeout: 30_000, message: 'the echo' })
})

test('every subscriber of a store gets every push', async () => {
  const store = storeId('do-rpc-many')
  const names = ['many-1', 'many-2', 'many-3']
  for (const name of names) await clientCall(pair, name, 'start', store)
  const sock = await open(store)
  const { backendId } = await fullPull(sock, store)
  assert.deepEqual((await push(sock, store, makeEvents(3), backendId)).exit, OK)
  for (const name of names) {
    await waitFor(async () => updateSeqs((await state(name)).updates).length === 3, { timeout: 30_000, message: `${name} to get the push` })
    assert.deepEqual(updateSeqs((await state(name)).updates), [1, 2, 3], name)
  }
  // The admin figures count them.
  const info = await (await fetch(`${pair.url}/_admin/stores/${store}`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } })).json()
  assert.equal(info.rpcSubscribers, 3)
})

test('an admin import reaches the DO RPC live pull as well as the WebSocket one', async () => {
  const store = storeId('do-rpc-import')
  await clientCall(pair, 'import-peer', 'start', store)
  const sock = await open(store)
  await openLivePull(sock, store, 'w')
  const events = makeEvents(5)
  const ndjson = events.map((e) => JSON.stringify(e)).join('\n') + '\n'
  const res = await fetch(`${pair.url}/_admin/stores/${store}/import`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN_TOKEN}` }, body: ndjson })
  assert.equal(res.status, 200)
  assert.deepEqual(await res.json(), { imported: 5, head: 5 })
  await waitFor(async () => updateSeqs((await state('import-peer')).updates).length === 5, { timeout: 30_000, message: 'the import at the DO RPC subscriber' })
  const seen = await state('import-peer')
  assert.deepEqual(updateSeqs(seen.updates), [1, 2, 3, 4, 5], 'syncUpdateRpc received the imported events')
  assert.equal(seen.restarts, 0, 'delivered to the running pull')
  await waitFor(async () => seqs((await state('import-peer')).events).length === 5, { timeout: 30_000, message: 'the imported events on the DO RPC live pull' })
  await sock.next((m) => m._tag === 'Chunk' && m.requestId === 'w' && m.values[0].batch.some((b) => b.eventEncoded.seqNum === 5), { timeout: 30_000 })
  assert.deepEqual(liveEvents(sock, 'w'), events)
})

/** Calls the sync object's rpc() with raw bytes; returns the decoded messages. */
async function rawRpc(store, bytes) {
  const res = await fetch(`${pair.url}/client/raw/raw?store=${encodeURIComponent(store)}`, { method: 'POST', body: bytes })
  const reply = await res.json()
  // The client's own codec: Effect's msgPack serialization (msgpackr with records).
  const parser = RpcSerialization.msgPack.unsafeMake()
  const pieces = reply.bytes !== undefined ? [reply.bytes] : reply.stream
  return { stream: reply.stream !== undefined, messages: pieces.flatMap((p) => parser.decode(Buffer.from(p, 'base64')).flat(1)) }
}

const encode = (value) => RpcSerialization.msgPack.unsafeMake().encode(value)
const rpcRequest = (tag, payload, id = '7') => ({ _tag: 'Request', id, tag, payload, traceId: 'f'.repeat(32), spanId: 'e'.repeat(16), sampled: true, headers: [] })

test('malformed rpc() input gets a Defect or a typed error, and the store still works', async () => {
  const store = storeId('do-rpc-bad')
  const garbage = await rawRpc(store, Uint8Array.from([0xc1, 0xff, 0x00]))
  assert.equal(garbage.messages.length, 1)
  assert.equal(garbage.messages[0]._tag, 'Defect')
  assert.match(garbage.messages[0].defect, /undecodable request/)

  const truncated = encode([rpcRequest('SyncDoRpc.Ping', { storeId: store })]).slice(0, 20)
  assert.equal((await rawRpc(store, truncated)).messages[0]._tag, 'Defect')

  const unknown = await rawRpc(store, encode([rpcRequest('SyncDoRpc.Nope', { storeId: store })]))
  assert.equal(unknown.messages[0]._tag, 'Exit')
  assert.equal(unknown.messages[0].exit.cause.error._tag, 'UnknownError')
  assert.match(JSON.stringify(unknown.messages[0].exit.cause.error), /UnknownRpcError/)

  const badBatch = await rawRpc(store, encode([rpcRequest('SyncDoRpc.Push', { storeId: store, batch: [{ name: 1 }], backendId: { _tag: 'None' } })]))
  assert.equal(badBatch.messages[0].exit._tag, 'Failure')
  assert.equal(badBatch.messages[0].exit.cause.error._tag, 'UnknownError')

  // A pull alone is a stream: its pages, then the Exit.
  const pull = await rawRpc(store, encode([rpcRequest('SyncDoRpc.Pull', { storeId: store, cursor: { _tag: 'None' } }, '9')]))
  assert.equal(pull.stream, true)
  assert.deepEqual(pull.messages.map((m) => m._tag), ['Chunk', 'Exit'])
  assert.equal(pull.messages[0].values[0].rpcRequestId, '9')
  assert.deepEqual(pull.messages[1].exit, { _tag: 'Success', value: undefined })

  // Each refusal is logged as a warning, as over the other transports: a message that could not
  // be decoded, and an RPC name the transport does not have.
  const refusals = () => pair.logLines().filter((l) => l.event === 'request' && l.transport === 'do-rpc')
  await waitFor(() => refusals().some((l) => l.outcome === 'UnknownRpcError'), { message: 'the DO RPC refusal lines' })
  assert.deepEqual(
    refusals().map((l) => [l.level, l.outcome]),
    [['warn', 'InvalidMessage'], ['warn', 'InvalidMessage'], ['warn', 'UnknownRpcError']],
    JSON.stringify(refusals()),
  )

  // Nothing was stored, and the real client still works.
  assert.deepEqual(await clientCall(pair, 'bad', 'push', store, makeEvents(1)), { ok: true, value: null })
  assert.equal((await clientCall(pair, 'bad', 'pull', store)).value.pages[0].batch.length, 1)
})

/** Pushes event `n` over a new WebSocket and waits until client `name` holds events 1..n. */
async function pushAndAwait(store, name, n) {
  const sock = await open(store)
  const exit = await push(sock, store, makeEvents(1, { start: n, parent: n - 1 }))
  assert.deepEqual(exit.exit, OK, JSON.stringify(exit))
  sock.close()
  await waitFor(async () => seqs((await state(name)).events).includes(n), { timeout: 60_000, message: `${name} to receive event ${n}` })
  assert.deepEqual(seqs((await state(name)).events), Array.from({ length: n }, (_, i) => i + 1), `${name} holds the whole log`)
}

/**
 * Idles (running `keepAlive` every 2 s meanwhile), runs `beforePush`, then pushes the next
 * event and waits until client `name` has it; `check` compares the client's state before and
 * after. Repeats with a longer idle period until the sync object is seen to have been evicted
 * and rebuilt. Returns the number of cycles.
 */
function idleUntilEvicted({ store, name, keepAlive, beforePush = async () => {}, check }) {
  return untilEvicted(pair, store, async (n) => {
    const marks = { state: await state(name) }
    // The idle period is the point: the runtime evicts an object that has had nothing to do.
    const until = Date.now() + 15_000 + 10_000 * (n - 1)
    while (Date.now() < until) {
      await keepAlive()
      await sleep(2_000)
    }
    await beforePush()
    // Whatever was evicted, the event must arrive.
    await pushAndAwait(store, name, n)
    await check(marks, await state(name))
  })
}

const abort = (name) => fetch(`${pair.url}/client/${name}/abort`).then((r) => r.arrayBuffer())

test('live pulls survive the eviction of the sync object, of the client object, and of both', { timeout: 600_000 }, async () => {
  const stores = { sync: storeId('do-rpc-evict-sync'), client: storeId('do-rpc-evict-client'), both: storeId('do-rpc-evict-both') }
  const names = { sync: 'evict-sync', client: 'evict-client', both: 'evict-both' }
  for (const k of Object.keys(stores)) await clientCall(pair, names[k], 'start', stores[k])

  const [syncCycles, , bothCycles] = await Promise.all([
    // The sync object idles until evicted; the client object stays the same instance, and the
    // event reaches its original pull stream.
    idleUntilEvicted({
      store: stores.sync,
      name: names.sync,
      keepAlive: () => state(names.sync),
      check: (before, after) => {
        assert.equal(after.instance, before.state.instance, 'the client object is the same instance')
        assert.equal(after.restarts, 0, 'the event came through the running pull')
      },
    }),
    // The client object is dropped while the sync object stays up: the update reaches a new
    // client instance, which restarts its pull and catches up.
    (async () => {
      for (let n = 1; n <= 2; n++) {
        const before = { opened: opened(stores.client), state: await state(names.client) }
        await abort(names.client)
        await pushAndAwait(stores.client, names.client, n)
        const after = await state(names.client)
        assert.notEqual(after.instance, before.state.instance, 'a new client instance')
        assert.equal(after.restarts, before.state.restarts + 1, 'the new instance restarted its pull')
        assert.equal(opened(stores.client), before.opened, 'the sync object stayed up')
      }
    })(),
    // Both: the sync object idles until evicted, and the client object is dropped before the push.
    idleUntilEvicted({
      store: stores.both,
      name: names.both,
      keepAlive: async () => {},
      beforePush: () => abort(names.both),
      check: (before, after) => {
        assert.notEqual(after.instance, before.state.instance, 'a new client instance')
        assert.equal(after.restarts, before.state.restarts + 1, 'the new instance restarted its pull')
      },
    }),
  ])
  console.log(`[figures] do-rpc evictions: sync_idle_cycles=${syncCycles} both_idle_cycles=${bothCycles}`)
})

test('with do-rpc left out of ENABLED_TRANSPORTS, DO RPC requests get a typed TransportDisabledError', async () => {
  await withServer(await startDoRpcPair({ vars: { ENABLED_TRANSPORTS: 'ws,http' } }), async (off) => {
    const store = storeId('do-rpc-off')
    const res = await clientCall(off, 'off', 'push', store, makeEvents(1))
    assert.equal(res.ok, false)
    assert.match(JSON.stringify(res.error), /TransportDisabledError/)
    const pulled = await clientCall(off, 'off', 'pull', store)
    assert.equal(pulled.ok, false)
    assert.match(JSON.stringify(pulled.error), /TransportDisabledError/)
    // The other transports still serve the store, which the refused push did not touch.
    await withSocket(off, store, async (sock) => assert.deepEqual((await fullPull(sock, store)).events, []))
  })
})

test('a Worker of your own (examples/custom-worker) serves DO RPC, with its hooks', async () => {
  await withServer(await startDoRpcPair({ crateDir: 'examples/custom-worker' }), async (custom) => {
    const store = storeId('app-do-rpc')
    const refused = await clientCall(custom, 'custom', 'push', store, makeEvents(1).map((e) => ({ ...e, name: 'v1.ForbiddenThing' })))
    assert.equal(refused.ok, false)
    assert.match(JSON.stringify(refused.error), /events named v1.ForbiddenThing are not accepted/)
    assert.deepEqual(await clientCall(custom, 'custom', 'push', store, makeEvents(2)), { ok: true, value: null })
    const pulled = await clientCall(custom, 'custom', 'pull', store)
    assert.deepEqual(pulled.value.pages.flatMap((p) => p.batch.map((b) => b.eventEncoded.seqNum)), [1, 2])
    assert.match(custom.logs(), /"event":"app_push_result"/)
  })
})

test('with an invalid setting, DO RPC gets errors, never a pong or a stored push', async () => {
  await withServer(await startDoRpcPair({ vars: { MAX_MESSAGE_BYTES: 'abc' } }), async (bad) => {
    const store = storeId('do-rpc-bad-config')
    for (const [action, body] of [['ping'], ['push', makeEvents(1)], ['pull']]) {
      const res = await clientCall(bad, 'bad-config', action, store, body)
      assert.equal(res.ok, false, `${action}: ${JSON.stringify(res)}`)
      assert.match(JSON.stringify(res.error), /MAX_MESSAGE_BYTES/, action)
    }
    // The Worker refuses sync requests the same way, naming the setting.
    const res = await fetch(`${bad.url}/?storeId=${store}&transport=http`, { method: 'POST', body: '{}' })
    assert.equal(res.status, 500)
    assert.match(await res.text(), /MAX_MESSAGE_BYTES/)
  })
})
