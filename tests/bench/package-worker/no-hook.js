// The npm package as the reference's docs set the reference up (tests/reference-worker): no hook
// in the Durable Object, the token checked by validatePayload.
import { makeDurableObject, makeWorker } from 'livestore-sync-rs/cf-worker'

export class SyncBackendDO extends makeDurableObject({}) {}

export default makeWorker({
  syncBackendBinding: 'SYNC_BACKEND_DO',
  enableCORS: true,
  validatePayload: (payload) => {
    if (payload?.authToken !== 'insecure-token-change-me') throw new Error('Invalid auth token')
  },
})
