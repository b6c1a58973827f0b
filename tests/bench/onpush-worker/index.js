// The reference server (@livestore/sync-cf@0.4.0) with the one way it offers to act on stored
// events: an `onPush` that calls the app's backend and awaits it, inside the push. Used by
// tests/bench/outbox.mjs beside our outbox. The receiver's URL is read from globalThis, which the
// benchmark's generated entry module sets before importing this one.
import { makeDurableObject, makeWorker } from '@livestore/sync-cf/cf-worker'

export class SyncBackendDO extends makeDurableObject({
  onPush: async (message, { storeId }) => {
    const res = await fetch(globalThis.BENCH_HOOK_URL, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ storeId, events: message.batch }),
    })
    await res.arrayBuffer()
    if (!res.ok) throw new Error(`the app's backend answered ${res.status}`)
  },
}) {}

export default makeWorker({
  syncBackendBinding: 'SYNC_BACKEND_DO',
  enableCORS: true,
  validatePayload: (payload) => {
    if (payload?.authToken !== 'insecure-token-change-me') {
      throw new Error('Invalid auth token')
    }
  },
})
