// Events in D1 through the reference's `storage` option, with the other options a user sets:
// HTTP response headers, and the observing hooks, which log what they see.
import { makeDurableObject, makeWorker } from 'livestore-sync-rs/cf-worker'

export class SyncBackendDO extends makeDurableObject({
  storage: { _tag: 'd1', binding: 'EVENTS' },
  http: { responseHeaders: { 'X-From-Options': 'yes' } },
  onPushRes: (message) => {
    console.log(`onPushRes ${'_tag' in message ? message._tag : 'ack'}`)
  },
  onPullRes: (message) => {
    console.log(`onPullRes ${message.batch.length} events`)
  },
  logLevel: 'warn',
}) {}

export default makeWorker({
  syncBackendBinding: 'SYNC_BACKEND_DO',
  validatePayload: (payload) => {
    if ((payload as { authToken?: string } | undefined)?.authToken !== 'insecure-token-change-me') {
      throw new Error('Invalid auth token')
    }
  },
})
