// examples/custom-worker: a Worker of its own that embeds the sync backend as a library — sync
// mounted at /sync beside its own route, and hooks (validate_payload, on_push, on_pull) that
// refuse some connections, events and pulls, with forwarded headers reaching them.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { connectClient, livePull } from './lib/client.mjs'
import { OK, openSocket, sleep, untilEvicted, waitFor } from './lib/helpers.mjs'
import { rawHttp, UPGRADE_HEADERS } from './lib/http.mjs'
import { makeEvents, pullAll, push, request } from './lib/raw.mjs'
import { startWorker, storeId, syncQuery } from './lib/worker.mjs'

let w
before(async () => (w = await startWorker({ crateDir: 'examples/custom-worker', label: 'custom-worker', readyPath: '/health' })))
after(() => w?.stop())

const appStore = (label) => `app-${storeId(label)}`
const clients = []
after(() => Promise.all(clients.map((c) => c.close().catch(() => {}))))

describe('routes', () => {
  test('the app\'s own route answers beside sync', async () => {
    const res = await rawHttp(`${w.url}/health`)
    assert.equal(res.status, 200)
    assert.deepEqual(JSON.parse(res.body), { ok: true, service: 'custom-worker' })
  })

  test('sync lives at /sync only', async () => {
    assert.equal((await rawHttp(`${w.url}/`)).status, 404)
    assert.equal((await rawHttp(`${w.url}/?${syncQuery(appStore('root'))}`)).status, 404)
    assert.equal((await rawHttp(`${w.url}/sync`)).status, 400)
    const sock = await openSocket(w, appStore('mounted'), { path: '/sync' })
    sock.close()
    await assert.rejects(openSocket(w, appStore('mounted'), { path: '/elsewhere' }), { status: 404 })
  })
})

for (const transport of ['ws', 'http']) {
  describe(`hooks, with the real ${transport} client`, () => {
    const client = async (label, opts = {}) => {
      const c = await connectClient({ url: `${w.url}/sync`, storeId: appStore(`${transport}-${label}`), transport, ...opts })
      clients.push(c)
      return c
    }

    test('on_push refuses forbidden events with a typed UnknownError and stores nothing', async () => {
      const c = await client('forbidden')
      const live = livePull(c)
      await waitFor(() => live.items.length > 0)
      const ok = makeEvents(2, { clientId: 'test-client' })
      await c.push(ok)
      const forbidden = makeEvents(1, { start: 3, parent: 2, clientId: 'test-client' }).map((e) => ({ ...e, name: 'v1.ForbiddenThing' }))
      const exit = await c.runExit(c.backend.push(forbidden))
      assert.equal(exit._tag, 'Failure')
      assert.equal(exit.cause._tag, 'Fail')
      assert.equal(exit.cause.error._tag, 'UnknownError')
      // The client decodes the cause into an Error; its message is the hook's.
      assert.match(exit.cause.error.cause.message, /events named v1\.ForbiddenThing are not accepted/)
      const stale = await c.runExit(c.backend.push(makeEvents(1, { start: 9, parent: 8, clientId: 'test-client' })))
      assert.equal(stale.cause.error._tag, 'ServerAheadError')
      const next = makeEvents(1, { start: 3, parent: 2, clientId: 'test-client' })
      await c.push(next)
      const pulled = (await c.pullPages()).flatMap((p) => p.batch.map((b) => b.eventEncoded))
      assert.deepEqual(pulled, [...ok, ...next])
      await waitFor(() => live.events().length === 3)
      assert.deepEqual(live.events(), [...ok, ...next], 'the refused batch was never broadcast')
      await live.stop()
      // on_push_res saw the two stored pushes and the stale one (the refused one never reached
      // the store); on_pull_res saw pages.
      const lines = w.logs().split('\n').filter((l) => l.includes(JSON.stringify(c.storeId)))
      const results = lines.filter((l) => l.includes('"app_push_result"')).map((l) => l.includes('"ok":true'))
      assert.deepEqual(results, [true, false, true])
      assert.ok(lines.some((l) => l.includes('"app_pull_page"')))
    })

    test('on_pull refuses a client whose payload says it is banned', async () => {
      const c = await client('banned', { payload: { authToken: 'insecure-token-change-me', role: 'banned' } })
      const { Effect, Option, Stream } = await import('@livestore/utils/effect')
      const exit = await c.runExit(c.backend.pull(Option.none()).pipe(Stream.runCollect, Effect.asVoid))
      assert.equal(exit._tag, 'Failure')
      assert.equal(exit.cause.error._tag, 'UnknownError')
      assert.match(exit.cause.error.cause.message, /banned clients may not pull/)
    })

    test('validate_payload refuses store ids outside app-*', async () => {
      const res = await rawHttp(`${w.url}/sync?${syncQuery(storeId('not-app'), { transport })}`, {
        method: transport === 'http' ? 'POST' : 'GET',
        headers: transport === 'ws' ? UPGRADE_HEADERS : {},
        body: transport === 'http' ? JSON.stringify(request('SyncHttpRpc.Ping', { storeId: 'x' })) : undefined,
      })
      assert.equal(res.status, 400)
      assert.match(res.body, /store ids must start with app-/)
    })
  })
}

describe('forwarded headers reach the hooks', () => {
  test('over WebSocket, from the upgrade request, and across an eviction', { timeout: 120_000 }, async () => {
    const store = appStore('read-only-ws')
    const sock = await openSocket(w, store, { path: '/sync', headers: { 'x-read-only': 'true' } })
    const first = await push(sock, store, makeEvents(1))
    assert.match(first.exit.cause.error.cause.message, /read-only/)
    // The hook refuses before the store is opened; a pull opens it, so its object's eviction shows.
    assert.deepEqual((await pullAll(sock, store)).events, [])
    // The header lives in the socket's attachment, so it still applies after the object sleeps:
    // idle (the point of the test) until a push is seen to have woken an evicted object.
    await untilEvicted(w, store, async (n) => {
      await sleep(10_000 + 5_000 * n)
      const again = await push(sock, store, makeEvents(1))
      assert.match(again.exit.cause.error.cause.message, /read-only/)
      assert.deepEqual((await pullAll(sock, store)).events, [])
    })
    sock.close()
  })

  test('over HTTP, on every request', async () => {
    const store = appStore('read-only-http')
    const body = JSON.stringify(request('SyncHttpRpc.Push', { storeId: store, batch: makeEvents(1), backendId: { _tag: 'None' } }))
    const url = `${w.url}/sync?${syncQuery(store, { transport: 'http' })}`
    const refused = await rawHttp(url, { method: 'POST', headers: { 'x-read-only': 'true' }, body })
    assert.match(JSON.parse(refused.body)[0].exit.cause.error.cause.message, /read-only/)
    const accepted = await rawHttp(url, { method: 'POST', body })
    assert.deepEqual(JSON.parse(accepted.body)[0].exit, OK)
  })

  test('the token is still required', async () => {
    await assert.rejects(openSocket(w, appStore('token'), { path: '/sync', payload: { authToken: 'nope' } }), { status: 400 })
  })
})
