// livestore-sync-rs/cf-worker: the API of @livestore/sync-cf/cf-worker 0.4.0 over the Rust sync
// backend compiled to WASM (../wasm, built from src/package.rs).
//
// Everything the protocol decides happens in the WASM. This file only turns the options into
// JSON for it, the user's hooks into functions it can call with JSON text (parsed here into the
// shapes the reference passes), and hands requests, sockets and RPC calls through.
import { DurableObject, env as importedEnv } from 'cloudflare:workers'

import { SyncStoreObject, SyncWorker } from '../wasm/sync.js'

// Options of every makeDurableObject and makeWorker call in this module, as data. The store's
// objects and the Worker share them (our settings, like limits and logs, are read on both sides),
// each side's own options winning; both are read only on first use, once the module has run.
const declared = { store: {}, worker: {} }

const unsupported = (options, where) => {
  if (options?.syncPayloadSchema !== undefined) {
    throw new Error(
      `livestore-sync-rs: ${where}({ syncPayloadSchema }) is not supported (the package does not depend on effect); decode the payload in validatePayload instead`,
    )
  }
}

/** The options as JSON: functions dropped, sets as lists. */
const optionsJson = (options) =>
  JSON.stringify(options ?? {}, (key, value) => {
    if (value instanceof Set) return [...value]
    if (key === 'syncPayloadSchema') return undefined
    return value
  })

const dataOf = (options) => JSON.parse(optionsJson(options))

const messageOf = (error) => {
  if (error instanceof Error) return error.message
  if (typeof error === 'string') return error
  try {
    return JSON.stringify(error) ?? String(error)
  } catch {
    return String(error)
  }
}

const EffectTypeId = Symbol.for('effect/Effect')

/** Runs a user hook; a throw or a rejection reaches the WASM as a rejection with the message. */
const run = async (hook, args) => {
  try {
    const result = hook(...args)
    if (result !== null && typeof result === 'object' && EffectTypeId in result) {
      throw new Error('the hook returned an Effect, which livestore-sync-rs cannot run: return a Promise (or nothing)')
    }
    await result
  } catch (error) {
    throw messageOf(error)
  }
}

const parseOptional = (json) => (json === undefined ? undefined : JSON.parse(json))

/** What onPush and onPull get as their second argument, as the reference builds it. */
const callbackContext = (storeId, payloadJson, headersJson) => ({
  storeId,
  payload: parseOptional(payloadJson),
  headers: headersJson === undefined ? undefined : new Map(JSON.parse(headersJson)),
})

const storeHooks = (options) => ({
  onPush:
    options.onPush &&
    ((batchJson, storeId, payloadJson, headersJson) =>
      run(options.onPush, [{ batch: JSON.parse(batchJson) }, callbackContext(storeId, payloadJson, headersJson)])),
  onPull:
    options.onPull &&
    ((cursorJson, live, storeId, payloadJson, headersJson) =>
      run(options.onPull, [
        { cursor: cursorJson === undefined ? { _tag: 'None' } : { _tag: 'Some', value: JSON.parse(cursorJson) }, live },
        callbackContext(storeId, payloadJson, headersJson),
      ])),
  onPushRes: options.onPushRes && ((errorJson) => run(options.onPushRes, [errorJson === undefined ? {} : JSON.parse(errorJson)])),
  onPullRes:
    options.onPullRes &&
    ((pageJson) => {
      run(options.onPullRes, [JSON.parse(pageJson)]).catch((message) => console.error('onPullRes failed:', message))
    }),
})

/** All request headers, names in lower case: what validatePayload gets as `headers`. */
const requestHeaders = (request) => {
  const headers = new Map()
  request.headers.forEach((value, name) => headers.set(name.toLowerCase(), value))
  return headers
}

const workerHooks = (validatePayload, request) => ({
  validatePayload:
    validatePayload &&
    ((payloadJson, storeId) => run(validatePayload, [parseOptional(payloadJson), { storeId, headers: requestHeaders(request) }])),
})

/**
 * A Durable Object class serving one store per object, as `@livestore/sync-cf`'s
 * `makeDurableObject`: WebSocket, HTTP and Durable Object RPC, with the same options and hooks.
 */
export const makeDurableObject = (options = {}) => {
  unsupported(options, 'makeDurableObject')
  const own = dataOf(options)
  SyncStoreObject.checkOptions(JSON.stringify(own))
  Object.assign(declared.store, own)
  const hooks = storeHooks(options)
  const forward =
    typeof options.forwardHeaders === 'function' ? (request) => Object.entries(options.forwardHeaders(request) ?? {}) : undefined
  let json
  return class SyncBackendDO extends DurableObject {
    #inner

    constructor(ctx, env) {
      super(ctx, env)
      json ??= JSON.stringify({ ...declared.worker, ...own })
      this.#inner = new SyncStoreObject(ctx, env, json, hooks, forward)
    }

    fetch(request) {
      return this.#inner.fetch(request)
    }

    webSocketMessage(ws, message) {
      return this.#inner.webSocketMessage(ws, message)
    }

    webSocketClose(ws, code, reason, wasClean) {
      return this.#inner.webSocketClose(ws, code, reason, wasClean)
    }

    webSocketError(ws, error) {
      return this.#inner.webSocketError(ws, error)
    }


    alarm() {

      return this.#inner.alarm()

    }

    /** `makeDoRpcSync`'s call: a stream reply becomes a ReadableStream, as the reference answers. */
    async rpc(payload) {
      const bytes = payload instanceof Uint8Array ? payload : new Uint8Array(payload)
      const reply = await this.#inner.rpc(bytes)
      if (!Array.isArray(reply)) return reply
      return new ReadableStream({
        start(controller) {
          for (const piece of reply) controller.enqueue(piece)
          controller.close()
        },
      })
    }
  }
}

const workers = new Map()

/**
 * The Worker side for a binding (undefined: the declared options' own), made on first use, once
 * the module has run, and kept: its configuration is read once per isolate, and no request pays
 * for building it again.
 */
const workerFor = (syncBackendBinding) => {
  let worker = workers.get(syncBackendBinding)
  if (worker === undefined) {
    const binding = syncBackendBinding === undefined ? {} : { syncBackendBinding }
    worker = new SyncWorker(JSON.stringify({ ...declared.store, ...declared.worker, ...binding }))
    workers.set(syncBackendBinding, worker)
  }
  return worker
}

/**
 * A Worker `fetch` handler, as `@livestore/sync-cf`'s `makeWorker`: sync requests go to the
 * store's Durable Object (after `validatePayload`), CORS preflights are answered when
 * `enableCORS`, `GET /` is the info text, anything else is `400 Invalid path`.
 */
export const makeWorker = (options = {}) => {
  unsupported(options, 'makeWorker')
  const own = dataOf(options)
  // Throws now on options that cannot be read, rather than on the first request. (No instance
  // is made and freed for it: freeing one through worker-build's proxy leaves its finalizer
  // registered, which frees the memory again once collected, under whatever lives there then.)
  SyncStoreObject.checkOptions(JSON.stringify(own))
  Object.assign(declared.worker, own)
  return {
    fetch: (request, env, ctx) => workerFor(undefined).fetch(request, env, ctx, workerHooks(options.validatePayload, request)),
  }
}

/**
 * The sync parameters of a request (`{ storeId, payload, transport }`), or `undefined` when it
 * is not a sync request, as `@livestore/sync-cf`'s `matchSyncRequest`.
 */
export const matchSyncRequest = (request) => parseOptional(SyncWorker.matchSyncRequest(request.url))

const noContext = { waitUntil: () => {}, passThroughOnException: () => {} }

/**
 * Handles one sync request as `@livestore/sync-cf`'s `handleSyncRequest`: `validatePayload`,
 * then the store's Durable Object on `syncBackendBinding`; `headers` go on the answers the Worker
 * gives itself (refusals).
 */
export const handleSyncRequest = async ({ request, searchParams, env, ctx, syncBackendBinding, headers, validatePayload, syncPayloadSchema }) => {
  unsupported({ syncPayloadSchema }, 'handleSyncRequest')
  const worker = workerFor(syncBackendBinding)
  const extra = headers === undefined ? undefined : JSON.stringify(Object.fromEntries(new Headers(headers)))
  return worker.handleSyncRequest(
    request,
    env ?? importedEnv,
    ctx ?? noContext,
    JSON.stringify(searchParams),
    extra,
    workerHooks(validatePayload, request),
  )
}
