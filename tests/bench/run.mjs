// The benchmark: our worker and the TypeScript reference (@livestore/sync-cf@0.4.0, as its docs
// set it up; tests/reference-worker) under the same local runtime (wrangler dev / workerd), one
// after the other on the same machine, with the same load. Prints a table, writes the figures as
// JSON and a chart as SVG into tests/bench/results/.
//
//   node tests/bench/run.mjs [--quick] [--only name,name] [--servers ours,reference] [--log-level warn] [--name NAME]
//
// A full run also runs ours with its event logs in D1 (`ours-d1`) and in Postgres (`ours-postgres`,
// a throwaway cluster, through a Hyperdrive binding) on the scenarios where the engine matters,
// and prints a second table comparing the engines; and the npm package (`package`, built by
// ./scripts/package and installed into a scratch folder; tests/bench/package-worker) without and
// with a no-op JavaScript onPush (`package-hook`), on the push loads, for a third table: what the
// JavaScript glue and a JavaScript hook cost.
//
// Stores that need many events are filled once, through our worker, and the state directory is
// copied for the reference: both read the same storage layout (tests/e2e/storage.test.mjs).
import { execFileSync } from 'node:child_process'
import { cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { gzipSync } from 'node:zlib'

import { DEFAULT_TOKEN, ROOT, RUNTIME, startWorker, TMP } from '../e2e/lib/worker.mjs'
import * as bill from './lib/billing.mjs'
import { clientFanOut, clientPull, clientPush, commitToVisible } from './lib/clients.mjs'
import { billTable, engineTable, floorLogTable, packageTable, ratio, svg, table } from './lib/report.mjs'
import * as s from './lib/scenarios.mjs'

const args = process.argv.slice(2)
const quick = args.includes('--quick')
const argValue = (name) => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1].split(',') : undefined
}
const only = argValue('--only')
const ENGINES = { 'ours-d1': 'd1', 'ours-postgres': 'postgres' }
const PACKAGES = { package: 'no-hook.js', 'package-hook': 'noop-hook.js' }
// Ours and the reference again, each wrapped to count what Cloudflare bills (tests/bench/meter):
// apart from the timed runs, whose figures the counting would slow.
const METERED = { 'ours-metered': 'ours.mjs', 'reference-metered': 'reference.mjs' }
// The floor again with a console line per push (FLOOR_LOG_LINES), on the push loads: what a line
// costs in this runtime, apart from any server's own work.
const forFloorLog = new Set(['push1', 'push10', 'push100', 'httpPush'])
const serverNames = argValue('--servers') ?? ['ours', 'reference', 'floor', 'floor-log', ...Object.keys(METERED), ...(quick ? [] : [...Object.keys(ENGINES), ...Object.keys(PACKAGES)])]
// Our LOG_LEVEL: our default, `info` (a line per push and pull), unless told otherwise. The
// reference logs at Debug and writes a line per push too ("Broadcasted to N WebSocket clients");
// the floor writes none. Under wrangler dev every console line costs far more than in production
// (it is piped through wrangler's process), so `--log-level warn` shows what the lines cost.
const logLevel = argValue('--log-level')?.[0] ?? 'info'

// Sizes: the full run, or a quick one that only checks the benchmark still works. One store
// takes up to 10,000 sockets (ours, by default), but wrangler dev's local proxy stops passing new
// ones on at about 3,300 here: the 9,999-socket store runs under workerd alone
// (E2E_RUNTIME=workerd node tests/bench/run.mjs --only room --servers ours,reference).
const size = quick
  ? { push: [200, 500, 1000], stores: [5, 100], pull: [1000, 2000], scale: [1000, 2000, 5000], fan: [[5, 20], [10, 20]], http: 1000, client: 500, idle: 50, room: 500, manyStores: 100, bill: { b1: 100, b100: 1000, pull: 1000, fan: [10, 20], idle: [50, 10] } }
  : { push: [5000, 20000, 50000], stores: [50, 1000], pull: [10000, 100000], scale: [10000, 100000, 1000000], fan: [[10, 200], [100, 200], [500, 200]], http: 10000, client: 10000, idle: 1000, room: RUNTIME === 'workerd' ? 9999 : 3000, manyStores: 1000, bill: { b1: 500, b100: 10000, pull: 10000, fan: [100, 200], idle: [1000, 60] } }

const populated = {
  pullA: { store: 'bench-pull-a', n: size.pull[0] },
  pullB: { store: 'bench-pull-b', n: size.pull[1] },
  scale: size.scale.map((n, i) => ({ store: `bench-scale-${i}`, n })),
}

// [key, label, run(server)]: `key` is what --only selects. The floor (a bare JS Durable Object,
// tests/bench/floor-worker) runs the protocol loads only: it is not a sync server the real
// clients could use, and it ignores cursors' backendIds.
const notForFloor = new Set(['clientPushWs', 'clientPullWs', 'clientFanWs', 'clientPushHttp', 'clientPullHttp', 'visibleWs', 'visibleHttp', 'room', 'stores1000', ...size.scale.map((n) => `page${n}`)])
// The sync-electric endpoint is ours alone: the reference has none (and no Electric server runs
// here to stand beside it).
const oursOnly = new Set(['electricPush', 'electricPull', 'electricLive', 'visibleElectric'])
// What the other engines run: the loads that store and read. Their stores are filled through their
// own push path (the million-event ones of the page-latency rows would take too long for it).
const forEngines = new Set(['push1', 'push10', 'push100', 'stores', 'pullA', 'pullB', 'fan10', 'fan100', 'fan500', 'httpPush', 'httpPull', 'clientPushWs', 'clientPullWs'])
// What the package runs: the pushes, where a hook sits on the path.
const forPackages = new Set(['push1', 'push100', 'httpPush', 'clientPushWs'])
// What the metered servers run, and only they: the billed loads, and waking (the meter tells
// when an object was constructed again).
const billed = new Set(['billPush1', 'billPush100', 'billPull', 'billFan', 'billIdle', ...['ws', 'http'].flatMap((t) => ['0', 'A', 'B'].map((n) => `wake${t}${n}`))])
const wakeStores = { 0: { store: 'bench-wake-empty', n: 0 }, A: populated.pullA, B: populated.pullB }
const { bill: b } = size
const scenarios = [
  ['push1', 'WS push, batches of 1, 16 in flight', (srv) => s.wsPush(srv, { total: size.push[0], batch: 1, inFlight: 16 })],
  ['push10', 'WS push, batches of 10, 16 in flight', (srv) => s.wsPush(srv, { total: size.push[1], batch: 10, inFlight: 16 })],
  ['push100', 'WS push, batches of 100, 16 in flight', (srv) => s.wsPush(srv, { total: size.push[2], batch: 100, inFlight: 16 })],
  ['stores', `WS push, ${size.stores[0]} stores at once`, (srv) => s.manyStores(srv, { stores: size.stores[0], perStore: size.stores[1] })],
  ['pullA', `WS non-live pull of ${populated.pullA.n} events`, (srv) => s.wsPull(srv, populated.pullA)],
  ['pullB', `WS non-live pull of ${populated.pullB.n} events`, (srv) => s.wsPull(srv, populated.pullB)],
  ...size.fan.map(([pulls, pushes]) => [`fan${pulls}`, `fan-out, ${pushes} pushes to ${pulls} live pulls`, (srv) => s.fanOut(srv, { pulls, pushes })]),
  ['httpPush', 'HTTP push, batches of 100', (srv) => s.httpPush(srv, { total: size.http })],
  ['httpPull', `HTTP pull of ${populated.pullA.n} events`, (srv) => s.httpPull(srv, populated.pullA)],
  ['electricPush', '/electric push, batches of 100', (srv) => s.electricPush(srv, { total: size.http })],
  ['electricPull', `/electric pull of ${populated.pullA.n} events`, (srv) => s.electricPull(srv, populated.pullA)],
  ['electricLive', `/electric live, ${size.fan[0][1]} pushes to ${size.fan[0][0]} clients`, (srv) => s.electricLive(srv, { pulls: size.fan[0][0], pushes: size.fan[0][1] })],
  ...populated.scale.map((p) => [`page${p.n}`, `pull latency per page, ${p.n} stored`, (srv) => s.pageLatency(srv, p)]),
  ['clientPushWs', 'makeWsSync push', (srv) => clientPush(srv, { transport: 'ws', total: size.client })],
  ['clientPullWs', `makeWsSync pull of ${populated.pullA.n} events`, (srv) => clientPull(srv, { transport: 'ws', ...populated.pullA })],
  ['clientFanWs', 'makeWsSync fan-out, 10 clients', (srv) => clientFanOut(srv, { transport: 'ws', clients: 10, pushes: quick ? 10 : 50 })],
  ['clientPushHttp', 'makeHttpSync push', (srv) => clientPush(srv, { transport: 'http', total: Math.min(size.client, 5000) })],
  ['clientPullHttp', `makeHttpSync pull of ${populated.pullA.n} events`, (srv) => clientPull(srv, { transport: 'http', ...populated.pullA })],
  ['visibleWs', 'commit → visible on another app, makeWsSync', (srv) => commitToVisible(srv, { transport: 'ws', commits: quick ? 10 : 50 })],
  ['visibleHttp', 'commit → visible on another app, makeHttpSync (5 s poll)', (srv) => commitToVisible(srv, { transport: 'http', commits: quick ? 3 : 20 })],
  ['visibleElectric', 'commit → visible on another app, sync-electric', (srv) => commitToVisible(srv, { transport: 'electric', commits: quick ? 10 : 50 })],
  ['room', `one store, ${size.room} sockets: fan-out of a push to all`, (srv) => s.bigRoom(srv, { sockets: size.room, pushes: 5, rss: () => workerdRssKB(srv.worker.pid) })],
  ['stores1000', `WS push, ${size.manyStores} stores at once, 10 events each`, (srv) => s.manyStores(srv, { stores: size.manyStores, perStore: 10 })],
  ['idle', `memory with ${size.idle} idle live pulls`, (srv) => s.idleSocketMemory(srv, { sockets: size.idle, rss: () => workerdRssKB(srv.worker.pid) })],
  ['billPush1', `billed: WS push, ${b.b1} pushes of 1 event`, (srv) => bill.billPush(srv, { total: b.b1, batch: 1 })],
  ['billPush100', `billed: WS push, ${b.b100 / 100} pushes of 100 events`, (srv) => bill.billPush(srv, { total: b.b100, batch: 100 })],
  ['billPull', `billed: a fresh client's pull of ${b.pull} events`, (srv) => bill.billPull(srv, { n: b.pull })],
  ['billFan', `billed: ${b.fan[0]} live pulls receiving ${b.fan[1]} pushes`, (srv) => bill.billFanOut(srv, { pulls: b.fan[0], pushes: b.fan[1] })],
  ['billIdle', `billed: an idle store, ${b.idle[0]} sockets for ${b.idle[1]} s`, (srv) => bill.billIdle(srv, { sockets: b.idle[0], seconds: b.idle[1] })],
  ...['ws', 'http'].flatMap((t) =>
    Object.entries(wakeStores).map(([k, p]) => [
      `wake${t}${k}`,
      `waking an evicted store of ${p.n} events, ${t === 'ws' ? 'WS connect + pull' : 'HTTP pull'}`,
      (srv) => bill.wakeLatency(srv, { ...p, transport: t, reps: quick ? 1 : 3 }),
    ]),
  ),
].filter(([key]) => !only || only.includes(key))

/** Resident memory (KB) of the workerd processes of a wrangler dev process group. */
function workerdRssKB(pgid) {
  let total = 0
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(fields[2]) !== pgid || !stat.includes('(workerd)')) continue
      const rss = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)
      total += Number(rss?.[1] ?? 0)
    } catch {}
  }
  return total
}

const log = (...a) => console.error('[bench]', ...a)

/** The npm package from this tree, installed with the bench's workers into a scratch folder. */
function installPackage(dir) {
  const tarball = execFileSync(path.join(ROOT, 'scripts/package'), { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').at(-1)
  const app = path.join(dir, 'package-app')
  mkdirSync(app, { recursive: true })
  writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'bench-package', private: true, type: 'module' }))
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: app, stdio: ['ignore', 'ignore', 'inherit'] })
  cpSync(path.join(ROOT, 'tests/bench/package-worker'), app, { recursive: true })
  return app
}

async function main() {
  const dir = path.join(TMP, `bench-${Date.now().toString(36)}`)
  const stateOurs = path.join(dir, 'ours')
  const stateRef = path.join(dir, 'reference')
  mkdirSync(dir, { recursive: true })

  const needed = new Set(scenarios.map(([key]) => key))
  const fills = [
    ...(['pullA', 'httpPull', 'electricPull', 'clientPullWs', 'clientPullHttp', 'wakewsA', 'wakehttpA'].some((k) => needed.has(k)) ? [populated.pullA] : []),
    ...(['pullB', 'wakewsB', 'wakehttpB'].some((k) => needed.has(k)) ? [populated.pullB] : []),
    ...populated.scale.filter((p) => needed.has(`page${p.n}`)),
  ]
  if (fills.length > 0) {
    log(`filling ${fills.map((f) => f.n).join(', ')}-event stores through our worker`)
    const w = await startWorker({ persistTo: stateOurs, label: 'bench-fill', storage: 'do-sqlite' })
    const srv = { name: 'fill', url: w.url, wsUrl: w.wsUrl }
    for (const f of fills) await s.populate(srv, f.store, f.n)
    await w.stop()
  }
  if (fills.length > 0) cpSync(stateOurs, stateRef, { recursive: true })

  const packageApp = serverNames.some((name) => PACKAGES[name]) ? installPackage(dir) : undefined
  const results = {}
  for (const name of serverNames) {
    const engine = ENGINES[name]
    const pkg = PACKAGES[name]
    const metered = METERED[name]
    if (!scenarios.some(([key]) => billed.has(key) === Boolean(metered))) continue
    const w = await startWorker({
      reference: name === 'reference',
      jsMain: name === 'floor' || name === 'floor-log' ? path.join(ROOT, 'tests/bench/floor-worker/index.js') : pkg ? path.join(packageApp, pkg) : metered ? path.join(ROOT, 'tests/bench/meter', metered) : undefined,
      // The metered servers read the filled stores too (waking a store of 10k and 100k events).
      persistTo: { ours: stateOurs, reference: stateRef, 'ours-metered': stateOurs, 'reference-metered': stateRef }[name] ?? path.join(dir, name),
      label: `bench-${name}`,
      storage: engine ?? 'do-sqlite',
      ...(name === 'ours' || name === 'ours-metered' || engine ? { vars: { AUTH_TOKEN: DEFAULT_TOKEN, LOG_LEVEL: logLevel } } : pkg ? { vars: { LOG_LEVEL: logLevel } } : name === 'floor-log' ? { vars: { FLOOR_LOG_LINES: 'true' } } : {}),
    })
    const srv = { name, url: w.url, wsUrl: w.wsUrl, worker: w }
    try {
      if (name === 'floor' || engine) {
        // The floor has its own table layout, and the other engines their own storage, so they are
        // filled through their own push path.
        for (const f of fills.filter((f) => f.n <= populated.pullB.n)) await s.populate(srv, f.store, f.n)
      }
      for (const [key, label, run] of scenarios) {
        if (name === 'floor' && notForFloor.has(key)) continue
        if (name === 'floor-log' && !forFloorLog.has(key)) continue
        if (engine && !forEngines.has(key)) continue
        if (pkg && !forPackages.has(key)) continue
        if (billed.has(key) !== Boolean(metered)) continue
        if (name !== 'ours' && !engine && !pkg && oursOnly.has(key)) continue
        log(`${name}: ${label}`)
        results[key] ??= { key, label }
        results[key][name] = await run(srv)
        log(`  ${JSON.stringify(results[key][name])}`)
      }
    } finally {
      await w.stop()
    }
  }

  const wasm = readFileSync(path.join(ROOT, 'build/index_bg.wasm'))
  const rows = Object.values(results)
  rows.push(
    { key: 'wasmRaw', label: 'wasm size, raw', ours: { value: wasm.length / 1024, unit: 'KB' } },
    { key: 'wasmGzip', label: 'wasm size, gzip', ours: { value: gzipSync(wasm, { level: 9 }).length / 1024, unit: 'KB' } },
  )
  for (const row of rows) {
    // The billed loads compare the metered builds; they stand in the main table as ours and TS.
    if (row['ours-metered']) row.ours = row['ours-metered']
    if (row['reference-metered']) row.reference = row['reference-metered']
    if (row.ours && row.reference) row.ratio = ratio(row)
    if (row.ours && row.floor) row.ofFloor = ratio({ ours: row.ours, reference: row.floor })
  }

  const out = path.join(ROOT, 'tests/bench/results')
  mkdirSync(out, { recursive: true })
  // --name writes a partial run beside the full one (results/NAME.json) instead of over it.
  const stamp = argValue('--name')?.[0] ?? (quick ? 'quick' : 'latest')
  const machine = `${execFileSync('nproc').toString().trim()} cores, node ${process.version}`
  const doc = { date: new Date().toISOString(), machine, quick, rows }
  writeFileSync(path.join(out, `${stamp}.json`), JSON.stringify(doc, null, 2) + '\n')
  writeFileSync(path.join(out, `${stamp}.svg`), svg(rows, `livestore-sync vs @livestore/sync-cf 0.4.0 (${machine})`))
  console.log(table(rows))
  if (rows.some((r) => r['ours-d1'] || r['ours-postgres'])) console.log(`\n${engineTable(rows)}`)
  if (rows.some((r) => r.package || r['package-hook'])) console.log(`\n${packageTable(rows)}`)
  if (rows.some((r) => r['floor-log'])) console.log(`\n${floorLogTable(rows)}`)
  if (rows.some((r) => r['ours-metered'])) console.log(`\n${billTable(rows, bill.PRICES)}`)
  log(`wrote ${path.relative(ROOT, out)}/${stamp}.json and .svg`)
}

await main()
process.exit(0)
