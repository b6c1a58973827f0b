// The reference documentation's examples for @livestore/sync-cf/cf-worker (its
// do-sync-backend.ts and worker-makeWorker.ts), with the import changed to livestore-sync-rs.
// Their hooks only log; these also refuse, so the tests can see each hook act:
// - onPush refuses events named `v1.Forbidden`, and HTTP pushes whose payload says
//   `role: 'reader'` (the reference passes no payload to onPush for HTTP pushes);
// - validatePayload refuses a wrong token, and stores whose id starts with `closed-`.
import { makeDurableObject, makeWorker } from 'livestore-sync-rs/cf-worker'

const hasUserId = (p: unknown): p is { userId: string } =>
  typeof p === 'object' && p !== undefined && p !== null && 'userId' in p

export class SyncBackendDO extends makeDurableObject({
  onPush: async (message, { storeId, payload }) => {
    console.log(`Push to store ${storeId}:`, message.batch.length)

    // Custom business logic
    if (hasUserId(payload) === true) {
      await Promise.resolve()
    }
    if (message.batch.some((event) => event.name === 'v1.Forbidden')) {
      throw new Error('v1.Forbidden events are not accepted')
    }
    if (typeof payload === 'object' && payload !== null && (payload as { role?: string }).role === 'reader') {
      throw new Error(`readers may not push to ${storeId}`)
    }
  },
  onPull: async (_message, { storeId }) => {
    console.log(`Pull from store ${storeId}`)
  },
  enabledTransports: new Set(['ws', 'http']), // Disable DO RPC
  otel: {
    baseUrl: 'https://otel.example.com',
    serviceName: 'livestore-sync',
  },
}) {}

export default makeWorker({
  syncBackendBinding: 'SYNC_BACKEND_DO',
  validatePayload: (payload, { storeId }) => {
    // Simple token-based guard at connection time
    const hasAuthToken = typeof payload === 'object' && payload !== null && 'authToken' in payload
    if (!hasAuthToken) {
      throw new Error('Missing auth token')
    }
    if ((payload as any).authToken !== 'insecure-token-change-me') {
      throw new Error('Invalid auth token')
    }
    if (storeId.startsWith('closed-')) {
      throw new Error(`store ${storeId} is closed`)
    }
    console.log(`Validated connection for store: ${storeId}`)
  },
  enableCORS: true,
})
