// What Cloudflare would bill, counted inside the runtime, for the benchmark's metered servers only
// (tests/bench/meter/ours.mjs and reference.mjs wrap each server's Worker and Durable Object class
// with it): SQLite rows read and written (the sum of `rowsRead` / `rowsWritten` of every cursor
// `ctx.storage.sql.exec` returned), Durable Object requests (fetches, RPC calls, WebSocket
// messages received, which Cloudflare bills at 20:1, alarms), Worker requests, and the time an
// object is awake: the union of the spans during which it has an event in flight, which is what
// Cloudflare bills as duration for an object that hibernates its WebSockets.
//
// The counters are module state: a Worker and its Durable Objects share one isolate in workerd.
// `GET /__meter` answers them and starts them again from zero. `constructed` lists the objects
// constructed, each by its name where the runtime has it, else by its id. The runtime's clock moves only with
// I/O (workerd's Spectre mitigation), so a span that does no I/O counts as 0 ms: awake time is a
// floor, the same floor for both servers.

let counters = fresh()
let cursors = []
let patched = false
const awake = new Map() // object id -> { inFlight, since }

function fresh() {
  return { workerRequests: 0, doFetches: 0, doRpcCalls: 0, wsMessages: 0, wsCloses: 0, alarms: 0, statements: 0, rowsRead: 0, rowsWritten: 0, awakeMs: 0, objects: 0, constructed: [] }
}

/** Counts every statement of every object from here on (SqlStorage's prototype is shared). */
function patchSql(sql) {
  if (patched) return
  patched = true
  const proto = Object.getPrototypeOf(sql)
  const exec = proto.exec
  proto.exec = function (query, ...bindings) {
    const cursor = exec.call(this, query, ...bindings)
    counters.statements++
    cursors.push([query, cursor])
    return cursor
  }
}

function snapshot() {
  // Per statement too (its first 120 characters), to tell which one reads or writes what.
  const bySql = {}
  for (const [query, cursor] of cursors) {
    counters.rowsRead += cursor.rowsRead
    counters.rowsWritten += cursor.rowsWritten
    const entry = (bySql[query.slice(0, 120)] ??= { runs: 0, rowsRead: 0, rowsWritten: 0 })
    entry.runs++
    entry.rowsRead += cursor.rowsRead
    entry.rowsWritten += cursor.rowsWritten
  }
  counters.bySql = bySql
  cursors = []
  const now = Date.now()
  // Objects busy right now count up to now, and on from now in the next snapshot.
  for (const state of awake.values()) {
    if (state.inFlight > 0) {
      counters.awakeMs += now - state.since
      state.since = now
    }
  }
  const out = counters
  counters = fresh()
  return out
}

/** Runs one event of an object, counting its span in the object's awake time. */
function during(id, run) {
  let state = awake.get(id)
  if (!state) awake.set(id, (state = { inFlight: 0, since: 0 }))
  if (state.inFlight++ === 0) state.since = Date.now()
  const done = () => {
    if (--state.inFlight === 0) counters.awakeMs += Date.now() - state.since
  }
  let result
  try {
    result = run()
  } catch (e) {
    done()
    throw e
  }
  if (result && typeof result.then === 'function') {
    return result.then(
      (v) => (done(), v),
      (e) => {
        done()
        throw e
      },
    )
  }
  done()
  return result
}

// The runtime's entry points of a Durable Object, and the counter each one bumps.
const HANDLERS = { fetch: 'doFetches', webSocketMessage: 'wsMessages', webSocketClose: 'wsCloses', webSocketError: 'wsCloses', alarm: 'alarms', rpc: 'doRpcCalls' }

/** The Durable Object class `Inner`, counted. */
export function meteredObject(Inner) {
  return class extends Inner {
    constructor(ctx, env) {
      patchSql(ctx.storage.sql)
      counters.objects++
      counters.constructed.push(ctx.id.name ?? ctx.id.toString())
      super(ctx, env)
      const id = ctx.id.toString()
      // Wrapped on the instance: the reference defines its handlers as instance fields, which
      // would hide methods of a subclass.
      for (const [name, counter] of Object.entries(HANDLERS)) {
        const inner = this[name]
        if (typeof inner !== 'function') continue
        Object.defineProperty(this, name, {
          value: (...args) => {
            counters[counter]++
            return during(id, () => inner.apply(this, args))
          },
        })
      }
    }
  }
}

const meterRequest = (request) => new URL(request.url).pathname === '/__meter'

/**
 * The Worker `worker`, counted, answering `GET /__meter`: an object with `fetch` (the reference's)
 * or a `WorkerEntrypoint` class (worker-build's).
 */
export function meteredWorker(worker) {
  if (typeof worker === 'function') {
    return class extends worker {
      fetch(request) {
        if (meterRequest(request)) return Response.json(snapshot())
        counters.workerRequests++
        return super.fetch(request)
      }
    }
  }
  return {
    ...worker,
    fetch(request, env, ctx) {
      if (meterRequest(request)) return Response.json(snapshot())
      counters.workerRequests++
      return worker.fetch(request, env, ctx)
    },
  }
}
