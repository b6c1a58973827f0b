// The Worker's entry module. scripts/build-worker puts it at build/index.js, in front of what
// worker-build generated (moved to build/wasm-worker.js).
//
// worker-build's Durable Object class does not extend `DurableObject` from "cloudflare:workers",
// and the runtime only lets other Workers call methods (JS RPC) on classes that do. This class
// does, and forwards everything to the Rust object: the fetch and WebSocket handlers unchanged,
// and `rpc`, the method `makeDoRpcSync` calls, whose Rust side answers bytes, or an array of
// byte strings for a stream, which becomes a ReadableStream with one enqueued piece each, as
// the reference answers.
import { DurableObject } from 'cloudflare:workers'

import worker, { SyncBackendDO as RustSyncBackendDO } from './wasm-worker.js'

export * from './wasm-worker.js'
export default worker

export class SyncBackendDO extends DurableObject {
  #inner

  // The Rust class's WebSocket handler: `webSocketMessageNow` (a frame served within the call
  // answers `undefined`, not a Promise) where the crate has it, else the async one. Looked up once.
  #onMessage

  constructor(ctx, env) {
    super(ctx, env)
    this.#inner = new RustSyncBackendDO(ctx, env)
    this.#onMessage = typeof this.#inner.webSocketMessageNow === 'function' ? 'webSocketMessageNow' : 'webSocketMessage'
  }

  fetch(request) {
    return this.#inner.fetch(request)
  }

  webSocketMessage(ws, message) {
    return this.#inner[this.#onMessage](ws, message)
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
