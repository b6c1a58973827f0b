// Plain HTTP requests with full control of the headers (fetch refuses to send `Upgrade`).
import http from 'node:http'

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
