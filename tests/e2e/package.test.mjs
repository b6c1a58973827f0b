// The npm package livestore-sync-rs, as a TypeScript user of @livestore/sync-cf meets it: packed
// by ./scripts/package, installed from the tarball into an empty folder with npm and no Rust
// toolchain on the PATH, beside the reference documentation's wrangler.toml and worker.ts with
// the import changed (tests/e2e/apps/package). Its types check with tsc, `wrangler deploy
// --dry-run` bundles it, and under `wrangler dev` the real clients sync through it, with the
// hooks' effects observed: a refused push is not stored, a refused store cannot connect.
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import { connectClient, livePull } from './lib/client.mjs'
import { OK, waitFor } from './lib/helpers.mjs'
import { postSync, rawHttp, UPGRADE_HEADERS } from './lib/http.mjs'
import { makeEvents, request } from './lib/raw.mjs'
import { DEFAULT_TOKEN, engineOnly, freePort, launch, ROOT, startWorker, storeId, syncQuery, TMP, wranglerOnly } from './lib/worker.mjs'

const skip = wranglerOnly('the package runs under the user\'s wrangler dev') || engineOnly(['do-sqlite'], 'the package is checked once, on the default engine')

// The user's machine: Node and npm, no cargo (its directory is taken off the PATH).
const cargoDir = path.join(process.env.CARGO_HOME ?? path.join(process.env.HOME ?? '/root', '.cargo'), 'bin')
const userPath = (process.env.PATH ?? '').split(':').filter((dir) => dir !== cargoDir && !existsSync(path.join(dir, 'cargo'))).join(':')
const userEnv = () => ({ ...process.env, PATH: userPath, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1', CI: '1' })
const inApp = (app, command, args) => spawnSync(command, args, { cwd: app, env: userEnv(), encoding: 'utf8', timeout: 300_000 })

const rootDevDependency = (name) => JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).devDependencies[name]

let app
let tarball
before(async () => {
  if (skip) return
  // The package from this tree (built if its inputs changed); its last line is the tarball.
  tarball = execFileSync(path.join(ROOT, 'scripts/package'), { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').at(-1)
  app = path.join(TMP, `package-app-${process.pid}`)
  mkdirSync(app, { recursive: true })
  cpSync(path.join(ROOT, 'tests/e2e/apps/package'), app, { recursive: true })
  writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'livestore-app', private: true, type: 'module' }, null, 2))
  // What a user installs: the package, wrangler, and for the types TypeScript and the Workers
  // types (the versions this repository pins, so npm's cache has them).
  const installed = inApp(app, 'npm', [
    'install', '--no-audit', '--no-fund', '--prefer-offline',
    tarball,
    `wrangler@${rootDevDependency('wrangler')}`,
    `typescript@${rootDevDependency('typescript')}`,
    `@cloudflare/workers-types@${rootDevDependency('@cloudflare/workers-types')}`,
  ])
  assert.equal(installed.status, 0, `npm install failed:\n${installed.stdout}\n${installed.stderr}`)
})

/** `wrangler dev` of the app folder, the user's own wrangler, on `config`. */
async function startApp(config, { persistTo, label, readyStatus = 200 } = {}) {
  const dir = path.join(TMP, `${label}-${process.pid}-${Date.now().toString(36)}`)
  mkdirSync(dir, { recursive: true })
  const port = await freePort()
  const args = [
    path.join(app, 'node_modules/wrangler/bin/wrangler.js'), 'dev', '-c', path.join(app, config),
    '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(await freePort()),
    '--persist-to', persistTo ?? path.join(dir, 'state'), '--show-interactive-dev-session=false', '--log-level', 'log',
  ]
  return launch({ name: `${label} (wrangler dev)`, command: process.execPath, args, env: userEnv(), dir, port, readyStatus })
}

const wranglerConfigFor = (main, name = 'livestore-sync') => {
  const file = `wrangler.${path.basename(main, '.ts')}.toml`
  const text = readFileSync(path.join(app, 'wrangler.toml'), 'utf8').replace(/^main = .*$/m, `main = ${JSON.stringify(main)}`).replace(/^name = .*$/m, `name = ${JSON.stringify(name)}`)
  writeFileSync(path.join(app, file), text)
  return file
}

describe('installed as a user installs it', { skip }, () => {
  test('no Rust toolchain, no install script, the WASM inside', () => {
    for (const tool of ['cargo', 'rustc']) assert.notEqual(inApp(app, 'sh', ['-c', `command -v ${tool}`]).status, 0, `${tool} is not on the user's PATH`)
    const manifest = JSON.parse(readFileSync(path.join(app, 'node_modules/livestore-sync-rs/package.json'), 'utf8'))
    assert.equal(manifest.scripts, undefined, 'the package has no scripts, so none runs on install')
    assert.deepEqual(manifest.dependencies, undefined, 'it depends on nothing at run time')
    assert.ok(readdirSync(path.join(app, 'node_modules/livestore-sync-rs/wasm')).includes('index_bg.wasm'))
  })

  test('the examples type-check against @cloudflare/workers-types', () => {
    const tsc = inApp(app, process.execPath, [path.join(app, 'node_modules/typescript/bin/tsc'), '--noEmit', '-p', '.'])
    assert.equal(tsc.status, 0, `tsc:\n${tsc.stdout}\n${tsc.stderr}`)
  })

  test('`wrangler deploy --dry-run` bundles the worker with its WASM', () => {
    const out = path.join(app, 'dist')
    const deploy = inApp(app, process.execPath, [path.join(app, 'node_modules/wrangler/bin/wrangler.js'), 'deploy', '--dry-run', '--outdir', out])
    assert.equal(deploy.status, 0, `wrangler deploy --dry-run:\n${deploy.stdout}\n${deploy.stderr}`)
    assert.ok(readdirSync(out).some((f) => f.endsWith('.wasm')), `the bundle holds the WASM: ${readdirSync(out)}`)
  })
})

describe('makeDurableObject with hooks, makeWorker with validatePayload (the docs\' worker.ts)', { skip }, () => {
  let w
  const clients = []
  before(async () => (w = await startApp('wrangler.toml', { label: 'package-hooks' })))
  after(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => {})))
    await w?.stop()
  })
  const client = async (label, transport, opts = {}) => {
    const c = await connectClient({ url: w.url, storeId: storeId(`pkg-${transport}-${label}`), transport, ...opts })
    clients.push(c)
    return c
  }

  for (const transport of ['ws', 'http']) {
    test(`${transport}: the real client syncs; onPush refuses a forbidden event, which is neither stored nor sent`, async () => {
      const c = await client('hooks', transport)
      const watcher = await client('watcher', 'ws', { storeId: c.storeId })
      const live = livePull(watcher)
      await waitFor(() => live.items.length > 0)
      const ok = makeEvents(2, { clientId: 'test-client' })
      await c.push(ok)
      const forbidden = makeEvents(1, { start: 3, parent: 2, clientId: 'test-client' }).map((e) => ({ ...e, name: 'v1.Forbidden' }))
      const exit = await c.runExit(c.backend.push(forbidden))
      assert.equal(exit._tag, 'Failure')
      assert.equal(exit.cause.error._tag, 'UnknownError')
      assert.match(exit.cause.error.cause.message, /v1\.Forbidden events are not accepted/)
      const next = makeEvents(1, { start: 3, parent: 2, clientId: 'test-client' })
      await c.push(next)
      const pulled = (await c.pullPages()).flatMap((p) => p.batch.map((b) => b.eventEncoded))
      assert.deepEqual(pulled, [...ok, ...next])
      await waitFor(() => live.events().length === 3)
      assert.deepEqual(live.events(), [...ok, ...next], 'the refused batch was never broadcast')
      await live.stop()
      // onPull ran (it logs), and the hooks saw the store.
      await waitFor(() => w.logs().includes(`Pull from store ${c.storeId}`))
      assert.ok(w.logs().includes(`Push to store ${c.storeId}:`))
    })
  }

  test('HTTP pushes reach onPush with the client\'s payload (the reference passes none)', async () => {
    const reader = await client('reader', 'http', { payload: { authToken: DEFAULT_TOKEN, role: 'reader' } })
    const exit = await reader.runExit(reader.backend.push(makeEvents(1, { clientId: 'test-client' })))
    assert.equal(exit._tag, 'Failure')
    assert.match(exit.cause.error.cause.message, new RegExp(`readers may not push to ${reader.storeId}`))
    const writer = await client('writer', 'http', { storeId: reader.storeId, payload: { authToken: DEFAULT_TOKEN, role: 'writer' } })
    await writer.push(makeEvents(1, { clientId: 'test-client' }))
    assert.equal((await writer.pullPages()).flatMap((p) => p.batch).length, 1)
  })

  test('validatePayload: a wrong token and a closed store are refused with the reference\'s 400, before the store', async () => {
    const open = storeId('pkg-open')
    const wrong = await rawHttp(`${w.url}/?${syncQuery(open, { payload: { authToken: 'nope' } })}`, { headers: UPGRADE_HEADERS })
    assert.equal(wrong.status, 400)
    assert.equal(wrong.body, 'UnknownError: { "cause": Error: Invalid auth token, "note": undefined, "payload": undefined }')
    const closed = `closed-${storeId('pkg')}`
    const refused = await postSync(w, closed, request('SyncHttpRpc.Ping', { storeId: closed }))
    assert.equal(refused.status, 400)
    assert.match(refused.body, new RegExp(`store ${closed} is closed`))
    const c = await client('after-refusals', 'ws')
    await c.push(makeEvents(1, { clientId: 'test-client' }))
  })

  test('enableCORS answers preflights; otel from the options exports spans (to the docs\' unreachable collector, and nothing fails)', async () => {
    const preflight = await rawHttp(`${w.url}/?${syncQuery(storeId('cors'), { transport: 'http' })}`, {
      method: 'OPTIONS',
      headers: { Origin: 'http://app.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
    })
    assert.equal(preflight.status, 204)
    assert.equal(preflight.headers['access-control-allow-origin'], '*')
    // Every request above succeeded although the docs' otel.example.com does not resolve here.
    await waitFor(() => w.logLines().some((l) => l.event === 'span_export_failed' && l.url === 'https://otel.example.com/v1/traces'))
  })

  test('no request above trapped in the WASM', () => {
    assert.ok(!/RuntimeError/.test(w.logs()), w.logs().split('\n').filter((l) => l.includes('RuntimeError')).join('\n'))
  })
})

describe('a fetch of one\'s own with matchSyncRequest and handleSyncRequest (the docs\' example)', { skip }, () => {
  let w
  before(async () => (w = await startApp(wranglerConfigFor('./src/custom-fetch.ts', 'livestore-custom'), { label: 'package-custom', readyStatus: 404 })))
  after(() => w?.stop())

  test('other routes are the app\'s: 404', async () => {
    const res = await rawHttp(`${w.url}/anything`)
    assert.equal(res.status, 404)
    assert.equal(res.body, 'Not found')
  })

  test('the real clients sync through handleSyncRequest', async () => {
    for (const transport of ['ws', 'http']) {
      const c = await connectClient({ url: w.url, storeId: storeId(`custom-${transport}`), transport })
      try {
        const events = makeEvents(3, { clientId: 'test-client' })
        await c.push(events)
        assert.deepEqual((await c.pullPages()).flatMap((p) => p.batch.map((b) => b.eventEncoded)), events)
      } finally {
        await c.close()
      }
    }
  })

  test('validatePayload refuses without a token, with the `headers` given', async () => {
    const store = storeId('custom-no-token')
    const res = await rawHttp(`${w.url}/?${syncQuery(store, { payload: { nothing: true } })}`, { headers: UPGRADE_HEADERS })
    assert.equal(res.status, 400)
    assert.match(res.body, /Missing auth token/)
    assert.equal(res.headers['x-custom'], 'header')
  })

  test('forwardHeaders as a function reaches onPush: a blocked user\'s push is refused and not stored', async () => {
    const store = storeId('custom-forward')
    const pushOne = (headers) => postSync(w, store, request('SyncHttpRpc.Push', { storeId: store, batch: makeEvents(1), backendId: { _tag: 'None' } }), { headers })
    const blocked = await pushOne({ 'x-user-id': 'blocked' })
    assert.equal(blocked.status, 200)
    const exit = JSON.parse(blocked.body)[0].exit
    assert.equal(exit._tag, 'Failure')
    assert.match(JSON.stringify(exit), /user blocked/)
    const allowed = await pushOne({ 'x-user-id': 'someone' })
    assert.deepEqual(JSON.parse(allowed.body)[0].exit, OK)
  })
})

describe('storage in D1, HTTP response headers, the observing hooks, our settings as options', { skip }, () => {
  let w
  let state
  before(async () => {
    state = path.join(TMP, `package-d1-${process.pid}`)
    w = await startApp('wrangler.d1.toml', { label: 'package-d1', persistTo: state })
  })
  after(() => w?.stop())

  test('events land in the D1 binding the options name; replies carry the headers; onPushRes and onPullRes see each push and page', async () => {
    const store = storeId('pkg-d1')
    const c = await connectClient({ url: w.url, storeId: store, transport: 'http' })
    try {
      const events = makeEvents(3, { clientId: 'test-client' })
      await c.push(events)
      const stale = await c.runExit(c.backend.push(makeEvents(1, { start: 9, parent: 8, clientId: 'test-client' })))
      assert.equal(stale.cause.error._tag, 'ServerAheadError')
      assert.deepEqual((await c.pullPages()).flatMap((p) => p.batch.map((b) => b.eventEncoded)), events)
    } finally {
      await c.close()
    }
    const ping = await postSync(w, store, request('SyncHttpRpc.Ping', { storeId: store }))
    assert.equal(ping.headers['x-from-options'], 'yes')
    await waitFor(() => w.logs().includes('onPullRes 3 events'))
    const results = w.logs().split('\n').filter((l) => l.startsWith('onPushRes')).map((l) => l.trim())
    assert.deepEqual(results, ['onPushRes ack', 'onPushRes ServerAheadError'])
    // logLevel: 'warn' from the options: no info lines (pushes, pulls), though they happened.
    assert.deepEqual(w.logLines().filter((l) => l.level === 'info'), [])
    const table = `eventlog_7_${store.replace(/[^A-Za-z0-9]/g, '_')}`
    const query = inApp(app, process.execPath, [
      path.join(app, 'node_modules/wrangler/bin/wrangler.js'), 'd1', 'execute', 'EVENTS', '--local', '--persist-to', state,
      '-c', path.join(app, 'wrangler.d1.toml'), '--json', '--command', `SELECT COUNT(*) AS n FROM "${table}"`,
    ])
    assert.equal(query.status, 0, query.stderr)
    assert.equal(JSON.parse(query.stdout)[0].results[0].n, 3)
  })
})

describe('a store written by @livestore/sync-cf is served by the package, and back', { skip }, () => {
  test('same class name, same state: the reference writes, the package reads and writes, the reference reads it all', async () => {
    const state = path.join(TMP, `package-shared-${process.pid}`)
    const store = storeId('pkg-handover')
    const first = makeEvents(3, { clientId: 'test-client' })
    const second = makeEvents(2, { start: 4, parent: 3, clientId: 'test-client' })
    const roundTrip = async (url, push) => {
      const c = await connectClient({ url, storeId: store, transport: 'ws' })
      try {
        if (push) await c.push(push)
        return (await c.pullPages()).flatMap((p) => p.batch.map((b) => b.eventEncoded))
      } finally {
        await c.close()
      }
    }
    const reference = await startWorker({ reference: true, persistTo: state, label: 'pkg-reference' })
    try {
      assert.deepEqual(await roundTrip(reference.url, first), first)
    } finally {
      await reference.stop()
    }
    const ours = await startApp('wrangler.toml', { persistTo: state, label: 'pkg-handover' })
    try {
      assert.deepEqual(await roundTrip(ours.url), first, 'the package serves what the reference stored')
      assert.deepEqual(await roundTrip(ours.url, second), [...first, ...second])
    } finally {
      await ours.stop()
    }
    const back = await startWorker({ reference: true, persistTo: state, label: 'pkg-reference-again' })
    try {
      assert.deepEqual(await roundTrip(back.url), [...first, ...second], 'the reference serves what the package stored')
    } finally {
      await back.stop()
    }
  })
})
