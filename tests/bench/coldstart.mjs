// A cold start under workerd alone: from spawning the runtime to its first answer, then to the
// first answer of a sync request (a store's object created, its tables made), for ours and the
// TypeScript server. workerd compiles the Worker's modules and evaluates them (for ours: compiling
// and instantiating the WASM module) before it answers anything, so the first figure holds what a
// new isolate pays for the module; an evicted object woken in a live isolate pays none of it (see
// the `wake*` loads of run.mjs).
//
//   node tests/bench/coldstart.mjs [--runs N]
//
// Both are started RUNS times (default 7) alternately; medians are printed, and written to
// tests/bench/results/coldstart.json.
import { writeFileSync, mkdirSync, statSync } from 'node:fs'
import path from 'node:path'

process.env.E2E_RUNTIME = 'workerd'
const { DEFAULT_TOKEN, ROOT, startWorker } = await import('../e2e/lib/worker.mjs')
const { postSync } = await import('../e2e/lib/http.mjs')
const { request } = await import('../e2e/lib/raw.mjs')

const runsAt = process.argv.indexOf('--runs')
const runs = runsAt >= 0 ? Number(process.argv[runsAt + 1]) : 7
const { median } = await import('./lib/wire.mjs')

/** One cold start: the runtime's first answer, then a store's first HTTP pull. */
async function coldStart(reference) {
  const w = await startWorker({ reference, label: reference ? 'cold-ts' : 'cold-ours', pollMs: 1, vars: { AUTH_TOKEN: DEFAULT_TOKEN } })
  try {
    const started = performance.now()
    const res = await postSync(w, 'cold', request('SyncHttpRpc.Pull', { storeId: 'cold', cursor: { _tag: 'None' } }))
    if (res.status !== 200 || !res.body.includes('"Success"')) throw new Error(`${reference ? 'reference' : 'ours'}: the first pull failed (${res.status}): ${res.body.slice(0, 300)}`)
    return { readyMs: w.readyMs, firstPullMs: performance.now() - started }
  } finally {
    await w.stop()
  }
}

const results = { ours: [], reference: [] }
for (let i = 0; i < runs; i++) {
  results.ours.push(await coldStart(false))
  results.reference.push(await coldStart(true))
}
const summary = Object.fromEntries(
  Object.entries(results).map(([name, xs]) => [name, { readyMs: median(xs.map((x) => x.readyMs)), firstPullMs: median(xs.map((x) => x.firstPullMs)), runs: xs }]),
)
const kb = (file) => Math.round(statSync(path.join(ROOT, file)).size / 1024)
const out = {
  date: new Date().toISOString(),
  runtime: 'workerd alone',
  modules: { oursWasmKB: kb('build/index_bg.wasm'), oursJsKB: kb('build/index.js') },
  ...summary,
}
console.log(`cold start under workerd alone, median of ${runs} (ms): spawn → first answer, then a new store's first HTTP pull`)
console.log(`  ours       ${summary.ours.readyMs.toFixed(1)}  +${summary.ours.firstPullMs.toFixed(1)}`)
console.log(`  TypeScript ${summary.reference.readyMs.toFixed(1)}  +${summary.reference.firstPullMs.toFixed(1)}`)
mkdirSync(path.join(ROOT, 'tests/bench/results'), { recursive: true })
writeFileSync(path.join(ROOT, 'tests/bench/results/coldstart.json'), JSON.stringify(out, null, 2) + '\n')
