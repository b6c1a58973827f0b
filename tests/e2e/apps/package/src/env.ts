// As the reference documentation's env.ts, with the import changed.
import type { CfTypes, SyncBackendRpcInterface } from 'livestore-sync-rs/cf-worker'

export interface Env {
  SYNC_BACKEND_DO: CfTypes.DurableObjectNamespace<SyncBackendRpcInterface>
}
