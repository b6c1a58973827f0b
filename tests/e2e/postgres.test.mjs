// The Postgres engine's own promises, on a real PostgreSQL (lib/postgres.mjs): a database the
// sync-electric example's proxy wrote is served as it is, to sync-cf and sync-electric clients,
// and what we write stays readable in that layout; colliding store names never share a table;
// stores opening at once on a fresh database all create their tables;
// two sync nodes on one database never fork a store's log and deliver each other's pushes to
// their live pulls; and a Postgres killed mid-push loses nothing acknowledged, stores no batch
// in part, and the nodes go on by themselves once it is back. (The rest of the suite runs on
// this engine too: E2E_STORAGE=postgres.) Runs under wrangler dev (Hyperdrive) and workerd alone
// (POSTGRES_URL), whatever E2E_STORAGE says.
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'

import { connectElectric, electricEndpoint } from './lib/electric.mjs'
import { closeSockets, OK, openSocket, waitFor, withSocket } from './lib/helpers.mjs'
import { postgres } from './lib/postgres.mjs'
import { liveEvents, makeEvents, openLivePull, push } from './lib/raw.mjs'
import { assertGapless, figures, fullPull, Ledger, tagged } from './lib/reliability.mjs'
import { startWorker, storeId } from './lib/worker.mjs'

const { Hash } = await import('effect')

after(closeSockets)

const workers = new Set()
const start = async (options) => {
  const w = await startWorker({ storage: 'postgres', ...options })
  workers.add(w)
  return w
}
after(() => Promise.all([...workers].map((w) => w.stop())))

// The example's DDL (examples/web-todomvc-sync-electric, server/db.ts), and its push: one
// multi-row insert of the events as the client encodes them, args as JSONB, no createdAt.
const exampleTable = (table) =>
  `CREATE TABLE IF NOT EXISTS "${table}" ("seqNum" INTEGER PRIMARY KEY, "parentSeqNum" INTEGER, "name" TEXT NOT NULL, "args" JSONB NOT NULL, "clientId" TEXT NOT NULL, "sessionId" TEXT NOT NULL)`
const exampleInsert = (table, events) =>
  `INSERT INTO "${table}" ("seqNum", "parentSeqNum", "name", "args", "clientId", "sessionId") VALUES ${events
    .map((e) => `(${e.seqNum}, ${e.parentSeqNum}, '${e.name}', '${JSON.stringify(e.args)}'::jsonb, '${e.clientId}', '${e.sessionId}')`)
    .join(', ')}`
const electricName = (id) => {
  const name = `eventlog_6_${id.replaceAll(/[^a-zA-Z0-9_]/g, '_')}`
  return name.length > 63 ? `eventlog_6_hash_${Hash.string(id)}` : name
}

describe("a database written by sync-electric's example", () => {
  test('is served as it is to sync-cf and sync-electric clients, and stays readable in its layout', async () => {
    const pg = await postgres()
    const db = `electric_${process.pid}`
    pg.createDatabase(db)
    const store = 'todo-app'
    const table = electricName(store)
    const written = makeEvents(3, { clientId: 'proxy-client', sessionId: 'proxy-session' })
    pg.sql(db, exampleTable(table))
    pg.sql(db, `ALTER TABLE "${table}" OWNER TO app`)
    pg.sql(db, exampleInsert(table, written))

    const w = await start({ database: db, vars: { AUTH_TOKEN: 'insecure-token-change-me', ENABLED_TRANSPORTS: 'ws,http,do-rpc,electric' } })
    const sock = await openSocket(w, store)
    const first = await fullPull(sock, store)
    assert.deepEqual(first.events, written, 'the proxy-written events, unchanged')
    assert.deepEqual(first.pages[0].batch[0].metadata, { _tag: 'None' }, 'no createdAt was written, so no metadata')
    const mine = makeEvents(2, { start: 4, parent: 3, clientId: 'cf-client' })
    assert.deepEqual((await push(sock, store, mine, first.backendId)).exit, OK)

    // The real sync-electric client sees both, and pushes on.
    const electric = await connectElectric({ endpoint: electricEndpoint(w), storeId: store, payload: { authToken: 'insecure-token-change-me' } })
    try {
      const pages = await electric.pullPages()
      const seen = pages.flatMap((p) => p.batch.map((b) => b.eventEncoded))
      assert.deepEqual(seen.map((e) => e.seqNum), [1, 2, 3, 4, 5])
      await electric.push(makeEvents(1, { start: 6, parent: 5, clientId: 'electric-client' }))
    } finally {
      await electric.close()
    }
    const all = await fullPull(sock, store)
    assertGapless(all.events)
    assert.equal(all.events.length, 6)

    // What a reader of the layout (Electric, the proxy, psql) finds: the example's columns, ours
    // filled the same way, createdAt beside them for what we stored.
    const rows = pg
      .sql(db, `SELECT "seqNum", "parentSeqNum", "name", "args"::text, "clientId", "sessionId", "createdAt" IS NOT NULL FROM "${table}" ORDER BY 1`)
      .split('\n')
      .map((line) => line.split('|'))
    assert.deepEqual(
      rows.map(([seq, parent, , , client, , stamped]) => [Number(seq), Number(parent), client, stamped]),
      [
        [1, 0, 'proxy-client', 'f'],
        [2, 1, 'proxy-client', 'f'],
        [3, 2, 'proxy-client', 'f'],
        [4, 3, 'cf-client', 't'],
        [5, 4, 'cf-client', 't'],
        [6, 5, 'electric-client', 't'],
      ],
    )
    assert.deepEqual(JSON.parse(rows[3][3]), mine[0].args)
    assert.deepEqual(pg.sql(db, `SELECT "eventlogTable" FROM livestore_stores WHERE "storeId" = '${store}'`), table)
  })

  test('stores whose names collide under the layout get tables of their own; long names are hashed as sync-electric hashes them', async () => {
    const pg = await postgres()
    const db = `collide_${process.pid}`
    pg.createDatabase(db)
    // The proxy wrote `a-b`'s events into eventlog_6_a_b, the name `a_b` maps to as well.
    pg.sql(db, exampleTable('eventlog_6_a_b'))
    pg.sql(db, 'ALTER TABLE "eventlog_6_a_b" OWNER TO app')
    pg.sql(db, exampleInsert('eventlog_6_a_b', makeEvents(2, { clientId: 'ab' })))
    const w = await start({ database: db })
    const a = await openSocket(w, 'a-b')
    assert.equal((await fullPull(a, 'a-b')).events.length, 2, 'the first store to open takes the table as it is')
    const b = await openSocket(w, 'a_b')
    assert.equal((await fullPull(b, 'a_b')).events.length, 0, 'the other one starts empty')
    const pushedB = await fullPull(b, 'a_b')
    assert.deepEqual((await push(b, 'a_b', makeEvents(1, { clientId: 'a_b' }), pushedB.backendId)).exit, OK)
    assert.equal((await fullPull(a, 'a-b')).events.length, 2, "a-b never sees a_b's event")
    const tables = pg.sql(db, `SELECT "storeId" || '=' || "eventlogTable" FROM livestore_stores ORDER BY 1`).split('\n')
    assert.equal(tables[0], 'a-b=eventlog_6_a_b')
    assert.match(tables[1], /^a_b=eventlog_6_a_b_[0-9a-f]{16}$/)
    // Case variants are different tables in Postgres (names are quoted).
    for (const id of ['Case', 'case']) {
      const s = await openSocket(w, id)
      const { backendId } = await fullPull(s, id)
      assert.deepEqual((await push(s, id, makeEvents(1, { clientId: id }), backendId)).exit, OK)
    }
    assert.equal(pg.sql(db, `SELECT "clientId" FROM "eventlog_6_Case"`), 'Case')
    assert.equal(pg.sql(db, `SELECT "clientId" FROM "eventlog_6_case"`), 'case')
    // Past 63 characters, sync-electric's client names the table by Effect's Hash.string.
    const long = `store-${'x'.repeat(70)}-é`
    const s = await openSocket(w, long)
    const { backendId } = await fullPull(s, long)
    assert.deepEqual((await push(s, long, makeEvents(1), backendId)).exit, OK)
    const name = electricName(long)
    assert.match(name, /^eventlog_6_hash_-?\d+$/)
    assert.equal(pg.sql(db, `SELECT count(*) FROM "${name}"`), '1')
  })
})

describe('a fresh database', () => {
  test('stores opened at the same moment on two nodes all create their tables, and each push is stored', async () => {
    const pg = await postgres()
    const db = `fresh_${process.pid}`
    pg.createDatabase(db)
    const nodes = await Promise.all(['fresh-a', 'fresh-b'].map((label) => start({ database: db, label })))
    // Every first push runs the schema's `CREATE … IF NOT EXISTS`: racing itself, Postgres
    // refuses some of them (duplicate table, type or key) until the winner has committed.
    const stores = Array.from({ length: 24 }, (_, i) => storeId(`fresh-${i}`))
    const exits = await Promise.all(
      stores.map((store, i) => withSocket(nodes[i % 2], store, async (s) => (await push(s, store, makeEvents(1, { clientId: store }))).exit)),
    )
    assert.deepEqual(exits, stores.map(() => OK), 'every first push stored')
    assert.equal(pg.sql(db, 'SELECT count(*) FROM livestore_stores'), String(stores.length), 'one registry row per store')
  })
})

describe('two sync nodes on one database', () => {
  test("never store two events with one seqNum or leave a gap, refuse stale pushes, and deliver each other's pushes to live pulls", async () => {
    const db = `nodes_${process.pid}`
    const [a, b] = [await start({ database: db, label: 'node-a' }), await start({ database: db, label: 'node-b' })]
    const store = storeId('two-nodes')
    // Delivery across nodes: a live pull on B, pushes on A, one at a time.
    const onA = await openSocket(a, store)
    const onB = await openSocket(b, store)
    const { backendId } = await fullPull(onA, store)
    assert.equal((await fullPull(onB, store)).backendId, backendId, 'both nodes give the store one backendId')
    await openLivePull(onB, store, 'live-b')
    const latencies = []
    const ROUNDS = 60
    for (let i = 1; i <= ROUNDS; i++) {
      const sent = performance.now()
      assert.deepEqual((await push(onA, store, makeEvents(1, { start: i, parent: i - 1 }), backendId)).exit, OK)
      await onB.until(() => liveEvents(onB, 'live-b').length >= i, { timeout: 10_000, what: `event ${i} on node B` })
      latencies.push(performance.now() - sent)
    }
    assert.deepEqual(liveEvents(onB, 'live-b').map((e) => e.seqNum), Array.from({ length: ROUNDS }, (_, i) => i + 1), 'each once, in order')
    latencies.sort((x, y) => x - y)
    const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))].toFixed(1)
    figures('postgres cross-node delivery (push on A acknowledged + live pull on B)', { p50_ms: at(0.5), p99_ms: at(0.99), n: ROUNDS })

    // A stale push is refused on either node with the stored head.
    for (const sock of [onA, onB]) {
      const stale = await push(sock, store, makeEvents(1, { start: 5, parent: 4 }), backendId)
      assert.equal(stale.exit.cause.error._tag, 'ServerAheadError')
      assert.equal(stale.exit.cause.error.minimumExpectedNum, ROUNDS)
    }

    // Writers on both nodes racing for the same head: each pushes at the head it last saw, and
    // on ServerAheadError reads the log and tries again.
    const ledger = new Ledger()
    const WRITERS = 4
    const PER_WRITER = 40
    const writers = await Promise.all(
      Array.from({ length: WRITERS }, async (_, n) => ({ n, sock: await openSocket(n % 2 ? b : a, store) })),
    )
    let refusals = 0
    const t0 = performance.now()
    await Promise.all(
      writers.map(async ({ n, sock }) => {
        let head = ROUNDS
        for (let k = 0, tries = 0; k < PER_WRITER; tries++) {
          const size = 1 + (k % 3)
          const batch = tagged(Array.from({ length: size }, (_, i) => `w${n}-${tries}-${i}`), { parent: head, clientId: `writer-${n}` })
          const attempt = ledger.sent(batch, `writer-${n}`)
          const { exit } = await push(sock, store, batch, backendId)
          if (exit._tag === 'Success') {
            attempt.status = 'acked'
            head += size
            k++
          } else {
            assert.equal(exit.cause.error._tag, 'ServerAheadError', JSON.stringify(exit))
            attempt.status = 'refused'
            refusals++
            head = exit.cause.error.minimumExpectedNum
          }
        }
      }),
    )
    const ms = performance.now() - t0
    const final = await fullPull(onA, store)
    assertGapless(final.events)
    ledger.check(final.events.slice(ROUNDS), 'two nodes')
    assert.deepEqual((await fullPull(onB, store)).events, final.events, 'both nodes serve the same log')
    const acked = ledger.count('acked')
    figures('postgres two nodes, 4 racing writers (2 per node)', { events_per_s: Math.round((acked / ms) * 1000), acked, refused_pushes: refusals })
    // B's live pull saw every event of the race once, in order.
    await onB.until(() => liveEvents(onB, 'live-b').length === final.events.length, { what: 'the race on node B' })
    assert.deepEqual(liveEvents(onB, 'live-b'), final.events)
  })
})

describe('a Postgres killed mid-push', () => {
  test('loses nothing acknowledged, stores no batch in part, and the nodes go on by themselves once it is back', async () => {
    const pg = await postgres()
    const db = `crash_${process.pid}`
    const w = await start({ database: db, label: 'pg-crash-a' })
    const other = await start({ database: db, label: 'pg-crash-b' })
    const store = storeId('pg-crash')
    const writer = await openSocket(w, store)
    const { backendId } = await fullPull(writer, store)
    const ledger = new Ledger()
    let head = 0
    let killed = false
    // Pushes without pause until Postgres has been killed and a push has failed for it.
    const failures = []
    const writing = (async () => {
      for (let k = 0; failures.length === 0; k++) {
        const batch = tagged(Array.from({ length: 3 }, (_, i) => `c${k}-${i}`), { parent: head, clientId: 'writer' })
        const attempt = ledger.sent(batch, 'writer')
        const { exit } = await push(writer, store, batch, backendId)
        if (exit._tag === 'Success') {
          attempt.status = 'acked'
          head += 3
        } else if (killed) {
          failures.push(exit)
        } else {
          assert.fail(`refused before the kill: ${JSON.stringify(exit)}`)
        }
      }
    })()
    await waitFor(() => ledger.pushes('acked') >= 20, { message: '20 acknowledged pushes' })
    pg.kill()
    killed = true
    await writing
    assert.equal(failures[0].cause.error._tag, 'UnknownError', 'a push the database could not take is the backend’s error')
    pg.start()
    // The same socket, the same node: pushes are taken again once the node has reconnected.
    const reader = await openSocket(w, store)
    let log
    await waitFor(
      async () => {
        const pulled = await fullPull(reader, store).catch(() => null)
        if (!pulled) return false
        log = pulled.events
        return true
      },
      { timeout: 30_000, message: 'a pull served after Postgres restarted' },
    )
    ledger.check(log, 'after the restart', { settle: true })
    assertGapless(log)
    const next = tagged(['after-0'], { parent: log.length, clientId: 'writer' })
    assert.deepEqual((await push(writer, store, next, backendId)).exit, OK, 'the writer pushes on, on the same socket')
    // A live pull on the other node, opened before a restart, hears of pushes made on this one
    // after it: its node listens again on a new connection, without a request of its own.
    const watcher = await openSocket(other, store)
    await openLivePull(watcher, store, 'live', { cursor: { backendId, eventSequenceNumber: log.length + 1 } })
    pg.kill()
    pg.start()
    const again = tagged(['after-1'], { parent: log.length + 1, clientId: 'writer' })
    await waitFor(async () => (await push(writer, store, again, backendId)).exit._tag === 'Success', {
      timeout: 30_000,
      message: 'a push after the second restart',
    })
    await watcher.until(() => liveEvents(watcher, 'live').some((e) => e.args.id === 'after-1'), { timeout: 15_000, what: 'the live pull on the other node to receive it' })
  })
})
