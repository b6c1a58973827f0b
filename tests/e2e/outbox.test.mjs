// The durable outbox (issue 18): every stored event is delivered to the app's backend through the
// webhook sink, at least once and in seqNum order per store, signed so that a receiver can
// verify it with node:crypto, without a push ever waiting for it. A local receiver
// (lib/receiver.mjs) fails, answers slowly, takes a batch and drops the connection, or never
// answers; the worker retries with back-off, pauses the sink after its attempts, and the admin API
// shows, resumes and skips it. Also: event-name filters, HTTP pushes and imports arming delivery,
// a reset starting the new incarnation over, the cursor of a store that existed before the sink,
// configuration errors, and — under workerd alone — a SIGKILL mid-delivery after which the
// Durable Object's alarm alone delivers everything.
import assert from 'node:assert/strict'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { after, before, describe, test } from 'node:test'

import { OK, waitFor, withSocket } from './lib/helpers.mjs'
import { postSync } from './lib/http.mjs'
import { makeEvents, pullAll, push, request } from './lib/raw.mjs'
import { startReceiver } from './lib/receiver.mjs'
import { DEFAULT_TOKEN, engineOnly, freePort, ROOT, RUNTIME, startWorker, storeId, TMP, withWorker } from './lib/worker.mjs'

const ADMIN = 'admin-token-for-outbox-tests-0123'
const SECRET = 'whsec-outbox-test-5d41402abc4b2a76'

/** The worker's settings with the webhook sink pointed at `receiver`; `extra` adds or overrides. */
const webhookVars = (receiver, extra = {}) => ({
  AUTH_TOKEN: DEFAULT_TOKEN,
  ADMIN_TOKEN: ADMIN,
  WEBHOOK_URL: receiver.url,
  WEBHOOK_SECRET: SECRET,
  WEBHOOK_RETRY_BASE_MS: '50',
  WEBHOOK_RETRY_MAX_MS: '400',
  ...extra,
})

/**
 * The receiver's check exactly as the README shows it (what an app's backend would copy): the
 * README's code block, loaded as a module, so the two can never drift apart.
 */
async function readmeVerifier() {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('## Delivering events to your backend'))
  const code = /```js\n([\s\S]*?)```/.exec(section)?.[1]
  assert.ok(code?.includes('function verifySignature'), "the README shows a verifySignature function")
  mkdirSync(TMP, { recursive: true })
  const file = path.join(TMP, `readme-verify-${process.pid}.mjs`)
  writeFileSync(file, `${code}\nexport { verifySignature }\n`)
  return (await import(pathToFileURL(file).href)).verifySignature
}
const verifySignature = await readmeVerifier()

const admin = (w, p, { method = 'GET', token = ADMIN, body } = {}) =>
  fetch(`${w.url}/_admin/${p}`, { method, headers: token === null ? {} : { Authorization: `Bearer ${token}` }, body })

const outbox = async (w, store) => {
  const res = await admin(w, `stores/${encodeURIComponent(store)}/outbox`)
  assert.equal(res.status, 200, `GET outbox of ${store}`)
  return res.json()
}
const webhookSink = async (w, store) => (await outbox(w, store)).sinks.find((s) => s.sink === 'webhook')

/** The store's admin export, parsed: what each delivered event must equal, plus its key. */
const exported = async (w, store) =>
  (await (await admin(w, `stores/${encodeURIComponent(store)}/events`)).text())
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))

const deliverLines = (w, store, outcome) =>
  w.logLines().filter((l) => l.event === 'deliver' && l.storeId === store && (outcome === undefined || l.outcome === outcome))

const seqNums = (events) => events.map((e) => e.seqNum)
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

/** Pushes `events` over one socket in pushes of `sizes`, each acknowledged; returns the backendId. */
async function pushInChunks(w, store, events, sizes) {
  assert.equal(sizes.reduce((a, b) => a + b, 0), events.length)
  return withSocket(w, store, async (s) => {
    let at = 0
    for (const size of sizes) {
      assert.deepEqual((await push(s, store, events.slice(at, at + size))).exit, OK, `push of ${store} at ${at}`)
      at += size
    }
    return (await pullAll(s, store)).pages[0].backendId
  })
}

/**
 * What every webhook request must be, whatever became of it: the method, path and headers the
 * spec lists, a signature that verifies, and a body of the store's events in ascending seqNum,
 * each with its idempotency key first, at most `batchSize` of them.
 */
function assertRequest(rec, { store, backendId, batchSize, filtered = false }) {
  const what = `request ${rec.n} of ${store}`
  assert.equal(rec.method, 'POST', what)
  assert.equal(rec.path, '/hook', what)
  assert.equal(rec.headers['content-type'], 'application/json', what)
  assert.equal(rec.headers['user-agent'], 'livestore-sync-rs', what)
  const signature = rec.headers['x-livestore-signature']
  assert.match(signature ?? '', /^t=\d+,v1=[0-9a-f]{64}$/, `${what}: signature header`)
  assert.ok(verifySignature(signature, rec.raw, SECRET), `${what}: the signature verifies`)
  assert.ok(!verifySignature(signature, rec.raw, `${SECRET}x`), `${what}: and not with another secret`)
  assert.ok(Number.isInteger(rec.attempt) && rec.attempt >= 1, `${what}: x-livestore-attempt ${rec.headers['x-livestore-attempt']}`)
  assert.ok(rec.body, `${what}: a JSON body`)
  assert.equal(rec.body.storeId, store, what)
  assert.equal(rec.body.sink, 'webhook', what)
  if (backendId !== undefined) assert.equal(rec.body.backendId, backendId, what)
  const events = rec.body.events
  assert.ok(Array.isArray(events) && events.length >= 1 && events.length <= batchSize, `${what}: 1 to ${batchSize} events, got ${events?.length}`)
  for (const e of events) {
    assert.equal(Object.keys(e)[0], 'idempotencyKey', `${what}: the key comes first`)
    assert.equal(e.idempotencyKey, `${store}:${e.seqNum}`, what)
  }
  const nums = seqNums(events)
  assert.ok(
    nums.every((n, i) => i === 0 || n > nums[i - 1]),
    `${what}: ascending seqNums ${nums}`,
  )
  if (filtered) {
    const [from, to] = rec.key.slice(store.length + 1).split('-').map(Number)
    assert.ok(rec.key.startsWith(`${store}:`) && from <= nums[0] && to >= nums.at(-1), `${what}: idempotency-key ${rec.key} covers ${nums}`)
  } else {
    assert.equal(rec.key, `${store}:${nums[0]}-${nums.at(-1)}`, `${what}: idempotency-key`)
    assert.deepEqual(nums, range(nums[0], nums.at(-1)), `${what}: no gap inside a batch`)
  }
}

/**
 * The order of attempts of one store: a batch that failed (non-2xx, dropped or timed out) is the
 * next request again, with the attempt number one higher; after a 2xx the next batch starts at
 * attempt 1 right after it.
 */
function assertAttemptOrder(recs, store) {
  for (let i = 1; i < recs.length; i++) {
    const [prev, rec] = [recs[i - 1], recs[i]]
    const what = `${store}: request ${rec.n} after ${prev.n} (${prev.outcome} ${prev.status ?? ''})`
    if (prev.outcome === 'answered' && prev.status < 300) {
      assert.equal(rec.attempt, 1, what)
      assert.equal(rec.body.events[0].seqNum, prev.body.events.at(-1).seqNum + 1, `${what}: the next batch follows`)
    } else {
      assert.equal(rec.key, prev.key, `${what}: the failed batch is retried`)
      assert.equal(rec.attempt, prev.attempt + 1, what)
    }
  }
  assert.equal(recs[0]?.attempt, 1, `${store}: the first request is attempt 1`)
}

/** Delivered events equal the admin export's lines with `idempotencyKey` first. */
async function assertEventsAsExported(w, store, delivered) {
  const lines = new Map((await exported(w, store)).map((l) => [l.seqNum, l]))
  for (const e of delivered) assert.deepEqual(e, { idempotencyKey: `${store}:${e.seqNum}`, ...lines.get(e.seqNum) }, `${store}: event ${e.seqNum} as exported`)
}

const iso = (v) => typeof v === 'string' && !Number.isNaN(Date.parse(v))

test('every event arrives, in order, signed, through failures, slow answers and a lost answer', { timeout: 120_000 }, async () => {
  const receiver = await startReceiver()
  const w = await startWorker({
    label: 'outbox-flaky',
    vars: webhookVars(receiver, { WEBHOOK_BATCH_SIZE: '3', WEBHOOK_MAX_ATTEMPTS: '8', WEBHOOK_TIMEOUT_MS: '5000' }),
  })
  try {
    const [a, b, c] = ['outbox-a', 'outbox-b', 'outbox-c'].map(storeId)
    // a: five failures in a row (the back-off reaches its cap), then a slow answer.
    receiver.script(a, (_, n) => (n <= 5 ? { status: 500 } : n === 6 ? { status: 200, delayMs: 1500 } : { status: 200 }))
    // b: two failures, a slow answer, then a batch taken whose answer is lost, then 204s.
    receiver.script(b, (_, n) => (n <= 2 ? { status: 500 } : n === 3 ? { status: 200, delayMs: 1500 } : n === 4 ? 'destroy' : { status: 204 }))
    // c: two failures (a 502 and a 429), then 202s, one of them slow.
    receiver.script(c, (_, n) => (n === 1 ? { status: 502 } : n === 2 ? { status: 429 } : n === 5 ? { status: 202, delayMs: 1500 } : { status: 202 }))

    const total = 20
    const sizes = [1, 4, 2, 3, 4, 1, 2, 3]
    const backendIds = Object.fromEntries(
      await Promise.all(
        [a, b, c].map(async (store) => {
          const events = makeEvents(total, { clientId: `client-${store}`, text: (i) => `ünï "${i}" \\ 😀` })
          return [store, await pushInChunks(w, store, events, sizes)]
        }),
      ),
    )
    for (const store of [a, b, c]) {
      await waitFor(() => receiver.delivered(store).length >= total, { timeout: 30_000, message: `${store}: every event delivered` })
      await waitFor(async () => (await webhookSink(w, store)).cursor === total, { message: `${store}: the cursor at the head` })
    }

    for (const store of [a, b, c]) {
      const recs = receiver.requests(store)
      for (const rec of recs) assertRequest(rec, { store, backendId: backendIds[store], batchSize: 3 })
      assert.deepEqual(seqNums(receiver.delivered(store)), range(1, total), `${store}: every event once among the 2xx answers, in order`)
      assert.deepEqual(
        recs.filter((r) => r.overlapped).map((r) => r.n),
        [],
        `${store}: a batch is sent only once the one before it was answered`,
      )
      await assertEventsAsExported(w, store, receiver.delivered(store))
      // Duplicates only where the answer was lost: what the receiver took, keyed, holds every
      // event once, and twice exactly those of the dropped batch.
      const lost = new Set(recs.filter((r) => r.outcome === 'destroyed').flatMap((r) => r.body.events.map((e) => e.idempotencyKey)))
      const counts = new Map()
      for (const e of receiver.processed(store)) counts.set(e.idempotencyKey, (counts.get(e.idempotencyKey) ?? 0) + 1)
      assert.equal(counts.size, total)
      for (const [key, count] of counts) assert.equal(count, lost.has(key) ? 2 : 1, `${store}: ${key} taken ${count} times`)
      const status = await webhookSink(w, store)
      assert.equal(status.kind, 'webhook')
      assert.deepEqual(
        [status.cursor, status.backlog, status.delivered, status.attempts, status.paused],
        [total, 0, total, 0, false],
        `${store}: cursor, backlog, delivered, attempts, paused in ${JSON.stringify(status)}`,
      )
      assert.ok(iso(status.lastAttemptAt), `${store}: lastAttemptAt ${status.lastAttemptAt}`)
      assert.equal((await outbox(w, store)).head, total)
    }
    assert.equal(receiver.requests(b).filter((r) => r.outcome === 'destroyed').length, 1, 'the lost answer was staged')
    assert.ok(receiver.requests(a).some((r) => r.status === 200 && r.endedAt - r.at >= 1500), 'a slow answer was staged')

    // The failures are logged with the back-off doubling from 50 ms up to its 400 ms cap.
    await waitFor(() => deliverLines(w, a, 'failed').length >= 5, { message: 'the failed lines of a' })
    const failed = deliverLines(w, a, 'failed').slice(0, 5)
    assert.deepEqual(failed.map((l) => l.retryInMs), [50, 100, 200, 400, 400])
    assert.deepEqual(failed.map((l) => l.attempt), [1, 2, 3, 4, 5])
    for (const l of failed) {
      assert.equal(l.level, 'warn')
      assert.equal(l.sink, 'webhook')
      assert.equal(l.status, 500)
      assert.equal(typeof l.error, 'string')
    }
    // Each retry came no sooner than its back-off said.
    const recsA = receiver.requests(a)
    const waited = recsA.slice(1, 6).reduce((sum, r, i) => sum + (r.at - recsA[i].endedAt), 0)
    assert.ok(waited >= 0.9 * (50 + 100 + 200 + 400 + 400), `a's retries waited ${waited} ms in all`)
    const dropped = receiver.requests(b).find((r) => r.outcome === 'destroyed')
    await waitFor(() => deliverLines(w, b, 'failed').some((l) => l.attempt === dropped.attempt && l.from === dropped.body.events[0].seqNum), {
      message: 'the failed line of the dropped batch',
    })
    // One `delivered` line per 2xx answer, naming its batch.
    for (const store of [a, b, c]) {
      const ok = receiver.requests(store).filter((r) => r.outcome === 'answered' && r.status < 300)
      await waitFor(() => deliverLines(w, store, 'delivered').length >= ok.length, { message: `${store}: delivered lines` })
      assert.deepEqual(
        deliverLines(w, store, 'delivered').map((l) => [l.level, l.sink, l.from, l.to, l.events, l.attempt, l.status, typeof l.ms]),
        ok.map((r) => ['info', 'webhook', r.body.events[0].seqNum, r.body.events.at(-1).seqNum, r.body.events.length, r.attempt, r.status, 'number']),
        `${store}: delivered lines`,
      )
    }
    assert.ok(!w.logs().includes(SECRET), 'the webhook secret is never logged')
    // Last, so a wrong retry does not hide the checks above.
    for (const store of [a, b, c]) assertAttemptOrder(receiver.requests(store), store)
  } finally {
    await w.stop()
    await receiver.close()
  }
})

describe('a webhook sink with few attempts and a filter', () => {
  let receiver
  let w
  const FILTER = 'v1.Todo*,*Archived,!v1.TodoDebug*'
  before(async () => {
    receiver = await startReceiver()
    w = await startWorker({
      label: 'outbox-pause',
      vars: webhookVars(receiver, { WEBHOOK_BATCH_SIZE: '4', WEBHOOK_MAX_ATTEMPTS: '3', WEBHOOK_TIMEOUT_MS: '4000', WEBHOOK_EVENTS: FILTER }),
    })
  })
  after(async () => {
    await w?.stop()
    await receiver?.close()
  })

  test('a backend that does not answer: pushes go on, the sink pauses, resume delivers everything', { timeout: 120_000 }, async () => {
    const store = storeId('outbox-down')
    // The first delivery is held open (the worker times it out); then every attempt fails.
    let healthy = false
    receiver.script(store, (_, n) => (healthy ? { status: 200 } : n === 1 ? 'hold' : { status: 503 }))
    const events = makeEvents(52)
    await withSocket(w, store, async (s) => {
      assert.deepEqual((await push(s, store, events.slice(0, 1))).exit, OK)
      await waitFor(() => receiver.requests(store).length === 1, { message: 'the first delivery to reach the receiver' })
      // 49 more pushes — 50 in all — each acknowledged while that delivery is still unanswered.
      for (let i = 1; i < 50; i++) assert.deepEqual((await push(s, store, events.slice(i, i + 1))).exit, OK, `push ${i + 1}`)
      assert.equal(receiver.requests(store)[0].outcome, 'pending', 'the first delivery was still held when the 50th push was acknowledged')
      const meanwhile = await webhookSink(w, store)
      assert.deepEqual([meanwhile.cursor, meanwhile.backlog, meanwhile.paused], [0, 50, false], JSON.stringify(meanwhile))

      // The held attempt times out; two quick failures later the sink is paused, nothing dropped.
      await waitFor(() => receiver.requests(store)[0].outcome === 'aborted', { timeout: 15_000, message: 'the worker to give up on the held attempt' })
      await waitFor(async () => (await webhookSink(w, store)).paused, { timeout: 15_000, message: 'the sink to pause' })
      // Events keep being stored while it is paused.
      assert.deepEqual((await push(s, store, events.slice(50, 52))).exit, OK)
    })
    const paused = await webhookSink(w, store)
    assert.deepEqual([paused.cursor, paused.backlog, paused.attempts, paused.paused, paused.delivered], [0, 52, 3, true, 0], JSON.stringify(paused))
    assert.equal(typeof paused.lastError, 'string', JSON.stringify(paused))
    assert.ok(iso(paused.lastAttemptAt), JSON.stringify(paused))
    const recs = receiver.requests(store)
    assert.deepEqual(recs.map((r) => [r.attempt, r.outcome, r.status]), [[1, 'aborted', undefined], [2, 'answered', 503], [3, 'answered', 503]], 'three attempts, then none while paused')
    for (const rec of recs) assertRequest(rec, { store, batchSize: 4 })

    await waitFor(() => deliverLines(w, store).length >= 3, { message: 'the deliver lines of the failures' })
    const lines = deliverLines(w, store)
    assert.deepEqual(
      lines.map((l) => [l.level, l.outcome, l.attempt, l.status, typeof l.error]),
      [['warn', 'failed', 1, undefined, 'string'], ['warn', 'failed', 2, 503, 'string'], ['error', 'paused', 3, 503, 'string']],
      JSON.stringify(lines),
    )
    assert.deepEqual(lines.slice(0, 2).map((l) => l.retryInMs), [50, 100])

    // Resume with the backend back: everything arrives, in order, once.
    healthy = true
    const sentBeforeResume = receiver.requests(store).length
    const resumed = await admin(w, `stores/${store}/outbox/webhook/resume`, { method: 'POST' })
    assert.equal(resumed.status, 200)
    const body = await resumed.json()
    assert.deepEqual([body.sink, body.paused, body.attempts], ['webhook', false, 0], JSON.stringify(body))
    await waitFor(() => receiver.delivered(store).length >= 52, { timeout: 20_000, message: 'everything delivered after the resume' })
    assert.deepEqual(seqNums(receiver.delivered(store)), range(1, 52))
    assert.equal(receiver.requests(store)[sentBeforeResume].attempt, 1, 'the resume cleared the attempts')
    await waitFor(async () => (await webhookSink(w, store)).cursor === 52, { message: 'the cursor at the head' })
    const done = await webhookSink(w, store)
    assert.deepEqual([done.backlog, done.delivered, done.paused, done.attempts], [0, 52, false, 0], JSON.stringify(done))
    await waitFor(() => deliverLines(w, store, 'delivered').length >= 13, { message: 'the delivered lines' })

    // Skip back replays from there; skip without `to` goes to the head; a bad `to` is refused.
    const replay = await admin(w, `stores/${store}/outbox/webhook/skip?to=50`, { method: 'POST' })
    assert.equal(replay.status, 200)
    assert.equal((await replay.json()).cursor, 50)
    await waitFor(() => receiver.delivered(store).length >= 54, { message: 'the replay of 51 and 52' })
    assert.deepEqual(seqNums(receiver.delivered(store)), [...range(1, 52), 51, 52])
    await waitFor(async () => (await webhookSink(w, store)).cursor === 52, { message: 'the cursor back at the head' })
    for (const to of ['53', '-1', 'abc', '1.5']) {
      const bad = await admin(w, `stores/${store}/outbox/webhook/skip?to=${to}`, { method: 'POST' })
      assert.equal(bad.status, 400, `skip?to=${to}`)
      assert.equal((await bad.json()).error, 'InvalidSkip', `skip?to=${to}`)
    }
    const toHead = await admin(w, `stores/${store}/outbox/webhook/skip`, { method: 'POST' })
    assert.equal(toHead.status, 200)
    assert.equal((await toHead.json()).cursor, 52)
    // Last, so a wrong retry does not hide the checks above: the failed batch was the one retried.
    assertAttemptOrder(recs, store)
  })

  test('skip moves a paused sink past events it will then never send', { timeout: 60_000 }, async () => {
    const store = storeId('outbox-skip')
    let healthy = false
    receiver.script(store, () => (healthy ? { status: 200 } : { status: 500 }))
    await pushInChunks(w, store, makeEvents(6), [6])
    await waitFor(async () => (await webhookSink(w, store)).paused, { timeout: 15_000, message: 'the sink to pause' })
    assert.equal(receiver.requests(store).length, 3)
    healthy = true
    const res = await admin(w, `stores/${store}/outbox/webhook/skip?to=4`, { method: 'POST' })
    assert.equal(res.status, 200)
    const body = await res.json()
    assert.deepEqual([body.cursor, body.paused, body.attempts], [4, false, 0], JSON.stringify(body))
    await waitFor(() => receiver.delivered(store).length >= 2, { message: 'the events after the skip' })
    await waitFor(async () => (await webhookSink(w, store)).cursor === 6, { message: 'the cursor at the head' })
    assert.deepEqual(seqNums(receiver.delivered(store)), [5, 6])
  })

  test('unknown sinks are 404, and the outbox is admin-only', async () => {
    const store = storeId('outbox-unknown')
    for (const p of ['nope/resume', 'queue/resume', 'nope/skip?to=0']) {
      const res = await admin(w, `stores/${store}/outbox/${p}`, { method: 'POST' })
      assert.equal(res.status, 404, p)
      assert.equal((await res.json()).error, 'UnknownSink', p)
    }
    for (const token of [null, DEFAULT_TOKEN]) assert.equal((await admin(w, `stores/${store}/outbox`, { token })).status, 401)
    const empty = await outbox(w, store)
    assert.equal(empty.head, 0)
    assert.deepEqual(empty.sinks.map((s) => [s.sink, s.cursor, s.backlog]), [['webhook', 0, 0]])
  })

  test('filters: only matching events arrive, and the cursor passes the others', { timeout: 60_000 }, async () => {
    const store = storeId('outbox-filter')
    const names = [
      'v1.TodoCreated', // in: v1.Todo*
      'v1.TodoDebugNote', // out: !v1.TodoDebug*
      'v1.UserRenamed', // matches no pattern
      'v1.UserArchived', // in: *Archived
      'v1xTodoCreated', // a `.` in a pattern is a dot, not any character
      'v1.TodoCompleted', // in
      'v1.TodoDebugArchived', // out: the exclusion wins over *Archived
      'v1.TodoArchived', // in
      'v1.UserRenamed', // out, and the last two are out: the cursor must still reach the head
      'v1.TodoDebugNote',
    ]
    const events = makeEvents(names.length).map((e, i) => ({ ...e, name: names[i] }))
    const backendId = await pushInChunks(w, store, events, [3, 4, 3])
    await waitFor(async () => (await webhookSink(w, store)).cursor === names.length, { message: 'the cursor past every event' })
    const expected = [1, 4, 6, 8]
    await waitFor(() => receiver.delivered(store).length >= expected.length, { message: 'the matching events' })
    assert.deepEqual(seqNums(receiver.delivered(store)), expected)
    assert.deepEqual(receiver.delivered(store).map((e) => e.name), expected.map((n) => names[n - 1]))
    for (const rec of receiver.requests(store)) assertRequest(rec, { store, backendId, batchSize: 4, filtered: true })
    await assertEventsAsExported(w, store, receiver.delivered(store))
    const status = await webhookSink(w, store)
    assert.deepEqual([status.backlog, status.delivered], [0, expected.length], JSON.stringify(status))

    // A push of excluded events only: the cursor moves past it with no request at all.
    const sentSoFar = receiver.requests(store).length
    await withSocket(w, store, async (s) => {
      assert.deepEqual((await push(s, store, [{ ...makeEvents(1, { start: 11, parent: 10 })[0], name: 'v1.TodoDebugNote' }], backendId)).exit, OK)
    })
    await waitFor(async () => (await webhookSink(w, store)).cursor === 11, { message: 'the cursor past an excluded push' })
    assert.equal(receiver.requests(store).length, sentSoFar)
  })

  test('HTTP pushes and admin imports are delivered too', { timeout: 60_000 }, async () => {
    const store = storeId('outbox-http')
    for (const [start, count] of [[1, 3], [4, 2]]) {
      const batch = makeEvents(count, { start, parent: start - 1 })
      const res = await postSync(w, store, request('SyncHttpRpc.Push', { storeId: store, batch, backendId: { _tag: 'None' } }))
      assert.equal(res.status, 200, res.body)
      assert.deepEqual(JSON.parse(res.body).at(-1).exit, OK)
    }
    await waitFor(() => receiver.delivered(store).length >= 5, { message: 'the HTTP pushes delivered' })
    assert.deepEqual(seqNums(receiver.delivered(store)), range(1, 5))

    const copy = storeId('outbox-import')
    const text = await (await admin(w, `stores/${store}/events`)).text()
    const imported = await admin(w, `stores/${copy}/import`, { method: 'POST', body: text })
    assert.deepEqual(await imported.json(), { imported: 5, head: 5 })
    await waitFor(() => receiver.delivered(copy).length >= 5, { message: 'the import delivered' })
    assert.deepEqual(seqNums(receiver.delivered(copy)), range(1, 5))
    await assertEventsAsExported(w, copy, receiver.delivered(copy))
  })

  test('after a reset the new events are delivered, with the new backendId', { timeout: 60_000 }, async () => {
    const store = storeId('outbox-reset')
    const first = await pushInChunks(w, store, makeEvents(3), [3])
    await waitFor(() => receiver.delivered(store).length >= 3, { message: 'the first incarnation delivered' })
    await waitFor(async () => (await webhookSink(w, store)).cursor === 3, { message: 'its cursor at the head' })
    const res = await admin(w, `stores/${store}/reset`, { method: 'POST' })
    assert.equal(res.status, 200)
    const { backendId: second } = await res.json()
    assert.notEqual(second, first)
    const reset = await webhookSink(w, store)
    assert.deepEqual([reset.cursor, reset.backlog], [0, 0], JSON.stringify(reset))

    assert.equal(await pushInChunks(w, store, makeEvents(2, { clientId: 'after-reset' }), [2]), second)
    await waitFor(() => receiver.delivered(store).length >= 5, { message: 'the new incarnation delivered' })
    const delivered = receiver.delivered(store)
    assert.deepEqual(seqNums(delivered), [1, 2, 3, 1, 2])
    assert.deepEqual(delivered.slice(3).map((e) => e.clientId), ['after-reset', 'after-reset'])
    const bodies = receiver.requests(store).filter((r) => r.status < 300)
    assert.deepEqual([...new Set(bodies.map((r) => r.body.backendId))], [first, second])
    assert.equal(bodies.at(-1).body.backendId, second)
    await waitFor(async () => (await webhookSink(w, store)).cursor === 2, { message: 'the cursor at the new head' })
  })
})

test('a store that existed before the sink was configured is delivered from then on', { timeout: 120_000 }, async () => {
  const persistTo = path.join(TMP, `${storeId('outbox-existing')}-state`)
  const store = storeId('outbox-existing')
  const receiver = await startReceiver()
  try {
    const backendId = await withWorker({ persistTo, label: 'outbox-before', vars: { AUTH_TOKEN: DEFAULT_TOKEN, ADMIN_TOKEN: ADMIN } }, async (w) => {
      const id = await pushInChunks(w, store, makeEvents(5), [5])
      assert.deepEqual((await outbox(w, store)).sinks, [], 'no sink configured, none listed')
      return id
    })
    await withWorker({ persistTo, label: 'outbox-after', vars: webhookVars(receiver) }, async (w) => {
      await withSocket(w, store, async (s) => {
        assert.deepEqual((await push(s, store, makeEvents(2, { start: 6, parent: 5 }), backendId)).exit, OK)
      })
      await waitFor(async () => (await webhookSink(w, store)).cursor === 7, { message: 'the cursor at the head' })
      await waitFor(() => receiver.delivered(store).length >= 2, { message: 'the new events' })
      assert.deepEqual(seqNums(receiver.delivered(store)), [6, 7])
      assert.equal((await webhookSink(w, store)).delivered, 2)
    })
  } finally {
    await receiver.close()
  }
})

test(
  'a URL nobody listens on: pushes succeed, attempts fail with a connection error, the sink pauses',
  { timeout: 60_000, skip: engineOnly(['do-sqlite'], 'a refused connection does not depend on the engine') },
  async () => {
    // A port handed out and closed again: nothing listens there.
    const nobody = { url: `http://127.0.0.1:${await freePort()}/hook` }
    await withWorker({ label: 'outbox-refused', vars: webhookVars(nobody, { WEBHOOK_MAX_ATTEMPTS: '2' }) }, async (w) => {
      const store = storeId('outbox-refused')
      await pushInChunks(w, store, makeEvents(10), [1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
      await waitFor(async () => (await webhookSink(w, store)).paused, { message: 'the sink to pause' })
      const status = await webhookSink(w, store)
      assert.deepEqual([status.cursor, status.backlog, status.attempts], [0, 10, 2], JSON.stringify(status))
      assert.equal(typeof status.lastError, 'string')
      await waitFor(() => deliverLines(w, store).length >= 2, { message: 'the deliver lines' })
      assert.deepEqual(
        deliverLines(w, store).map((l) => [l.outcome, l.attempt, l.status, typeof l.error]),
        [['failed', 1, undefined, 'string'], ['paused', 2, undefined, 'string']],
      )
    })
  },
)

describe('webhook configuration errors', { skip: engineOnly(['do-sqlite'], 'configuration does not depend on the engine') }, () => {
  for (const [label, vars, setting] of [
    ['no secret', { WEBHOOK_URL: 'http://127.0.0.1:9/hook' }, /WEBHOOK_SECRET/],
    ['not an http(s) URL', { WEBHOOK_URL: 'ftp://127.0.0.1/hook', WEBHOOK_SECRET: SECRET }, /WEBHOOK_URL/],
  ]) {
    test(`${label}: every request is a 500 naming the setting`, { timeout: 60_000 }, async () => {
      await withWorker({ label: 'outbox-bad-config', vars: { AUTH_TOKEN: DEFAULT_TOKEN, ADMIN_TOKEN: ADMIN, ...vars }, readyStatus: 500 }, async (w) => {
        const res = await fetch(`${w.url}/`)
        assert.equal(res.status, 500)
        assert.match(await res.text(), setting)
        assert.ok(!w.logs().includes(SECRET), 'the secret is not logged')
      })
    })
  }
})

test(
  'kill -9 mid-delivery: after a restart the alarm alone delivers everything',
  { timeout: 120_000, skip: RUNTIME === 'workerd' ? false : 'needs workerd alone: the test SIGKILLs the runtime and restarts it on the same state' },
  async () => {
    const persistTo = path.join(TMP, `${storeId('outbox-kill')}-state`)
    const port = await freePort()
    const receiver = await startReceiver()
    const stores = [storeId('outbox-kill-a'), storeId('outbox-kill-b')]
    let answering = false
    receiver.scriptAll(() => (answering ? { status: 200 } : 'hold'))
    const vars = webhookVars(receiver, { WEBHOOK_BATCH_SIZE: '3', WEBHOOK_TIMEOUT_MS: '8000' })
    let w = await startWorker({ persistTo, port, label: 'outbox-kill-1', vars })
    try {
      for (const store of stores) {
        await withSocket(w, store, async (s) => {
          assert.deepEqual((await push(s, store, makeEvents(2))).exit, OK)
          await waitFor(() => receiver.requests(store).length === 1, { message: `${store}: the first delivery held` })
          assert.deepEqual((await push(s, store, makeEvents(5, { start: 3, parent: 2 }))).exit, OK)
        })
      }
      for (const store of stores) assert.equal(receiver.requests(store)[0].outcome, 'pending', `${store}: still held at the kill`)
      await w.kill()
      await waitFor(() => stores.every((store) => receiver.requests(store)[0].outcome === 'aborted'), { message: 'the held connections to close with the process' })
      answering = true
      // The restart serves `GET /` until it answers (no store is touched); nothing else is asked.
      w = await startWorker({ persistTo, port, label: 'outbox-kill-2', vars })
      for (const store of stores) {
        await waitFor(() => receiver.delivered(store).length >= 7, {
          timeout: 30_000,
          message: `${store}: delivery after the restart with no request (requests seen: ${JSON.stringify(receiver.requests(store).map((r) => [r.key, r.attempt, r.outcome]))})`,
        })
        assert.deepEqual(seqNums(receiver.delivered(store)), range(1, 7), `${store}: every event once among the 2xx answers`)
        // The held batch (1–2) was never answered: what follows it starts at 1 again.
        assert.equal(receiver.requests(store)[1].body.events[0].seqNum, 1, `${store}: the first request after the restart`)
      }
      // Evidence that nothing but the alarm woke the stores: the restarted worker logged no
      // request of theirs, only their opening and the deliveries.
      for (const store of stores) await waitFor(() => deliverLines(w, store, 'delivered').length >= 1, { message: `${store}: a delivered line` })
      const woken = w.logLines().filter((l) => stores.includes(l.storeId))
      assert.deepEqual([...new Set(woken.map((l) => l.event))].sort(), ['deliver', 'store_opened'], JSON.stringify(woken))
      for (const store of stores) {
        await waitFor(async () => (await webhookSink(w, store)).cursor === 7, { message: `${store}: the cursor at the head` })
      }
    } finally {
      await w.stop()
      await receiver.close()
    }
  },
)
