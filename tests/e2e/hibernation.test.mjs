// Hibernation: workerd evicts a Durable Object after ~10 s without events while its WebSockets
// stay open (pings are answered by the runtime and do not count). Live pulls — on bare sockets
// and on the real `makeWsSync` client — must keep receiving through many evictions. Each cycle
// idles until the object is evicted, then wakes it with a push from one of three sources in turn:
// a bare socket that has a live pull of its own (its echo must come before its acknowledgement),
// an HTTP request (HTTP has no live pulls; its push must reach the WebSocket ones), and the real
// client. Every live pull must then hold exactly the store's log: each event once, in order.
//
// HIBERNATION_CYCLES changes how many evictions are required (default 6).
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'

import { connectClient, livePull, waitFor } from './lib/client.mjs'
import { RawSocket, request } from './lib/raw.mjs'
import { assertGapless, figures, fullPull, liveEvents, openLivePull, sleep, tagged } from './lib/reliability.mjs'
import { STORAGE, startWorker, storeId, syncQuery } from './lib/worker.mjs'

const CYCLES = Number(process.env.HIBERNATION_CYCLES ?? 6)
const ok = { _tag: 'Success', value: {} }

let worker
before(async () => {
  worker = await startWorker({ label: 'hibernation' })
})
after(() => worker?.stop())
// Closed however the test ends: an open real client would keep the process alive.
const cleanup = []
after(() => Promise.all(cleanup.map((f) => Promise.resolve().then(f).catch(() => {}))))

test(`live pulls keep receiving across ${CYCLES} evictions, woken by pushes over WebSocket, HTTP and the real client`, { timeout: 60_000 + CYCLES * 60_000 }, async () => {
  const started = Date.now()
  const store = storeId('hibernation')
  const opened = () => worker.logs().split('\n').filter((l) => l.includes('"store_opened"') && l.includes(JSON.stringify(store))).length

  const watcher = await RawSocket.open(`${worker.wsUrl}/?${syncQuery(store)}`) // only watches
  const pusher = await RawSocket.open(`${worker.wsUrl}/?${syncQuery(store)}`) // pushes, and watches its echo
  cleanup.push(() => watcher.close(), () => pusher.close())
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
  while (evictions < CYCLES) {
    assert.ok(wakes < CYCLES + 4, `only ${evictions} evictions seen in ${wakes} idle periods`)
    wakes++
    const openedBefore = opened()
    await sleep(idle)
    const source = sources[evictions % sources.length]
    const batch = tagged([`${source}-${wakes}-0`, `${source}-${wakes}-1`], { parent: log.length, clientId: source })
    if (source === 'ws') {
      const req = request('SyncWsRpc.Push', { storeId: store, batch, backendId: { _tag: 'Some', value: backendId } })
      const from = pusher.frames.length
      pusher.send(req)
      const exit = await pusher.exit(req.id, { from, timeout: 30_000 })
      assert.deepEqual(exit.exit, ok)
      // The pusher's own live pull had the batch before the acknowledgement.
      const exitAt = pusher.frames.findIndex((f, i) => i >= from && f.startsWith('{"_tag":"Exit"') && JSON.parse(f).requestId === req.id)
      const echoAt = pusher.frames.findIndex((f, i) => i >= from && f.startsWith('{"_tag":"Chunk"') && f.includes(`"${batch[0].args.id}"`))
      assert.ok(echoAt >= 0 && echoAt < exitAt, `cycle ${wakes}: the echo (frame ${echoAt}) came before the Exit (frame ${exitAt})`)
    } else if (source === 'http') {
      const res = await fetch(`${worker.url}/?${syncQuery(store, { transport: 'http' })}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(request('SyncHttpRpc.Push', { storeId: store, batch, backendId: { _tag: 'Some', value: backendId } })),
      })
      assert.equal(res.status, 200)
      assert.deepEqual((await res.json()).map((m) => m.exit), [ok])
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
    await sleep(200) // room for a duplicate to show up
    for (const [name, events] of views()) assert.deepEqual(events, log, `cycle ${wakes} (${source}): ${name}'s live pull`)
    for (const sock of [watcher, pusher]) for (const v of sock.chunks(sock === watcher ? 'w' : 'p')) assert.equal(v.backendId, backendId)

    // Was the object evicted and rebuilt by this push? (The open is logged before the push is served.)
    const woke = await waitFor(() => opened() > openedBefore, { timeout: 5_000, interval: 100 }).then(() => true, () => false)
    if (woke) evictions++
    else idle += 5_000 // not evicted yet: idle longer next time; this cycle does not count
  }

  assert.equal(realLive.poll()._tag, 'None', 'the real client\'s live pull never ended')
  assert.ok(!watcher.closed && !pusher.closed, 'the sockets stayed open throughout')
  assert.equal(watcher.messages().filter((m) => m._tag === 'Exit').length, 0, 'a live pull never gets an Exit')
  const check = await RawSocket.open(`${worker.wsUrl}/?${syncQuery(store)}`)
  const stored = await fullPull(check, store)
  assert.deepEqual(stored.events, log)
  assertGapless(stored.events)
  assert.equal(stored.backendId, backendId)
  check.close()
  figures(`hibernation (${STORAGE})`, {
    evictions,
    idlePeriods: wakes,
    idleSeconds: idle / 1000,
    pushesWs: perSource.ws,
    pushesHttp: perSource.http,
    pushesReal: perSource.real,
    livePulls: 3,
    events: log.length,
    opened: opened(),
    seconds: Math.round((Date.now() - started) / 1000),
  })
})
