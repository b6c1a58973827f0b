// Two OS processes, each running a full LiveStore store (@livestore/adapter-node, SQLite on
// disk, the unmodified makeWsSync or makeHttpSync client), see each other's events through our
// worker.
import assert from 'node:assert/strict'
import { fork } from 'node:child_process'
import { once } from 'node:events'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { waitFor } from './lib/client.mjs'
import { DEFAULT_TOKEN, ROOT, startWorker, storeId, TMP } from './lib/worker.mjs'

let worker
before(async () => (worker = await startWorker({ label: 'livestore-node' })))
after(() => worker?.stop())

const apps = []
after(() => apps.forEach((a) => a.child.kill('SIGKILL')))

async function startApp(store, clientId, transport) {
  const dataDir = path.join(TMP, `${store}-${clientId}-data`)
  const child = fork(path.join(ROOT, 'tests/e2e/apps/todo-node.mjs'), [worker.url, store, clientId, dataDir, DEFAULT_TOKEN, transport], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  })
  let output = ''
  child.stdout.on('data', (d) => (output += d))
  child.stderr.on('data', (d) => (output += d))
  const [first] = await Promise.race([
    once(child, 'message'),
    once(child, 'exit').then(() => {
      throw new Error(`app ${clientId} exited:\n${output}`)
    }),
  ])
  assert.ok(first.ready)
  let seq = 0
  const pending = new Map()
  child.on('message', (reply) => {
    const waiter = pending.get(reply.reply)
    if (!waiter) return
    pending.delete(reply.reply)
    if (reply.error) waiter.reject(new Error(reply.error))
    else waiter.resolve(reply)
  })
  const call = (msg) =>
    new Promise((resolve, reject) => {
      const id = ++seq
      pending.set(id, { resolve, reject })
      child.send({ ...msg, seq: id })
    })
  const app = { child, call, output: () => output, list: async () => (await call({ cmd: 'list' })).rows }
  apps.push(app)
  return app
}

for (const transport of ['ws', 'http']) test(`two LiveStore processes converge on the same todos through the server (${transport})`, { timeout: 180_000 }, async () => {
  const store = storeId(`two-processes-${transport}`)
  const alice = await startApp(store, 'alice', transport)
  const bob = await startApp(store, 'bob', transport)

  for (let i = 0; i < 5; i++) await alice.call({ cmd: 'create', id: `a${i}`, text: `from alice ${i}` })
  for (let i = 0; i < 5; i++) await bob.call({ cmd: 'create', id: `b${i}`, text: `from bob ${i}` })

  const expected = [...Array(5).keys()]
    .map((i) => ({ id: `a${i}`, text: `from alice ${i}`, author: 'alice' }))
    .concat([...Array(5).keys()].map((i) => ({ id: `b${i}`, text: `from bob ${i}`, author: 'bob' })))
  for (const app of [alice, bob]) {
    await waitFor(async () => (await app.list()).length === 10, { timeout: 60_000, message: 'all ten todos in both apps' })
    assert.deepEqual(await app.list(), expected)
  }

  // Interleaved, concurrent commits from both sides still converge.
  await Promise.all([
    ...[...Array(10).keys()].map((i) => alice.call({ cmd: 'create', id: `c-alice-${i}`, text: 'concurrent' })),
    ...[...Array(10).keys()].map((i) => bob.call({ cmd: 'create', id: `c-bob-${i}`, text: 'concurrent' })),
  ])
  await waitFor(async () => (await alice.list()).length === 30 && (await bob.list()).length === 30, {
    timeout: 60_000,
    message: 'thirty todos in both apps',
  })
  assert.deepEqual(await alice.list(), await bob.list())

  for (const app of [alice, bob]) await app.call({ cmd: 'shutdown' })
})
