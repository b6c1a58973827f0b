// The reference documentation's worker-handleSyncRequest.ts (a `fetch` of one's own, sync beside
// other routes, 404 for the rest), with the import changed to livestore-sync-rs; its Durable
// Object forwards a header picked by a function, which onPush checks.
import type { CfTypes, CFWorker } from 'livestore-sync-rs/cf-worker'
import { handleSyncRequest, makeDurableObject, matchSyncRequest } from 'livestore-sync-rs/cf-worker'
import type { Env } from './env.ts'

export class SyncBackendDO extends makeDurableObject({
  forwardHeaders: (request) => ({ 'x-user-id': request.headers.get('x-user-id') ?? '' }),
  onPush: async (_message, { headers }) => {
    if (headers?.get('x-user-id') === 'blocked') throw new Error('user blocked')
  },
}) {}

export default {
  fetch: async (request: CfTypes.Request, env: Env, ctx: CfTypes.ExecutionContext) => {
    const searchParams = matchSyncRequest(request)

    if (searchParams !== undefined) {
      return handleSyncRequest({
        request,
        searchParams,
        env,
        ctx,
        syncBackendBinding: 'SYNC_BACKEND_DO',
        headers: { 'X-Custom': 'header' },
        validatePayload: (payload, { storeId }) => {
          // Custom validation logic
          if (!(typeof payload === 'object' && payload !== null && 'authToken' in payload)) {
            throw new Error('Missing auth token')
          }
          console.log('Validating store', storeId)
        },
      })
    }

    return new Response('Not found', { status: 404 }) as unknown as CfTypes.Response
  },
} satisfies CFWorker<Env>
