// Durable state: restarts keep the log, head and backendId; the TypeScript reference server
// and ours read each other's stores (same tables, same Durable Object storage); a wiped store
// gets a new backendId and the real client is told so.
import assert from 'node:assert/strict'
import path from 'node:path'
import { describe, test } from 'node:test'

import { connectClient, cursorFrom, pushUntilBackendIdMismatch } from './lib/client.mjs'
import { OK, withSocket } from './lib/helpers.mjs'
import { makeEvents, pullAll, push } from './lib/raw.mjs'
import { engineOnly, freePort, startWorker, storeId, TMP, withWorker } from './lib/worker.mjs'

const stateDir = (label) => path.join(TMP, `${storeId(label)}-state`)

describe('persistence', () => {
  test('a restart keeps events, head and backendId', { timeout: 120_000 }, async () => {
    const persistTo = stateDir('restart')
    const store = storeId('restart')
    const before = await withWorker({ persistTo, label: 'restart-1' }, (w) =>
      withSocket(w, store, async (s) => {
        assert.deepEqual((await push(s, store, makeEvents(3))).exit, OK)
        return pullAll(s, store)
      }),
    )
    await withWorker({ persistTo, label: 'restart-2' }, (w) =>
      withSocket(w, store, async (s) => {
        const after = await pullAll(s, store)
        assert.deepEqual(after.pages, before.pages, 'same events, createdAt and backendId')
        const backendId = after.pages[0].backendId
        const stale = await push(s, store, makeEvents(1, { start: 3, parent: 2 }), backendId)
        assert.equal(stale.exit.cause.error._tag, 'ServerAheadError', 'the head was restored, not reset')
        assert.equal(stale.exit.cause.error.minimumExpectedNum, 3)
        assert.deepEqual((await push(s, store, makeEvents(1, { start: 4, parent: 3 }), backendId)).exit, OK)
      }),
    )
  })

  test('the real client is told BackendIdMismatchError on push and pull after the store was wiped', { timeout: 120_000 }, async () => {
    const port = await freePort()
    const store = storeId('wiped')
    let w = await startWorker({ port, persistTo: stateDir('wiped-a'), label: 'wipe-1' })
    const c = await connectClient({ url: w.url, storeId: store })
    try {
      await c.push(makeEvents(2, { clientId: 'test-client' }))
      const pages = await c.pullPages()
      const cursor = cursorFrom(pages.at(-1))
      await w.stop()
      // Same address, empty storage: what deleting .wrangler/state does (LiveStore #980).
      w = await startWorker({ port, persistTo: stateDir('wiped-b'), label: 'wipe-2' })
      const pushExit = await pushUntilBackendIdMismatch(c, makeEvents(1, { start: 3, parent: 2, clientId: 'test-client' }), {
        message: 'the client to reconnect and get BackendIdMismatchError',
      })
      assert.equal(pushExit.cause._tag, 'Fail', 'a typed failure, not a defect (#981)')
      const { Stream, Effect } = await import('@livestore/utils/effect')
      const collected = await c.runExit(c.backend.pull(cursor).pipe(Stream.runCollect, Effect.asVoid))
      assert.equal(collected._tag, 'Failure')
      assert.equal(collected.cause.error._tag, 'BackendIdMismatchError')
      assert.notEqual(collected.cause.error.expected, collected.cause.error.received)
    } finally {
      await c.close()
      await w.stop()
    }
  })
})

describe('compatibility with the TypeScript reference server\'s storage', () => {
  const skip = engineOnly(['do-sqlite', 'd1'], "the reference has no Postgres engine (postgres.test.mjs checks sync-electric's layout instead)")
  test('a store written by the reference is served by ours, and ours by the reference', { timeout: 240_000, skip }, async () => {
    const persistTo = stateDir('compat')
    const fromRef = storeId('written-by-ref')
    const fromUs = storeId('written-by-us')
    const tricky = makeEvents(3, { text: (i) => `ünïcødé "${i}" \\ \n 😀` })
    tricky[1].args = null
    delete tricky[2].args

    // 1. The reference writes a store.
    let ref = await startWorker({ reference: true, persistTo, label: 'compat-ref-1' })
    const refView = await withSocket(ref, fromRef, async (s) => {
      assert.deepEqual((await push(s, fromRef, tricky)).exit, OK)
      assert.deepEqual((await push(s, fromRef, makeEvents(2, { start: 4, parent: 3 }))).exit, OK)
      return pullAll(s, fromRef)
    })
    await ref.stop()

    // 2. We serve it exactly as the reference did, then append to it and create a store of our own.
    let ours = await startWorker({ persistTo, label: 'compat-ours' })
    const backendId = refView.pages[0].backendId
    const ourView = await withSocket(ours, fromRef, async (s) => {
      const view = await pullAll(s, fromRef)
      assert.deepEqual(view.pages, refView.pages, 'same events, metadata and backendId')
      assert.equal(view.events.length, 5)
      const stale = await push(s, fromRef, makeEvents(1, { start: 5, parent: 4 }), backendId)
      assert.equal(stale.exit.cause.error.minimumExpectedNum, 5, 'the reference\'s head')
      assert.deepEqual((await push(s, fromRef, makeEvents(2, { start: 6, parent: 5 }), backendId)).exit, OK)
      return pullAll(s, fromRef)
    })
    const ourStore = await withSocket(ours, fromUs, async (s) => {
      assert.deepEqual((await push(s, fromUs, makeEvents(4, { text: (i) => `ours ${i}` }))).exit, OK)
      return pullAll(s, fromUs)
    })
    await ours.stop()

    // 3. The reference reads both back.
    ref = await startWorker({ reference: true, persistTo, label: 'compat-ref-2' })
    try {
      await withSocket(ref, fromRef, async (s) => {
        const view = await pullAll(s, fromRef)
        assert.deepEqual(view.pages, ourView.pages)
        assert.equal(view.events.length, 7)
        assert.deepEqual((await push(s, fromRef, makeEvents(1, { start: 8, parent: 7 }), backendId)).exit, OK)
      })
      await withSocket(ref, fromUs, async (s) => {
        const view = await pullAll(s, fromUs)
        assert.deepEqual(view.pages, ourStore.pages, 'same events, createdAt and backendId')
        assert.deepEqual((await push(s, fromUs, makeEvents(1, { start: 5, parent: 4 }), ourStore.pages[0].backendId)).exit, OK)
      })
    } finally {
      await ref.stop()
    }
  })
})
