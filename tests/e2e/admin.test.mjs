// The admin API (`/_admin/`, issue 7): off without ADMIN_TOKEN, only the admin token opens it,
// store figures, NDJSON export and import (all or nothing), and a reset that the real LiveStore
// client sees as BackendIdMismatchError.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { connectClient, cursorFrom, livePull, pushUntilBackendIdMismatch } from './lib/client.mjs'
import { OK, waitFor, withSocket } from './lib/helpers.mjs'
import { postSync, rawHttp } from './lib/http.mjs'
import { makeEvents, pullAll, push, request } from './lib/raw.mjs'
import { DEFAULT_TOKEN, STORAGE, startWorker, storeId, syncQuery, withWorker, wranglerOnly } from './lib/worker.mjs'

const ADMIN = 'admin-token-for-tests-0123456789'

const admin = (w, path, { method = 'GET', token = ADMIN, body } = {}) =>
  fetch(`${w.url}/_admin/${path}`, {
    method,
    headers: token === null ? {} : { Authorization: `Bearer ${token}` },
    body,
  })

const ndjson = (events) => events.map((e) => JSON.stringify(e)).join('\n') + '\n'

/** What an admin answer holds is a store's data: no cache may keep it, no browser reinterpret it. */
const assertAdminHeaders = (res, what) => {
  const get = (name) => (typeof res.headers.get === 'function' ? res.headers.get(name) : res.headers[name])
  assert.equal(get('cache-control'), 'no-store', `${what}: Cache-Control`)
  assert.equal(get('x-content-type-options'), 'nosniff', `${what}: X-Content-Type-Options`)
}

describe('admin API off', () => {
  test('without ADMIN_TOKEN every admin path is 404, even with sync parameters', { timeout: 60_000 }, async () => {
    await withWorker({ label: 'admin-off' }, async (w) => {
      const res = await admin(w, 'stores/x', { token: 'anything' })
      assert.equal(res.status, 404)
      assertAdminHeaders(res, 'the 404 of an admin API that is off')
      const sync = await fetch(`${w.url}/_admin/stores/x?${syncQuery('x', { transport: 'http' })}`, { method: 'POST', body: '{}' })
      assert.equal(sync.status, 404, 'never taken for a sync request')
      for (const page of ['', 'inspector/app.js', 'ping']) {
        assert.equal((await fetch(`${w.url}/_admin/${page}`)).status, 404, `the inspector's /_admin/${page} is off too`)
      }
      assert.equal((await fetch(`${w.url}/_admin`, { redirect: 'manual' })).status, 404)
    })
  })
})

describe('admin API on', () => {
  let w
  before(async () => {
    w = await startWorker({ label: 'admin-on', vars: { AUTH_TOKEN: DEFAULT_TOKEN, ADMIN_TOKEN: ADMIN } })
  })
  after(async () => {
    await w?.stop()
  })

  test('401 for a wrong, missing or sync token; nothing about the token is logged', async () => {
    for (const token of ['wrong', DEFAULT_TOKEN, null]) {
      const res = await admin(w, 'stores/x', { token })
      assert.equal(res.status, 401, `token ${token}`)
      assert.deepEqual(await res.json(), { error: 'Unauthorized' })
    }
    assert.ok(!w.logs().includes('wrong'), 'the presented token is not logged')
    assert.ok(!w.logs().includes(ADMIN), 'the admin token is not logged')
  })

  test('info after pushes', async () => {
    const store = storeId('admin-info')
    const backendId = await withSocket(w, store, async (s) => {
      assert.deepEqual((await push(s, store, makeEvents(5))).exit, OK)
      return (await pullAll(s, store)).pages[0].backendId
    })
    const res = await admin(w, `stores/${encodeURIComponent(store)}`)
    assert.equal(res.status, 200)
    const info = await res.json()
    assert.equal(info.storeId, store)
    assert.equal(info.head, 5)
    assert.equal(info.eventCount, 5)
    assert.equal(info.backendId, backendId)
    assert.equal(info.storage, STORAGE)
    assert.ok(info.approxSizeBytes > 0)
    assert.equal(typeof info.openSockets, 'number')
    assert.equal(typeof info.livePulls, 'number')
    // wrangler dev prints the Worker's console output a little after the response.
    const findLine = () => w.logs().split('\n').find((l) => l.includes('"event":"admin"') && l.includes('"action":"info"') && l.includes(store))
    await waitFor(() => findLine() !== undefined, { timeout: 10_000, message: 'one JSON log line per admin action' })
    const line = findLine()
    assert.ok(!line.includes(ADMIN))
  })

  test('export, import into a new store, identical pull; export of a range and paging', async () => {
    const from = storeId('admin-export')
    const to = storeId('admin-import')
    const events = makeEvents(7, { text: (i) => `ünï "${i}" \\ \n 😀` })
    events[1].args = null
    delete events[2].args
    const original = await withSocket(w, from, async (s) => {
      assert.deepEqual((await push(s, from, events)).exit, OK)
      return pullAll(s, from)
    })
    const res = await admin(w, `stores/${from}/events`)
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type'), /ndjson/)
    const text = await res.text()
    const lines = text.trim().split('\n').map((l) => JSON.parse(l))
    assert.equal(lines.length, 7)
    assert.deepEqual(
      lines.map(({ createdAt, ...e }) => e),
      original.events,
    )
    assert.ok(lines.every((l) => typeof l.createdAt === 'string'))

    // A live pull of the target store receives the imported events.
    const c = await connectClient({ url: w.url, storeId: to })
    const live = livePull(c)
    try {
      // Its first page says it is registered: from then on it receives every new batch.
      await waitFor(() => live.items.length > 0, { message: 'the live pull to start' })
      const imported = await admin(w, `stores/${to}/import`, { method: 'POST', body: text })
      assert.equal(imported.status, 200)
      assert.deepEqual(await imported.json(), { imported: 7, head: 7 })
      await waitFor(() => live.events().length === 7, { timeout: 15_000, message: 'the live pull to see the import' })
      assert.deepEqual(live.events().map((e) => e.seqNum), [1, 2, 3, 4, 5, 6, 7])
    } finally {
      await live.stop()
      await c.close()
    }
    const copy = await withSocket(w, to, (s) => pullAll(s, to))
    assert.deepEqual(copy.events, original.events)
    // createdAt moved too: the copy exports byte for byte as the original did.
    assert.equal(await (await admin(w, `stores/${to}/events`)).text(), text)

    const range = await (await admin(w, `stores/${from}/events?after=2&until=5`)).text()
    assert.deepEqual(range.trim().split('\n').map((l) => JSON.parse(l).seqNum), [3, 4, 5])
    const page = await admin(w, `stores/${from}/events?limit=3`)
    assert.equal(page.headers.get('x-next-after'), '3')
    assert.equal((await page.text()).trim().split('\n').length, 3)
  })

  test('an export without limit streams every page in one response, ranges included', { timeout: 180_000 }, async () => {
    const store = storeId('admin-stream')
    const total = 23_456
    await withSocket(w, store, async (s) => {
      for (let start = 1; start <= total; start += 100) {
        const batch = makeEvents(Math.min(100, total - start + 1), { start, parent: start - 1 })
        assert.deepEqual((await push(s, store, batch)).exit, OK)
      }
    })
    const seqNums = async (query) => {
      const res = await admin(w, `stores/${store}/events${query}`)
      assert.equal(res.status, 200)
      // One response: the Worker follows the object's pages itself.
      assert.equal(res.headers.get('x-next-after'), null)
      let chunks = 0
      let text = ''
      const decoder = new TextDecoder()
      for await (const chunk of res.body) {
        chunks += 1
        text += decoder.decode(chunk, { stream: true })
      }
      return { chunks, seqNums: text.trim().split('\n').map((l) => JSON.parse(l).seqNum) }
    }
    const all = await seqNums('')
    assert.equal(all.seqNums.length, total)
    assert.ok(all.seqNums.every((n, i) => n === i + 1))
    assert.ok(all.chunks > 1, `more than one chunk arrived (${all.chunks})`)
    const range = await seqNums('?after=4999&until=21000')
    assert.equal(range.seqNums.length, 16_001)
    assert.equal(range.seqNums[0], 5000)
    assert.equal(range.seqNums.at(-1), 21_000)
    // An import of the whole streamed export gives the same log.
    const copy = storeId('admin-stream-copy')
    const body = await (await admin(w, `stores/${store}/events`)).text()
    const imported = await admin(w, `stores/${copy}/import`, { method: 'POST', body })
    assert.deepEqual(await imported.json(), { imported: total, head: total })
  })

  test('a store moves to the other storage engine with its events and their times', { timeout: 120_000, skip: wranglerOnly('workerd alone has no D1 to move to') }, async () => {
    const other = STORAGE === 'd1' ? 'do-sqlite' : 'd1'
    const store = storeId('admin-move')
    const original = await withSocket(w, store, async (s) => {
      assert.deepEqual((await push(s, store, makeEvents(100))).exit, OK)
      assert.deepEqual((await push(s, store, makeEvents(20, { start: 101, parent: 100 }))).exit, OK)
      return pullAll(s, store)
    })
    const exported = await (await admin(w, `stores/${store}/events`)).text()
    await withWorker({ label: `admin-move-${other}`, storage: other, vars: { AUTH_TOKEN: DEFAULT_TOKEN, ADMIN_TOKEN: ADMIN } }, async (target) => {
      const res = await admin(target, `stores/${store}/import`, { method: 'POST', body: exported })
      assert.deepEqual(await res.json(), { imported: 120, head: 120 })
      const info = await (await admin(target, `stores/${store}`)).json()
      assert.equal(info.storage, other)
      const moved = await withSocket(target, store, (s) => pullAll(s, store))
      const items = (r) => r.pages.flatMap((p) => p.batch)
      // Events and their metadata (createdAt) as the original engine served them.
      assert.deepEqual(items(moved), items(original))
      const reexported = await (await admin(target, `stores/${store}/events`)).text()
      if (STORAGE === 'postgres') {
        // Postgres keeps args as JSONB, which prints them its own way (spacing, key order):
        // the same values, not the same bytes.
        const lines = (text) => text.trim().split('\n').map((line) => JSON.parse(line))
        assert.deepEqual(lines(reexported), lines(exported))
      } else {
        assert.equal(reexported, exported)
      }
    })
  })

  test('import is refused, with nothing written, for a non-empty store, a broken chain or a bad line', async () => {
    const full = storeId('admin-full')
    await withSocket(w, full, async (s) => assert.deepEqual((await push(s, full, makeEvents(1))).exit, OK))
    let res = await admin(w, `stores/${full}/import`, { method: 'POST', body: ndjson(makeEvents(1)) })
    assert.equal(res.status, 409)
    assert.equal((await res.json()).error, 'StoreNotEmpty')

    const store = storeId('admin-refused')
    const broken = makeEvents(3)
    broken[2].parentSeqNum = 1
    res = await admin(w, `stores/${store}/import`, { method: 'POST', body: ndjson(broken) })
    assert.equal(res.status, 400)
    assert.deepEqual(await res.json(), { error: 'InvalidChain', message: 'parentSeqNum 1 must be 2 (the previous event\'s seqNum)', line: 3 })

    res = await admin(w, `stores/${store}/import`, { method: 'POST', body: ndjson(makeEvents(2)) + '{"name": oops\n' })
    assert.equal(res.status, 400)
    const bad = await res.json()
    assert.equal(bad.error, 'InvalidJson')
    assert.equal(bad.line, 3)

    const untimed = makeEvents(2)
    untimed[1].createdAt = 'yesterday'
    res = await admin(w, `stores/${store}/import`, { method: 'POST', body: ndjson(untimed) })
    assert.equal(res.status, 400)
    assert.deepEqual(
      { ...(await res.json()), message: undefined },
      { error: 'InvalidCreatedAt', message: undefined, line: 2 },
    )

    const info = await (await admin(w, `stores/${store}`)).json()
    assert.equal(info.eventCount, 0)
    assert.equal(info.head, 0)
  })

  test('every admin answer, refusals included, carries Cache-Control: no-store and X-Content-Type-Options: nosniff', async () => {
    const store = storeId('admin-headers')
    const copy = storeId('admin-headers-copy')
    await withSocket(w, store, async (s) => assert.deepEqual((await push(s, store, makeEvents(3))).exit, OK))
    const exported = await admin(w, `stores/${store}/events`)
    const body = await exported.text()
    const answers = [
      ['info', await admin(w, `stores/${store}`), 200],
      ['the streamed export', exported, 200],
      ['an export paged with limit=', await admin(w, `stores/${store}/events?limit=2`), 200],
      ['an import', await admin(w, `stores/${copy}/import`, { method: 'POST', body }), 200],
      ['an import into a non-empty store', await admin(w, `stores/${store}/import`, { method: 'POST', body }), 409],
      ['an import of a bad line', await admin(w, `stores/${storeId('admin-headers-bad')}/import`, { method: 'POST', body: '{"name": oops\n' }), 400],
      ['a reset', await admin(w, `stores/${copy}/reset`, { method: 'POST' }), 200],
      ['a delete', await admin(w, `stores/${copy}`, { method: 'DELETE' }), 200],
      ['the store directory', await admin(w, 'stores?prefix=admin-headers'), 200],
      ['the 400 of a bad directory query', await admin(w, 'stores?sort=nope'), 400],
      ['the 401 of a wrong token', await admin(w, `stores/${store}`, { token: 'wrong' }), 401],
      ['the 401 of a missing token', await admin(w, `stores/${store}`, { token: null }), 401],
      ['the 404 of an unknown admin path', await admin(w, 'no-such-thing'), 404],
      ['the 405 of a GET of reset', await admin(w, `stores/${store}/reset`), 405],
      ['the 405 of a PUT of a store', await admin(w, `stores/${store}`, { method: 'PUT' }), 405],
    ]
    for (const [what, res, status] of answers) {
      assert.equal(res.status, status, what)
      assertAdminHeaders(res, what)
      await res.arrayBuffer().catch(() => {})
    }
  })

  test('the internal admin header sent from outside is dropped: no reset, no figures, and an upgrade with it is a plain sync socket', async () => {
    const store = storeId('admin-internal-header')
    const events = makeEvents(3)
    await withSocket(w, store, async (s) => assert.deepEqual((await push(s, store, events)).exit, OK))
    const before = await (await admin(w, `stores/${store}`)).json()
    assert.deepEqual([before.head, before.eventCount], [3, 3])
    // What the Worker sets on the admin actions it forwards to a store's object, here on sync
    // requests with a valid sync token, at the paths of those actions.
    const internal = { 'x-livestore-admin': ADMIN }
    const query = syncQuery(store, { transport: 'http' })
    for (const [method, path] of [['GET', '/reset'], ['POST', '/reset'], ['GET', '/info'], ['GET', '/export']]) {
      const res = await rawHttp(`${w.url}${path}?${query}`, {
        method,
        headers: method === 'POST' ? { ...internal, 'content-length': '0' } : internal,
        body: method === 'POST' ? '' : undefined,
      })
      // Served as what it is, an HTTP sync request, which a GET or an empty body is not: 400
      // with the typed defect, never an admin answer.
      assert.equal(res.status, 400, `${method} ${path}: ${res.body}`)
      const reply = JSON.parse(res.body)
      assert.equal(reply.length, 1, res.body)
      assert.equal(reply[0]._tag, 'Defect', res.body)
      assert.doesNotMatch(res.body, /backendId|eventCount|removedEvents|head/, `${method} ${path}`)
    }
    // A POST that is a sync message gets the sync answer.
    const pong = await postSync(w, store, request('SyncHttpRpc.Ping', { storeId: store }), { path: '/reset', headers: internal })
    assert.equal(pong.status, 200, pong.body)
    assert.deepEqual(JSON.parse(pong.body).map((m) => m.exit), [{ _tag: 'Success', value: { _tag: 'SyncMessage.Pong' } }])
    const after = await (await admin(w, `stores/${store}`)).json()
    assert.deepEqual([after.head, after.eventCount, after.backendId], [before.head, before.eventCount, before.backendId], 'the store was neither reset nor changed')

    // A WebSocket upgrade carrying the header is an ordinary sync socket of the store.
    await withSocket(
      w,
      store,
      async (s) => {
        assert.deepEqual((await pullAll(s, store)).events, events)
        assert.deepEqual((await push(s, store, makeEvents(1, { start: 4, parent: 3 }), before.backendId)).exit, OK)
      },
      { headers: internal },
    )
    const final = await (await admin(w, `stores/${store}`)).json()
    assert.deepEqual([final.head, final.eventCount, final.backendId], [4, 4, before.backendId])

    // Nor does a browser get to send it to the admin API: a preflight never allows it.
    const preflight = await rawHttp(`${w.url}/_admin/stores/${store}`, {
      method: 'OPTIONS',
      headers: { Origin: 'https://example.test', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization, x-livestore-admin' },
    })
    assert.doesNotMatch(preflight.headers['access-control-allow-headers'] ?? '', /x-livestore-admin/i)
  })

  test('reset: the real client gets BackendIdMismatchError, and a new client starts over', { timeout: 120_000 }, async () => {
    const store = storeId('admin-reset')
    const c = await connectClient({ url: w.url, storeId: store })
    try {
      await c.push(makeEvents(2, { clientId: 'test-client' }))
      const pages = await c.pullPages()
      const cursor = cursorFrom(pages.at(-1))
      const before = await (await admin(w, `stores/${store}`)).json()
      const res = await admin(w, `stores/${store}/reset`, { method: 'POST' })
      assert.equal(res.status, 200)
      const reset = await res.json()
      assert.equal(reset.removedEvents, 2)
      assert.equal(reset.previousBackendId, before.backendId)
      assert.notEqual(reset.backendId, before.backendId)
      const info = await (await admin(w, `stores/${store}`)).json()
      assert.deepEqual([info.head, info.eventCount, info.backendId], [0, 0, reset.backendId])

      await pushUntilBackendIdMismatch(c, makeEvents(1, { start: 3, parent: 2, clientId: 'test-client' }))
      const { Stream, Effect } = await import('@livestore/utils/effect')
      const pulled = await c.runExit(c.backend.pull(cursor).pipe(Stream.runCollect, Effect.asVoid))
      assert.equal(pulled._tag, 'Failure')
      assert.equal(pulled.cause.error._tag, 'BackendIdMismatchError')
    } finally {
      await c.close()
    }
    // A client that starts over (as LiveStore does after the mismatch) syncs from 0.
    const fresh = await connectClient({ url: w.url, storeId: store, clientId: 'fresh-client' })
    try {
      await fresh.push(makeEvents(1, { clientId: 'fresh-client' }))
      const pages = await fresh.pullPages()
      assert.deepEqual(pages.flatMap((p) => p.batch.map((b) => b.eventEncoded.seqNum)), [1])
    } finally {
      await fresh.close()
    }
  })
})
