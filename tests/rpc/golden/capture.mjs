// Captures the bytes of the DO RPC transport from the reference itself: the real published client
// (`makeDoRpcSync` from @livestore/sync-cf 0.4.0) talks to the reference's own server-side handler
// (`toDurableObjectHandler` from @livestore/common-cf with the `SyncDoRpc` group), both using
// Effect's `RpcSerialization.msgPack` (msgpackr with `useRecords: true`). The stub between them
// records every request the client sends and every byte string the server answers with.
//
// The handlers return canned values (no storage), chosen to cover what the Rust codec must
// reproduce: records reused and redefined, every integer width msgpackr picks, floats, long and
// non-ASCII strings, `undefined`, empty objects, typed errors, and a stream of several chunks.
//
//   node tests/rpc/golden/capture.mjs      # rewrites tests/rpc/golden/*.bin and cases.json
//
// The Rust tests (tests/rpc_codec.rs) decode every file and encode it again byte for byte.
import { writeFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { BackendIdMismatchError, ServerAheadError, SyncBackend, UnknownError } from '@livestore/common'
import { toDurableObjectHandler } from '@livestore/common-cf'
import { makeDoRpcSync } from '@livestore/sync-cf/client'
import {
  Chunk,
  Effect,
  HttpServer,
  KeyValueStore,
  Layer,
  Option,
  RpcSerialization,
  Scope,
  Stream,
} from '@livestore/utils/effect'
// Not in the package's exports map, so by path.
import { SyncDoRpc } from '../../../node_modules/@livestore/sync-cf/dist/common/do-rpc-schema.js'

const here = dirname(fileURLToPath(import.meta.url))
const backendId = 'backend-golden-0001'
const createdAt = '2026-11-23T03:00:00.000Z'

// What the next call answers; set by each scenario.
let answer = {}

const event = (seqNum, args, extra = {}) => ({
  name: extra.name ?? 'todoCreated',
  args,
  seqNum,
  parentSeqNum: seqNum - 1,
  clientId: extra.clientId ?? 'client-A',
  sessionId: extra.sessionId ?? 'session-1',
})

const pullPage = (events, remaining, rpcRequestId) => ({
  rpcRequestId,
  batch: events.map((e) => ({
    eventEncoded: e,
    metadata: Option.some({ _tag: 'SyncMessage.SyncMetadata', createdAt }),
  })),
  pageInfo: remaining === 0 ? SyncBackend.pageInfoNoMore : SyncBackend.pageInfoMoreKnown(remaining),
  backendId,
})

const handlers = SyncDoRpc.toLayer({
  'SyncDoRpc.Ping': () => (answer.ping ? Effect.fail(answer.ping) : Effect.void),
  'SyncDoRpc.Push': () => (answer.push ? Effect.fail(answer.push) : Effect.succeed({})),
  'SyncDoRpc.Pull': (_req, { headers }) => {
    const id = headers['x-rpc-request-id']
    if (answer.pullError) return Stream.fail(answer.pullError)
    return Stream.fromIterable(answer.pages.map(([events, remaining]) => pullPage(events, remaining, id))).pipe(Stream.rechunk(1))
  },
})

const handler = toDurableObjectHandler(SyncDoRpc, {
  layer: Layer.mergeAll(handlers, RpcSerialization.layerJson, HttpServer.layerContext),
})

const captured = []
let current

const stub = {
  async rpc(payload) {
    current.request = Uint8Array.from(payload)
    const res = await Effect.runPromise(handler(payload))
    if (!(res instanceof ReadableStream)) {
      current.response = Uint8Array.from(res)
      return res
    }
    // Read the whole stream, keep each enqueued piece, then hand the client the same pieces.
    const pieces = []
    const reader = res.getReader()
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      pieces.push(Uint8Array.from(value))
    }
    current.stream = pieces
    return new ReadableStream({
      start(controller) {
        for (const p of pieces) controller.enqueue(p)
        controller.close()
      },
    })
  },
}

// The client lives in a scope that stays open until the end (its RPC client is scoped).
const scope = await Effect.runPromise(Scope.make())
const backend = await Effect.runPromise(
  makeDoRpcSync({
    syncBackendStub: stub,
    durableObjectContext: { bindingName: 'CLIENT_DO', durableObjectId: 'a'.repeat(64) },
  })({ storeId: 'store-golden', clientId: 'client-A', payload: { authToken: 'tok-golden' } }).pipe(
    Scope.extend(scope),
    Effect.provide(KeyValueStore.layerMemory),
  ),
)

const run = async (name, set, effect) => {
  answer = set
  current = { name }
  const exit = await Effect.runPromiseExit(effect)
  current.clientResult = JSON.parse(JSON.stringify(exit, (_k, v) => (typeof v === 'bigint' ? String(v) : v)))
  captured.push(current)
}

const collect = (stream) => stream.pipe(Stream.runCollect, Effect.map(Chunk.toReadonlyArray))

// Args that exercise the codec: every integer width msgpackr uses (fixint stops at 0x3f because
// 0x40-0x7f are record references), negatives, floats, integers past 32 bits (floats in msgpackr),
// strings across the fixstr/str8/str16 limits, non-ASCII, null, booleans, nested arrays, an
// empty object, and a key order that differs from another record with the same keys.
const richArgs = {
  id: 'todo-1',
  text: 'ünïcödé ✓ 🚀',
  n: [0, 1, 31, 32, 63, 64, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, 2 ** 53 - 1],
  neg: [-1, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649],
  f: [1.5, -0.25, 1e-7, 1e21, 123456.789],
  s31: 'x'.repeat(31),
  s32: 'y'.repeat(32),
  s255: 'z'.repeat(255),
  s256: 'w'.repeat(256),
  s70k: 'v'.repeat(70000),
  nothing: null,
  yes: true,
  no: false,
  empty: {},
  emptyArr: [],
  nested: { a: { b: { c: [1, { d: 'e' }] } } },
  same1: { p: 1, q: 2 },
  same2: { p: 3, q: 4 },
  swapped: { q: 5, p: 6 },
}

// More distinct object shapes than msgpackr's 64 record ids, so ids are recycled.
const manyShapes = Array.from({ length: 70 }, (_, i) => event(i + 1, { [`k${i}`]: i }))

await run('ping', {}, backend.ping)
await run('pull-empty', { pages: [[[], 0]] }, collect(backend.pull(Option.none())))
await run(
  'pull-pages',
  {
    pages: [
      [[event(1, { id: 'a' }), event(2, { id: 'b' })], 3],
      [[event(3, { id: 'c' }), event(4, { id: 'd' })], 1],
      [[event(5, { id: 'e' })], 0],
    ],
  },
  collect(backend.pull(Option.some({ eventSequenceNumber: 0 }))),
)
await run(
  'pull-live',
  { pages: [[[event(6, { id: 'f' })], 0]] },
  collect(backend.pull(Option.some({ eventSequenceNumber: 5 }), { live: true }).pipe(Stream.take(1))),
)
await run(
  'pull-mismatch',
  { pullError: new BackendIdMismatchError({ expected: backendId, received: 'backend-other' }) },
  collect(backend.pull(Option.some({ eventSequenceNumber: 5 }))),
)
await run('push', {}, backend.push([event(7, richArgs), event(8, { id: 'g' }, { name: 'todoCompleted' })]))
await run('push-many-shapes', {}, backend.push(manyShapes))
await run(
  'push-server-ahead',
  { push: new ServerAheadError({ minimumExpectedNum: 9, providedNum: 7 }) },
  backend.push([event(7, { id: 'x' })]),
)
await run(
  'push-mismatch',
  { push: new BackendIdMismatchError({ expected: backendId, received: 'backend-other' }) },
  backend.push([event(9, { id: 'y' })]),
)
await run(
  'push-unknown',
  { push: new UnknownError({ cause: 'storage failed', note: 'a note' }) },
  backend.push([event(9, { id: 'z' })]),
)

for (const f of readdirSync(here)) if (f.endsWith('.bin')) rmSync(join(here, f))
mkdirSync(here, { recursive: true })
const cases = []
for (const c of captured) {
  const files = { request: `${c.name}.request.bin` }
  writeFileSync(join(here, files.request), c.request)
  if (c.response) {
    files.response = `${c.name}.response.bin`
    writeFileSync(join(here, files.response), c.response)
  }
  if (c.stream) {
    files.stream = c.stream.map((_, i) => `${c.name}.stream.${i}.bin`)
    c.stream.forEach((p, i) => writeFileSync(join(here, files.stream[i]), p))
  }
  cases.push({ name: c.name, files, clientResult: c.clientResult })
}
writeFileSync(join(here, 'cases.json'), `${JSON.stringify(cases, null, 2)}\n`)
console.log(cases.map((c) => `${c.name}: ${JSON.stringify(c.files)} ${c.clientResult._tag}`).join('\n'))
