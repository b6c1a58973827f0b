// The figures behind target, measured the way their noise needs. On this machine one run of a
// load varies by 2× from the next (a p99 of 100 live pulls is set by the second-slowest of 200
// pushes), so a ratio from one run says little. Here ours, the bare Durable Object (the runtime's
// floor) and the TypeScript server run side by side under `wrangler dev`, and each load is repeated
// in rounds, each round one server after the other, so a slow moment of the machine falls on all
// of them alike. The pushes also run on the bare object writing the store's head row with each
// push, which the reference's layout needs and the plain bare object skips. Prints each figure's
// median over the rounds with its range, and the ratios of the medians; writes
// tests/bench/results/rounds-<level>.json.
//
//   node tests/bench/behind.mjs [--rounds N] [--log-level LEVEL] [--only push1,httpPush,fan100,fan500] [--name NAME]
//
// --name writes results/NAME.json instead.
//
// Run ./scripts/build-worker first: it uses the build it finds.
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'

import { DEFAULT_TOKEN, ROOT, startWorker } from '../e2e/lib/worker.mjs'
import * as s from './lib/scenarios.mjs'
import { median } from './lib/wire.mjs'

const args = process.argv.slice(2)
const arg = (name, fallback) => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : fallback
}
const rounds = Number(arg('--rounds', '5'))
const logLevel = arg('--log-level', 'info')
const only = arg('--only', 'push1,httpPush,fan100').split(',')

// [key, label, run, what to read off the result, higher is better]
const loads = [
  ['push1', 'WS push, batches of 1, 16 in flight (events/s)', (srv) => s.wsPush(srv, { total: 5000, batch: 1, inFlight: 16 }), (r) => r.value, true],
  ['httpPush', 'HTTP push, batches of 100 (events/s)', (srv) => s.httpPush(srv, { total: 10000 }), (r) => r.value, true],
  ['fan100', 'fan-out p99, 200 pushes to 100 live pulls (ms)', (srv) => s.fanOut(srv, { pulls: 100, pushes: 200 }), (r) => r.detail.p99, false],
  ['fan100warm', '  the same after its first 20 pushes (ms)', null, (r) => r.detail.p99AfterWarmup, false, 'fan100'],
  ['fan500', 'fan-out p99, 200 pushes to 500 live pulls (ms)', (srv) => s.fanOut(srv, { pulls: 500, pushes: 200 }), (r) => r.detail.p99, false],
  ['fan500warm', '  the same after its first 20 pushes (ms)', null, (r) => r.detail.p99AfterWarmup, false, 'fan500'],
].filter(([key, , , , , from]) => only.includes(from ?? key))

const log = (...a) => console.error('[behind]', ...a)
const fmt = (v) => (v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(1))

const floorMain = path.join(ROOT, 'tests/bench/floor-worker/index.js')
const servers = [
  ['ours', { vars: { AUTH_TOKEN: DEFAULT_TOKEN, LOG_LEVEL: logLevel } }],
  ['floor', { jsMain: floorMain }],
  // The bare object writing the head row per push too, as the reference's layout needs: the
  // pushes only (it is the same object for everything else).
  ['floorHead', { jsMain: floorMain, vars: { FLOOR_HEAD_ROW: 'true' } }],
  ['reference', { reference: true }],
]
const headRowLoads = new Set(['push1', 'httpPush'])
const started = []
try {
  for (const [name, options] of servers) {
    const w = await startWorker({ ...options, label: `behind-${name}`, storage: 'do-sqlite' })
    started.push({ name, url: w.url, wsUrl: w.wsUrl, worker: w })
  }
  // results[key][server] = [one result per round]
  const results = {}
  for (let round = 1; round <= rounds; round++) {
    for (const [key, label, run] of loads.filter(([, , run]) => run)) {
      for (const srv of started.filter((srv) => srv.name !== 'floorHead' || headRowLoads.has(key))) {
        log(`round ${round}/${rounds}, ${srv.name}: ${label}`)
        const result = await run(srv)
        ;((results[key] ??= {})[srv.name] ??= []).push(result)
      }
    }
  }
  const rows = loads.map(([key, label, , read, higher, from]) => {
    const row = { key, label, higherIsBetter: higher }
    for (const { name } of started) {
      const values = results[from ?? key][name]?.map(read)
      if (!values) continue
      row[name] = { median: median(values), min: Math.min(...values), max: Math.max(...values), values }
    }
    // How many times better than the TypeScript server, and what share of the floor's figure.
    const times = (a, b) => (higher ? a / b : b / a)
    row.oursVsReference = times(row.ours.median, row.reference.median)
    row.floorVsReference = times(row.floor.median, row.reference.median)
    row.oursOfFloor = times(row.ours.median, row.floor.median)
    if (row.floorHead) row.oursOfFloorHead = times(row.ours.median, row.floorHead.median)
    return row
  })

  const machine = `${execFileSync('nproc').toString().trim()} cores, node ${process.version}`
  const out = path.join(ROOT, 'tests/bench/results')
  mkdirSync(out, { recursive: true })
  const file = path.join(out, `${arg('--name', `rounds-${logLevel}`)}.json`)
  writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), machine, logLevel, rounds, rows }, null, 2) + '\n')
  const cell = (r) => `${fmt(r.median)} (${fmt(r.min)}–${fmt(r.max)})`
  console.log(`${rounds} rounds, ours at LOG_LEVEL=${logLevel}; median (range); ratios of the medians\n`)
  console.log('| figure | ours | bare object | bare + head row | TypeScript | ours vs TS | bare vs TS | ours of bare | ours of bare + head row |')
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const r of rows) {
    const head = r.floorHead ? [cell(r.floorHead), `${r.oursOfFloorHead.toFixed(2)}×`] : ['—', '—']
    console.log(`| ${r.label} | ${cell(r.ours)} | ${cell(r.floor)} | ${head[0]} | ${cell(r.reference)} | ${r.oursVsReference.toFixed(1)}× | ${r.floorVsReference.toFixed(1)}× | ${r.oursOfFloor.toFixed(2)}× | ${head[1]} |`)
  }
  log(`wrote ${path.relative(ROOT, file)}`)
} finally {
  for (const srv of started) await srv.worker.stop()
}
process.exit(0)
