// Load without loss: (a) a hundred bare-socket clients, each with a live pull, race to push into
// one store, retrying after ServerAheadError once their live pull has caught up (as the real
// client rebases); (b) two hundred stores at once, each with its own live pull and pusher. Every
// acknowledged event must be stored exactly once in a gapless log, every push request must get
// exactly one answer, the pusher's echo must come before its acknowledgement, and every live pull
// must receive exactly its store's log, in order, each event once.
//
// LOAD_CLIENTS, LOAD_EVENTS (per client) and LOAD_STORES change the sizes.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { closeSockets, OK, openSocket, sleep, waitFor } from './lib/helpers.mjs'
import { liveEvents, openLivePull, push, request } from './lib/raw.mjs'
import { assertGapless, assertPaging, figures, fullPull, Ledger, randInt, tagged } from './lib/reliability.mjs'
import { STORAGE, startWorker, storeId } from './lib/worker.mjs'

const CLIENTS = Number(process.env.LOAD_CLIENTS ?? 100)
const EVENTS_PER_CLIENT = Number(process.env.LOAD_EVENTS ?? 20)
const STORES = Number(process.env.LOAD_STORES ?? 200)

let worker
before(async () => {
  worker = await startWorker({ label: 'load' })
})
after(() => worker?.stop())
after(closeSockets)
const open = (store) => openSocket(worker, store)

/** Runs `fn` over `items` with at most `limit` at a time; results in order. */
async function mapLimit(items, limit, fn) {
  const results = new Array(items.length)
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++
        results[i] = await fn(items[i], i)
      }
    }),
  )
  return results
}

/**
 * Follows a socket's live pull as frames arrive: its events in order, the frame index at which
 * each event id arrived, and every backendId seen. Call before the live pull is opened.
 */
function follow(sock, liveId) {
  const f = { events: [], frameOf: new Map(), backendIds: new Set(), pages: 0 }
  sock.ws.on('message', (data) => {
    const text = data.toString()
    if (!text.startsWith('{"_tag":"Chunk"')) return
    const m = JSON.parse(text)
    if (m.requestId !== liveId) return
    for (const page of m.values) {
      f.pages++
      f.backendIds.add(page.backendId)
      for (const item of page.batch) {
        f.events.push(item.eventEncoded)
        f.frameOf.set(item.eventEncoded.args?.id, sock.frames.length - 1)
      }
    }
  })
  return f
}

/** Exit frames per request id, and the frame index of each. */
function exitsOf(sock) {
  const exits = new Map()
  sock.frames.forEach((text, index) => {
    if (!text.startsWith('{"_tag":"Exit"')) return
    const { requestId } = JSON.parse(text)
    exits.set(requestId, [...(exits.get(requestId) ?? []), index])
  })
  return exits
}

describe('load without loss', () => {
  test(`${CLIENTS} clients push ${EVENTS_PER_CLIENT} events each into one store, racing for the head`, { timeout: 600_000 }, async () => {
    const started = Date.now()
    const store = storeId('load-one')
    const ledger = new Ledger()
    // Live pull ids repeat across sockets, as they do between independent real clients.
    const clients = await mapLimit([...Array(CLIENTS).keys()], 20, async (i) => {
      const sock = await open(store)
      const liveId = String(i % 7)
      const live = follow(sock, liveId)
      await openLivePull(sock, store, liveId)
      return { i, name: `c${i}`, sock, liveId, live, requests: [], acked: [] }
    })
    const backendId = [...clients[0].live.backendIds][0]

    const run = async (c) => {
      let done = 0
      let attempts = 0
      let retries = 0
      while (done < EVENTS_PER_CLIENT) {
        const head = c.live.events.at(-1)?.seqNum ?? 0
        const size = Math.min(EVENTS_PER_CLIENT - done, randInt(1, 5))
        const ids = Array.from({ length: size }, (_, k) => `${c.name}-e${done + k}-a${attempts}`)
        attempts++
        const batch = tagged(ids, { parent: head, clientId: c.name })
        const attempt = ledger.sent(batch, c.name)
        const req = request('SyncWsRpc.Push', { storeId: store, batch, backendId: { _tag: 'Some', value: backendId } })
        c.requests.push(req.id)
        const from = c.sock.frames.length
        c.sock.send(req)
        const reply = await c.sock.exit(req.id, { from, timeout: 120_000 })
        if (JSON.stringify(reply.exit) === JSON.stringify(OK)) {
          attempt.status = 'acked'
          c.acked.push({ id: req.id, first: ids[0] })
          done += size
          retries = 0
          continue
        }
        const error = reply.exit.cause?.error
        assert.equal(error?._tag, 'ServerAheadError', `${c.name}: ${JSON.stringify(reply.exit)}`)
        attempt.status = 'refused'
        // As the real client: wait for the live pull to bring the events that moved the head,
        // then rebase onto them; back off a little so a hundred clients do not all collide again.
        await c.sock.until(() => (c.live.events.at(-1)?.seqNum ?? 0) >= error.minimumExpectedNum, {
          timeout: 120_000,
          what: `${c.name}'s live pull to reach ${error.minimumExpectedNum}`,
        })
        retries++
        // A random back-off spreads the retries out (time is the point here, not an event).
        await sleep(randInt(0, 10 * Math.min(retries, 20)))
      }
    }
    await Promise.all(clients.map(run))

    const reader = await open(store)
    const { events: log, pages } = await fullPull(reader, store)
    assertPaging(pages, backendId)
    assertGapless(log)
    assert.equal(ledger.pushes('pending'), 0)
    ledger.check(log)
    assert.equal(log.length, CLIENTS * EVENTS_PER_CLIENT, 'exactly the acknowledged events')
    assert.equal(ledger.count('acked'), log.length)

    let broadcastFrames = 0
    for (const c of clients) {
      // Each live pull receives the whole log, in order, every event once, with one backendId.
      await c.sock.until(() => c.live.events.length >= log.length, { timeout: 60_000, what: `${c.name}'s live pull to catch up` }).catch(() => {})
      // Anything more the server sent it (a duplicate) arrives before the Pong.
      await c.sock.fence()
      assert.deepEqual(c.live.events, log, `${c.name}'s live pull`)
      assert.deepEqual([...c.live.backendIds], [backendId])
      broadcastFrames += c.live.pages
      // Each push request got exactly one Exit, and nothing else got one.
      const exits = exitsOf(c.sock)
      assert.deepEqual([...exits.keys()].sort(), [...c.requests].sort(), `${c.name}: Exits for exactly its push requests`)
      for (const [id, at] of exits) assert.equal(at.length, 1, `${c.name}: request ${id} answered ${at.length} times`)
      // The pusher's own live pull got each acknowledged batch before the acknowledgement.
      for (const { id, first } of c.acked) {
        assert.ok(c.live.frameOf.get(first) < exits.get(id)[0], `${c.name}: the echo of request ${id} came before its Exit`)
      }
    }
    figures(`load, one store (${STORAGE})`, {
      clients: CLIENTS,
      events: log.length,
      ackedPushes: ledger.pushes('acked'),
      refusedPushes: ledger.pushes('refused'),
      liveFramesReceived: broadcastFrames,
      seconds: Math.round((Date.now() - started) / 1000),
    })
  })

  test('live pulls opened (and interrupted) back to back on one socket, while pushes are being stored, all receive every push', { timeout: 300_000 }, async () => {
    const started = Date.now()
    const SOCKETS = 20
    const store = storeId('load-multi-live')
    const pusher = await open(store)
    const socks = await Promise.all(Array.from({ length: SOCKETS }, () => open(store)))
    const ledger = new Ledger()
    let head = 0
    let stop = false
    const pushing = (async () => {
      for (let n = 0; !stop; n++) {
        const batch = tagged(Array.from({ length: randInt(1, 3) }, (_, k) => `m${n}-${k}`), { parent: head, clientId: 'pusher' })
        const attempt = ledger.sent(batch, 'pusher')
        assert.deepEqual((await push(pusher, store, batch)).exit, OK)
        attempt.status = 'acked'
        head = batch.at(-1).seqNum
      }
    })()
    // Each socket asks, without waiting for answers, for three live pulls, one that fails (a
    // cursor from another backend) and eight that it interrupts at once, so they queue behind the
    // pushes, and behind the store's opening on a fresh object. None may displace another, and an
    // interrupted one must end even if its Interrupt arrived first (else eight of them would take
    // every slot of the socket, and b and c would be refused).
    const bad = { _tag: 'Some', value: { backendId: 'another-backend', eventSequenceNumber: 0 } }
    const interrupted = Array.from({ length: 8 }, (_, k) => `z${k}`)
    for (const s of socks) {
      for (const id of ['a', 'bad', ...interrupted, 'b', 'c']) {
        s.send(request('SyncWsRpc.Pull', { storeId: store, live: true, cursor: id === 'bad' ? bad : { _tag: 'None' } }, id))
        if (id.startsWith('z')) s.send({ _tag: 'Interrupt', requestId: id })
      }
    }
    // The pushes go on until every one of those requests has been answered: the first page of
    // each live pull that stays, the Exit of each one that fails or is interrupted.
    const answered = (s) =>
      ['a', 'b', 'c'].every((id) => s.chunks(id).length > 0) &&
      ['bad', ...interrupted].every((id) => s.frames.some((f) => f.startsWith('{"_tag":"Exit"') && JSON.parse(f).requestId === id))
    await waitFor(() => socks.every(answered), { timeout: 120_000, interval: 100, message: 'every live pull request to be answered' })
    // And on, for twenty more events, which the registered live pulls receive as broadcasts.
    const registeredAt = head
    await waitFor(() => head >= registeredAt + 20, { timeout: 120_000, message: 'twenty more events stored' })
    stop = true
    await pushing
    const { events: log } = await fullPull(pusher, store)
    assertGapless(log)
    ledger.check(log)
    assert.equal(log.length, ledger.count('acked'))
    for (const [i, s] of socks.entries()) {
      const exit = await s.exit('bad')
      assert.equal(exit.exit.cause?.error?._tag, 'BackendIdMismatchError', `socket ${i}: the bad live pull fails`)
      const messages = s.messages()
      for (const id of interrupted) {
        const exits = messages.map((m, at) => [m, at]).filter(([m]) => m._tag === 'Exit' && m.requestId === id)
        assert.deepEqual(exits.map(([m]) => m.exit), [{ _tag: 'Failure', cause: { _tag: 'Interrupt', fiberId: { _tag: 'None' } } }], `socket ${i}: ${id} ends once, interrupted`)
        const lastChunk = messages.findLastIndex((m) => m._tag === 'Chunk' && m.requestId === id)
        assert.ok(lastChunk < exits[0][1], `socket ${i}: ${id} gets nothing after its Exit`)
      }
      for (const id of ['a', 'b', 'c']) {
        await s.until(() => liveEvents(s, id).length >= log.length, { timeout: 30_000, what: `socket ${i}'s live pull ${id}` }).catch(() => {})
        assert.deepEqual(liveEvents(s, id), log, `socket ${i}, live pull ${id}`)
      }
    }
    figures(`load, live pulls per socket (${STORAGE})`, { sockets: SOCKETS, livePulls: SOCKETS * 3, events: log.length, seconds: Math.round((Date.now() - started) / 1000) })
  })

  test(`${STORES} stores at once, each with a live pull and a pusher`, { timeout: 600_000 }, async () => {
    const started = Date.now()
    const stores = await mapLimit([...Array(STORES).keys()], 25, async (i) => {
      const id = storeId(`load-many-${i}`)
      const puller = await open(id)
      const pusher = await open(id)
      await openLivePull(puller, id, 'live')
      return { i, id, puller, pusher, ledger: new Ledger(), sent: [] }
    })
    await Promise.all(
      stores.map(async (s) => {
        let head = 0
        for (let p = 0; p < 3; p++) {
          const ids = Array.from({ length: randInt(1, 3) }, (_, k) => `store${s.i}-p${p}-${k}`)
          const batch = tagged(ids, { parent: head, clientId: `store${s.i}` })
          const attempt = s.ledger.sent(batch, `store${s.i}`)
          const reply = await push(s.pusher, s.id, batch)
          assert.deepEqual(reply.exit, OK, `store ${s.i}, push ${p}`)
          attempt.status = 'acked'
          s.sent.push(...batch)
          head = batch.at(-1).seqNum
        }
      }),
    )
    const backendIds = new Set()
    let events = 0
    for (const s of stores) {
      const { events: log, pages, backendId } = await fullPull(s.pusher, s.id)
      assertPaging(pages, backendId, `store ${s.i}`)
      assertGapless(log, `store ${s.i}`)
      s.ledger.check(log, `store ${s.i}`)
      assert.deepEqual(log, s.sent, `store ${s.i} holds exactly its own events`)
      backendIds.add(backendId)
      events += log.length
      await s.puller.until(() => liveEvents(s.puller, 'live').length >= log.length, { timeout: 60_000, what: `store ${s.i}'s live pull` }).catch(() => {})
      assert.deepEqual(liveEvents(s.puller, 'live'), log, `store ${s.i}'s live pull got exactly its store's events`)
      for (const v of s.puller.chunks('live')) assert.equal(v.backendId, backendId)
    }
    assert.equal(backendIds.size, STORES, 'every store has its own backendId')
    figures(`load, many stores (${STORAGE})`, { stores: STORES, sockets: STORES * 2, events, seconds: Math.round((Date.now() - started) / 1000) })
  })
})
