// no-hook.js with a JavaScript onPush that does nothing: what a hook costs on the push path
// (the batch crosses from WASM to JavaScript as JSON and is parsed there, the promise awaited).
import { makeDurableObject, makeWorker } from 'livestore-sync-rs/cf-worker'

export class SyncBackendDO extends makeDurableObject({ onPush: async () => {} }) {}

export default makeWorker({
  syncBackendBinding: 'SYNC_BACKEND_DO',
  enableCORS: true,
  validatePayload: (payload) => {
    if (payload?.authToken !== 'insecure-token-change-me') throw new Error('Invalid auth token')
  },
})
