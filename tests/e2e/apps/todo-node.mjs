// A complete LiveStore app in one Node process: the todo schema, a store on
// @livestore/adapter-node (SQLite on disk) syncing through `makeWsSync`, `makeHttpSync` or
// sync-electric's `makeSyncBackend` (at `<syncUrl>/electric/<authToken>`). The test process drives
// it over IPC: `create` commits an event, `list` reads the materialized table, `shutdown` stops.
// When the store shuts itself down (e.g. on BackendIdMismatchError with LiveStore's default
// onBackendIdMismatch: 'reset'), the app reports `{ event: 'shutdown', cause }` and stays up.
//
//   node todo-node.mjs <syncUrl> <storeId> <clientId> <dataDir> <authToken> [ws|http|electric]
import WebSocket from 'ws'

globalThis.WebSocket ??= WebSocket

const { makeAdapter } = await import('@livestore/adapter-node')
const { createStorePromise, Events, makeSchema, Schema, State } = await import('@livestore/livestore')
const { makeHttpSync, makeWsSync } = await import('@livestore/sync-cf/client')
const { makeSyncBackend } = await import('@livestore/sync-electric')
const { Deferred, Effect, FiberId } = await import('@livestore/utils/effect')

const [url, storeId, clientId, baseDirectory, authToken, transport = 'ws'] = process.argv.slice(2)

if (transport === 'electric') {
  // Node 20's own fetch fails the client's POSTs once npm's undici 7 is loaded (by
  // @effect/platform-node); undici's fetch does not (shared/protocol/sync-electric-0.4.0.md §4.4).
  globalThis.fetch = (await import('undici')).fetch
}

const todos = State.SQLite.table({
  name: 'todos',
  columns: {
    id: State.SQLite.text({ primaryKey: true }),
    text: State.SQLite.text({ default: '' }),
    author: State.SQLite.text({ default: '' }),
  },
})

const events = {
  todoCreated: Events.synced({
    name: 'v1.TodoCreated',
    schema: Schema.Struct({ id: Schema.String, text: Schema.String, author: Schema.String }),
  }),
}

const materializers = State.SQLite.materializers(events, {
  'v1.TodoCreated': ({ id, text, author }) => todos.insert({ id, text, author }),
})

const schema = makeSchema({ events, state: State.SQLite.makeState({ tables: { todos }, materializers }) })

const adapter = makeAdapter({
  storage: { type: 'fs', baseDirectory },
  clientId,
  sync: {
    backend:
      transport === 'electric'
        ? makeSyncBackend({ endpoint: `${url}/electric/${encodeURIComponent(authToken)}` })
        : transport === 'http'
          ? makeHttpSync({ url, livePull: { pollInterval: 200 } })
          : makeWsSync({ url }),
  },
})

const shutdownDeferred = Deferred.unsafeMake(FiberId.none)
Effect.runPromise(Effect.exit(Deferred.await(shutdownDeferred))).then((exit) => {
  process.send({ event: 'shutdown', cause: JSON.stringify(exit) })
})

const store = await createStorePromise({
  shutdownDeferred,
  adapter,
  schema,
  storeId,
  syncPayload: { authToken },
  disableDevtools: true,
})

process.on('message', async (msg) => {
  try {
    if (msg.cmd === 'create') {
      store.commit(events.todoCreated({ id: msg.id, text: msg.text, author: clientId }))
      process.send({ reply: msg.seq })
    } else if (msg.cmd === 'list') {
      const rows = store.query(todos.orderBy('id', 'asc'))
      process.send({ reply: msg.seq, rows: rows.map((r) => ({ ...r })) })
    } else if (msg.cmd === 'shutdown') {
      await store.shutdownPromise()
      process.send({ reply: msg.seq })
      process.exit(0)
    }
  } catch (error) {
    process.send({ reply: msg.seq, error: String(error?.stack ?? error) })
  }
})

process.send({ ready: true })
