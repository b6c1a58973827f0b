// A LiveStore web app over the sync-electric endpoint, in headless Chromium (Debian's, driven by
// playwright-core), served from an origin of its own so that every sync request is
// cross-origin: the page's store receives events pushed by other clients, and what the page
// commits reaches the server and the other clients.
import assert from 'node:assert/strict'
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { once } from 'node:events'
import path from 'node:path'
import { after, before, test } from 'node:test'

import * as esbuild from 'esbuild'
import { chromium } from 'playwright-core'

import { connectElectric, electricEndpoint, electricLivePull } from './lib/electric.mjs'
import { waitFor, withSocket } from './lib/helpers.mjs'
import { makeEvents, pullAll } from './lib/raw.mjs'
import { DEFAULT_TOKEN, ROOT, startWorker, storeId, TMP } from './lib/worker.mjs'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const APP = path.join(ROOT, 'tests/e2e/apps/electric-web')

let worker
let site
let browser
before(async () => {
  // The app, bundled as a user's bundler would, with the SQLite WASM beside it (the loader
  // finds it next to the script).
  const out = path.join(TMP, `electric-web-${process.pid}`)
  mkdirSync(out, { recursive: true })
  await esbuild.build({
    entryPoints: [path.join(APP, 'main.mjs')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    outfile: path.join(out, 'main.js'),
    logLevel: 'error',
  })
  copyFileSync(path.join(ROOT, 'node_modules/@livestore/wa-sqlite/dist/wa-sqlite.wasm'), path.join(out, 'wa-sqlite.wasm'))
  writeFileSync(path.join(out, 'index.html'), readFileSync(path.join(APP, 'index.html')))
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' }
  site = http.createServer((req, res) => {
    const file = path.join(out, path.basename(new URL(req.url, 'http://x').pathname) || 'index.html')
    try {
      const body = readFileSync(file)
      res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' }).end(body)
    } catch {
      res.writeHead(404).end()
    }
  })
  site.listen(0, '127.0.0.1')
  await once(site, 'listening')
  worker = await startWorker({ label: 'electric-web' })
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true })
})
after(async () => {
  await browser?.close()
  site?.close()
  await worker?.stop()
})

test('a web app on another origin syncs through /electric both ways', { timeout: 120_000 }, async () => {
  const store = storeId('electric-web')
  const appOrigin = `http://127.0.0.1:${site.address().port}`
  // The worker on `localhost`, the page on `127.0.0.1`: two origins.
  const endpoint = electricEndpoint({ url: worker.url.replace('127.0.0.1', 'localhost') }, DEFAULT_TOKEN)
  assert.notEqual(new URL(endpoint).origin, appOrigin)

  const other = await connectElectric({ endpoint: electricEndpoint(worker), storeId: store, clientId: 'node' })
  await other.push(makeEvents(2, { clientId: 'node' }).map((e, i) => ({ ...e, name: 'v1.TodoCreated', args: { id: `n${i}`, text: `from node ${i}` } })))

  const page = await browser.newPage()
  const problems = []
  page.on('pageerror', (e) => problems.push(e.message))
  page.on('console', (m) => m.type() === 'error' && problems.push(m.text()))
  await page.goto(`${appOrigin}/index.html?endpoint=${encodeURIComponent(endpoint)}&store=${encodeURIComponent(store)}`)
  await page.waitForFunction(() => window.app?.ready === true, null, { timeout: 60_000 })

  // What another client pushed before the page opened, and after.
  await page.waitForFunction(() => window.app.list().length === 2, null, { timeout: 30_000 })
  await other.push([{ name: 'v1.TodoCreated', args: { id: 'n2', text: 'from node, live' }, seqNum: 3, parentSeqNum: 2, clientId: 'node', sessionId: 'node-s' }])
  await page.waitForFunction(() => window.app.list().some((t) => t.id === 'n2'), null, { timeout: 30_000 })
  assert.equal(await page.locator('#todos li').count(), 3)

  // What the page commits reaches the server, after the others' events, and another client's
  // live pull.
  const live = electricLivePull(other)
  await page.evaluate(() => window.app.commit('web-1', 'from the browser'))
  await waitFor(() => live.events().some((e) => e.args.id === 'web-1'), { timeout: 30_000, message: "the page's commit at the other client" })
  await live.stop()
  const server = await withSocket(worker, store, async (sock) => (await pullAll(sock, store)).events.map((e) => e.args.id))
  assert.deepEqual(server, ['n0', 'n1', 'n2', 'web-1'])
  assert.deepEqual(problems, [])
  await page.close()
  await other.close()
})
