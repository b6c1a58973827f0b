// The reference server (@livestore/sync-cf@0.4.0) with the one way it offers to act on stored
// events: an `onPush` that calls the app's backend and awaits it, inside the push. Used by
// tests/bench/outbox.mjs beside our outbox. The receiver's URL is read from globalThis when a push
// comes, set by the entry module the benchmark generates around this one.
import { makeDurableObject } from '@livestore/sync-cf/cf-worker'

// The Worker itself is the reference's, as the other benchmark runs set it up.
export { default } from '../../reference-worker/index.js'

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
