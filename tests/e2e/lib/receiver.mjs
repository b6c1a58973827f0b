// A stand-in for the app's own backend that the outbox's webhook sink calls (issue 18): node:http
// on a free port, recording every request as it came (headers, raw body, and what became of it),
// and answering each store's requests as the test scripts them — a status at once or after a
// while, held open until released, or taken and then dropped without an answer — so that
// outages, slow answers, timeouts and lost answers can be staged against the real worker.
import http from 'node:http'

import { freePort } from './worker.mjs'

/**
 * What a script may answer with: `{ status }` (at once), `{ status, delayMs }` (slowly), `'hold'`
 * (no answer until `release`, or until the worker gives up on it), `'destroy'` (the request is
 * taken — counted as processed — and the connection dropped instead of answered).
 */
const OK = { status: 200 }

/**
 * Starts a receiver on `port` (default: a free one). `script(record, n)` picks the answer to a
 * store's `n`-th request (1-based); `receiver.script(store, fn)` sets one store's, and
 * `receiver.scriptAll(fn)` the default (answer 200). Each record:
 * { seq, store, n, at, headers, raw, body, key, attempt, overlapped, outcome, status, endedAt }
 * where `outcome` is 'pending', 'answered', 'destroyed' (taken, connection dropped) or 'aborted'
 * (the worker closed the connection before an answer), and `overlapped` says another request of
 * the same store was still open when it arrived.
 */
export async function startReceiver({ port } = {}) {
  port ??= await freePort()
  const records = []
  const scripts = new Map()
  let fallback = () => OK
  const counts = new Map()
  const open = new Map() // store -> Set of open records
  const held = new Map() // record -> function(action) answering it
  const sockets = new Set()

  const finish = (rec, outcome, status) => {
    if (rec.outcome !== 'pending') return
    rec.outcome = outcome
    rec.status = status
    rec.endedAt = Date.now()
    open.get(rec.store)?.delete(rec)
    held.delete(rec)
  }

  const answer = (rec, req, res, action) => {
    if (rec.outcome !== 'pending') return
    if (action === 'destroy') {
      // Marked before the socket goes, so the worker's retry can never look like an overlap.
      finish(rec, 'destroyed')
      req.socket.destroy()
      return
    }
    if (action === 'hold') {
      held.set(rec, (next) => answer(rec, req, res, next))
      return
    }
    const send = () => {
      if (rec.outcome !== 'pending') return
      finish(rec, 'answered', action.status)
      res.writeHead(action.status, { 'content-type': 'text/plain' })
      res.end(action.status < 300 ? 'ok' : 'receiver failure')
    }
    if (action.delayMs) setTimeout(send, action.delayMs)
    else send()
  }

  const server = http.createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8')
      let body = null
      try {
        body = JSON.parse(raw)
      } catch {}
      const store = body?.storeId ?? null
      const n = (counts.get(store) ?? 0) + 1
      counts.set(store, n)
      if (!open.has(store)) open.set(store, new Set())
      const rec = {
        seq: records.length,
        store,
        n,
        at: Date.now(),
        method: req.method,
        path: req.url,
        headers: req.headers,
        raw,
        body,
        key: req.headers['idempotency-key'],
        attempt: Number(req.headers['x-livestore-attempt']),
        overlapped: open.get(store).size > 0,
        outcome: 'pending',
        status: undefined,
        endedAt: undefined,
      }
      records.push(rec)
      open.get(store).add(rec)
      // The worker gave up (timeout) or died before an answer was sent.
      res.on('close', () => {
        if (!res.writableFinished) finish(rec, 'aborted')
      })
      answer(rec, req, res, (scripts.get(store) ?? fallback)(rec, n))
    })
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', resolve)
  })

  const of = (store) => records.filter((r) => r.store === store)
  const events = (rs) => rs.flatMap((r) => r.body?.events ?? [])
  return {
    port,
    url: `http://127.0.0.1:${port}/hook`,
    records,
    script: (store, fn) => scripts.set(store, fn),
    scriptAll: (fn) => (fallback = fn),
    /** A store's requests, in the order they arrived. */
    requests: of,
    /** The events of a store's requests answered 2xx, in arrival order: what the worker saw delivered. */
    delivered: (store) => events(of(store).filter((r) => r.outcome === 'answered' && r.status < 300)),
    /** The events of a store's requests the receiver took (answered 2xx, or taken and dropped). */
    processed: (store) => events(of(store).filter((r) => (r.outcome === 'answered' && r.status < 300) || r.outcome === 'destroyed')),
    /** A store's requests still waiting for an answer. */
    pending: (store) => of(store).filter((r) => r.outcome === 'pending'),
    /** Answers every held request of `store` (or of every store, without one) with `action`. */
    release: (store, action = OK) => {
      for (const [rec, fn] of [...held]) if (store === undefined || rec.store === store) fn(action)
    },
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}
