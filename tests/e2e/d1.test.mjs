// The D1 engine's own guarantees, beyond what the shared suite checks on both engines: stores
// whose ids collide in the reference's table naming stay apart, a crash between the D1 write and
// the head write loses nothing, a D1 batch is stored whole or not at all, events of hundreds of
// KB sync, and a database without the migrations says so.
import assert from 'node:assert/strict'
import path from 'node:path'
import { describe, test } from 'node:test'

import { OK, openSocket as open, waitFor, withSocket } from './lib/helpers.mjs'
import { makeEvents, pullAll, push } from './lib/raw.mjs'
import { applyMigrations, d1Execute, DEFAULT_TOKEN, storeId, TMP, withWorker, wranglerOnly } from './lib/worker.mjs'

// workerd alone has no D1 (wrangler dev emulates it with miniflare).
const skip = wranglerOnly('workerd alone has no D1')
/** Runs `fn` with a worker whose event logs are in D1, stopped however `fn` ends. */
const withD1 = (opts, fn) => withWorker({ storage: 'd1', ...opts }, fn)
const registry = (w) => Object.fromEntries(d1Execute(w, 'SELECT storeId, eventlogTable FROM livestore_stores').map((r) => [r.storeId, r.eventlogTable]))

describe('colliding store ids', { skip }, () => {
  test('a-b and a_b get separate tables; the first keeps the reference\'s name', { timeout: 60_000 }, async () => {
    await withD1({ label: 'collide' }, async (w) => {
      const suffix = storeId('c').replace(/-/g, '')
      const [dash, under] = [`a-b${suffix}`, `a_b${suffix}`]
      const sd = await open(w, dash)
      assert.deepEqual((await push(sd, dash, makeEvents(2, { clientId: 'dash' }))).exit, OK)
      const su = await open(w, under)
      assert.deepEqual((await push(su, under, makeEvents(3, { clientId: 'under' }))).exit, OK)
      assert.deepEqual((await pullAll(sd, dash)).events.map((e) => e.clientId), ['dash', 'dash'])
      assert.deepEqual((await pullAll(su, under)).events.map((e) => e.clientId), ['under', 'under', 'under'])
      sd.close()
      su.close()
      const tables = registry(w)
      assert.equal(tables[dash], `eventlog_7_a_b${suffix}`)
      assert.match(tables[under], new RegExp(`^eventlog_7_a_b${suffix}_[0-9a-f]{16}$`))
      // The README's queries, on these tables.
      const last = d1Execute(w, `SELECT seqNum, name, clientId, createdAt FROM ${tables[under]} ORDER BY seqNum DESC LIMIT 10`)
      assert.deepEqual(last.map((r) => [r.seqNum, r.clientId]), [[3, 'under'], [2, 'under'], [1, 'under']])
      const byName = d1Execute(w, `SELECT name, COUNT(*) AS n FROM (SELECT name FROM ${tables[dash]} UNION ALL SELECT name FROM ${tables[under]}) GROUP BY name`)
      assert.deepEqual(byName, [{ name: 'v1.TodoCreated', n: 5 }])
    })
  })

  test('events the reference wrote for a-b stay a-b\'s when a_b shows up first', { timeout: 120_000 }, async () => {
    const persistTo = path.join(TMP, `${storeId('ref-collide')}-state`)
    const suffix = storeId('r').replace(/-/g, '')
    const [dash, under] = [`c-d${suffix}`, `c_d${suffix}`]
    const refView = await withWorker({ storage: 'd1', reference: true, persistTo, label: 'ref-collide' }, (ref) =>
      withSocket(ref, dash, async (s) => {
        assert.deepEqual((await push(s, dash, makeEvents(2, { clientId: 'ref' }))).exit, OK)
        return pullAll(s, dash)
      }),
    )
    await withD1({ persistTo, label: 'ours-after-ref', migrate: true }, async (w) => {
      const su = await open(w, under)
      assert.deepEqual((await pullAll(su, under)).events, [], 'a_b must not see a-b\'s events')
      assert.deepEqual((await push(su, under, makeEvents(1, { clientId: 'under' }))).exit, OK)
      const sd = await open(w, dash)
      const view = await pullAll(sd, dash)
      assert.deepEqual(view.pages, refView.pages, 'a-b keeps its events, head and backendId')
      su.close()
      sd.close()
      assert.equal(registry(w)[dash], `eventlog_7_c_d${suffix}`)
    })
  })
})

describe('consistency between D1 and the object\'s SQLite', { skip }, () => {
  test('a crash after the D1 write and before the head write loses nothing, many times over', { timeout: 120_000 }, async () => {
    // The crash point exists only in the test-faults build (scripts/build-worker --test-faults).
    await withD1({ label: 'crash', outDir: 'build-test-faults', vars: { AUTH_TOKEN: DEFAULT_TOKEN, TEST_FAULTS: 'true' } }, async (w) => {
      const store = storeId('crash')
      let s = await open(w, store)
      assert.deepEqual((await push(s, store, makeEvents(2))).exit, OK)
      const backendId = (await pullAll(s, store)).pages[0].backendId
      let head = 2
      const crashes = () => w.logs().split('\n').filter((l) => l.includes('test fault: crash after the D1 append')).length
      for (let trial = 0; trial < 3; trial++) {
        // This push reaches D1, then the object crashes before writing the head: no answer.
        const crashing = makeEvents(2, { start: head + 1, parent: head }).map((e, i) => (i === 0 ? { ...e, name: 'test.crashAfterD1Append' } : e))
        const before = crashes()
        s.send({ _tag: 'Request', id: `crash-${trial}`, tag: 'SyncWsRpc.Push', payload: { storeId: store, batch: crashing, backendId: { _tag: 'None' } }, headers: [] })
        // The crash is a panic, which the runtime logs; the socket is not closed by it (the
        // runtime starts the object afresh for the next request), so the client gives it up.
        await waitFor(() => crashes() > before, { timeout: 60_000, message: `the crash of trial ${trial}` })
        assert.ok(!s.frames.some((f) => f.includes(`"requestId":"crash-${trial}"`)), 'the crashed push got no answer')
        s.close()
        s = await open(w, store)
        const view = await pullAll(s, store)
        // The unacknowledged batch is there, exactly once; the head follows the log.
        assert.deepEqual(view.events.map((e) => e.seqNum), Array.from({ length: head + 2 }, (_, i) => i + 1))
        assert.equal(view.pages[0].backendId, backendId)
        head += 2
        const stale = await push(s, store, makeEvents(1, { start: head, parent: head - 1 }), backendId)
        assert.deepEqual(stale.exit.cause.error, { _tag: 'ServerAheadError', minimumExpectedNum: head, providedNum: head - 1 })
      }
      assert.deepEqual((await push(s, store, makeEvents(1, { start: head + 1, parent: head }), backendId)).exit, OK)
      s.close()
    })
  })

  test('the release build has no crash point: TEST_FAULTS there changes nothing', { timeout: 60_000 }, async () => {
    await withD1({ label: 'no-faults', vars: { AUTH_TOKEN: DEFAULT_TOKEN, TEST_FAULTS: 'true' } }, async (w) => {
      const store = storeId('no-faults')
      const s = await open(w, store)
      const batch = makeEvents(2).map((e, i) => (i === 0 ? { ...e, name: 'test.crashAfterD1Append' } : e))
      assert.deepEqual((await push(s, store, batch)).exit, OK)
      assert.deepEqual((await pullAll(s, store)).events.map((e) => e.name), batch.map((e) => e.name))
      s.close()
    })
  })

  test('a batch that fails in D1 stores nothing, and the head is re-read from the log', { timeout: 60_000 }, async () => {
    await withD1({ label: 'atomic', vars: { AUTH_TOKEN: DEFAULT_TOKEN, MAX_MESSAGE_BYTES: '4000000' } }, async (w) => {
      const store = storeId('atomic')
      const s = await open(w, store)
      assert.deepEqual((await push(s, store, makeEvents(2))).exit, OK)
      // Another writer (a crashed instance, a script) put seqNum 12 in the table behind the
      // object's back; the object still believes the head is 2.
      const table = registry(w)[store]
      d1Execute(w, `INSERT INTO "${table}" (seqNum, parentSeqNum, name, args, createdAt, clientId, sessionId) VALUES (12, 11, 'external', '{}', '2026-01-01T00:00:00.000Z', 'x', 'y')`)
      // 3..12 at ~120 KB each: two insert statements in one D1 batch; the second hits seqNum 12.
      const big = makeEvents(10, { start: 3, parent: 2, text: () => 'b'.repeat(120_000) })
      const failed = await push(s, store, big)
      assert.equal(failed.exit.cause.error._tag, 'UnknownError')
      assert.equal(failed.exit.cause.error.cause.name, 'StorageError')
      const after = await pullAll(s, store)
      assert.deepEqual(after.events.map((e) => e.seqNum), [1, 2, 12], 'none of 3..11 was stored')
      const stale = await push(s, store, makeEvents(1, { start: 3, parent: 2 }))
      assert.deepEqual(stale.exit.cause.error, { _tag: 'ServerAheadError', minimumExpectedNum: 12, providedNum: 2 })
      assert.deepEqual((await push(s, store, makeEvents(1, { start: 13, parent: 12 }))).exit, OK)
      s.close()
    })
  })
})

describe('opening a store', { skip }, () => {
  test('requests racing to open a new store all get the same backendId', { timeout: 60_000 }, async () => {
    await withD1({ label: 'open-race' }, async (w) => {
      for (let round = 0; round < 3; round++) {
        const store = storeId(`race-${round}`)
        const sockets = await Promise.all(Array.from({ length: 8 }, () => open(w, store)))
        const views = await Promise.all(sockets.map((s) => pullAll(s, store)))
        const ids = new Set(views.map((v) => v.pages[0].backendId))
        assert.equal(ids.size, 1, [...ids].join(', '))
        sockets.forEach((s) => s.close())
      }
    })
  })
})

describe('D1 limits and set-up', { skip }, () => {
  test('events of hundreds of KB sync, one per page', { timeout: 120_000 }, async () => {
    await withD1({ label: 'big-events' }, async (w) => {
      const store = storeId('big')
      const s = await open(w, store)
      const events = makeEvents(8, { text: (i) => String(i % 10).repeat(500_000) })
      for (const e of events) assert.deepEqual((await push(s, store, [e])).exit, OK)
      const { pages, events: pulled } = await pullAll(s, store)
      assert.deepEqual(pulled, events)
      for (const p of pages) assert.ok(JSON.stringify(p).length <= 900_000)
      s.close()
    })
  })

  test('without the migrations, the registry is created on first use, and applying them afterwards changes nothing', { timeout: 60_000 }, async () => {
    await withD1({ label: 'no-migrations', migrate: false }, async (w) => {
      const store = storeId('unmigrated')
      const s = await open(w, store)
      const events = makeEvents(2)
      assert.deepEqual((await push(s, store, events)).exit, OK)
      assert.deepEqual((await pullAll(s, store)).events, events)
      s.close()
      applyMigrations(w.config, w.persistTo)
      const again = await open(w, store)
      assert.deepEqual((await pullAll(again, store)).events, events)
      again.close()
    })
  })
})
