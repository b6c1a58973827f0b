// The same kinds of load through the real LiveStore clients (makeWsSync, makeHttpSync), for the
// figures a user sees: the client splits pushes into requests of 100 events and sends them one
// after the other, acknowledges every chunk, and (over HTTP) polls for live pulls.
import { connectClient, livePull } from '../../e2e/lib/client.mjs'
import { connectElectric, electricLivePull } from '../../e2e/lib/electric.mjs'
import { DEFAULT_TOKEN } from '../../e2e/lib/worker.mjs'
import { checkSequence, events, now, percentile } from './wire.mjs'
import { storeName } from './scenarios.mjs'

const seqsOf = (pages) => pages.flatMap((p) => p.batch.map((b) => b.eventEncoded.seqNum))

/** The real client pushes `total` events in one `push` call (split by the client). */
export async function clientPush(server, { transport, total }) {
  const store = storeName(`client-push-${transport}`)
  const c = await connectClient({ url: server.url, storeId: store, clientId: 'bench', transport })
  try {
    const batch = events(1, total)
    const start = now()
    await c.push(batch)
    const ms = now() - start
    checkSequence(seqsOf(await c.pullPages()), 1, total, `${server.name} client push`)
    return { value: (total / ms) * 1000, unit: 'events/s', detail: { total, ms } }
  } finally {
    await c.close()
  }
}

/** The real client pulls a populated store from the start. */
export async function clientPull(server, { transport, store, n }) {
  const c = await connectClient({ url: server.url, storeId: store, clientId: 'bench', transport })
  try {
    await c.run(c.backend.connect)
    const start = now()
    const pages = await c.pullPages()
    const ms = now() - start
    checkSequence(seqsOf(pages), 1, n, `${server.name} client pull`)
    return { value: ms, unit: 'ms', lowerIsBetter: true, detail: { n, pages: pages.length } }
  } finally {
    await c.close()
  }
}

/** `clients` real clients hold live pulls; another pushes `pushes` single events in turn. */
export async function clientFanOut(server, { transport, clients, pushes }) {
  const store = storeName(`client-fanout-${transport}`)
  const receivers = await Promise.all(
    Array.from({ length: clients }, (_, i) => connectClient({ url: server.url, storeId: store, clientId: `r${i}`, transport })),
  )
  const pusher = await connectClient({ url: server.url, storeId: store, clientId: 'bench', transport: 'ws' })
  const sentAt = new Map()
  const latencies = []
  const lives = receivers.map((c) => {
    const live = livePull(c)
    const push = live.items.push.bind(live.items)
    live.items.push = (item) => {
      const t = now()
      for (const b of item.batch) latencies.push(t - sentAt.get(b.eventEncoded.seqNum))
      return push(item)
    }
    return live
  })
  try {
    while (lives.some((l) => l.items.length === 0)) await new Promise((r) => setTimeout(r, 20))
    for (let seq = 1; seq <= pushes; seq++) {
      sentAt.set(seq, now())
      await pusher.push(events(seq, 1))
    }
    const deadline = now() + 60_000
    while (latencies.length < clients * pushes && now() < deadline) await new Promise((r) => setTimeout(r, 20))
    for (const [i, l] of lives.entries()) checkSequence(l.events().map((e) => e.seqNum), 1, pushes, `${server.name} client live pull ${i}`)
    latencies.sort((a, b) => a - b)
    return {
      value: percentile(latencies, 99),
      unit: 'ms p99',
      lowerIsBetter: true,
      detail: { clients, pushes, p50: percentile(latencies, 50), p99: percentile(latencies, 99) },
    }
  } finally {
    await Promise.all(lives.map((l) => l.stop()))
    await Promise.all([...receivers, pusher].map((c) => c.close()))
  }
}

/**
 * What a user sees: one app commits (its client pushes one event) and another app's live pull
 * delivers it; from the push's start to the arrival, `commits` times one after the other. Both
 * apps use the client's own defaults (over HTTP, a poll every 5 s); `electric` is the
 * sync-electric client against our /electric endpoint.
 */
export async function commitToVisible(server, { transport, commits }) {
  const store = storeName(`visible-${transport}`)
  const connect = (clientId) =>
    transport === 'electric'
      ? connectElectric({ endpoint: `${server.url}/electric/${DEFAULT_TOKEN}`, storeId: store, payload: { authToken: DEFAULT_TOKEN }, clientId })
      : connectClient({ url: server.url, storeId: store, clientId, transport, clientDefaults: true })
  const writer = await connect('writer')
  const reader = await connect('reader')
  const live = transport === 'electric' ? electricLivePull(reader) : livePull(reader)
  const arrived = new Map()
  let wake = () => {}
  const push = live.items.push.bind(live.items)
  live.items.push = (item) => {
    const t = now()
    for (const b of item.batch) arrived.set(b.eventEncoded.seqNum, t)
    wake()
    return push(item)
  }
  try {
    while (live.items.length === 0) await new Promise((r) => setTimeout(r, 20))
    const latencies = []
    for (let seq = 1; seq <= commits; seq++) {
      // Over HTTP a commit lands at any point of the reader's 5 s poll, as a user's would; without
      // this pause each one would start right after the last arrival and wait a whole poll.
      if (transport === 'http') await new Promise((r) => setTimeout(r, Math.random() * 5_000))
      const start = now()
      await writer.push(events(seq, 1, seq - 1))
      if (!arrived.has(seq)) {
        await new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`${server.name}: commit ${seq} never reached the other app over ${transport}`)), 30_000)
          wake = () => arrived.has(seq) && (clearTimeout(timer), resolve())
        })
      }
      latencies.push(arrived.get(seq) - start)
    }
    checkSequence(live.events().map((e) => e.seqNum), 1, commits, `${server.name} ${transport} reader`)
    latencies.sort((a, b) => a - b)
    return { value: percentile(latencies, 50), unit: 'ms p50', lowerIsBetter: true, detail: { transport, commits, p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) } }
  } finally {
    await live.stop()
    await Promise.all([writer.close(), reader.close()])
  }
}
