// The TypeScript reference server with its event logs in D1 (`storage: { _tag: 'd1' }`), for the
// storage-compatibility tests of the D1 engine. See index.js.
import { makeDurableObject, makeWorker } from '@livestore/sync-cf/cf-worker'

export class SyncBackendDO extends makeDurableObject({ storage: { _tag: 'd1', binding: 'DB' } }) {}

export default makeWorker({
  syncBackendBinding: 'SYNC_BACKEND_DO',
  enableCORS: true,
  validatePayload: (payload) => {
    if (payload?.authToken !== 'insecure-token-change-me') {
      throw new Error('Invalid auth token')
    }
  },
})
