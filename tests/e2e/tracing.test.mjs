// Optional OTLP/HTTP span export (the reference's `otel` option): spans for connect, push and
// pull with store id, transport, batch size and outcome, received by a local collector stub.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'

import { connectClient } from './lib/client.mjs'
import { OK, openSocket, waitFor } from './lib/helpers.mjs'
import { startOtlpStub } from './lib/otlp-stub.mjs'
import { makeEvents, push, request } from './lib/raw.mjs'
import { DEFAULT_TOKEN, startWorker, storeId } from './lib/worker.mjs'

let w
let stub
before(async () => {
  stub = await startOtlpStub()
  w = await startWorker({
    label: 'tracing',
    vars: { AUTH_TOKEN: DEFAULT_TOKEN, OTEL_EXPORTER_OTLP_ENDPOINT: stub.url, OTEL_SERVICE_NAME: 'sync-under-test' },
  })
})
after(async () => {
  await w?.stop()
  await stub?.close()
})

const spansOf = (store) => stub.spans().filter((s) => s.attrs['livestore.store_id'] === store)

test('connect, push and pull spans reach the collector, joined to the client\'s trace', { timeout: 60_000 }, async () => {
  const store = storeId('traced')
  const sock = await openSocket(w, store)
  assert.deepEqual((await push(sock, store, makeEvents(2))).exit, OK)
  const stale = await push(sock, store, makeEvents(1, { start: 7, parent: 6 }))
  assert.equal(stale.exit.cause.error._tag, 'ServerAheadError')
  sock.send(request('SyncWsRpc.Pull', { storeId: store, live: false, cursor: { _tag: 'None' } }, 'pull-1'))
  await sock.exit('pull-1')
  sock.close()

  await waitFor(() => spansOf(store).length >= 4, { message: 'four spans at the collector' })
  const spans = spansOf(store)
  assert.ok(stub.requests.every((r) => r.path === '/v1/traces' && r.contentType === 'application/json'))
  assert.ok(spans.every((s) => s.service === 'sync-under-test'))

  const connect = spans.find((s) => s.name === 'sync.connect')
  assert.equal(connect.attrs['livestore.transport'], 'ws')
  assert.equal(connect.attrs['http.response.status_code'], 101)
  assert.equal(connect.attrs['livestore.outcome'], 'ok')

  const pushes = spans.filter((s) => s.name === 'sync.push')
  const ok = pushes.find((s) => s.attrs['livestore.outcome'] === 'ok')
  assert.equal(ok.attrs['livestore.batch_size'], 2)
  assert.equal(ok.attrs['livestore.transport'], 'ws')
  assert.deepEqual(ok.status, { code: 1 })
  // The raw client sends traceId f…f and spanId e…e, as Effect RPC does with real ids.
  assert.equal(ok.traceId, 'f'.repeat(32))
  assert.equal(ok.parentSpanId, 'e'.repeat(16))
  const failed = pushes.find((s) => s.attrs['livestore.outcome'] === 'error')
  assert.equal(failed.status.code, 2)
  assert.match(failed.status.message, /ServerAheadError/)

  const pull = spans.find((s) => s.name === 'sync.pull')
  assert.equal(pull.attrs['livestore.batch_size'], 2)
  assert.ok(BigInt(pull.endTimeUnixNano) >= BigInt(pull.startTimeUnixNano))
})

test('the real HTTP client\'s requests are traced too, and refused connections are marked', { timeout: 60_000 }, async () => {
  const store = storeId('traced-http')
  const c = await connectClient({ url: w.url, storeId: store, transport: 'http' })
  await c.push(makeEvents(3, { clientId: 'test-client' }))
  await c.pullPages()
  await c.close()
  await assert.rejects(openSocket(w, store, { payload: { authToken: 'wrong' } }))
  await waitFor(
    () => {
      const names = spansOf(store).map((s) => `${s.name}:${s.attrs['livestore.transport']}`)
      return names.includes('sync.push:http') && names.includes('sync.pull:http') && names.includes('sync.connect:ws')
    },
    { message: 'HTTP push/pull spans and the refused connect' },
  )
  const spans = spansOf(store)
  assert.equal(spans.find((s) => s.name === 'sync.push').attrs['livestore.batch_size'], 3)
  const refused = spans.find((s) => s.name === 'sync.connect' && s.attrs['livestore.transport'] === 'ws')
  assert.equal(refused.attrs['http.response.status_code'], 400)
  assert.equal(refused.attrs['livestore.outcome'], 'error')
})
