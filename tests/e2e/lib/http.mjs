// Plain HTTP requests with full control of the headers (fetch refuses to send `Upgrade`), and
// the requests and answers of the HTTP side of sync that several files share.
import http from 'node:http'

import { syncQuery } from './worker.mjs'

/** The headers of a WebSocket upgrade request, as a browser sends them. */
export const UPGRADE_HEADERS = { Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' }

/** The body of the reference's `400` for a missing or wrong token. */
export const INVALID_TOKEN = 'UnknownError: { "cause": Error: Invalid auth token, "note": undefined, "payload": undefined }'

/** The body of the `400` for a signed token refused for `reason`. */
export const tokenRefused = (reason) => `UnknownError: { "cause": Error: Invalid auth token: ${reason}, "note": undefined, "payload": undefined }`

// With `expectContinue` the body waits for the server's `100 Continue`, and is never sent when the
// server answers at once instead.
export const rawHttp = (url, { method = 'GET', headers = {}, body, expectContinue = false } = {}) =>
  new Promise((resolve, reject) => {
    if (expectContinue) headers = { ...headers, expect: '100-continue' }
    const req = http.request(url, { method, headers }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () =>
        resolve({ status: res.statusCode, statusText: res.statusMessage, headers: res.headers, body: Buffer.concat(chunks).toString() }),
      )
    })
    req.on('error', reject)
    // A 101 would hand the socket over; the tests here only expect refusals.
    req.on('upgrade', (res, socket) => {
      socket.destroy()
      resolve({ status: res.statusCode, headers: res.headers, body: '' })
    })
    if (expectContinue) {
      req.on('continue', () => req.end(body))
      return
    }
    if (body !== undefined) req.write(body)
    req.end()
  })

/**
 * POSTs `body` (a message, JSON-encoded here, or text as it is) to the HTTP transport of `store`
 * on worker `w`, at `path` (default `/`), with the query the LiveStore client builds (`payload`:
 * default the test token, `null` none). `Content-Length` is set unless `chunked`.
 */
export const postSync = (w, store, body, { payload, headers = {}, path = '/', chunked = false, expectContinue = false } = {}) => {
  const text = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body)
  const length = chunked ? {} : { 'content-length': String(Buffer.byteLength(text)) }
  return rawHttp(`${w.url}${path}?${syncQuery(store, { transport: 'http', ...(payload !== undefined ? { payload } : {}) })}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...length, ...headers },
    body: text,
    expectContinue,
  })
}

/**
 * POSTs a body of `total` bytes in `chunk`-sized pieces with `Transfer-Encoding: chunked` (no
 * length up front), writing only as fast as the connection takes them, and stops writing as
 * soon as the answer arrives. Resolves with the answer's `status`, `headers` and `body`, and
 * `sentBeforeAnswer`, the bytes written by then. A server that stops reading may reset the
 * connection once it has answered: a write that fails then is only noted (`writeError`), and a
 * reset that arrives before the answer's body could be read leaves `body` undefined (`reset`).
 * Rejects if the connection fails before any answer.
 */
export const streamChunked = (url, { total, chunk = 64 * 1024, headers = {} }) =>
  new Promise((resolve) => {
    const piece = Buffer.alloc(chunk, 'x')
    let sent = 0
    let answer
    let writeError
    const req = http.request(url, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked', ...headers } }, (res) => {
      answer = { status: res.statusCode, headers: res.headers, sentBeforeAnswer: sent }
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => {
        req.destroy()
        resolve({ ...answer, body: Buffer.concat(chunks).toString(), writeError })
      })
      res.on('error', (reset) => resolve({ ...answer, body: undefined, reset, writeError }))
    })
    // A reset before any answer arrived resolves too (status undefined): through a proxy that
    // drops the answer with the connection, that is what the client sees.
    req.on('error', (e) => {
      if (answer) writeError = e
      else resolve({ status: undefined, headers: {}, sentBeforeAnswer: sent, body: undefined, reset: e })
    })
    const write = () => {
      while (!answer && !req.destroyed && sent < total) {
        sent += piece.length
        if (!req.write(piece)) return req.once('drain', write)
      }
      if (!answer && !req.destroyed) req.end()
    }
    write()
  })
