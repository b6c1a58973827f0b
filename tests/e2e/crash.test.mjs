// Crash safety: writers push into two stores without pause while the whole workerd process
// group is killed (SIGKILL) at a random moment; the worker restarts on the same state directory
// and port, and the stores are checked against a ledger of every push and its answer. Nothing
// acknowledged, and nothing a live pull was shown, may be lost, changed or duplicated; the log
// stays gapless, the head follows it, the backendId never changes, a batch is stored whole or
// not at all, and clients — a real `makeWsSync` client among them — reconnect and converge.
//
// CRASH_TRIALS=50 ./scripts/test tests/e2e/crash.test.mjs   # a longer run
import assert from 'node:assert/strict'
import { isDeepStrictEqual } from 'node:util'
import path from 'node:path'
import { after, test } from 'node:test'

import { connectClient, Effect, Option, Stream } from './lib/client.mjs'
import { OK, openSocket as open, sleep, waitFor } from './lib/helpers.mjs'
import { liveEvents, openLivePull, push } from './lib/raw.mjs'
import { assertGapless, assertPaging, figures, fullPull, Ledger, randInt, tagged } from './lib/reliability.mjs'
import { DEFAULT_TOKEN, freePort, STORAGE, startWorker, storeId, TMP } from './lib/worker.mjs'

const TRIALS = Number(process.env.CRASH_TRIALS ?? 10)
// Big batches (over 1 MB) are stored with more than one statement, so atomicity is tested too.
const VARS = { AUTH_TOKEN: DEFAULT_TOKEN, MAX_MESSAGE_BYTES: '4000000' }


// Every real client, closed however the test ends (an open one keeps the process alive).
const realClients = new Set()
const connect = async (opts) => {
  const c = await connectClient(opts)
  realClients.add(c)
  const close = c.close
  c.close = () => (realClients.delete(c), close())
  return c
}
after(() => Promise.all([...realClients].map((c) => c.close().catch(() => {}))))

/**
 * A bare-socket writer: a live pull from the last verified event (as a real client resumes from
 * its cursor), then pushes of 1–4 events at whatever it believes the head is, until its socket
 * dies. A `big` writer instead pushes one batch of 5 × 205 KB, at a random moment: over 1 MB, it
 * is stored with more than one statement.
 */
async function rawWriter(w, store, name, trial, { big = false } = {}) {
  const sock = await open(w, store.id)
  const live = `live-${name}`
  const cursor = store.verified ? { backendId: store.backendId, eventSequenceNumber: store.verified } : undefined
  await openLivePull(sock, store.id, live, { cursor })
  store.backendId ??= sock.chunks(live)[0].backendId
  let head = liveEvents(sock, live).at(-1)?.seqNum ?? store.verified ?? 0
  let n = 0
  const run = async (stop) => {
    // A random moment, so the big batch meets the kill at any point of its write.
    if (big) await sleep(randInt(0, 2500))
    while (!stop.killed && !sock.closed) {
      const size = big ? 5 : randInt(1, 4)
      const ids = Array.from({ length: size }, () => `${name}-t${trial}-${n++}`)
      const batch = tagged(ids, { parent: head, clientId: name, text: () => (big ? 'B'.repeat(205_000) : `t${trial}`) })
      const attempt = store.ledger.sent(batch, name)
      let reply
      try {
        reply = await push(sock, store.id, batch, store.backendId)
      } catch {
        break // the socket died with the push unanswered
      }
      if (isDeepStrictEqual(reply.exit, OK)) {
        attempt.status = 'acked'
        head = batch.at(-1).seqNum
        if (big) break
      } else if (reply.exit.cause?.error?._tag === 'ServerAheadError') {
        attempt.status = 'refused'
        head = reply.exit.cause.error.minimumExpectedNum
      } else {
        store.unexpected.push(`${name}: ${JSON.stringify(reply.exit)}`)
        break
      }
    }
  }
  return { sock, live, cursor: cursor?.eventSequenceNumber ?? 0, run }
}

/** The real client as a writer: it pulls once (learning the backendId), then pushes 1–3 events at a time. */
async function realWriter(w, store, name, trial) {
  const c = await connect({ url: w.url, storeId: store.id, clientId: name })
  const pages = await c.pullPages()
  let head = pages.flatMap((p) => p.batch).at(-1)?.eventEncoded.seqNum ?? 0
  let n = 0
  const run = async (stop) => {
    while (!stop.killed) {
      const ids = Array.from({ length: randInt(1, 3) }, () => `${name}-t${trial}-${n++}`)
      const batch = tagged(ids, { parent: head, clientId: name })
      const attempt = store.ledger.sent(batch, name)
      const exit = await c.runExit(c.backend.push(batch))
      if (exit._tag === 'Success') {
        attempt.status = 'acked'
        head = batch.at(-1).seqNum
      } else if (exit.cause?.error?._tag === 'ServerAheadError') {
        attempt.status = 'refused'
        head = exit.cause.error.minimumExpectedNum
      } else {
        // Lost connection (UnknownError) when the server died; anything else is a bug.
        if (!stop.killed) store.unexpected.push(`${name}: ${JSON.stringify(exit.cause?.error ?? exit.cause)}`)
        break
      }
    }
  }
  return { client: c, run }
}

/**
 * A real client that only reads, through a live pull it restarts from its last event whenever
 * it fails (what LiveStore's leader does), so it lives across a crash and must reconnect.
 */
function realReader(c) {
  const r = { client: c, events: [], restarts: 0, stopped: false }
  r.done = (async () => {
    while (!r.stopped) {
      const last = r.events.at(-1)
      const cursor = last ? Option.some({ eventSequenceNumber: last.seqNum }) : Option.none()
      await c.runExit(
        c.backend.pull(cursor, { live: true }).pipe(
          Stream.runForEach((item) => Effect.sync(() => r.events.push(...item.batch.map((b) => b.eventEncoded)))),
        ),
      )
      if (r.stopped) break
      r.restarts++
      // A retry's back-off, as LiveStore's leader has: the server may still be down.
      await sleep(250)
    }
  })()
  return r
}

test(`crash safety: ${TRIALS} SIGKILLs of workerd mid-push, each followed by a restart on the same state`, { timeout: 60_000 + TRIALS * 90_000 }, async () => {
  const started = Date.now()
  const persistTo = path.join(TMP, `${storeId('crash')}-state`)
  const port = await freePort()
  const stores = [
    { id: storeId('crash-a'), writers: 3, real: true },
    { id: storeId('crash-b'), writers: 2, big: true },
  ].map((s) => ({ ...s, ledger: new Ledger(), backendId: undefined, unexpected: [], probes: 0 }))
  const totals = { unansweredStored: 0, unansweredAbsent: 0, readerRestarts: 0 }

  let worker = await startWorker({ persistTo, port, vars: VARS, label: 'crash-0' })
  let reader // a real client reading store A across the next crash
  try {
    for (let trial = 1; trial <= TRIALS; trial++) {
      // Writers start; after a random while, the whole process group dies.
      reader ??= realReader(await connect({ url: worker.url, storeId: stores[0].id, clientId: `reader-${trial}` }))
      const writers = []
      for (const store of stores) {
        for (let i = 0; i < store.writers; i++) writers.push([store, await rawWriter(worker, store, `raw${i}`, trial)])
        if (store.big) writers.push([store, await rawWriter(worker, store, 'big', trial, { big: true })])
        if (store.real) writers.push([store, await realWriter(worker, store, 'real', trial)])
      }
      const stop = { killed: false }
      const running = writers.map(([, w]) => w.run(stop))
      // The kill comes at a random moment of the writing: that is the experiment.
      await sleep(randInt(0, 2500))
      stop.killed = true
      await worker.kill()
      // Raw writers end as their sockets close; the real one gets its push failed (or is closed):
      // waited for, with a deadline for a real client that has not noticed yet.
      await Promise.race([Promise.allSettled(running), sleep(15_000)])
      for (const [, w] of writers) if (w.client) await w.client.close().catch(() => {})
      await Promise.allSettled(running)
      // What each live pull was shown before the crash.
      const shown = writers.filter(([, w]) => w.sock).map(([store, w]) => [store, w.cursor, liveEvents(w.sock, w.live)])
      for (const [, w] of writers) w.sock?.close()

      worker = await startWorker({ persistTo, port, vars: VARS, label: `crash-${trial}`, migrate: false })

      for (const store of stores) {
        const label = `trial ${trial}, ${store.id}`
        assert.deepEqual(store.unexpected, [], `${label}: unexpected push answers`)
        // Two fresh clients pull the same log, whole, in exact pages, with the same backendId.
        const [s1, s2] = await Promise.all([open(worker, store.id), open(worker, store.id)])
        const [a, b] = await Promise.all([fullPull(s1, store.id), fullPull(s2, store.id)])
        assert.deepEqual(b.pages, a.pages, `${label}: two clients pull the same log`)
        assert.equal(a.backendId, store.backendId, `${label}: the backendId survives the crash`)
        assertPaging(a.pages, store.backendId, label)
        assertGapless(a.events, label)
        // Unanswered pushes are settled here: they must stay stored, or absent, from now on.
        const found = store.ledger.check(a.events, label, { settle: true })
        totals.unansweredStored += found.stored
        totals.unansweredAbsent += found.absent
        for (const [s, cursor, events] of shown) {
          if (s !== store) continue
          // Anything a live pull was shown was stored: the log after its cursor starts with it.
          assert.deepEqual(events, a.events.slice(cursor, cursor + events.length), `${label}: a live pull was shown events the log does not have`)
        }
        // The real client reads the same log.
        const fresh = await connect({ url: worker.url, storeId: store.id, clientId: `fresh-${trial}` })
        const freshEvents = (await fresh.pullPages()).flatMap((p) => p.batch.map((x) => x.eventEncoded))
        await fresh.close()
        assert.deepEqual(freshEvents, a.events, `${label}: the real client pulls the same log`)

        // The head is the last stored seqNum: below it a push is refused, at it a push succeeds.
        const last = a.events.length
        const probeId = `probe-t${trial}-${store.probes++}`
        if (last > 0) {
          const behind = tagged([`${probeId}-behind`], { parent: last - 1, clientId: 'probe' })
          const attempt = store.ledger.sent(behind, 'probe')
          const stale = await push(s1, store.id, behind, store.backendId)
          assert.deepEqual(stale.exit.cause?.error, { _tag: 'ServerAheadError', minimumExpectedNum: last, providedNum: last - 1 }, `${label}: head`)
          attempt.status = 'refused'
        }
        const probe = tagged([probeId], { parent: last, clientId: 'probe' })
        const attempt = store.ledger.sent(probe, 'probe')
        assert.deepEqual((await push(s1, store.id, probe, store.backendId)).exit, OK, `${label}: a push at the head succeeds`)
        attempt.status = 'acked'
        const afterProbe = await fullPull(s2, store.id)
        assert.deepEqual(afterProbe.events, [...a.events, ...probe], `${label}: the probe is appended right after the head`)
        s1.close()
        s2.close()
        store.verified = afterProbe.events.length

        if (store === stores[0]) {
          // The real reader lost its connection, reconnected, and converged on the same log.
          await waitFor(() => isDeepStrictEqual(reader.events, afterProbe.events), { timeout: 90_000, interval: 200 }).catch(() => {})
          assert.deepEqual(reader.events, afterProbe.events, `${label}: the real client that lived through the crash`)
          assert.ok(reader.restarts >= 1, `${label}: the reader's live pull failed with the server and was restarted`)
          totals.readerRestarts += reader.restarts
          reader.stopped = true
          await reader.client.close().catch(() => {}) // ends its live pull
          await Promise.race([reader.done, sleep(5_000)]) // a deadline, should the pull not end
          reader = undefined
        }
      }
    }
  } finally {
    if (reader) reader.stopped = true
    await worker.stop()
  }

  // The writers' pushes (not the probes of the checks).
  const writes = stores.flatMap((s) => s.ledger.attempts.filter((a) => a.who !== 'probe'))
  const acked = writes.filter((a) => a.status === 'acked').reduce((n, a) => n + a.batch.length, 0)
  const ackedPushes = writes.filter((a) => a.status === 'acked').length
  const refused = writes.filter((a) => a.status === 'refused').length
  figures(`crash (${STORAGE})`, {
    trials: TRIALS,
    stores: stores.length,
    writers: stores.reduce((n, s) => n + s.writers + (s.big ? 1 : 0) + (s.real ? 1 : 0), 0),
    ackedEvents: acked,
    ackedPushes,
    refusedPushes: refused,
    unansweredAtKill: totals.unansweredStored + totals.unansweredAbsent,
    unansweredFoundStored: totals.unansweredStored,
    readerReconnects: totals.readerRestarts,
    seconds: Math.round((Date.now() - started) / 1000),
  })
  assert.ok(acked > TRIALS, 'the writers got pushes acknowledged')
})
