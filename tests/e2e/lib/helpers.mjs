// The small helpers every end-to-end file shares: waiting on events rather than for time, the
// answers tests compare with, bare sockets to a worker's stores, and evictions of a store's
// Durable Object, observed in its log instead of assumed from an idle period.
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'

import { RawSocket } from './raw.mjs'
import { syncQuery } from './worker.mjs'

/**
 * Resolves after `ms`. Only for time that is itself the point (an idle period that lets the
 * runtime evict an object, a rate-limit window, a random delay spreading writers out, a deadline
 * in a `Promise.race`); every use says which. Anything that can be observed is awaited instead.
 */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/**
 * Resolves once `condition()` (sync or async) holds, checked every `interval` ms; fails after
 * `timeout` ms with `message`.
 */
export const waitFor = async (condition, { timeout = 15_000, interval = 50, message = 'condition' } = {}) => {
  const deadline = Date.now() + timeout
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${message}`)
    await sleep(interval)
  }
}

/** Whether `condition` comes to hold within `timeout` ms: `waitFor` as a boolean. */
export const becomes = (condition, options) => waitFor(condition, options).then(() => true, () => false)

/** The `Exit` value of an accepted push, as the server sends it. */
export const OK = { _tag: 'Success', value: {} }

// Every socket `openSocket` opened, so a file closes them all in one `after(closeSockets)`.
const opened = new Set()

/**
 * A bare WebSocket to `store` on worker `w` (`{ wsUrl }`), opened with the query the LiveStore
 * client builds: `payload` (default: the test token; `null` leaves it out), `path` (default `/`)
 * and `headers` for the upgrade request. Rejects with `{ status }` if the upgrade is refused.
 */
export async function openSocket(w, store, { payload, path = '/', headers } = {}) {
  const query = syncQuery(store, payload === undefined ? {} : { payload })
  const sock = await RawSocket.open(`${w.wsUrl}${path}?${query}`, headers ? { headers } : undefined)
  opened.add(sock)
  return sock
}

/** Closes every socket `openSocket` opened that is still open. */
export const closeSockets = () => {
  for (const sock of opened) sock.close()
  opened.clear()
}

/** Runs `fn(sock)` on a new socket to `store`, and closes the socket however `fn` ends. */
export async function withSocket(w, store, fn, options) {
  const sock = await openSocket(w, store, options)
  try {
    return await fn(sock)
  } finally {
    sock.close()
    opened.delete(sock)
  }
}

/**
 * How many times a store's object has opened the store: the object writes a `store_opened` line
 * each time it first serves the store after being constructed, so every line after the first
 * marks an eviction followed by a wake-up. `w` is anything with `logLines()`.
 */
export const storeOpenings = (w, store) => w.logLines().filter((l) => l.event === 'store_opened' && l.storeId === store).length

/**
 * Repeats `round(n)` (n = 1, 2, …: idle, then wake the store's object with a request that opens
 * the store) until a round is seen to have evicted the object — a new `store_opened` line after
 * the wake, waited for a little since the runtime prints it a moment after the reply. A round
 * that did not evict (the runtime idled it out later than usual) is repeated; `round` may idle
 * longer as `n` grows. Fails after `tries` rounds without an eviction. Returns the round that
 * evicted.
 */
export async function untilEvicted(w, store, round, { tries = 4 } = {}) {
  for (let n = 1; n <= tries; n++) {
    const before = storeOpenings(w, store)
    await round(n)
    if (await becomes(() => storeOpenings(w, store) > before, { timeout: 5_000, interval: 100 })) return n
  }
  assert.fail(`the object of store ${store} was not evicted in ${tries} idle periods (opened ${storeOpenings(w, store)} times)`)
}

/**
 * The processes of a process group (a worker started by lib/worker.mjs leads its own group:
 * `w.pid`), each with its pid, its command name and its resident memory in bytes.
 */
export function groupProcesses(pgid) {
  const found = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      // Field 5 of /proc/<pid>/stat is the process group; the name before it may hold spaces.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(fields[2]) !== pgid) continue
      const rss = readFileSync(`/proc/${entry}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB$/m)
      found.push({ pid: Number(entry), name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), rss: rss ? Number(rss[1]) * 1024 : 0 })
    } catch {
      // The process ended while it was being read.
    }
  }
  return found
}

/** The resident memory of a process group, in bytes: the sum of VmRSS over `groupProcesses`. */
export const groupRss = (pgid) => groupProcesses(pgid).reduce((sum, p) => sum + p.rss, 0)
