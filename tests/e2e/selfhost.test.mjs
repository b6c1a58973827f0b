// ./scripts/selfhost as an operator runs it: workerd alone with selfhost/workerd.capnp, the token
// from the environment, a data directory of its own. Sync works over WebSocket and HTTP, and a
// restart on the same directory keeps the store. Runs in the workerd step of ./scripts/test.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdirSync, statSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'

import { OK, withSocket } from './lib/helpers.mjs'
import { postSync } from './lib/http.mjs'
import { makeEvents, pullAll, push, request } from './lib/raw.mjs'
import { DEFAULT_TOKEN, freePort, launch, ROOT, RUNTIME, storeId, TMP, withServer } from './lib/worker.mjs'

const script = path.join(ROOT, 'scripts/selfhost')
const skip = RUNTIME !== 'workerd' && 'runs with E2E_RUNTIME=workerd (the self-hosted step)'
// Only what the script needs, so no setting of this process leaks in.
const baseEnv = { PATH: process.env.PATH, HOME: process.env.HOME }

const serve = (dir, data, port) =>
  launch({
    name: 'scripts/selfhost',
    command: script,
    args: ['--no-build', '--port', String(port), '--data', data],
    env: { ...baseEnv, AUTH_TOKEN: DEFAULT_TOKEN },
    dir,
    port,
  })

const httpPull = async (server, store) => {
  const res = await postSync(server, store, request('SyncHttpRpc.Pull', { storeId: store, cursor: { _tag: 'None' } }))
  assert.equal(res.status, 200)
  const reply = JSON.parse(res.body)
  assert.equal(reply.at(-1).exit._tag, 'Success')
  return reply.filter((m) => m._tag === 'Chunk').flatMap((m) => m.values[0].batch.map((b) => b.eventEncoded))
}

test('serves WebSocket and HTTP from a private data directory, and keeps the store across a restart', { skip, timeout: 120_000 }, async () => {
  const dir = path.join(TMP, storeId('selfhost'))
  mkdirSync(dir, { recursive: true })
  const data = path.join(dir, 'data')
  const port = await freePort()
  const store = storeId('selfhosted')
  const events = makeEvents(3)

  await withServer(await serve(dir, data, port), async (server) => {
    assert.equal(statSync(data).mode & 0o777, 0o700, 'the new data directory is private')
    await withSocket(server, store, async (sock) => assert.deepEqual((await push(sock, store, events)).exit, OK))
    assert.deepEqual(await httpPull(server, store), events, 'HTTP sees what WebSocket pushed')
  })

  await withServer(await serve(dir, data, port), (server) =>
    withSocket(server, store, async (sock) => {
      const view = await pullAll(sock, store)
      const backendId = view.pages[0].backendId
      assert.deepEqual(view.events, events, 'the events survived the restart')
      const stale = await push(sock, store, makeEvents(1), backendId)
      assert.equal(stale.exit.cause.error.minimumExpectedNum, 3, 'and so did the head')
    }),
  )
})

test('refuses settings it cannot serve, saying why', { skip }, () => {
  const run = (args, env = {}) => spawnSync(script, ['--no-build', ...args], { env: { ...baseEnv, ...env }, encoding: 'utf8' })
  const d1 = run(['--data', path.join(TMP, 'never-created')], { AUTH_TOKEN: 't', STORAGE: 'd1' })
  assert.equal(d1.status, 1)
  assert.match(d1.stderr, /workerd alone has no D1/)
  const port = run(['--port', 'eighty'])
  assert.equal(port.status, 2)
  assert.match(port.stderr, /--port needs a number/)
})
