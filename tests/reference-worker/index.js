// The TypeScript reference server, @livestore/sync-cf@0.4.0 from npm, set up as its docs show.
// The tests run it beside our worker: to check that each reads the other's stored data, and (in
// the benchmark) to measure both under the same load. Its worker name, Durable Object class and
// binding match ours, so both address the same Durable Object storage.
import { makeDurableObject, makeWorker } from '@livestore/sync-cf/cf-worker'

export class SyncBackendDO extends makeDurableObject({}) {}

export default makeWorker({
  syncBackendBinding: 'SYNC_BACKEND_DO',
  enableCORS: true,
  validatePayload: (payload) => {
    if (payload?.authToken !== 'insecure-token-change-me') {
      throw new Error('Invalid auth token')
    }
  },
})
