// Billed units: the same loads against the metered builds of ours and of the TypeScript server
// (tests/bench/meter), each load's counters read from `GET /__meter` before and after it, turned
// into units per 1,000 events and dollars per million events at Cloudflare's published prices.
import { BenchSocket, percentile, pipelinePushes, pullFrame, timedPull } from './wire.mjs'
import * as s from './scenarios.mjs'

/**
 * Cloudflare's Workers Paid prices past the included amounts, as published on
 * developers.cloudflare.com/durable-objects/platform/pricing and /workers/platform/pricing (read
 * from the workplace's stored copy on 2026-11-30; SQLite storage billing since January 2026).
 */
export const PRICES = {
  date: '2026-11-30',
  rowsReadPerMillion: 0.001,
  rowsWrittenPerMillion: 1.0,
  doRequestsPerMillion: 0.15,
  workerRequestsPerMillion: 0.3,
  gbSecondsPerMillion: 12.5,
  // An object is billed at 128 MB whatever it uses.
  objectGB: 0.128,
  // Incoming WebSocket messages are billed as one request per 20.
  wsMessagesPerRequest: 20,
}

/** The object of our store directory (src/directory.rs). */
const DIRECTORY = '__livestore_directory__'

const meter = async (server) => (await fetch(`${server.url}/__meter`)).json()

/** Billable Durable Object requests in a snapshot. */
export const doRequests = (m) => m.doFetches + m.doRpcCalls + m.alarms + m.wsMessages / PRICES.wsMessagesPerRequest

/** Dollars a snapshot costs at PRICES (Worker CPU time is not counted: not measurable here). */
export function dollars(m) {
  return (
    (m.rowsRead * PRICES.rowsReadPerMillion +
      m.rowsWritten * PRICES.rowsWrittenPerMillion +
      doRequests(m) * PRICES.doRequestsPerMillion +
      m.workerRequests * PRICES.workerRequestsPerMillion +
      (m.awakeMs / 1000) * PRICES.objectGB * PRICES.gbSecondsPerMillion) /
    1e6
  )
}

/** Runs `load` between two meter readings; the figure is dollars per million events. */
async function metered(server, events, load) {
  await meter(server)
  const detail = await load()
  const m = await meter(server)
  const per1k = (v) => (v * 1000) / events
  return {
    value: (dollars(m) * 1e6) / events,
    unit: '$/M events',
    lowerIsBetter: true,
    detail: {
      events,
      meter: m,
      per1000: { rowsRead: per1k(m.rowsRead), rowsWritten: per1k(m.rowsWritten), doRequests: per1k(doRequests(m)), workerRequests: per1k(m.workerRequests), awakeMs: per1k(m.awakeMs) },
      load: detail,
    },
  }
}

/** Pushes `total` events in batches of `batch`; the store is checked after the meter is read. */
export async function billPush(server, { total, batch }) {
  const store = s.storeName(`bill-push-${batch}`)
  const figures = await metered(server, total, async () => {
    const sock = await BenchSocket.open(s.wsUrl(server, store))
    const ms = await pipelinePushes(sock, s.pushFrames(store, total, batch), 16)
    sock.close()
    return { total, batch, ms }
  })
  await s.verifyStore(server, store, total)
  return figures
}

export async function billPull(server, { n }) {
  const store = s.storeName(`bill-pull-${n}`)
  await s.populate(server, store, n)
  return metered(server, n, () => s.wsPull(server, { store, n }))
}

export const billFanOut = (server, { pulls, pushes }) => metered(server, pushes, () => s.fanOut(server, { pulls, pushes }))

/**
 * An idle store: `sockets` WebSockets, each with a live pull, sending the client's Ping every
 * 10 s as makeWsSync does, for `seconds`. The figure is dollars per million sockets, each
 * connected and then idle for a minute; the detail has the connect phase's counters and the idle
 * period's apart.
 */
export async function billIdle(server, { sockets, seconds }) {
  const store = s.storeName(`bill-idle-${sockets}`)
  const warm = await BenchSocket.open(s.wsUrl(server, store))
  await timedPull(warm, '900000005', store)
  warm.close()
  await meter(server)
  const open = []
  for (let i = 0; i < sockets; i += 50) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, sockets - i) }, () => BenchSocket.open(s.wsUrl(server, store))))
    await Promise.all(
      batch.map(
        (sock) =>
          new Promise((resolve) => {
            const off = sock.on((t) => t.startsWith('{"_tag":"Chunk"') && (off(), resolve()))
            sock.send(pullFrame('900000004', store, { live: true }))
          }),
      ),
    )
    open.push(...batch)
  }
  const connect = await meter(server)
  let pings = 0
  let pongs = 0
  for (const sock of open) sock.on((t) => t === '{"_tag":"Pong"}' && pongs++)
  const ping = () => {
    for (const sock of open) sock.send('{"_tag":"Ping"}')
    pings += open.length
  }
  const started = Date.now()
  ping()
  const timer = setInterval(ping, 10_000)
  // The length of the idle period is the point of this load.
  await new Promise((r) => setTimeout(r, seconds * 1000))
  clearInterval(timer)
  const idle = await meter(server)
  const ms = Date.now() - started
  open.forEach((sock) => sock.close())
  if (pongs < pings - open.length) throw new Error(`${server.name}: ${pings} pings, only ${pongs} pongs`)
  // Per socket: connecting it, then one minute of idling.
  return {
    value: ((dollars(connect) + (dollars(idle) * 60_000) / ms) * 1e6) / sockets,
    unit: '$/M sockets',
    lowerIsBetter: true,
    detail: { sockets, seconds: ms / 1000, pings, pongs, connect, idle, connectDollars: dollars(connect), idleDollars: dollars(idle) },
  }
}

/** The backendId of a store (asked with a wrong one: the answer names the right one, reading no events). */
async function backendIdOf(server, store, head) {
  const sock = await BenchSocket.open(s.wsUrl(server, store))
  try {
    return await new Promise((resolve) => {
      const off = sock.on((text) => {
        const m = text.match(/"expected":"([^"]+)"/)
        if (m) {
          off()
          resolve(m[1])
        }
      })
      sock.send(pullFrame('900000020', store, { after: head, backendId: 'unknown' }))
    })
  } finally {
    sock.close()
  }
}

/** One pull at the store's head, over `transport`; resolves with ms to its first reply. */
async function firstReply(server, store, transport, cursor) {
  const start = performance.now()
  if (transport === 'http') {
    const body = JSON.stringify({ _tag: 'Request', id: '900000021', tag: 'SyncHttpRpc.Pull', payload: { storeId: store, cursor: { _tag: 'Some', value: { backendId: cursor.backendId, eventSequenceNumber: cursor.after } } }, headers: [] })
    const res = await fetch(s.httpUrl(server, store), { method: 'POST', headers: { 'content-type': 'application/json' }, body })
    const text = await res.text()
    if (!text.includes('"_tag":"Success"')) throw new Error(`${server.name}: HTTP pull failed: ${text.slice(0, 300)}`)
    return performance.now() - start
  }
  const sock = await BenchSocket.open(s.wsUrl(server, store))
  try {
    await new Promise((resolve, reject) => {
      sock.on((text) => {
        if (text.startsWith('{"_tag":"Chunk"')) resolve()
        else if (text.startsWith('{"_tag":"Exit"') && !text.includes('"_tag":"Success"')) reject(new Error(`${server.name}: pull failed: ${text.slice(0, 300)}`))
      })
      sock.send(pullFrame('900000022', store, cursor))
    })
    return performance.now() - start
  } finally {
    sock.close()
  }
}

/**
 * Waking: the time from a request (a WebSocket's upgrade plus a pull, or an HTTP pull, at the
 * store's head) to its first reply, for a store whose object was evicted. Each sample idles the
 * store until the runtime evicts its object (about 10 s without events under workerd) and
 * counts only when the meter shows the store's object was constructed again: an object other
 * than ours's store directory, which the woken store reports to from its alarm after the reply
 * (an object is named only when the runtime knows the name it was addressed by; nothing else
 * runs meanwhile). The median of `reps`.
 */
export async function wakeLatency(server, { store, n, transport, reps = 3 }) {
  // (This opens the store, an empty one too.)
  const backendId = await backendIdOf(server, store, n)
  const cursor = { after: n, backendId }
  const times = []
  let idle = 11_000
  for (let attempt = 0; times.length < reps; attempt++) {
    if (attempt >= reps + 3) throw new Error(`${server.name}: the object of ${store} was not evicted after ${idle / 1000} s idle`)
    // Idling is the point: the runtime evicts an object with nothing to do.
    await new Promise((r) => setTimeout(r, idle))
    await meter(server)
    const ms = await firstReply(server, store, transport, cursor)
    if ((await meter(server)).constructed.some((name) => name !== DIRECTORY)) times.push(ms)
    else idle += 5_000
  }
  times.sort((a, b) => a - b)
  return { value: percentile(times, 50), unit: 'ms', lowerIsBetter: true, detail: { n, transport, times, idleMs: idle } }
}
