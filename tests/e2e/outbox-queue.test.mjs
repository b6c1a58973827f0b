// The outbox's `queue` sink (issue 18, docs/outbox.md) with a real Cloudflare Queue: the sync
// Worker, with a `[[queues.producers]]` binding named by QUEUE_BINDING, and a consumer Worker
// (tests/e2e/apps/queue-consumer/index.mjs, `[[queues.consumers]]` of the same queue) run in one
// `wrangler dev` — local Queues connect a producer and a consumer only within one dev session.
// The consumer forwards every message to an HTTP collector this file runs.
//
// Covered: every event pushed over WebSocket into two stores, in two rounds (the second after the
// first was delivered, so the object's alarm is armed again), reaches the consumer once, in seqNum
// order per store, in messages of at most QUEUE_BATCH_SIZE events shaped as the spec says (the
// admin export's line with `idempotencyKey` first, `sink: "queue"`, the store's backendId, the
// body an object); the admin outbox status and the `deliver` log lines agree. And a send that
// fails (QUEUE_BINDING naming a binding the Worker lacks) is logged and retried; `wrangler dev`
// is stopped during the retry wait and started again on the same state with the binding, and the
// object's stored alarm alone — no request to the store — delivers everything.
//
// Runs under `wrangler dev` only (workerd alone has no Queues) and on one engine: the outbox's
// cursor lives in the object's SQLite on every engine, and the other sinks' tests cover the rest.
import assert from 'node:assert/strict'
import { mkdirSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { closeSockets, OK, openSocket, waitFor, withSocket } from './lib/helpers.mjs'
import { makeEvents, push } from './lib/raw.mjs'
import { DEFAULT_TOKEN, engineOnly, ourConfigText, ROOT, storeId, TMP, wranglerDev, wranglerOnly } from './lib/worker.mjs'

const skip = wranglerOnly('workerd alone has no Queues') || engineOnly(['do-sqlite'], 'the queue sink runs the same on every engine; tested on DO SQLite only')

const ADMIN_TOKEN = 'admin-token-for-outbox-queue-tests'
const QUEUE = 'livestore-outbox-test'
const BATCH_SIZE = 3

/** An HTTP server that records every JSON body POSTed to it, in arrival order. */
async function startCollector() {
  const received = []
  const server = http.createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (d) => (body += d))
    req.on('end', () => {
      try {
        received.push(JSON.parse(body))
        res.end('ok')
      } catch {
        res.statusCode = 400
        res.end('not JSON')
      }
    })
  })
  server.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  return { url: `http://127.0.0.1:${server.address().port}/`, received, close: () => new Promise((r) => server.close(r)) }
}

const consumerConfig = (collectorUrl) => `
name = "livestore-outbox-consumer"
main = ${JSON.stringify(path.join(ROOT, 'tests/e2e/apps/queue-consumer/index.mjs'))}
compatibility_date = "2026-04-01"

# max_batch_size above anything the test sends: the local queue then hands batches to the
# consumer one at a time, in the order they were sent.
[[queues.consumers]]
queue = "${QUEUE}"
max_batch_size = 100
max_batch_timeout = 0

[vars]
COLLECTOR_URL = "${collectorUrl}"
`

/**
 * The project's wrangler.toml (as lib/worker.mjs runs it) with `vars` and, unless `producer` is
 * false, the queue producer binding.
 */
const syncConfig = (vars, { producer = true } = {}) => {
  const lines = Object.entries(vars).map(([k, v]) => `${k} = ${JSON.stringify(v)}`)
  const text = ourConfigText().replace(/^\[vars\]$/m, `[vars]\n${lines.join('\n')}`)
  assert.ok(text.includes(lines[0]), 'the project wrangler.toml has a [vars] table')
  if (!producer) return text
  return `${text}
[[queues.producers]]
binding = "OUTBOX_QUEUE"
queue = "${QUEUE}"
`
}

const baseVars = { AUTH_TOKEN: DEFAULT_TOKEN, ADMIN_TOKEN, QUEUE_BINDING: 'OUTBOX_QUEUE', QUEUE_BATCH_SIZE: String(BATCH_SIZE) }
const newDir = (label) => {
  const dir = path.join(TMP, `${label}-${process.pid}-${Date.now().toString(36)}`)
  mkdirSync(dir, { recursive: true })
  return dir
}

/**
 * The sync Worker (its config first: it answers on the port) and the consumer Worker in one
 * `wrangler dev`, with their state in `state`.
 */
const startPair = (dir, state, vars, options) => {
  const sync = path.join(dir, 'sync.toml')
  const consumer = path.join(dir, 'consumer.toml')
  writeFileSync(sync, syncConfig(vars, options))
  writeFileSync(consumer, consumerConfig(collector.url))
  return wranglerDev({ configs: [sync, consumer], state, dir, name: 'wrangler dev (sync + queue consumer)', timeoutMs: 120_000 })
}

let collector
let dev
before(async () => {
  if (skip) return
  collector = await startCollector()
  const dir = newDir('outbox-queue')
  dev = await startPair(dir, path.join(dir, 'state'), baseVars)
})
after(async () => {
  await dev?.stop()
  await collector?.close()
})
after(closeSockets)

const admin = async (route, init = {}, server = dev) => {
  const res = await fetch(`${server.url}/_admin/stores/${route}`, { ...init, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  const text = await res.text()
  assert.equal(res.status, 200, `${route}: ${text}`)
  return text
}
/** The store's events as the admin export writes them, one object per NDJSON line. */
const exported = async (store) =>
  (await admin(`${encodeURIComponent(store)}/events`))
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l))

/** The queue messages the consumer forwarded for `store`, in arrival order. */
const messagesOf = (store) => collector.received.filter((m) => m.body?.storeId === store)
const eventsOf = (store) => messagesOf(store).flatMap((m) => m.body.events)

/** Pushes `counts` batches of events (chained after `head`) into `store`; returns the new head. */
async function pushBatches(sock, store, head, counts) {
  for (const count of counts) {
    const events = makeEvents(count, { start: head + 1, parent: head, clientId: `client-${store.slice(-4)}` }).map((e) =>
      e.seqNum % 4 === 0 ? { ...e, name: 'v1.MemberInvited', args: { email: `member-${e.seqNum}@example.com` } } : e,
    )
    assert.deepEqual((await push(sock, store, events)).exit, OK)
    head += count
  }
  return head
}

test('a queue consumer receives every stored event once, in seqNum order per store', { skip, timeout: 60_000 }, async () => {
  const stores = [storeId('outbox-queue-a'), storeId('outbox-queue-b')]
  const socks = await Promise.all(stores.map((s) => openSocket(dev, s)))
  const heads = [0, 0]
  const delivered = () => stores.every((s, i) => eventsOf(s).length >= heads[i])

  // Round 1: pushes to both stores, interleaved; batches of the outbox may span pushes.
  const round1 = [[4, 1, 7], [5, 2]]
  for (let k = 0; k < 3; k++) {
    for (const i of [0, 1]) if (round1[i][k]) heads[i] = await pushBatches(socks[i], stores[i], heads[i], [round1[i][k]])
  }
  await waitFor(delivered, { timeout: 20_000, message: `round 1 at the consumer (${stores.map((s, i) => `${eventsOf(s).length}/${heads[i]}`)})` })

  // Round 2, once the first was delivered: the object arms its alarm again for the new events.
  heads[0] = await pushBatches(socks[0], stores[0], heads[0], [2, 3])
  heads[1] = await pushBatches(socks[1], stores[1], heads[1], [6])
  await waitFor(delivered, { timeout: 20_000, message: `round 2 at the consumer (${stores.map((s, i) => `${eventsOf(s).length}/${heads[i]}`)})` })
  assert.deepEqual(heads, [17, 13])

  for (const [i, store] of stores.entries()) {
    const lines = await exported(store)
    assert.equal(lines.length, heads[i])
    const figures = JSON.parse(await admin(encodeURIComponent(store)))

    // Exactly the export's lines, each with its idempotencyKey first, once and in order.
    const events = eventsOf(store)
    assert.deepEqual(
      events.map((e) => e.seqNum),
      lines.map((l) => l.seqNum),
      `${store}: every event once, in seqNum order`,
    )
    assert.deepEqual(events, lines.map((l) => ({ idempotencyKey: `${store}:${l.seqNum}`, ...l })))
    for (const e of events) assert.equal(Object.keys(e)[0], 'idempotencyKey')

    // Each message: one batch of consecutive events, as an object, with the payload's fields.
    for (const m of messagesOf(store)) {
      assert.equal(m.queue, QUEUE)
      assert.equal(m.attempts, 1, 'the consumer acknowledged every message the first time')
      assert.equal(typeof m.body, 'object', 'the message body is an object, not a string')
      assert.deepEqual(Object.keys(m.body).sort(), ['backendId', 'events', 'sink', 'storeId'])
      assert.equal(m.body.sink, 'queue')
      assert.equal(m.body.backendId, figures.backendId)
      const seqs = m.body.events.map((e) => e.seqNum)
      assert.ok(seqs.length >= 1 && seqs.length <= BATCH_SIZE, `a message holds 1..${BATCH_SIZE} events: ${seqs}`)
      assert.deepEqual(seqs, seqs.map((_, j) => seqs[0] + j), 'a message holds consecutive events')
    }

    // The outbox's own figures: the cursor reached the head, nothing left, nothing failed.
    let status
    await waitFor(
      async () => {
        status = JSON.parse(await admin(`${encodeURIComponent(store)}/outbox`))
        return status.sinks[0]?.cursor === heads[i]
      },
      { timeout: 10_000, message: `${store}: the queue sink's cursor at the head` },
    )
    assert.equal(status.storeId, store)
    assert.equal(status.head, heads[i])
    assert.deepEqual(
      status.sinks.map(({ sink, kind, cursor, backlog, delivered, attempts, paused, lastError, nextAttemptAt }) => ({ sink, kind, cursor, backlog, delivered, attempts, paused, lastError, nextAttemptAt })),
      [{ sink: 'queue', kind: 'queue', cursor: heads[i], backlog: 0, delivered: heads[i], attempts: 0, paused: false, lastError: null, nextAttemptAt: null }],
    )

    // One `deliver` line per message, first attempts, covering 1..head without a gap.
    const deliverLines = () => dev.logLines().filter((l) => l.event === 'deliver' && l.storeId === store)
    await waitFor(() => deliverLines().reduce((n, l) => n + l.events, 0) >= heads[i], { timeout: 10_000, message: `${store}: the deliver log lines` })
    const deliveries = deliverLines()
    assert.deepEqual(
      deliveries.map((l) => [l.level, l.sink, l.outcome, l.attempt]),
      deliveries.map(() => ['info', 'queue', 'delivered', 1]),
    )
    assert.deepEqual(
      deliveries.map((l) => [l.from, l.to, l.events]),
      messagesOf(store).map((m) => {
        const seqs = m.body.events.map((e) => e.seqNum)
        return [seqs[0], seqs.at(-1), seqs.length]
      }),
    )
  }
  // Event names and args reach the consumer, never the log.
  assert.ok(!dev.logs().includes('member-4@example.com'), 'no event args in the logs')
  for (const sock of socks) sock.close()
})

test('failed sends are retried, and after a restart the stored alarm alone resumes delivery', { skip, timeout: 90_000 }, async () => {
  // First run: QUEUE_BINDING names a binding the Worker lacks, so every send fails; the sink
  // waits QUEUE_RETRY_BASE_MS before its next attempt, long enough to restart in between.
  const dir = newDir('outbox-queue-restart')
  const state = path.join(dir, 'state')
  const vars = { ...baseVars, QUEUE_RETRY_BASE_MS: '4000', QUEUE_MAX_ATTEMPTS: '5' }
  const store = storeId('outbox-queue-restart')
  const first = await startPair(dir, state, vars, { producer: false })
  const failed = () => first.logLines().filter((l) => l.event === 'deliver' && l.storeId === store)
  let events
  try {
    await withSocket(first, store, async (sock) => {
      events = makeEvents(5)
      assert.deepEqual((await push(sock, store, events)).exit, OK)
    })
    await waitFor(() => failed().length > 0, { timeout: 10_000, message: 'the first failed attempt' })
    assert.deepEqual(
      failed().map((l) => [l.level, l.sink, l.from, l.to, l.attempt, l.outcome, l.retryInMs]),
      [['warn', 'queue', 1, 3, 1, 'failed', 4000]],
    )
    assert.match(failed()[0].error, /OUTBOX_QUEUE/)
    const status = JSON.parse(await admin(`${encodeURIComponent(store)}/outbox`, {}, first))
    assert.deepEqual(
      status.sinks.map(({ cursor, backlog, attempts, paused }) => ({ cursor, backlog, attempts, paused })),
      [{ cursor: 0, backlog: 5, attempts: 1, paused: false }],
    )
    assert.match(status.sinks[0].lastError, /OUTBOX_QUEUE/)
    assert.equal(messagesOf(store).length, 0)
  } finally {
    await first.stop()
  }
  // Attempts the first run made (one, unless stopping it took longer than the retry wait).
  const attempts = failed().length
  assert.deepEqual(
    failed().map((l) => [l.from, l.attempt, l.outcome]),
    failed().map((_, i) => [1, i + 1, 'failed']),
  )

  // Second run, on the same state, now with the producer binding (a fixed deploy). Nothing asks
  // for the store: the object's stored alarm wakes it and the retry delivers everything.
  const second = await startPair(dir, state, vars)
  try {
    await waitFor(() => eventsOf(store).length >= events.length, {
      timeout: 20_000,
      message: `delivery after the restart (${eventsOf(store).length}/${events.length})`,
    })
    assert.deepEqual(
      eventsOf(store).map(({ idempotencyKey, seqNum, name }) => ({ idempotencyKey, seqNum, name })),
      events.map((e) => ({ idempotencyKey: `${store}:${e.seqNum}`, seqNum: e.seqNum, name: e.name })),
    )
    const deliveries = () => second.logLines().filter((l) => l.event === 'deliver' && l.storeId === store)
    await waitFor(() => deliveries().reduce((n, l) => n + l.events, 0) >= events.length, { timeout: 10_000, message: 'the deliver lines' })
    assert.deepEqual(
      deliveries().map((l) => [l.level, l.from, l.to, l.attempt, l.outcome]),
      [['info', 1, 3, attempts + 1, 'delivered'], ['info', 4, 5, 1, 'delivered']],
    )
    let status
    await waitFor(
      async () => {
        status = JSON.parse(await admin(`${encodeURIComponent(store)}/outbox`, {}, second))
        return status.sinks[0].cursor === events.length
      },
      { timeout: 10_000, message: 'the cursor at the head' },
    )
    assert.deepEqual(
      status.sinks.map(({ cursor, backlog, delivered, attempts, paused, lastError }) => ({ cursor, backlog, delivered, attempts, paused, lastError })),
      [{ cursor: 5, backlog: 0, delivered: 5, attempts: 0, paused: false, lastError: null }],
    )
  } finally {
    await second.stop()
  }
})
