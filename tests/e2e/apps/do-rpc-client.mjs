// A client Worker whose Durable Object syncs through the real `makeDoRpcSync` from
// @livestore/sync-cf 0.4.0, the transport @livestore/adapter-cloudflare uses: it calls the sync
// Worker's `SyncBackendDO.rpc` through a Durable Object binding to another script, and the sync
// object calls back its `syncUpdateRpc` with new events.
//
// The test drives it over HTTP (this Worker is the primary of `wrangler dev`):
//   /client/<name>/start?store=S   open a live pull of store S (kept across evictions, see below)
//   /client/<name>/push?store=S    push the JSON body (an array of encoded events)
//   /client/<name>/pull?store=S    one non-live pull of everything: { pages }
//   /client/<name>/ping?store=S    SyncDoRpc.Ping
//   /client/<name>/state           { instance, events, updates, restarts }
//   /client/<name>/raw?store=S     the body as the argument of the sync object's rpc(), untouched;
//                                  { bytes } or { stream: [pieces] }, base64
//   /client/<name>/abort           ctx.abort(): the runtime drops this instance, as an eviction
//                                  does (an object that holds a makeDoRpcSync client is not
//                                  evicted by `wrangler dev` when idle, so tests cannot wait)
// Anything else goes to the sync Worker through a service binding (WebSockets included), so the
// test reaches both Workers on one port.
//
// `events` are what reached the live pull's stream, by seqNum; `updates` every `syncUpdateRpc`
// payload this object received, in order. When the object was evicted, its pull stream is gone
// ("No mailbox found" in the client library); an update then restarts the live pull, which
// catches up from the sync object's log, as an adapter must.
import { DurableObject } from 'cloudflare:workers'

import { handleSyncUpdateRpc, makeDoRpcSync } from '@livestore/sync-cf/client'
import { Effect, Exit, KeyValueStore, Option, Scope, Stream } from '@livestore/utils/effect'

const run = (effect) => Effect.runPromise(effect)

export class ClientDO extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env)
    this.instance = crypto.randomUUID()
    this.backends = new Map()
    this.liveStore = undefined
    console.log(JSON.stringify({ event: 'client_do_started', id: ctx.id.toString(), instance: this.instance }))
  }

  async backend(storeId) {
    let backend = this.backends.get(storeId)
    if (backend === undefined) {
      const ns = this.env.SYNC_BACKEND_DO
      const scope = await run(Scope.make())
      backend = await run(
        makeDoRpcSync({
          syncBackendStub: ns.get(ns.idFromName(storeId)),
          durableObjectContext: { bindingName: 'CLIENT_DO', durableObjectId: this.ctx.id.toString() },
        })({ storeId, clientId: `do-${this.ctx.id.toString().slice(0, 8)}`, payload: { authToken: 'unused' } }).pipe(
          Scope.extend(scope),
          Effect.provide(KeyValueStore.layerMemory),
        ),
      )
      this.backends.set(storeId, backend)
    }
    return backend
  }

  /** Starts the live pull (from the beginning; events are kept by seqNum, so repeats do no harm). */
  async startLive(storeId) {
    await this.ctx.storage.put('liveStore', storeId)
    this.liveStore = storeId
    const backend = await this.backend(storeId)
    let first
    const firstPage = new Promise((resolve) => (first = resolve))
    Effect.runFork(
      backend.pull(Option.none(), { live: true }).pipe(
        Stream.runForEach((res) =>
          Effect.promise(async () => {
            await this.record(res.batch.map((item) => item.eventEncoded))
            first()
          }),
        ),
        Effect.catchAllCause((cause) => Effect.sync(() => console.log(JSON.stringify({ event: 'client_live_failed', cause: String(cause) })))),
      ),
    )
    await firstPage
  }

  async record(events) {
    const stored = (await this.ctx.storage.get('events')) ?? {}
    for (const e of events) stored[e.seqNum] = e
    await this.ctx.storage.put('events', stored)
  }

  async syncUpdateRpc(payload) {
    const updates = (await this.ctx.storage.get('updates')) ?? []
    updates.push(payload)
    await this.ctx.storage.put('updates', updates)
    if (this.liveStore === undefined) {
      const storeId = await this.ctx.storage.get('liveStore')
      if (storeId !== undefined) {
        // Evicted since the live pull began: the pull stream died with the old instance.
        await this.ctx.storage.put('restarts', ((await this.ctx.storage.get('restarts')) ?? 0) + 1)
        await this.startLive(storeId)
      }
      return
    }
    await handleSyncUpdateRpc(payload)
  }

  async fetch(request) {
    const url = new URL(request.url)
    const action = url.pathname.split('/')[3]
    const storeId = url.searchParams.get('store')
    const json = (value) => Response.json(value)
    const exit = async (effect) => {
      const result = await Effect.runPromiseExit(effect)
      // Error objects keep their message out of JSON.stringify; spell it out.
      const plain = (_key, v) => (v instanceof Error ? { ...v, name: v.name, message: v.message } : v)
      return json(Exit.isSuccess(result) ? { ok: true, value: result.value ?? null } : { ok: false, error: JSON.parse(JSON.stringify(result.cause, plain)) })
    }
    switch (action) {
      case 'start':
        await this.startLive(storeId)
        return json({ ok: true, instance: this.instance })
      case 'push': {
        const backend = await this.backend(storeId)
        // The client needs a backendId for pushes after the first pull; pull once if it has none.
        return exit(backend.push(await request.json()))
      }
      case 'pull': {
        const backend = await this.backend(storeId)
        return exit(backend.pull(Option.none()).pipe(Stream.runCollect, Effect.map((c) => ({ pages: [...c] }))))
      }
      case 'ping': {
        const backend = await this.backend(storeId)
        return exit(backend.ping)
      }
      case 'raw': {
        const ns = this.env.SYNC_BACKEND_DO
        const reply = await ns.get(ns.idFromName(storeId)).rpc(new Uint8Array(await request.arrayBuffer()))
        const b64 = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
        if (!(reply instanceof ReadableStream)) return json({ bytes: b64(reply) })
        const pieces = []
        for await (const piece of reply) pieces.push(b64(piece))
        return json({ stream: pieces })
      }
      case 'abort':
        this.ctx.abort('evicted by the test')
        return json({ ok: true })
      case 'state':
        return json({
          instance: this.instance,
          live: this.liveStore !== undefined,
          events: Object.values((await this.ctx.storage.get('events')) ?? {}),
          updates: (await this.ctx.storage.get('updates')) ?? [],
          restarts: (await this.ctx.storage.get('restarts')) ?? 0,
        })
      default:
        return new Response('unknown action', { status: 404 })
    }
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url)
    if (url.pathname.startsWith('/client/')) {
      const name = url.pathname.split('/')[2]
      return env.CLIENT_DO.get(env.CLIENT_DO.idFromName(name)).fetch(request)
    }
    if (url.pathname === '/ready') return new Response('ok')
    return env.SYNC.fetch(request)
  },
}
