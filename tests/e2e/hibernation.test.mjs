// Hibernation: workerd evicts a Durable Object after ~10 s without events while its WebSockets
// stay open (pings are answered by the runtime and do not count). Live pulls — on bare sockets
// and on the real `makeWsSync` client — must keep receiving through many evictions. Each cycle
// idles until the object is evicted, then wakes it with a push from one of three sources in turn:
// a bare socket that has a live pull of its own (its echo must come before its acknowledgement),
// an HTTP request (HTTP has no live pulls; its push must reach the WebSocket ones), and the real
// client. Every live pull must then hold exactly the store's log: each event once, in order.
//
// HIBERNATION_CYCLES changes how many evictions are required (default 3: one woken by each source;
// a cycle idles about 15 s, so CI keeps to that and a longer soak sets more).
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'

import { connectClient, livePull } from './lib/client.mjs'
import { closeSockets, OK, openSocket, sleep, storeOpenings, untilEvicted, waitFor, withSocket } from './lib/helpers.mjs'
import { postSync } from './lib/http.mjs'
import { liveEvents, openLivePull, request } from './lib/raw.mjs'
import { assertGapless, figures, fullPull, tagged } from './lib/reliability.mjs'
import { STORAGE, startWorker, storeId } from './lib/worker.mjs'

const CYCLES = Number(process.env.HIBERNATION_CYCLES ?? 3)

let worker
before(async () => {
  worker = await startWorker({ label: 'hibernation' })
})
after(() => worker?.stop())
after(closeSockets)
// Closed however the test ends: an open real client would keep the process alive.
const cleanup = []
after(() => Promise.all(cleanup.map((f) => Promise.resolve().then(f).catch(() => {}))))

test(`live pulls keep receiving across ${CYCLES} evictions, woken by pushes over WebSocket, HTTP and the real client`, { timeout: 60_000 + CYCLES * 60_000 }, async () => {
  const started = Date.now()
  const store = storeId('hibernation')
  const watcher = await openSocket(worker, store) // only watches
  const pusher = await openSocket(worker, store) // pushes, and watches its echo
  await openLivePull(watcher, store, 'w')
  await openLivePull(pusher, store, 'p')
  const backendId = watcher.chunks('w')[0].backendId
  const real = await connectClient({ url: worker.url, storeId: store, clientId: 'real' })
  const realLive = livePull(real)
  cleanup.push(() => realLive.stop(), () => real.close())
  await waitFor(() => realLive.items.length > 0, { message: 'the real client\'s live pull to start' })

  const log = []
  const sources = ['ws', 'http', 'real']
  let idle = 12_000
  let evictions = 0
  let wakes = 0
  const perSource = { ws: 0, http: 0, real: 0 }
  // One cycle: idle (the point of the test: the runtime evicts an object with nothing to do),
  // then push from the next source and check every live pull. A cycle counts once its push is
  // seen to have woken an evicted object; one that was not evicted is repeated, idling longer.
  const cycle = async (n) => {
    if (n > 1) idle += 5_000
    wakes++
    await sleep(idle)
    const source = sources[evictions % sources.length]
    const batch = tagged([`${source}-${wakes}-0`, `${source}-${wakes}-1`], { parent: log.length, clientId: source })
    if (source === 'ws') {
      const req = request('SyncWsRpc.Push', { storeId: store, batch, backendId: { _tag: 'Some', value: backendId } })
      const from = pusher.frames.length
      pusher.send(req)
      const exit = await pusher.exit(req.id, { from, timeout: 30_000 })
      assert.deepEqual(exit.exit, OK)
      // The pusher's own live pull had the batch before the acknowledgement.
      const exitAt = pusher.frames.findIndex((f, i) => i >= from && f.startsWith('{"_tag":"Exit"') && JSON.parse(f).requestId === req.id)
      const echoAt = pusher.frames.findIndex((f, i) => i >= from && f.startsWith('{"_tag":"Chunk"') && f.includes(`"${batch[0].args.id}"`))
      assert.ok(echoAt >= 0 && echoAt < exitAt, `cycle ${wakes}: the echo (frame ${echoAt}) came before the Exit (frame ${exitAt})`)
    } else if (source === 'http') {
      const res = await postSync(worker, store, request('SyncHttpRpc.Push', { storeId: store, batch, backendId: { _tag: 'Some', value: backendId } }))
      assert.equal(res.status, 200)
      assert.deepEqual(JSON.parse(res.body).map((m) => m.exit), [OK])
    } else {
      await real.push(batch)
    }
    log.push(...batch)
    perSource[source]++

    // Every live pull, the pusher's own included, holds exactly the log.
    const views = () => [
      ['bare watcher', liveEvents(watcher, 'w')],
      ['bare pusher', liveEvents(pusher, 'p')],
      ['real client', realLive.events()],
    ]
    await waitFor(() => views().every(([, events]) => events.length >= log.length), { timeout: 30_000, message: `cycle ${wakes}: the push on every live pull` }).catch(() => {})
    // Anything more the server sent any of them (a duplicate) arrives before these answers.
    await Promise.all([watcher.fence(), pusher.fence(), realLive.fence()])
    for (const [name, events] of views()) assert.deepEqual(events, log, `cycle ${wakes} (${source}): ${name}'s live pull`)
    for (const sock of [watcher, pusher]) for (const v of sock.chunks(sock === watcher ? 'w' : 'p')) assert.equal(v.backendId, backendId)
  }
  while (evictions < CYCLES) {
    // (The open is logged before the push is served.)
    await untilEvicted(worker, store, cycle, { tries: CYCLES + 4 - wakes })
    evictions++
  }

  assert.equal(realLive.poll()._tag, 'None', 'the real client\'s live pull never ended')
  assert.ok(!watcher.closed && !pusher.closed, 'the sockets stayed open throughout')
  assert.equal(watcher.messages().filter((m) => m._tag === 'Exit').length, 0, 'a live pull never gets an Exit')
  await withSocket(worker, store, async (check) => {
    const stored = await fullPull(check, store)
    assert.deepEqual(stored.events, log)
    assertGapless(stored.events)
    assert.equal(stored.backendId, backendId)
  })
  figures(`hibernation (${STORAGE})`, {
    evictions,
    idlePeriods: wakes,
    idleSeconds: idle / 1000,
    pushesWs: perSource.ws,
    pushesHttp: perSource.http,
    pushesReal: perSource.real,
    livePulls: 3,
    events: log.length,
    opened: storeOpenings(worker, store),
    seconds: Math.round((Date.now() - started) / 1000),
  })
})
