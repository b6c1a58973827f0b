// A lean protocol client for load generation: pre-encoded frames out, string checks in, JSON
// parsed only where a figure or a check needs it. Acknowledges every chunk, as the LiveStore
// client does (the reference server waits for each Ack before sending the next chunk).
import http from 'node:http'
import WebSocket from 'ws'

export const now = () => performance.now()

export class BenchSocket {
  static open(url) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 256 * 1024 * 1024 })
      ws.once('open', () => resolve(new BenchSocket(ws)))
      ws.once('error', reject)
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)))
    })
  }

  constructor(ws) {
    this.ws = ws
    this.handlers = new Set()
    ws.on('message', (data) => {
      const text = data.toString()
      if (text.startsWith('{"_tag":"Chunk"')) {
        const at = text.indexOf('"requestId":"') + 13
        const requestId = text.slice(at, text.indexOf('"', at))
        ws.send(`{"_tag":"Ack","requestId":"${requestId}"}`)
      }
      for (const h of this.handlers) h(text)
    })
  }

  on(handler) {
    this.handlers.add(handler)
    return () => this.handlers.delete(handler)
  }

  send(text) {
    this.ws.send(text)
  }

  close() {
    this.ws.terminate()
  }
}

/** A benchmark event, about 150 bytes encoded, like a todo app's. */
export const event = (seq, parent, clientId = 'bench') => ({
  name: 'v1.TodoCreated',
  args: { id: `todo-${seq}`, text: `benchmark todo number ${seq}, with a realistic bit of text`, completed: false },
  seqNum: seq,
  parentSeqNum: parent,
  clientId,
  sessionId: 'bench-session',
})

/** Events start..start+count-1, chained from `parent`. */
export const events = (start, count, parent = start - 1) =>
  Array.from({ length: count }, (_, i) => event(start + i, i === 0 ? parent : start + i - 1))

export const pushFrame = (id, storeId, batch, tag = 'SyncWsRpc.Push') =>
  JSON.stringify({ _tag: 'Request', id: String(id), tag, payload: { storeId, batch, backendId: { _tag: 'None' } }, headers: [] })

export const pullFrame = (id, storeId, { live = false, after, backendId } = {}) =>
  JSON.stringify({
    _tag: 'Request',
    id: String(id),
    tag: 'SyncWsRpc.Pull',
    payload: {
      storeId,
      live,
      cursor: after === undefined ? { _tag: 'None' } : { _tag: 'Some', value: { backendId, eventSequenceNumber: after } },
    },
    headers: [],
  })

const exitOf = (text) => {
  const at = text.indexOf('"requestId":"') + 13
  return { requestId: text.slice(at, text.indexOf('"', at)), success: text.includes('"exit":{"_tag":"Success"') }
}

/**
 * Sends pre-encoded push frames with up to `inFlight` outstanding; resolves with the elapsed
 * milliseconds once every push is answered. Every push must succeed.
 */
export function pipelinePushes(sock, frames, inFlight) {
  return new Promise((resolve, reject) => {
    let next = 0
    let done = 0
    const start = now()
    const off = sock.on((text) => {
      if (!text.startsWith('{"_tag":"Exit"')) return
      const exit = exitOf(text)
      if (!exit.success) {
        off()
        reject(new Error(`push ${exit.requestId} failed: ${text.slice(0, 300)}`))
        return
      }
      done++
      if (next < frames.length) sock.send(frames[next++])
      if (done === frames.length) {
        off()
        resolve(now() - start)
      }
    })
    while (next < Math.min(inFlight, frames.length)) sock.send(frames[next++])
  })
}

/**
 * A non-live pull to its Exit. Returns { ms, firstPageMs, pages, seqs } where seqs lists every
 * event's seqNum in arrival order (checked by the caller).
 */
export function timedPull(sock, id, storeId, opts = {}) {
  return new Promise((resolve, reject) => {
    const seqs = []
    let pages = 0
    let firstPageMs
    const start = now()
    const prefix = `{"_tag":"Chunk","requestId":"${id}"`
    const exitPrefix = `{"_tag":"Exit","requestId":"${id}"`
    const off = sock.on((text) => {
      if (text.startsWith(prefix)) {
        pages++
        firstPageMs ??= now() - start
        for (const m of text.matchAll(/"seqNum":(\d+),"parentSeqNum"/g)) seqs.push(Number(m[1]))
      } else if (text.startsWith(exitPrefix)) {
        off()
        if (!exitOf(text).success) reject(new Error(`pull failed: ${text.slice(0, 300)}`))
        else resolve({ ms: now() - start, firstPageMs, pages, seqs })
      }
    })
    sock.send(pullFrame(id, storeId, opts))
  })
}

/** Checks that `seqs` is exactly from..to, each once, in order. */
export function checkSequence(seqs, from, to, what) {
  const expected = to - from + 1
  if (seqs.length !== expected) throw new Error(`${what}: ${seqs.length} events arrived, expected ${expected}`)
  for (let i = 0; i < seqs.length; i++) {
    if (seqs[i] !== from + i) throw new Error(`${what}: event ${i} is seqNum ${seqs[i]}, expected ${from + i}`)
  }
}

/** Percentile of a sorted array. */
export const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]

/** The middle value of `xs` (the upper of the two middle ones for an even count), `xs` left as it is. */
export const median = (xs) => percentile([...xs].sort((a, b) => a - b), 50)

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })

/** POSTs one HTTP RPC body; resolves with the parsed reply array. */
export function httpRpc(url, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString()
        try {
          resolve({ status: res.statusCode, text })
        } catch (e) {
          reject(e)
        }
      })
    })
    req.on('error', reject)
    req.end(body)
  })
}
