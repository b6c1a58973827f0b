// A stand-in OTLP/HTTP collector: records every JSON body POSTed to /v1/traces.
import http from 'node:http'

export async function startOtlpStub() {
  const requests = []
  const server = http.createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      requests.push({ path: req.url, contentType: req.headers['content-type'], body: Buffer.concat(chunks).toString() })
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{}')
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    /** Every span received, with its resource's service name and attributes as a plain object. */
    spans: () =>
      requests.flatMap((r) =>
        JSON.parse(r.body).resourceSpans.flatMap((rs) => {
          const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue
          return rs.scopeSpans.flatMap((ss) =>
            ss.spans.map((s) => ({
              ...s,
              service,
              attrs: Object.fromEntries(s.attributes.map((a) => [a.key, a.value.stringValue ?? Number(a.value.intValue)])),
            })),
          )
        }),
      ),
    close: () => new Promise((resolve) => server.close(resolve)),
  }
}
