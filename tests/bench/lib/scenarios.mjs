// The loads, each run the same way against any server ({ name, url, wsUrl }). Every scenario
// checks what it measured: pushes all succeeded, and every event arrived exactly once, in order.
// Request ids are decimal strings, as Effect RPC's are: the reference rejects anything else.
import {
  BenchSocket,
  checkSequence,
  event,
  events,
  httpRpc,
  now,
  percentile,
  pipelinePushes,
  pullFrame,
  pushFrame,
  timedPull,
} from './wire.mjs'

const TOKEN_PAYLOAD = encodeURIComponent(encodeURIComponent(JSON.stringify({ authToken: 'insecure-token-change-me' })))
export const wsUrl = (server, store) => `${server.wsUrl}/?storeId=${encodeURIComponent(store)}&payload=${TOKEN_PAYLOAD}&transport=ws`
export const httpUrl = (server, store) => `${server.url}/?storeId=${encodeURIComponent(store)}&payload=${TOKEN_PAYLOAD}&transport=http`

let runId = Date.now().toString(36)
let stores = 0
/** A store of its own for each load, also when a load is repeated in one run. */
export const storeName = (label) => `bench-${runId}-${label}${stores++ === 0 ? '' : `-${stores}`}`

/** Push frames for `total` events in batches of `batch`, chained from seqNum 1. */
export function pushFrames(store, total, batch, tag) {
  const frames = []
  for (let start = 1, id = 0; start <= total; start += batch, id++) {
    frames.push(pushFrame(id, store, events(start, Math.min(batch, total - start + 1)), tag))
  }
  return frames
}

/** Pulls a whole store and checks it holds exactly 1..n. */
export async function verifyStore(server, store, n) {
  const sock = await BenchSocket.open(wsUrl(server, store))
  try {
    const { seqs } = await timedPull(sock, '900000001', store)
    checkSequence(seqs, 1, n, `${server.name} ${store}`)
  } finally {
    sock.close()
  }
}

/** Fills a store with `n` events as fast as the server takes them. */
export async function populate(server, store, n) {
  const sock = await BenchSocket.open(wsUrl(server, store))
  try {
    await pipelinePushes(sock, pushFrames(store, n, 100), 16)
  } finally {
    sock.close()
  }
}

/** WebSocket push throughput: `total` events in batches of `batch`, `inFlight` requests pipelined. */
export async function wsPush(server, { total, batch, inFlight }) {
  const store = storeName(`push-${batch}`)
  const sock = await BenchSocket.open(wsUrl(server, store))
  const frames = pushFrames(store, total, batch)
  const ms = await pipelinePushes(sock, frames, inFlight)
  sock.close()
  await verifyStore(server, store, total)
  return { value: (total / ms) * 1000, unit: 'events/s', detail: { total, batch, inFlight, ms } }
}

/** Many stores at once: each with its own socket, pushing batches of 10. */
export async function manyStores(server, { stores, perStore }) {
  const names = Array.from({ length: stores }, (_, i) => storeName(`many-${i}`))
  const sockets = await Promise.all(names.map((n) => BenchSocket.open(wsUrl(server, n))))
  const start = now()
  await Promise.all(sockets.map((s, i) => pipelinePushes(s, pushFrames(names[i], perStore, 10), 4)))
  const ms = now() - start
  sockets.forEach((s) => s.close())
  for (const n of names) await verifyStore(server, n, perStore)
  return { value: ((stores * perStore) / ms) * 1000, unit: 'events/s', detail: { stores, perStore, ms } }
}

/** A non-live pull of a populated store, from the start. */
export async function wsPull(server, { store, n }) {
  const sock = await BenchSocket.open(wsUrl(server, store))
  const { ms, seqs, pages } = await timedPull(sock, '900000002', store)
  sock.close()
  checkSequence(seqs, 1, n, `${server.name} pull`)
  return { value: ms, unit: 'ms', lowerIsBetter: true, detail: { n, pages, eventsPerSecond: (n / ms) * 1000 } }
}

/** Time per page of a pull of the last `pages` pages of a store of `n` events (median of `reps`). */
export async function pageLatency(server, { store, n, reps = 5 }) {
  const pages = Math.min(20, Math.floor(n / 200))
  const sock = await BenchSocket.open(wsUrl(server, store))
  // A cursor needs the store's backendId; a cursor with a wrong one is answered with the right
  // one (BackendIdMismatchError.expected), without reading any events.
  const backendId = await new Promise((resolve) => {
    const off = sock.on((text) => {
      const m = text.match(/"expected":"([^"]+)"/)
      if (m) {
        off()
        resolve(m[1])
      }
    })
    sock.send(pullFrame('900000003', store, { after: n, backendId: 'unknown' }))
  })
  const times = []
  for (let r = 0; r < reps; r++) {
    const after = n - pages * 100
    const { ms, seqs } = await timedPull(sock, String(900000010 + r), store, { after, backendId })
    checkSequence(seqs, after + 1, n, `${server.name} tail pull`)
    times.push(ms / pages)
  }
  sock.close()
  times.sort((a, b) => a - b)
  return { value: percentile(times, 50), unit: 'ms/page', lowerIsBetter: true, detail: { n, pages, reps, times } }
}

/**
 * Starts a live pull on `sock` under request id `id`; resolves at its first page, and calls
 * `onEvent(seqNum, arrivedAt)` for every event any page carries, then `after()` per page.
 */
function livePullOn(sock, store, id, onEvent, after = () => {}) {
  return new Promise((resolve) => {
    let started = false
    sock.on((text) => {
      if (!text.startsWith('{"_tag":"Chunk"')) return
      if (!started) {
        started = true
        resolve()
      }
      const t = now()
      for (const m of text.matchAll(/"seqNum":(\d+),"parentSeqNum"/g)) onEvent(Number(m[1]), t)
      after()
    })
    sock.send(pullFrame(id, store, { live: true }))
  })
}

/**
 * Live fan-out: `pulls` sockets each hold a live pull; one more socket pushes `pushes` single
 * events one after the other. Latency is from a push's send to its arrival on each live pull.
 */
/** Pushes of a fan-out load left out of its `p99AfterWarmup`. */
const WARMUP = 20

export async function fanOut(server, { pulls, pushes }) {
  const store = storeName(`fanout-${pulls}`)
  const receivers = []
  for (let i = 0; i < pulls; i += 50) {
    receivers.push(...(await Promise.all(Array.from({ length: Math.min(50, pulls - i) }, () => BenchSocket.open(wsUrl(server, store))))))
  }
  const sentAt = new Map()
  const latencies = []
  // The first pushes meet code the runtime has not optimised yet (WASM tiers up as it runs, as
  // JavaScript does): with 100 pulls, p99 is set by the second-slowest push, so the same figure
  // after the first WARMUP pushes shows the steady state beside it.
  const warm = []
  const received = receivers.map(() => [])
  await Promise.all(
    receivers.map((sock, i) =>
      livePullOn(sock, store, '900000004', (seq, t) => {
        received[i].push(seq)
        latencies.push(t - sentAt.get(seq))
        if (seq > WARMUP) warm.push(t - sentAt.get(seq))
      }),
    ),
  )
  const pusher = await BenchSocket.open(wsUrl(server, store))
  const start = now()
  for (let seq = 1; seq <= pushes; seq++) {
    const frame = pushFrame(seq, store, [event(seq, seq - 1)])
    sentAt.set(seq, now())
    await pipelinePushes(pusher, [frame], 1)
  }
  const deadline = now() + 120_000
  while (latencies.length < pulls * pushes && now() < deadline) await new Promise((r) => setTimeout(r, 20))
  const ms = now() - start
  for (const [i, seqs] of received.entries()) checkSequence(seqs, 1, pushes, `${server.name} live pull ${i}`)
  receivers.forEach((s) => s.close())
  pusher.close()
  latencies.sort((a, b) => a - b)
  warm.sort((a, b) => a - b)
  return {
    value: percentile(latencies, 99),
    unit: 'ms p99',
    lowerIsBetter: true,
    detail: { pulls, pushes, p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1), ms, p99AfterWarmup: warm.length > 0 ? percentile(warm, 99) : null, warmup: WARMUP },
  }
}

/** HTTP push throughput: batches of 100, one request after the other (as the HTTP client does). */
export async function httpPush(server, { total }) {
  const store = storeName('http-push')
  const frames = pushFrames(store, total, 100, 'SyncHttpRpc.Push')
  const url = httpUrl(server, store)
  const start = now()
  for (const frame of frames) {
    const { text } = await httpRpc(url, frame)
    if (!text.includes('"exit":{"_tag":"Success"')) throw new Error(`${server.name} HTTP push failed: ${text.slice(0, 300)}`)
  }
  const ms = now() - start
  await verifyStore(server, store, total)
  return { value: (total / ms) * 1000, unit: 'events/s', detail: { total, ms } }
}

/** An HTTP pull of a whole populated store (one request, every page in the reply). */
export async function httpPull(server, { store, n }) {
  const body = JSON.stringify({ _tag: 'Request', id: '900000006', tag: 'SyncHttpRpc.Pull', payload: { storeId: store, cursor: { _tag: 'None' } }, headers: [] })
  const start = now()
  const { text } = await httpRpc(httpUrl(server, store), body)
  const ms = now() - start
  const seqs = [...text.matchAll(/"seqNum":(\d+),"parentSeqNum"/g)].map((m) => Number(m[1]))
  checkSequence(seqs, 1, n, `${server.name} HTTP pull`)
  return { value: ms, unit: 'ms', lowerIsBetter: true, detail: { n, eventsPerSecond: (n / ms) * 1000 } }
}

/** Memory of the runtime with `sockets` idle connections, each holding a live pull. */
export async function idleSocketMemory(server, { sockets, rss }) {
  const store = storeName('idle')
  const warm = await BenchSocket.open(wsUrl(server, store))
  await timedPull(warm, '900000005', store)
  await new Promise((r) => setTimeout(r, 500))
  const before = rss()
  const open = []
  for (let i = 0; i < sockets; i += 50) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, sockets - i) }, () => BenchSocket.open(wsUrl(server, store))))
    await Promise.all(
      batch.map(
        (s) =>
          new Promise((resolve) => {
            const off = s.on((t) => t.startsWith('{"_tag":"Chunk"') && (off(), resolve()))
            s.send(pullFrame('900000004', store, { live: true }))
          }),
      ),
    )
    open.push(...batch)
  }
  await new Promise((r) => setTimeout(r, 1000))
  const after = rss()
  open.forEach((s) => s.close())
  warm.close()
  return { value: ((after - before) * 1024) / sockets, unit: 'bytes/socket', lowerIsBetter: true, detail: { sockets, beforeKB: before, afterKB: after } }
}

// The sync-electric endpoint (ours only: the reference has none, and no Electric server runs
// here). The same loads as the sync-cf ones beside them, the way the 0.4.0 client sends them.
const electricEndpoint = (server) => `${server.url}/electric/insecure-token-change-me`
const electricArgs = (store, shape, live) =>
  encodeURIComponent(JSON.stringify({ _tag: '@livestore/sync-electric.Pull', storeId: store, handle: shape ? { _tag: 'Some', value: shape } : { _tag: 'None' }, live }))

/** One pull request; returns the seqNums it carried and the next shape. */
async function electricPullOnce(server, store, shape, live) {
  const res = await fetch(`${server.url}/electric?args=${electricArgs(store, shape, live)}`, {
    headers: { authorization: 'Bearer insecure-token-change-me' },
  })
  const text = await res.text()
  if (res.status !== 200) throw new Error(`${server.name} electric pull: ${res.status} ${text.slice(0, 200)}`)
  const seqs = [...text.matchAll(/"seqNum":"(\d+)"/g)].map((m) => Number(m[1]))
  return { seqs, shape: { handle: res.headers.get('electric-handle'), offset: res.headers.get('electric-offset') } }
}

/** Push throughput: batches of 100, one request after the other (as the client does). */
export async function electricPush(server, { total }) {
  const store = storeName('electric-push')
  const start = now()
  for (let first = 1; first <= total; first += 100) {
    const batch = events(first, Math.min(100, total - first + 1))
    const res = await fetch(electricEndpoint(server), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ _tag: '@livestore/sync-electric.Push', storeId: store, batch }),
    })
    const text = await res.text()
    if (res.status !== 200) throw new Error(`${server.name} electric push: ${res.status} ${text.slice(0, 200)}`)
  }
  const ms = now() - start
  await verifyStore(server, store, total)
  return { value: (total / ms) * 1000, unit: 'events/s', detail: { total, ms } }
}

/** A fresh client's pull of a whole populated store: one request per page, as the client does. */
export async function electricPull(server, { store, n }) {
  const start = now()
  const seqs = []
  let shape
  for (;;) {
    const page = await electricPullOnce(server, store, shape, false)
    shape = page.shape
    if (page.seqs.length === 0) break
    seqs.push(...page.seqs)
  }
  const ms = now() - start
  checkSequence(seqs, 1, n, `${server.name} electric pull`)
  return { value: ms, unit: 'ms', lowerIsBetter: true, detail: { n, eventsPerSecond: (n / ms) * 1000 } }
}

/**
 * Live delivery: `pulls` clients each keep a live pull going (held when there is nothing new);
 * one WebSocket pushes `pushes` single events one after the other. Latency is from a push's send
 * to its arrival at each client.
 */
export async function electricLive(server, { pulls, pushes }) {
  const store = storeName(`electric-live-${pulls}`)
  const sentAt = new Map()
  const latencies = []
  const received = Array.from({ length: pulls }, () => [])
  let done = false
  // The first answer gives the handle; from there each client keeps one request outstanding.
  const first = await electricPullOnce(server, store, undefined, true)
  const loops = received.map(async (seqs) => {
    let shape = first.shape
    while (!done) {
      const page = await electricPullOnce(server, store, shape, true)
      const t = now()
      shape = page.shape
      for (const seq of page.seqs) {
        seqs.push(seq)
        if (sentAt.has(seq)) latencies.push(t - sentAt.get(seq))
      }
    }
  })
  // Every client's request is held before the first push goes out.
  await new Promise((r) => setTimeout(r, 500))
  const pusher = await BenchSocket.open(wsUrl(server, store))
  const start = now()
  for (let seq = 1; seq <= pushes; seq++) {
    sentAt.set(seq, now())
    await pipelinePushes(pusher, [pushFrame(seq, store, [event(seq, seq - 1)])], 1)
  }
  const deadline = now() + 120_000
  while (latencies.length < pulls * pushes && now() < deadline) await new Promise((r) => setTimeout(r, 20))
  const ms = now() - start
  done = true
  // One more push answers the held requests, so every loop ends.
  await pipelinePushes(pusher, [pushFrame(pushes + 1, store, [event(pushes + 1, pushes)])], 1)
  await Promise.all(loops)
  pusher.close()
  for (const [i, seqs] of received.entries()) checkSequence(seqs.filter((s) => s <= pushes), 1, pushes, `${server.name} electric live pull ${i}`)
  latencies.sort((a, b) => a - b)
  warm.sort((a, b) => a - b)
  return {
    value: percentile(latencies, 99),
    unit: 'ms p99',
    lowerIsBetter: true,
    detail: { pulls, pushes, p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1), ms, p99AfterWarmup: warm.length > 0 ? percentile(warm, 99) : null, warmup: WARMUP },
  }
}

/** Waits for every promise, or fails with `message` after `ms`. */
async function withDeadline(ms, message, promises) {
  let timer
  const deadline = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))
  try {
    return await Promise.race([Promise.all(promises), deadline])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * One store with many sockets: `sockets` WebSockets each holding a live pull (opened 100 at a
 * time), then `pushes` single events from one more socket, each sent once every live pull had
 * the one before. The figure is the fan-out p99 (from a push's send to its arrival on each live
 * pull); the detail has the connect rate and the runtime's memory per socket.
 */
export async function bigRoom(server, { sockets, pushes, rss }) {
  const store = storeName(`room-${sockets}`)
  const warm = await BenchSocket.open(wsUrl(server, store))
  await timedPull(warm, '900000030', store)
  const before = rss()
  const receivers = []
  const received = []
  const latencies = []
  const sentAt = new Map()
  let arrivals = 0
  let wake = () => {}
  const start = now()
  for (let i = 0; i < sockets; i += 100) {
    const batch = await Promise.all(Array.from({ length: Math.min(100, sockets - i) }, () => BenchSocket.open(wsUrl(server, store))))
    await withDeadline(
      60_000,
      `${server.name}: live pulls ${i}–${i + batch.length} of ${sockets} did not start`,
      batch.map((sock) => {
        const seqs = []
        received.push(seqs)
        return livePullOn(
          sock,
          store,
          '900000031',
          (seq, t) => {
            seqs.push(seq)
            latencies.push(t - sentAt.get(seq))
            arrivals++
          },
          () => wake(),
        )
      }),
    )
    receivers.push(...batch)
  }
  const connectMs = now() - start
  const after = rss()
  const pusher = warm
  for (let seq = 1; seq <= pushes; seq++) {
    const expected = seq * sockets
    const all = new Promise((resolve) => (wake = () => arrivals >= expected && resolve()))
    sentAt.set(seq, now())
    await pipelinePushes(pusher, [pushFrame(seq, store, [event(seq, seq - 1)])], 1)
    await withDeadline(60_000, `${server.name}: push ${seq} reached ${arrivals - (seq - 1) * sockets} of ${sockets} live pulls`, [all])
  }
  for (const [i, seqs] of received.entries()) checkSequence(seqs, 1, pushes, `${server.name} room socket ${i}`)
  receivers.forEach((s) => s.close())
  pusher.close()
  latencies.sort((a, b) => a - b)
  return {
    value: percentile(latencies, 99),
    unit: 'ms p99',
    lowerIsBetter: true,
    detail: {
      sockets,
      pushes,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      connectMs,
      connectsPerSecond: (sockets / connectMs) * 1000,
      bytesPerSocket: ((after - before) * 1024) / sockets,
    },
  }
}
