// Profiles our worker under one benchmark load: a CPU profile of the workerd isolate taken over
// the inspector protocol (as Chrome DevTools would), summarised by self time per function (WASM
// functions keep their Rust names), and saved as a .cpuprofile for DevTools.
//
//   node tests/bench/profile.mjs <scenario> [--reference | --floor | --floor-log] [--log-level LEVEL]
//   scenarios: push1, push100, pull, fan100, fan500, httpPush
//
// --floor-log is the bare object writing a console line per push; --log-level sets ours.
import { writeFileSync, mkdirSync } from 'node:fs'
import path from 'node:path'
import WebSocket from 'ws'

import { DEFAULT_TOKEN, ROOT, startWorker } from '../e2e/lib/worker.mjs'
import * as s from './lib/scenarios.mjs'

const [scenario = 'push100'] = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && all[i - 1] !== '--log-level')
const reference = process.argv.includes('--reference')
const floorLog = process.argv.includes('--floor-log')
const floor = floorLog || process.argv.includes('--floor')
const levelAt = process.argv.indexOf('--log-level')
const logLevel = levelAt >= 0 ? process.argv[levelAt + 1] : undefined

const loads = {
  push1: (srv) => s.wsPush(srv, { total: 5000, batch: 1, inFlight: 16 }),
  push100: (srv) => s.wsPush(srv, { total: 30000, batch: 100, inFlight: 16 }),
  pull: async (srv) => {
    await s.populate(srv, 'profile-pull', 30000)
    return s.wsPull(srv, { store: 'profile-pull', n: 30000 })
  },
  fan100: (srv) => s.fanOut(srv, { pulls: 100, pushes: 100 }),
  fan500: (srv) => s.fanOut(srv, { pulls: 500, pushes: 200 }),
  httpPush: (srv) => s.httpPush(srv, { total: 5000 }),
}

async function cdp(port) {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json`)).json()
  const target = targets.find((t) => t.webSocketDebuggerUrl) ?? targets[0]
  const ws = new WebSocket(target.webSocketDebuggerUrl)
  await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)))
  let id = 0
  const pending = new Map()
  ws.on('message', (data) => {
    const msg = JSON.parse(data.toString())
    if (msg.id && pending.has(msg.id)) {
      pending.get(msg.id)(msg)
      pending.delete(msg.id)
    }
  })
  const send = (method, params = {}) =>
    new Promise((resolve) => {
      const mid = ++id
      pending.set(mid, resolve)
      ws.send(JSON.stringify({ id: mid, method, params }))
    })
  return { send, close: () => ws.close() }
}

const w = await startWorker({
  reference,
  jsMain: floor ? path.join(ROOT, 'tests/bench/floor-worker/index.js') : undefined,
  label: `profile-${scenario}`,
  storage: 'do-sqlite',
  ...(floorLog ? { vars: { FLOOR_LOG_LINES: 'true' } } : logLevel ? { vars: { AUTH_TOKEN: DEFAULT_TOKEN, LOG_LEVEL: logLevel } } : {}),
})
try {
  const srv = { name: reference ? 'reference' : floorLog ? 'floor-log' : floor ? 'floor' : logLevel ? `ours-${logLevel}` : 'ours', url: w.url, wsUrl: w.wsUrl, worker: w }
  const inspector = await cdp(w.inspectorPort)
  // Scripts are announced as Debugger.scriptParsed; enabling the debugger lets their source be
  // fetched to show what an anonymous function is.
  await inspector.send('Debugger.enable')
  await inspector.send('Profiler.enable')
  await inspector.send('Profiler.setSamplingInterval', { interval: 100 })
  await inspector.send('Profiler.start')
  const result = await loads[scenario](srv)
  const { result: { profile } } = await inspector.send('Profiler.stop')
  const sources = new Map()
  const sourceOf = async (scriptId) => {
    if (!sources.has(scriptId)) sources.set(scriptId, ((await inspector.send('Debugger.getScriptSource', { scriptId })).result?.scriptSource ?? '').split('\n'))
    return sources.get(scriptId)
  }
  const describe = async (frame) => {
    if (frame.functionName) return frame.functionName
    const line = (await sourceOf(frame.scriptId))[frame.lineNumber] ?? ''
    return `(anonymous ${frame.url}:${frame.lineNumber}) …${line.slice(Math.max(0, frame.columnNumber - 60), frame.columnNumber + 60).trim()}`
  }
  for (const node of profile.nodes) node.label = await describe(node.callFrame)
  inspector.close()
  console.log(`${scenario} on ${srv.name}: ${JSON.stringify(result)}`)

  const dt = profile.timeDeltas.reduce((a, b) => a + b, 0) / Math.max(1, profile.samples.length) / 1000
  const self = new Map()
  let total = 0
  for (const node of profile.nodes) {
    const name = node.label
    self.set(name, (self.get(name) ?? 0) + node.hitCount)
    total += node.hitCount
  }
  const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 30)
  console.log(`samples: ${total} (${(total * dt).toFixed(0)} ms); self time by function:`)
  for (const [name, hits] of rows) console.log(`${((hits / total) * 100).toFixed(1).padStart(5)}%  ${name.slice(0, 140)}`)
  const out = path.join(ROOT, 'tests/bench/results')
  mkdirSync(out, { recursive: true })
  const file = path.join(out, `profile-${srv.name}-${scenario}.cpuprofile`)
  writeFileSync(file, JSON.stringify(profile))
  console.log(`saved ${path.relative(ROOT, file)}`)
} finally {
  await w.stop()
}
process.exit(0)
