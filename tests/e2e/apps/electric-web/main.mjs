// A LiveStore web app as a user of @livestore/sync-electric writes one, with our endpoint as its
// `endpoint`: an in-memory store in the page (@livestore/adapter-web), a todo list rendered from
// it, and `window.app` for the test to commit through and read. The page's own origin is not the
// sync backend's, so every request is cross-origin (CORS, exposed headers).
import { makeInMemoryAdapter } from '@livestore/adapter-web'
import { createStorePromise, Events, makeSchema, Schema, State } from '@livestore/livestore'
import { makeSyncBackend } from '@livestore/sync-electric'

const params = new URLSearchParams(location.search)
const endpoint = params.get('endpoint')
const storeId = params.get('store')

const todos = State.SQLite.table({
  name: 'todos',
  columns: {
    id: State.SQLite.text({ primaryKey: true }),
    text: State.SQLite.text({ default: '' }),
  },
})
const events = {
  todoCreated: Events.synced({ name: 'v1.TodoCreated', schema: Schema.Struct({ id: Schema.String, text: Schema.String }) }),
}
const materializers = State.SQLite.materializers(events, {
  'v1.TodoCreated': ({ id, text }) => todos.insert({ id, text }),
})
const schema = makeSchema({ events, state: State.SQLite.makeState({ tables: { todos }, materializers }) })

const store = await createStorePromise({
  adapter: makeInMemoryAdapter({ sync: { backend: makeSyncBackend({ endpoint }) } }),
  schema,
  storeId,
  disableDevtools: true,
})

const list = document.getElementById('todos')
const render = (rows) => {
  list.replaceChildren(...rows.map((r) => Object.assign(document.createElement('li'), { textContent: `${r.id}: ${r.text}` })))
}
store.subscribe(todos.orderBy('id', 'asc'), render)

window.app = {
  ready: true,
  commit: (id, text) => store.commit(events.todoCreated({ id, text })),
  list: () => store.query(todos.orderBy('id', 'asc')).map((r) => ({ ...r })),
}
