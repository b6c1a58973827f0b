// The Workers runtime's types, as `CfTypes` (the namespace @livestore/sync-cf exports them under).
export type * from '@cloudflare/workers-types'
