// What acting on stored events costs a push: our outbox (the events go to the app's backend from
// the store's alarm, after the push is answered) beside the reference's only way, an `onPush`
// that calls the backend and awaits it inside the push (tests/bench/onpush-worker). The app's
// backend is a local HTTP receiver that answers at once, answers after RECEIVER_DELAY_MS, or is
// not there at all (connection refused). For each: pushes of one event, one at a time, over
// WebSocket — how long each push takes to be answered, how many fail, and (ours) how long after
// the last push the receiver had every event.
//
//   node tests/bench/outbox.mjs [--pushes 200] [--log-level warn]
//
// Writes tests/bench/results/outbox.json.
import http from 'node:http'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { execFileSync } from 'node:child_process'

import { DEFAULT_TOKEN, freePort, ROOT, startWorker, TMP } from '../e2e/lib/worker.mjs'
import { storeName, wsUrl } from './lib/scenarios.mjs'
import { BenchSocket, event, now, percentile, pushFrame } from './lib/wire.mjs'

const args = process.argv.slice(2)
const arg = (name, fallback) => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : fallback
}
const PUSHES = Number(arg('--pushes', 200))
const LOG_LEVEL = arg('--log-level', 'info')
const RECEIVER_DELAY_MS = 500
// The reference's pushes fail for as long as the backend is away; a few show it.
const FAILING_PUSHES = 20

/** A receiver of batches: `mode` is `ok` (200 at once) or `slow` (200 after the delay). */
async function receiver(mode) {
  const seen = new Set()
  let lastAt = 0
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      const answer = () => {
        for (const e of JSON.parse(body).events) seen.add(e.seqNum)
        lastAt = now()
        res.writeHead(200).end()
      }
      mode === 'slow' ? setTimeout(answer, RECEIVER_DELAY_MS) : answer()
    })
  })
  const port = await freePort()
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${port}/hook`, seen, lastAt: () => lastAt, close: () => server.close() }
}

/** Pushes one event at a time; each push's round trip, and how many were refused. */
async function pushOneByOne(server, store, total) {
  const sock = await BenchSocket.open(wsUrl(server, store))
  const times = []
  let failed = 0
  let head = 0
  try {
    for (let i = 0; i < total; i++) {
      const started = now()
      const exit = await new Promise((resolve) => {
        const off = sock.on((text) => {
          if (!text.startsWith('{"_tag":"Exit"')) return
          off()
          resolve(text)
        })
        sock.send(pushFrame(i, store, [event(head + 1, head)]))
      })
      times.push(now() - started)
      if (exit.includes('"exit":{"_tag":"Success"')) head++
      else failed++
    }
  } finally {
    sock.close()
  }
  times.sort((a, b) => a - b)
  return { p50: percentile(times, 50), p99: percentile(times, 99), failed, stored: head, finishedAt: now() }
}

async function main() {
  const dir = path.join(TMP, `bench-outbox-${Date.now().toString(36)}`)
  mkdirSync(dir, { recursive: true })
  const deadPort = await freePort()
  const rows = []
  for (const mode of ['none', 'ok', 'slow', 'dead']) {
    for (const server of ['ours', 'reference']) {
      if (server === 'reference' && mode === 'none') continue
      const r = mode === 'ok' || mode === 'slow' ? await receiver(mode) : undefined
      const hookUrl = r?.url ?? `http://127.0.0.1:${deadPort}/hook`
      let w
      if (server === 'ours') {
        const outbox = mode === 'none' ? {} : { WEBHOOK_URL: hookUrl, WEBHOOK_SECRET: 'bench-webhook-secret' }
        w = await startWorker({ label: 'bench-outbox', persistTo: path.join(dir, `ours-${mode}`), vars: { AUTH_TOKEN: DEFAULT_TOKEN, LOG_LEVEL, ...outbox } })
      } else {
        const entry = path.join(dir, `onpush-${mode}.js`)
        const worker = path.join(ROOT, 'tests/bench/onpush-worker/index.js')
        writeFileSync(entry, `export * from ${JSON.stringify(worker)}\nexport { default } from ${JSON.stringify(worker)}\nglobalThis.BENCH_HOOK_URL = ${JSON.stringify(hookUrl)}\n`)
        w = await startWorker({ label: 'bench-onpush', jsMain: entry, persistTo: path.join(dir, `reference-${mode}`) })
      }
      const srv = { name: server, url: w.url, wsUrl: w.wsUrl }
      try {
        const total = server === 'reference' && mode === 'dead' ? FAILING_PUSHES : PUSHES
        const store = storeName(`outbox-${server}-${mode}`)
        const result = await pushOneByOne(srv, store, total)
        let deliveredAfterMs
        if (r && server === 'ours') {
          const deadline = now() + 60_000
          while (r.seen.size < result.stored && now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5))
          if (r.seen.size < result.stored) throw new Error(`ours, ${mode}: ${r.seen.size} of ${result.stored} events reached the receiver`)
          deliveredAfterMs = Math.max(0, r.lastAt() - result.finishedAt)
        }
        const row = { server, receiver: mode, pushes: total, ...result, deliveredAfterMs }
        delete row.finishedAt
        rows.push(row)
        console.error('[bench]', JSON.stringify(row))
      } finally {
        await w.stop()
        r?.close()
      }
    }
  }
  const fmt = (n) => (n === undefined ? '—' : n.toFixed(1))
  const lines = [
    '| server | app backend | push p50 ms | push p99 ms | pushes refused | last event at the backend, ms after the last push |',
    '|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.server === 'ours' ? 'ours (outbox)' : 'TS (awaited onPush)'} | ${{ none: 'no sink', ok: 'answers at once', slow: `answers after ${RECEIVER_DELAY_MS} ms`, dead: 'not there' }[r.receiver]} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${r.failed} of ${r.pushes} | ${fmt(r.deliveredAfterMs)} |`),
  ]
  console.log(lines.join('\n'))
  const machine = `${execFileSync('nproc').toString().trim()} cores, node ${process.version}`
  const out = path.join(ROOT, 'tests/bench/results/outbox.json')
  writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), machine, logLevel: LOG_LEVEL, rows }, null, 2) + '\n')
  console.error(`[bench] wrote ${path.relative(ROOT, out)}`)
}

await main()
process.exit(0)
