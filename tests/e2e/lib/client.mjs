// The real LiveStore client, `makeWsSync` from @livestore/sync-cf@0.4.0, unmodified, driven
// through its SyncBackend interface the way LiveStore's leader thread drives it.
import WebSocket from 'ws'

import { waitFor } from './helpers.mjs'
import { DEFAULT_TOKEN } from './worker.mjs'

// Node 20 has no global WebSocket without a flag; the client looks it up on globalThis.
globalThis.WebSocket ??= WebSocket

const { makeHttpSync, makeWsSync } = await import('@livestore/sync-cf/client')
const { Effect, Exit, FetchHttpClient, KeyValueStore, Layer, Option, Scope, Stream, Chunk, Fiber } = await import(
  '@livestore/utils/effect'
)

export { Chunk, Effect, Exit, Fiber, Option, Stream }

const layer = Layer.mergeAll(KeyValueStore.layerMemory, FetchHttpClient.layer)

/** The client constructor for a transport; HTTP polls every 200 ms, as in the upstream tests. */
/**
 * The real client for `transport`. Over HTTP the live pull polls every 200 ms, as the upstream
 * tests set it; `clientDefaults` keeps the client's own options instead (a 5 s poll).
 */
export const makeClient = (transport, url, { clientDefaults = false } = {}) =>
  transport === 'http' ? makeHttpSync(clientDefaults ? { url } : { url, livePull: { pollInterval: 200 } }) : makeWsSync({ url })

/**
 * Builds a sync backend with the real client (`transport`: 'ws' or 'http'). Returns helpers that
 * run its effects as promises: { backend, run(effect), runExit(effect), pullPages(cursor),
 * push(batch), close() }.
 */
export async function connectClient({ url, storeId, payload = { authToken: DEFAULT_TOKEN }, clientId = 'test-client', transport = 'ws', clientDefaults = false }) {
  const scope = Effect.runSync(Scope.make())
  const backend = await Effect.runPromise(
    makeClient(transport, url, { clientDefaults })({ storeId, clientId, payload }).pipe(Effect.provide(layer), Scope.extend(scope)),
  )
  const run = (effect) => Effect.runPromise(effect.pipe(Effect.scoped, Effect.provide(layer)))
  const runExit = (effect) => Effect.runPromiseExit(effect.pipe(Effect.scoped, Effect.provide(layer)))
  return {
    storeId,
    transport,
    backend,
    run,
    runExit,
    /** Every page of a non-live pull from `cursor` (an Option of {eventSequenceNumber, metadata}). */
    pullPages: (cursor = Option.none()) =>
      run(backend.pull(cursor).pipe(Stream.runCollect, Effect.map(Chunk.toReadonlyArray))),
    push: (batch) => run(backend.push(batch)),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void)),
  }
}

/**
 * Pushes `batch` with the real client `c` until the push fails with BackendIdMismatchError (the
 * client may first have to notice that its server went away and reconnect); returns that Exit.
 */
export async function pushUntilBackendIdMismatch(c, batch, { timeout = 60_000, message = 'the client to get BackendIdMismatchError' } = {}) {
  let exit
  await waitFor(
    async () => {
      exit = await c.runExit(c.backend.push(batch))
      return exit._tag === 'Failure' && exit.cause.error?._tag === 'BackendIdMismatchError'
    },
    { timeout, interval: 500, message },
  )
  return exit
}

/** The cursor LiveStore derives from a pull result (its last event). */
export const cursorFrom = (page) => {
  const last = page.batch.at(-1)
  return Option.some({ eventSequenceNumber: last.eventEncoded.seqNum, metadata: last.metadata })
}

/** Starts a live pull in the background; `items` fills as pages arrive, `stop()` interrupts it. */
export function livePull(client, cursor = Option.none()) {
  const items = []
  const fiber = Effect.runFork(
    client.backend.pull(cursor, { live: true }).pipe(
      Stream.runForEach((item) => Effect.sync(() => items.push(item))),
      Effect.provide(layer),
    ),
  )
  return {
    items,
    events: () => items.flatMap((i) => i.batch.map((b) => b.eventEncoded)),
    fiber,
    stop: () => Effect.runPromise(Fiber.interrupt(fiber)),
    /** The fiber's exit if it ended (it should not, for a live pull). */
    poll: () => Effect.runSync(Fiber.poll(fiber)),
    /**
     * Resolves once everything the server had sent this live pull has been received, so a check
     * that nothing more (a duplicate) arrived needs no pause: over WebSocket after a ping's
     * answer, which the server sends on the same socket after them; over HTTP once the client
     * has polled again (every poll adds a page, empty or not).
     */
    fence: async ({ timeout = 10_000 } = {}) => {
      if (client.transport !== 'http') return client.run(client.backend.ping)
      const seen = items.length
      await waitFor(() => items.length > seen, { timeout, interval: 20, message: 'the next poll of the HTTP live pull' })
    },
  }
}
