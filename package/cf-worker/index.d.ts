// Types of livestore-sync-rs/cf-worker: the signatures of @livestore/sync-cf/cf-worker 0.4.0,
// written without its Effect types (messages are the plain JSON shapes the hooks receive).
import type * as CfTypes from './cf-types.js'

export type { CfTypes }

/** A JSON value, as a client's `syncPayload`. */
export type JsonValue = string | number | boolean | null | readonly JsonValue[] | { readonly [key: string]: JsonValue }

/** An Effect `Option` in its encoded form. */
export type Option<A> = { readonly _tag: 'None' } | { readonly _tag: 'Some'; readonly value: A }

/** The bindings and vars of the Worker. */
export type Env = {}

/** Headers forwarded from the request to callbacks (names in lower case). */
export type ForwardedHeaders = ReadonlyMap<string, string>

/** Which request headers reach `onPush`/`onPull`: names (any case), or a function picking them. */
export type ForwardHeadersOption = readonly string[] | ((request: CfTypes.Request) => Record<string, string>)

export type StoreId = string
export type DurableObjectId = string

/** An event as pushed and stored. */
export type EventEncoded = {
  readonly name: string
  readonly args: any
  readonly seqNum: number
  readonly parentSeqNum: number
  readonly clientId: string
  readonly sessionId: string
}

/** The messages the hooks receive, by the names @livestore/sync-cf gives them. */
export declare namespace SyncMessage {
  type PushRequest = { readonly batch: readonly EventEncoded[] }
  type PushAck = {}
  type PullRequest = {
    readonly cursor: Option<{ readonly backendId: string; readonly eventSequenceNumber: number }>
    readonly live: boolean
  }
  type PullResponse = {
    readonly batch: readonly {
      readonly eventEncoded: EventEncoded
      readonly metadata: Option<{ readonly _tag: 'SyncMessage.SyncMetadata'; readonly createdAt: string }>
    }[]
    readonly pageInfo: { readonly _tag: 'MoreUnknown' } | { readonly _tag: 'MoreKnown'; readonly remaining: number } | { readonly _tag: 'NoMore' }
    readonly backendId: string
  }
}

/** A failure as the client receives it (`_tag` names its kind, e.g. `UnknownError`, `ServerAheadError`). */
export type SyncErrorMessage = { readonly _tag: string; readonly [key: string]: unknown }

/** What `onPush` and `onPull` get besides the message. */
export type CallbackContext = {
  storeId: StoreId
  payload?: JsonValue
  /** Headers forwarded from the request (only present if `forwardHeaders` is configured). */
  headers?: ForwardedHeaders
}

/** Our own settings, each the var of the same name in camelCase (see the README's settings table). Secrets are vars only. */
export type Settings = {
  allowAnonymous?: boolean
  jwtJwks?: string
  jwtAudience?: string
  jwtIssuer?: string
  jwtMaxLifetime?: number
  maxMessageBytes?: number
  maxStoreIdBytes?: number
  maxPushEvents?: number
  maxSocketsPerStore?: number
  maxPushesPerSecond?: number
  /** Event rules (docs/governance.md): names clients may push, comma-separated patterns, `!` to deny. */
  allowedEvents?: string
  maxArgsBytes?: number
  maxStoreEvents?: number
  maxStoreBytes?: number
  /** The store directory (docs/governance.md); `false` turns it off. */
  storeDirectory?: boolean
  /** Delete stores idle this long: `90d`, `12h`, `30m`, `45s`. */
  expireIdleStoresAfter?: string
  /** An R2 bucket binding's name: stores' new events are backed up to it. */
  backupBucket?: string
  /** `1h` by default. */
  backupInterval?: string
  electricHoldSeconds?: number
  logLevel?: 'off' | 'error' | 'warn' | 'info' | 'debug'
  /** The outbox (docs/outbox.md): every stored event delivered once more. `WEBHOOK_SECRET` is a secret, so a var only. */
  webhookUrl?: string
  /** Event-name patterns, comma-separated: `*` for any characters, `!` to exclude. */
  webhookEvents?: string
  webhookBatchSize?: number
  webhookMaxAttempts?: number
  webhookRetryBaseMs?: number
  webhookRetryMaxMs?: number
  webhookTimeoutMs?: number
  /** A Queue producer binding's name: one message per batch. */
  queueBinding?: string
  queueEvents?: string
  queueBatchSize?: number
  queueMaxAttempts?: number
  queueRetryBaseMs?: number
  queueRetryMaxMs?: number
}

export type MakeDurableObjectClassOptions = Settings & {
  /** Runs before a push is checked or stored; a throw refuses the push and nothing is stored. */
  onPush?: (message: SyncMessage.PushRequest, context: CallbackContext) => void | Promise<void>
  /** Observes each push's outcome once answered. */
  onPushRes?: (message: SyncMessage.PushAck | SyncErrorMessage) => void | Promise<void>
  /** Runs before a pull reads anything; a throw refuses the pull. */
  onPull?: (message: SyncMessage.PullRequest, context: CallbackContext) => void | Promise<void>
  /** Observes every page of events the store sends. */
  onPullRes?: (message: SyncMessage.PullResponse) => void | Promise<void>
  /** Request headers passed to `onPush`/`onPull`. */
  forwardHeaders?: ForwardHeadersOption
  /** Where events are stored: the object's SQLite (default) or a D1 database. */
  storage?: { _tag: 'do-sqlite' } | { _tag: 'd1'; binding: string }
  /** @default Set(['http', 'ws', 'do-rpc', 'electric']) */
  enabledTransports?: Set<'http' | 'ws' | 'do-rpc' | 'electric'>
  /** Headers added to every HTTP transport reply. */
  http?: { responseHeaders?: Record<string, string> }
  /** OTLP/HTTP trace export. */
  otel?: { baseUrl?: string; serviceName?: string }
}

/** Durable Object interface supporting the DO RPC protocol for DO <> DO syncing. */
export interface SyncBackendRpcInterface {
  __DURABLE_OBJECT_BRAND: never
  rpc(payload: Uint8Array): Promise<Uint8Array | CfTypes.ReadableStream>
}

export type DoState = CfTypes.DurableObjectState
export type DoObject<T> = CfTypes.DurableObject & T

export type MakeDurableObjectClass = (options?: MakeDurableObjectClassOptions) => {
  new (ctx: DoState, env: Env): DoObject<SyncBackendRpcInterface>
}

/** A Durable Object class serving one store per object (`export class SyncBackendDO extends makeDurableObject({ … }) {}`). */
export declare const makeDurableObject: MakeDurableObjectClass

export declare namespace HelperTypes {
  type AnyDON = CfTypes.DurableObjectNamespace<any>
  type DOKeys<T> = { [K in keyof T]-?: T[K] extends AnyDON ? K : never }[keyof T]
  /** The Durable Object bindings of an Env, or any string when it names none. */
  type ExtractDurableObjectKeys<TEnv> = DOKeys<TEnv> extends never ? string : DOKeys<TEnv> & string
}

export type CFWorker<TEnv extends Env = Env, _T extends CfTypes.Rpc.DurableObjectBranded | undefined = undefined> = {
  fetch: <CFHostMetada = unknown>(
    request: CfTypes.Request<CFHostMetada>,
    env: TEnv,
    ctx: CfTypes.ExecutionContext,
  ) => Promise<CfTypes.Response>
}

/** Context passed to validatePayload. */
export type ValidatePayloadContext = {
  storeId: string
  /** Request headers (all of them, names in lower case). */
  headers: ForwardedHeaders
}

export type MakeWorkerOptions<TEnv extends Env = Env, TSyncPayload = JsonValue> = Settings & {
  /** Binding name of the sync Durable Object declared in wrangler config. */
  syncBackendBinding: HelperTypes.ExtractDurableObjectKeys<TEnv>
  /** Runs for every sync request before it reaches the store; a throw refuses it with 400. */
  validatePayload?: (payload: TSyncPayload, context: ValidatePayloadContext) => void | Promise<void>
  /** @default false */
  enableCORS?: boolean
}

/** A Worker `fetch` handler that sends sync traffic to the store's Durable Object. */
export declare const makeWorker: <
  TEnv extends Env = Env,
  TDurableObjectRpc extends CfTypes.Rpc.DurableObjectBranded | undefined = undefined,
  TSyncPayload = JsonValue,
>(
  options: MakeWorkerOptions<TEnv, TSyncPayload>,
) => CFWorker<TEnv, TDurableObjectRpc>

/** A sync request's search parameters. */
export type SearchParams = {
  readonly storeId: string
  readonly payload: JsonValue | undefined
  readonly transport: 'http' | 'ws'
}

/** The sync parameters of a request, or `undefined` when it is no sync request. */
export declare const matchSyncRequest: (request: CfTypes.Request) => SearchParams | undefined

/** Handles one sync request (from a `fetch` of your own). */
export declare const handleSyncRequest: <
  TEnv extends Env = Env,
  TDurableObjectRpc extends CfTypes.Rpc.DurableObjectBranded | undefined = undefined,
  CFHostMetada = unknown,
  TSyncPayload = JsonValue,
>(args: {
  request: CfTypes.Request<CFHostMetada>
  searchParams: SearchParams
  env?: TEnv | undefined
  /** Only there for type-level reasons */
  ctx: CfTypes.ExecutionContext
  /** Binding name of the sync backend Durable Object */
  syncBackendBinding: MakeWorkerOptions<TEnv, TSyncPayload>['syncBackendBinding']
  headers?: CfTypes.HeadersInit | undefined
  validatePayload?: MakeWorkerOptions<TEnv, TSyncPayload>['validatePayload']
}) => Promise<CfTypes.Response>
