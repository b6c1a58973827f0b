// The store directory (GET /_admin/stores), deleting a store (DELETE /_admin/stores/<id>) and
// the expiry of idle stores (EXPIRE_IDLE_STORES_AFTER): stores with distinct prefixes and sizes
// are listed with the figures their own info shows, filtered by prefix, sorted, paged; bad
// queries, wrong tokens and the directory's reserved storeId are refused; a deleted store closes
// its sockets with 4000, leaves the directory and starts over empty; an idle store deletes
// itself while one with an open socket is kept; STORE_DIRECTORY=false turns the listing off.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { connectClient } from './lib/client.mjs'
import { OK, closeSockets, openSocket, waitFor, withSocket } from './lib/helpers.mjs'
import { postSync } from './lib/http.mjs'
import { makeEvents, openLivePull, pullAll, push, request } from './lib/raw.mjs'
import { DEFAULT_TOKEN, STORAGE, startWorker, storeId, withWorker } from './lib/worker.mjs'

const ADMIN = 'admin-token-for-directory-tests-01'
const RESERVED = '__livestore_directory__'
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

const admin = (w, path, { method = 'GET', token = ADMIN, body } = {}) =>
  fetch(`${w.url}/_admin/${path}`, { method, headers: token === null ? {} : { Authorization: `Bearer ${token}` }, body })

/** What an admin answer holds is a store's data: no cache may keep it, no browser reinterpret it. */
const assertAdminHeaders = (res, what) => {
  assert.equal(res.headers.get('cache-control'), 'no-store', `${what}: Cache-Control`)
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff', `${what}: X-Content-Type-Options`)
}

/** A page of the directory for `query` (an object of query parameters); asserts the 200. */
const list = async (w, query = {}) => {
  const res = await admin(w, `stores?${new URLSearchParams(query)}`)
  const text = await res.text()
  assert.equal(res.status, 200, `GET /_admin/stores?${new URLSearchParams(query)}: ${text}`)
  assertAdminHeaders(res, 'a listing')
  return JSON.parse(text)
}

/** The directory's entry of `store`, or undefined. */
const entryOf = async (w, store) => (await list(w, { prefix: store, sort: 'id', limit: '500' })).stores.find((e) => e.storeId === store)

/** Waits until the entry of `store` satisfies `cond` (default: it is listed), and returns it. */
const waitForEntry = async (w, store, cond = () => true, { timeout = 20_000, message = `the directory entry of ${store}` } = {}) => {
  let entry
  await waitFor(
    async () => {
      entry = await entryOf(w, store)
      return entry !== undefined && cond(entry)
    },
    { timeout, interval: 250, message: `${message} (last seen: ${JSON.stringify(entry)})` },
  )
  return entry
}

const info = async (w, store) => {
  const res = await admin(w, `stores/${encodeURIComponent(store)}`)
  assert.equal(res.status, 200, `info of ${store}`)
  return res.json()
}

/** Pushes `events` to a new store over a bare socket; returns the store's backendId. */
const pushStore = (w, store, events) =>
  withSocket(w, store, async (s) => {
    assert.deepEqual((await push(s, store, events)).exit, OK, `push to ${store}`)
    return (await pullAll(s, store)).pages[0].backendId
  })

const ids = (page) => page.stores.map((e) => e.storeId)

/** Entries sorted as the server must sort them: by `key`, then by storeId, in `order`. */
const sortedBy = (entries, key, order) => {
  const sign = order === 'desc' ? -1 : 1
  const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0)
  return [...entries].sort((a, b) => sign * (cmp(a[key], b[key]) || cmp(a.storeId, b.storeId))).map((e) => e.storeId)
}

describe('store directory and delete', () => {
  let w
  before(async () => {
    w = await startWorker({ label: 'directory', vars: { AUTH_TOKEN: DEFAULT_TOKEN, ADMIN_TOKEN: ADMIN } })
  })
  after(async () => {
    closeSockets()
    await w?.stop()
  })

  test('listing: figures as the store info shows them, prefix filter, sorts, paging, updates', { timeout: 90_000 }, async () => {
    const startedAt = Date.now()
    const base = storeId('dir-list')
    const alpha1 = `${base}-alpha-1`
    const alpha2 = `${base}-alpha-2`
    const beta = `${base}-beta_1`
    const gamma = `${base}-gamma`
    // Events desc: alpha2 7, alpha1 3, gamma 2, beta 1; bytes: beta's one large event first.
    const alpha1Backend = await pushStore(w, alpha1, makeEvents(3))
    await pushStore(w, alpha2, makeEvents(7))
    await pushStore(w, beta, makeEvents(1, { text: () => 'x'.repeat(6000) }))
    // One store created by the real LiveStore client.
    const c = await connectClient({ url: w.url, storeId: gamma })
    try {
      await c.push(makeEvents(2, { clientId: 'test-client' }))
    } finally {
      await c.close()
    }
    const expected = { [alpha1]: 3, [alpha2]: 7, [beta]: 1, [gamma]: 2 }
    const all = Object.keys(expected).sort()

    // Each store's object reports itself from its alarm, about a second after its first use.
    let page
    await waitFor(
      async () => {
        page = await list(w, { prefix: base, sort: 'id' })
        return page.total === 4 && page.stores.every((e) => e.events === expected[e.storeId])
      },
      { timeout: 20_000, interval: 250, message: 'the four stores listed with their event counts' },
    )
    assert.deepEqual(ids(page), all, 'sort=id: ascending by default')
    assert.deepEqual([page.total, page.offset, page.limit], [4, 0, 50])

    const listedAt = Date.now()
    const entries = Object.fromEntries(page.stores.map((e) => [e.storeId, e]))
    for (const store of all) {
      const e = entries[store]
      assert.deepEqual(Object.keys(e).sort(), ['bytes', 'engine', 'events', 'expiresAt', 'firstActivityAt', 'lastActivityAt', 'storeId'])
      const i = await info(w, store)
      assert.equal(e.events, i.eventCount, `${store}: events`)
      assert.equal(e.bytes, i.approxSizeBytes, `${store}: bytes = approxSizeBytes`)
      assert.ok(e.bytes > 0, `${store}: bytes`)
      assert.equal(e.engine, i.storage, `${store}: engine`)
      assert.equal(e.engine, STORAGE, `${store}: engine`)
      assert.match(e.firstActivityAt, ISO, `${store}: firstActivityAt`)
      assert.match(e.lastActivityAt, ISO, `${store}: lastActivityAt`)
      const first = Date.parse(e.firstActivityAt)
      const last = Date.parse(e.lastActivityAt)
      assert.ok(first >= startedAt - 2000 && first <= listedAt + 2000, `${store}: firstActivityAt ${e.firstActivityAt} within the test`)
      assert.ok(last >= startedAt - 2000 && last <= listedAt + 2000, `${store}: lastActivityAt ${e.lastActivityAt} within the test`)
      assert.equal(e.expiresAt, null, `${store}: no expiry without EXPIRE_IDLE_STORES_AFTER`)
    }
    assert.ok(entries[beta].bytes > entries[alpha2].bytes, 'the store with a 6000-character event is the largest')

    // Prefix: a plain string comparison, `_` and `%` are no wildcards.
    assert.deepEqual(ids(await list(w, { prefix: `${base}-alpha-`, sort: 'id' })), [alpha1, alpha2])
    assert.equal((await list(w, { prefix: `${base}-alpha-` })).total, 2)
    assert.deepEqual(ids(await list(w, { prefix: `${base}-beta_` })), [beta])
    for (const prefix of [`${base}-alpha_`, `${base}-%`, `${base}-alpha-3`, `${base}x`]) {
      const p = await list(w, { prefix })
      assert.deepEqual([p.stores, p.total], [[], 0], `prefix ${prefix} matches nothing`)
    }
    assert.deepEqual(ids(await list(w, { prefix: gamma })), [gamma], 'a whole storeId as prefix')
    // Without a prefix, every store of the worker; ours among them.
    const everything = await list(w, { limit: '500' })
    assert.ok(everything.total >= 4)
    for (const store of all) assert.ok(ids(everything).includes(store), `${store} in the unfiltered listing`)
    assert.ok(!ids(everything).includes(RESERVED), 'the directory does not list itself')

    // Sorts.
    const values = page.stores
    assert.deepEqual(ids(await list(w, { prefix: base, sort: 'id', order: 'desc' })), [...all].reverse())
    assert.deepEqual(ids(await list(w, { prefix: base, sort: 'events' })), [alpha2, alpha1, gamma, beta], 'sort=events: descending by default')
    assert.deepEqual(ids(await list(w, { prefix: base, sort: 'events', order: 'asc' })), [beta, gamma, alpha1, alpha2])
    const byBytes = ids(await list(w, { prefix: base, sort: 'bytes' }))
    assert.deepEqual(byBytes, sortedBy(values, 'bytes', 'desc'), 'sort=bytes: descending by default')
    assert.equal(byBytes[0], beta)
    assert.deepEqual(ids(await list(w, { prefix: base, sort: 'bytes', order: 'asc' })), sortedBy(values, 'bytes', 'asc'))
    // lastActivity (the default) and firstActivity: descending by default; compare the times.
    for (const [query, key, order] of [
      [{}, 'lastActivityAt', 'desc'],
      [{ sort: 'lastActivity', order: 'asc' }, 'lastActivityAt', 'asc'],
      [{ sort: 'firstActivity' }, 'firstActivityAt', 'desc'],
      [{ sort: 'firstActivity', order: 'asc' }, 'firstActivityAt', 'asc'],
    ]) {
      const p = await list(w, { prefix: base, ...query })
      assert.equal(p.stores.length, 4)
      const times = p.stores.map((e) => Date.parse(e[key]))
      assert.ok(
        times.every((t, i) => i === 0 || (order === 'desc' ? t <= times[i - 1] : t >= times[i - 1])),
        `${JSON.stringify(query)}: ${key} ${order}: ${p.stores.map((e) => e[key])}`,
      )
    }

    // Paging.
    let p = await list(w, { prefix: base, sort: 'id', limit: '2' })
    assert.deepEqual([ids(p), p.total, p.offset, p.limit], [all.slice(0, 2), 4, 0, 2])
    p = await list(w, { prefix: base, sort: 'id', limit: '2', offset: '2' })
    assert.deepEqual([ids(p), p.total, p.offset, p.limit], [all.slice(2), 4, 2, 2])
    p = await list(w, { prefix: base, sort: 'id', limit: '3', offset: '3' })
    assert.deepEqual([ids(p), p.total, p.offset, p.limit], [all.slice(3), 4, 3, 3])
    p = await list(w, { prefix: base, sort: 'id', offset: '4' })
    assert.deepEqual([ids(p), p.total, p.offset], [[], 4, 4])
    p = await list(w, { prefix: base, sort: 'id', limit: '0' })
    assert.deepEqual([ids(p), p.total, p.limit], [all.slice(0, 1), 4, 1], 'limit=0 is taken as 1')
    p = await list(w, { prefix: base, sort: 'id', limit: '500', offset: '0' })
    assert.deepEqual([ids(p), p.limit], [all, 500])
    p = await list(w, { prefix: base, sort: 'events', order: 'asc', limit: '2', offset: '1' })
    assert.deepEqual(ids(p), [gamma, alpha1], 'paging follows the sort')
    // Empty values count as absent.
    p = await list(w, { prefix: base, sort: 'id', order: '', limit: '', offset: '' })
    assert.deepEqual([ids(p), p.limit, p.offset], [all, 50, 0])

    // More events: the figures follow within the update interval (10 s).
    await withSocket(w, alpha1, async (s) => {
      assert.deepEqual((await push(s, alpha1, makeEvents(2, { start: 4, parent: 3 }), alpha1Backend)).exit, OK)
    })
    const updated = await waitForEntry(w, alpha1, (e) => e.events === 5, { timeout: 25_000, message: 'the entry to show the new events' })
    const now = await info(w, alpha1)
    assert.equal(updated.bytes, now.approxSizeBytes, 'bytes follow too')
    assert.ok(updated.bytes > entries[alpha1].bytes)
    assert.equal(updated.firstActivityAt, entries[alpha1].firstActivityAt, 'firstActivityAt stays')
    assert.ok(Date.parse(updated.lastActivityAt) > Date.parse(entries[alpha1].lastActivityAt), 'lastActivityAt moves on')
  })

  test('bad query parameters are 400 InvalidQuery; wrong tokens 401; other methods 405', async () => {
    for (const query of ['sort=name', 'sort=ID', 'order=up', 'limit=501', 'limit=x', 'limit=-1', 'limit=1.5', 'offset=-1', 'offset=x', 'offset=1000000001']) {
      const res = await admin(w, `stores?${query}`)
      assert.equal(res.status, 400, query)
      assertAdminHeaders(res, `the 400 of ${query}`)
      const body = await res.json()
      assert.equal(body.error, 'InvalidQuery', query)
      assert.equal(typeof body.message, 'string', query)
      assert.ok(body.message.length > 0, query)
    }
    for (const token of ['wrong', DEFAULT_TOKEN, null]) {
      for (const path of ['stores', 'stores/', 'stores?sort=id']) {
        const res = await admin(w, path, { token })
        assert.equal(res.status, 401, `${path} with token ${token}`)
        assertAdminHeaders(res, 'a 401')
        assert.deepEqual(await res.json(), { error: 'Unauthorized' })
      }
    }
    const none = await admin(w, 'stores/x', { method: 'DELETE', token: 'wrong' })
    assert.equal(none.status, 401, 'DELETE with a wrong token')
    await none.arrayBuffer()
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const res = await admin(w, 'stores', { method })
      assert.equal(res.status, 405, `${method} /_admin/stores`)
      assertAdminHeaders(res, `the 405 of ${method}`)
      await res.arrayBuffer()
    }
    assert.equal((await admin(w, 'stores/')).status, 200, 'a trailing slash lists too')
  })

  test(
    'a listing ignores query parameters it does not know, those of a sync request included',
    {},
    async () => {
      const prefix = storeId('dir-unknown-params')
      for (const query of ['foo=bar', 'storeId=x', 'transport=ws', 'transport=http&storeId=some-store', 'transport=http']) {
        const res = await admin(w, `stores?prefix=${prefix}&${query}`)
        const text = await res.text()
        assert.equal(res.status, 200, `${query}: ${text}`)
        assert.deepEqual(JSON.parse(text), { stores: [], total: 0, offset: 0, limit: 50 }, query)
      }
    },
  )

  test('the directory\'s storeId is reserved: 400 for sync requests, 404 on admin routes', async () => {
    await assert.rejects(openSocket(w, RESERVED), (e) => e.status === 400, 'a WebSocket upgrade for it is refused with 400')
    const http = await postSync(w, RESERVED, request('SyncHttpRpc.Ping', { storeId: RESERVED }))
    assert.equal(http.status, 400, http.body)
    assert.match(http.body, /reserved/)
    const pushed = await postSync(w, RESERVED, request('SyncHttpRpc.Push', { storeId: RESERVED, batch: makeEvents(1), backendId: { _tag: 'None' } }))
    assert.equal(pushed.status, 400, pushed.body)
    for (const [method, path] of [
      ['GET', RESERVED],
      ['GET', '%5F%5Flivestore_directory%5F%5F'],
      ['DELETE', RESERVED],
      ['DELETE', '%5F%5Flivestore_directory__'],
      ['GET', `${RESERVED}/events`],
      ['GET', `${RESERVED}/outbox`],
      ['POST', `${RESERVED}/reset`],
      ['POST', `${RESERVED}/import`],
    ]) {
      const res = await admin(w, `stores/${path}`, { method, body: method === 'POST' ? '' : undefined })
      assert.equal(res.status, 404, `${method} /_admin/stores/${path}`)
      assertAdminHeaders(res, `the 404 of ${method} ${path}`)
      assert.equal((await res.json()).error, 'NotFound')
    }
    // Not the store directory, just a store with a similar name.
    const similar = `${RESERVED}x-${storeId('dir-similar')}`
    await pushStore(w, similar, makeEvents(1))
    assert.equal((await info(w, similar)).eventCount, 1)
    await waitForEntry(w, similar)
  })

  test('DELETE: counts, the live socket closes with 4000, the entry goes, the store starts over empty', { timeout: 60_000 }, async () => {
    const store = storeId('dir-delete')
    const sock = await openSocket(w, store)
    assert.deepEqual((await push(sock, store, makeEvents(4))).exit, OK)
    const oldBackend = (await pullAll(sock, store)).pages[0].backendId
    await openLivePull(sock, store, 'dir-delete-live')
    const closed = new Promise((resolve) => sock.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })))
    await waitForEntry(w, store, (e) => e.events === 4)
    const before = await info(w, store)
    assert.equal(before.eventCount, 4)

    const deletedAt = Date.now()
    const res = await admin(w, `stores/${encodeURIComponent(store)}`, { method: 'DELETE' })
    const text = await res.text()
    assert.equal(res.status, 200, text)
    assertAdminHeaders(res, 'a delete')
    assert.deepEqual(JSON.parse(text), { deleted: true, removedEvents: 4, closedSockets: 1 })
    const { code } = await closed
    assert.equal(code, 4000, 'the socket is closed with 4000')

    // Gone from the directory as soon as DELETE answers.
    assert.equal(await entryOf(w, store), undefined, 'the entry is removed')
    assert.equal((await list(w, { prefix: store })).total, 0)
    const after = await info(w, store)
    assert.deepEqual([after.eventCount, after.head], [0, 0])
    assert.notEqual(after.backendId, oldBackend, 'not the deleted incarnation')
    const line = () => w.logLines().find((l) => l.event === 'admin' && l.action === 'delete' && l.storeId === store)
    await waitFor(() => line() !== undefined, { timeout: 10_000, message: 'the admin log line of the delete' })
    assert.ok(!JSON.stringify(line()).includes(ADMIN), 'the admin token is not logged')

    // A store with nothing in it stays unlisted, and a second DELETE finds nothing to remove.
    const again = await admin(w, `stores/${encodeURIComponent(store)}`, { method: 'DELETE' })
    assert.equal(again.status, 200)
    assert.deepEqual(await again.json(), { deleted: true, removedEvents: 0, closedSockets: 0 })

    // A new client starts over from parent 0; the old incarnation's backendId is refused.
    const fresh = await withSocket(w, store, async (s) => {
      assert.deepEqual((await push(s, store, makeEvents(2, { clientId: 'fresh' }))).exit, OK, 'a push from parent 0')
      const pulled = await pullAll(s, store)
      assert.deepEqual(pulled.events.map((e) => e.seqNum), [1, 2])
      const backendId = pulled.pages[0].backendId
      assert.notEqual(backendId, oldBackend)
      const stale = await push(s, store, makeEvents(1, { start: 3, parent: 2 }), oldBackend)
      assert.equal(stale.exit._tag, 'Failure', JSON.stringify(stale.exit))
      assert.match(JSON.stringify(stale.exit), /BackendIdMismatchError/)
      return backendId
    })
    const entry = await waitForEntry(w, store, (e) => e.events === 2, { message: 'the new incarnation listed' })
    assert.ok(Date.parse(entry.firstActivityAt) >= deletedAt - 1000, `firstActivityAt ${entry.firstActivityAt} is the new incarnation's`)
    const now = await info(w, store)
    assert.deepEqual([now.eventCount, now.head, now.backendId], [2, 2, fresh])

    // Deleting a store that never existed answers zeros.
    const never = await admin(w, `stores/${encodeURIComponent(storeId('dir-never'))}`, { method: 'DELETE' })
    assert.equal(never.status, 200)
    assert.deepEqual(await never.json(), { deleted: true, removedEvents: 0, closedSockets: 0 })
  })
})

test('EXPIRE_IDLE_STORES_AFTER=4s: an idle store deletes itself, one with an open socket is kept', { timeout: 90_000 }, async (t) => {
  await withWorker({ label: 'directory-expiry', vars: { AUTH_TOKEN: DEFAULT_TOKEN, ADMIN_TOKEN: ADMIN, EXPIRE_IDLE_STORES_AFTER: '4s', LOG_LEVEL: 'debug' } }, async (w) => {
    const idle = storeId('dir-expire-idle')
    const kept = storeId('dir-expire-kept')
    const pushedAt = Date.now()
    await pushStore(w, idle, makeEvents(2))
    const keeper = await openSocket(w, kept)
    try {
      assert.deepEqual((await push(keeper, kept, makeEvents(3))).exit, OK)
      await openLivePull(keeper, kept, 'dir-keeper-live')
      // Only the listing is asked from now on: a request to a store is a use, which would put
      // its expiry off.
      const idleEntry = await waitForEntry(w, idle)
      assert.equal(idleEntry.events, 2)
      assert.match(idleEntry.expiresAt ?? '', ISO, 'expiresAt is set')
      assert.equal(Date.parse(idleEntry.expiresAt) - Date.parse(idleEntry.lastActivityAt), 4000, 'expiresAt = lastActivityAt + 4 s')
      assert.ok(Date.parse(idleEntry.lastActivityAt) >= pushedAt - 1000, `lastActivityAt ${idleEntry.lastActivityAt}`)
      const keptEntry = await waitForEntry(w, kept)
      assert.equal(keptEntry.events, 3)
      assert.equal(Date.parse(keptEntry.expiresAt) - Date.parse(keptEntry.lastActivityAt), 4000)

      // The idle store's alarm deletes it once 4 s have passed.
      await waitFor(async () => (await entryOf(w, idle)) === undefined, { timeout: 30_000, interval: 250, message: 'the idle store to leave the directory' })
      const goneAt = Date.now()
      t.diagnostic(`the idle store left the directory ${goneAt - Date.parse(idleEntry.expiresAt)} ms after its expiresAt`)
      assert.ok(goneAt >= Date.parse(idleEntry.expiresAt) - 500, `not deleted before its expiry (${idleEntry.expiresAt}, gone at ${new Date(goneAt).toISOString()})`)
      const expired = () => w.logLines().find((l) => l.event === 'expired' && l.storeId === idle)
      await waitFor(() => expired() !== undefined, { timeout: 10_000, message: 'the expired log line' })
      assert.equal(expired().level, 'warn')
      assert.equal(expired().events, 2)
      const after = await (await admin(w, `stores/${encodeURIComponent(idle)}`)).json()
      assert.deepEqual([after.eventCount, after.head], [0, 0], 'its events are gone')
      assert.deepEqual(await withSocket(w, idle, async (s) => (await pullAll(s, idle)).events), [], 'a pull finds nothing')

      // The store with a socket open outlives its expiry: its alarm sees the socket, keeps the
      // store and says so at debug.
      const postponed = () => w.logLines().find((l) => l.event === 'expiry_postponed' && l.storeId === kept)
      await waitFor(() => postponed() !== undefined, { timeout: 30_000, message: 'the kept store\'s expiry_postponed line' })
      assert.equal(postponed().level, 'debug')
      assert.equal(postponed().sockets, 1)
      assert.ok(Date.parse(postponed().nextCheckAt) > Date.now(), `its next check ${postponed().nextCheckAt} lies ahead`)
      const still = await entryOf(w, kept)
      assert.ok(still, 'the store with an open socket is still listed after its expiresAt')
      assert.equal(still.events, 3)
      assert.ok(Date.parse(still.expiresAt) <= Date.now(), `its listed expiresAt ${still.expiresAt} has passed`)
      assert.ok(!keeper.closed, 'its socket is still open')
      await keeper.fence()
      assert.equal(w.logLines().find((l) => l.event === 'expired' && l.storeId === kept), undefined, 'no expired line for it')
      assert.equal((await info(w, kept)).eventCount, 3)
    } finally {
      keeper.close()
    }
  })
})

test('STORE_DIRECTORY=false: the listing is 404 DirectoryOff; info and DELETE still work', { timeout: 60_000 }, async () => {
  await withWorker({ label: 'directory-off', vars: { AUTH_TOKEN: DEFAULT_TOKEN, ADMIN_TOKEN: ADMIN, STORE_DIRECTORY: 'false' } }, async (w) => {
    const store = storeId('dir-off')
    await pushStore(w, store, makeEvents(3))
    for (const path of ['stores', 'stores/', 'stores?sort=id&limit=10']) {
      const res = await admin(w, path)
      assert.equal(res.status, 404, path)
      assertAdminHeaders(res, 'the 404 of a directory that is off')
      const body = await res.json()
      assert.equal(body.error, 'DirectoryOff')
      assert.equal(typeof body.message, 'string')
    }
    // The token is still checked first.
    assert.equal((await admin(w, 'stores', { token: 'wrong' })).status, 401)
    assert.equal((await info(w, store)).eventCount, 3)
    const res = await admin(w, `stores/${encodeURIComponent(store)}`, { method: 'DELETE' })
    assert.equal(res.status, 200)
    assert.deepEqual(await res.json(), { deleted: true, removedEvents: 3, closedSockets: 0 })
    assert.equal((await info(w, store)).eventCount, 0)
  })
})
