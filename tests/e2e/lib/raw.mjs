// A bare WebSocket client that speaks the wire protocol frame by frame, for the cases the real
// client never produces (malformed frames, races, exact bytes).
import WebSocket from 'ws'

export class RawSocket {
  /**
   * Opens a socket and resolves once it is open; rejects with the HTTP status if refused.
   * `options` go to the `ws` client (e.g. `{ headers }` for the upgrade request).
   */
  static open(url, options) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, options)
      const raw = new RawSocket(ws)
      ws.once('open', () => resolve(raw))
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })))
      ws.once('error', reject)
    })
  }

  constructor(ws) {
    this.ws = ws
    this.frames = [] // every text frame received, in order, as strings
    this.waiters = []
    this.closed = false
    this.autoAck = true
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? data : data.toString()
      this.frames.push(text)
      // Like the real client, acknowledge every chunk: the reference server waits for the Ack
      // before it sends the next message of a stream.
      if (this.autoAck && !isBinary && text.startsWith('{"_tag":"Chunk"')) {
        this.ws.send(JSON.stringify({ _tag: 'Ack', requestId: JSON.parse(text).requestId }))
      }
      this.wake()
    })
    ws.on('close', () => {
      this.closed = true
      this.wake()
    })
  }

  wake() {
    for (const w of [...this.waiters]) w()
  }

  send(message) {
    this.ws.send(typeof message === 'string' || Buffer.isBuffer(message) ? message : JSON.stringify(message))
  }

  /** Frames received so far, parsed. */
  messages() {
    return this.frames.map((f) => JSON.parse(f))
  }

  /** Resolves once `cond()` holds, re-checking whenever a frame arrives or the socket closes. */
  async until(cond, { timeout = 10_000, what = 'condition', detail = () => '' } = {}) {
    const deadline = Date.now() + timeout
    while (!cond()) {
      if (this.closed) throw new Error(`socket closed while waiting for ${what}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out waiting for ${what}${detail()}`)
      await new Promise((resolve) => {
        const w = () => {
          clearTimeout(t)
          this.waiters = this.waiters.filter((x) => x !== w)
          resolve()
        }
        const t = setTimeout(w, left)
        this.waiters.push(w)
      })
    }
  }

  /** Waits for a received frame (parsed) matching `predicate`, searching from index `from`. */
  async next(predicate = () => true, { timeout = 10_000, from = 0 } = {}) {
    let found
    let checked = from
    await this.until(
      () => {
        for (; checked < this.frames.length; checked++) {
          const m = JSON.parse(this.frames[checked])
          if (predicate(m)) {
            found = m
            return true
          }
        }
        return false
      },
      { timeout, what: 'a matching frame', detail: () => `; last frames received:\n${this.frames.join('\n').slice(-4000)}` },
    )
    return found
  }

  /**
   * Resolves once everything the server sent this socket before now has arrived: a Ping's Pong
   * comes back on the same socket, after every frame sent ahead of it. For checking that nothing
   * more (a duplicate) follows what was awaited, without waiting for time to pass.
   */
  async fence({ timeout = 10_000 } = {}) {
    const from = this.frames.length
    this.send('{"_tag":"Ping"}')
    await this.next((m) => m._tag === 'Pong', { from, timeout })
  }

  /** Resolves once the socket has closed (at once if it already has). */
  whenClosed() {
    return this.closed ? Promise.resolve() : new Promise((resolve) => this.ws.once('close', resolve))
  }

  /** Waits for the `Exit` of a request id. */
  exit(requestId, opts) {
    return this.next((m) => m._tag === 'Exit' && m.requestId === requestId, opts)
  }

  /** All `Chunk` values received for a request id. */
  chunks(requestId) {
    return this.messages()
      .filter((m) => m._tag === 'Chunk' && m.requestId === requestId)
      .flatMap((m) => m.values)
  }

  close() {
    this.ws.close()
  }
}

let nextId = 1000
/** A `Request` envelope as the client sends it. */
export const request = (tag, payload, id = String(nextId++)) => ({
  _tag: 'Request',
  id,
  tag,
  payload,
  traceId: 'f'.repeat(32),
  spanId: 'e'.repeat(16),
  sampled: true,
  headers: [],
})

/** Global events `start`, `start+1`, … chained to `parent`, as LiveStore encodes them. */
export const makeEvents = (count, { start = 1, parent = 0, clientId = 'client-a', sessionId = 'session-a', text = (i) => `todo ${i}` } = {}) =>
  Array.from({ length: count }, (_, i) => ({
    name: 'v1.TodoCreated',
    args: { id: `todo-${start + i}`, text: text(start + i), completed: false },
    seqNum: start + i,
    parentSeqNum: i === 0 ? parent : start + i - 1,
    clientId,
    sessionId,
  }))

/** Runs a non-live pull to its Exit and returns { exit, pages, events }. */
export async function pullAll(sock, storeId, { cursor, payload } = {}) {
  const req = request('SyncWsRpc.Pull', {
    storeId,
    ...(payload ? { payload } : {}),
    live: false,
    cursor: cursor ? { _tag: 'Some', value: cursor } : { _tag: 'None' },
  })
  const from = sock.frames.length
  sock.send(req)
  const exit = await sock.exit(req.id, { timeout: 60_000, from })
  const pages = sock.chunks(req.id)
  return { exit, pages, events: pages.flatMap((p) => p.batch.map((b) => b.eventEncoded)) }
}

/** Pushes a batch and returns its Exit. */
export async function push(sock, storeId, batch, backendId) {
  const req = request('SyncWsRpc.Push', {
    storeId,
    batch,
    backendId: backendId ? { _tag: 'Some', value: backendId } : { _tag: 'None' },
  })
  const from = sock.frames.length
  sock.send(req)
  return sock.exit(req.id, { from, timeout: 30_000 })
}

/**
 * Opens a live pull on a bare socket — from the start of the log, or after `cursor`
 * (`{ backendId, eventSequenceNumber }`) — and waits for its first NoMore page: from then on it
 * is registered, and receives every later push.
 */
export async function openLivePull(sock, store, id, { cursor, timeout = 60_000 } = {}) {
  const from = sock.frames.length
  sock.send(request('SyncWsRpc.Pull', { storeId: store, live: true, cursor: cursor ? { _tag: 'Some', value: cursor } : { _tag: 'None' } }, id))
  await sock.next((m) => m._tag === 'Chunk' && m.requestId === id && m.values[0].pageInfo._tag === 'NoMore', { timeout, from })
}

/** The events a bare socket's live pull (or any pull, by request id) has received, in order. */
export const liveEvents = (sock, id) => sock.chunks(id).flatMap((v) => v.batch.map((b) => b.eventEncoded))
