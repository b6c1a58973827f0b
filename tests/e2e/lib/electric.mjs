// The real sync-electric client, `makeSyncBackend` from @livestore/sync-electric@0.4.0,
// unmodified, driven through its SyncBackend interface the way LiveStore's leader drives it.
import undici from 'undici'

import { DEFAULT_TOKEN } from './worker.mjs'

// Under Node 20 with npm's undici 7 loaded (by @effect/platform-node), Node's own fetch sends
// POSTs that fail with "invalid content-length header" before they leave the process; undici's
// fetch does not. Browsers and Workers are unaffected (shared/protocol/sync-electric-0.4.0.md §4.4).
globalThis.fetch = undici.fetch

const { makeSyncBackend } = await import('@livestore/sync-electric')
const { Chunk, Effect, Exit, Fiber, FetchHttpClient, Layer, Option, Scope, Stream, SubscriptionRef } = await import(
  '@livestore/utils/effect'
)

export { Option }

const layer = Layer.mergeAll(FetchHttpClient.layer)

/** The endpoint for worker `w`, with `token` in its path (`null`: none). */
export const electricEndpoint = (w, token = DEFAULT_TOKEN) => `${w.url}/electric${token === null ? '' : `/${encodeURIComponent(token)}`}`

/**
 * A sync backend built with the real client for `storeId` at `endpoint`; `payload` is the app's
 * sync payload. Returns helpers running its effects as promises.
 */
export async function connectElectric({ endpoint, storeId, payload, clientId = 'electric-client' }) {
  const scope = Effect.runSync(Scope.make())
  const backend = await Effect.runPromise(
    makeSyncBackend({ endpoint, ping: { enabled: false } })({ storeId, clientId, payload }).pipe(
      Effect.provide(layer),
      Scope.extend(scope),
    ),
  )
  const run = (effect) => Effect.runPromise(effect.pipe(Effect.scoped, Effect.provide(layer)))
  const runExit = (effect) => Effect.runPromiseExit(effect.pipe(Effect.scoped, Effect.provide(layer)))
  return {
    backend,
    run,
    runExit,
    ping: () => run(backend.ping),
    isConnected: () => Effect.runPromise(SubscriptionRef.get(backend.isConnected)),
    /** Every page of a non-live pull from `cursor` (an Option of {eventSequenceNumber, metadata}). */
    pullPages: (cursor = Option.none()) =>
      run(backend.pull(cursor).pipe(Stream.runCollect, Effect.map(Chunk.toReadonlyArray))),
    /** The Exit of a whole non-live pull from `cursor`. */
    pullExit: (cursor = Option.none()) => runExit(backend.pull(cursor).pipe(Stream.runCollect)),
    push: (batch) => run(backend.push(batch)),
    pushExit: (batch) => runExit(backend.push(batch)),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void)),
  }
}

/** The cursor LiveStore derives from a page (its last event), for the next pull. */
export const cursorOf = (page) => {
  const last = page.batch.at(-1)
  return Option.some({ eventSequenceNumber: last.eventEncoded.seqNum, metadata: last.metadata })
}

/** Starts a live pull in the background; `items` fills as pages arrive, `stop()` interrupts it. */
export function electricLivePull(client, cursor = Option.none()) {
  const items = []
  let failure
  const fiber = Effect.runFork(
    client.backend.pull(cursor, { live: true }).pipe(
      Stream.runForEach((item) => Effect.sync(() => items.push(item))),
      Effect.catchAllCause((cause) => Effect.sync(() => (failure = cause))),
      Effect.provide(layer),
    ),
  )
  return {
    items,
    events: () => items.flatMap((i) => i.batch.map((b) => b.eventEncoded)),
    failure: () => failure,
    stop: () => Effect.runPromise(Fiber.interrupt(fiber)),
  }
}
