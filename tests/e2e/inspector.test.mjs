// The web inspector (issue 7): a page under /_admin/ driven in headless Chromium (Debian's
// package, through playwright-core). Signs in, refuses a wrong secret, shows a store's figures,
// pages through its events, shows pushed events live without a reload, renders event data as
// text, shows the outbox's sinks and resumes a paused one, notices a reset, and opens on the store
// directory (search, sort, paging, open, a deleted store gone). Screenshots go to
// tests/e2e/.tmp/screenshots/ (paths printed).
import assert from 'node:assert/strict'
import http from 'node:http'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import { chromium } from 'playwright-core'

import { OK, waitFor, withSocket } from './lib/helpers.mjs'
import { makeEvents, pullAll, push } from './lib/raw.mjs'
import { DEFAULT_TOKEN, freePort, STORAGE, startWorker, storeId, TMP } from './lib/worker.mjs'

const ADMIN = 'admin-token-for-inspector-0123456789'
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const SHOTS = path.join(TMP, 'screenshots')
// Text an unescaped renderer would turn into elements that run script.
const HOSTILE_TEXT = '<img src=x onerror="window.__inspectorPwned=1">'
const HOSTILE_NAME = '<script>window.__inspectorPwned=2</script>'
const COUNT = 120
const WAIT = { timeout: 30_000 }

describe('web inspector', () => {
  let w
  let context
  let page
  let userDataDir
  let backendId
  const store = storeId('inspector')
  const pageErrors = []
  const consoleErrors = []
  const failedResponses = []
  // The outbox's receiver: refuses every batch until the test lets it accept them.
  const receiver = { accepting: false, events: [], server: null }

  const shot = async (t, name) => {
    const file = path.join(SHOTS, `${STORAGE}-${name}.png`)
    await page.screenshot({ path: file, fullPage: true })
    t.diagnostic(`screenshot: ${file}`)
  }
  const text = (selector) => page.locator(selector).textContent()
  const field = (name) => text(`#info dd[data-field="${name}"]`)
  const waitText = (selector, expected) =>
    page.waitForFunction(([s, e]) => document.querySelector(s)?.textContent === e, [selector, expected], WAIT)
  const seqs = (table) =>
    page.$$eval(`${table} tbody tr`, (rows) => rows.map((r) => Number(r.dataset.seq)))
  const firstRowIs = (table, seq) =>
    page.waitForFunction(([t, s]) => document.querySelector(`${t} tbody tr`)?.dataset.seq === s, [table, String(seq)], WAIT)
  // The directory's rows (their storeIds, in order), and a wait until they are exactly `ids`.
  const dirRows = () => page.$$eval('#dir-table tbody tr', (rows) => rows.map((r) => r.dataset.storeId))
  const dirRowsAre = (ids) =>
    page.waitForFunction(
      (want) => JSON.stringify([...document.querySelectorAll('#dir-table tbody tr')].map((r) => r.dataset.storeId)) === want,
      JSON.stringify(ids),
      WAIT,
    )
  const adminGet = async (pathAndQuery) => {
    const res = await fetch(`${w.url}/_admin/${pathAndQuery}`, { headers: { Authorization: `Bearer ${ADMIN}` } })
    assert.equal(res.status, 200, pathAndQuery)
    return res.json()
  }

  before(async () => {
    const port = await freePort()
    receiver.server = http.createServer((req, res) => {
      let body = ''
      req.on('data', (c) => (body += c))
      req.on('end', () => {
        if (receiver.accepting) receiver.events.push(...JSON.parse(body).events)
        res.writeHead(receiver.accepting ? 200 : 500).end()
      })
    })
    await new Promise((resolve) => receiver.server.listen(port, '127.0.0.1', resolve))
    // One failed attempt pauses the sink, so the page shows a paused sink at once.
    const outbox = { WEBHOOK_URL: `http://127.0.0.1:${port}/hook`, WEBHOOK_SECRET: 'inspector-webhook-secret', WEBHOOK_MAX_ATTEMPTS: '1' }
    w = await startWorker({ label: 'inspector', vars: { AUTH_TOKEN: DEFAULT_TOKEN, ADMIN_TOKEN: ADMIN, ...outbox } })
    const events = makeEvents(COUNT, { text: (i) => (i === 7 ? HOSTILE_TEXT : `todo ${i}`) })
    events[7].name = HOSTILE_NAME
    await withSocket(w, store, async (sock) => {
      for (let i = 0; i < COUNT; i += 40) {
        assert.deepEqual((await push(sock, store, events.slice(i, i + 40))).exit, OK)
      }
      backendId = (await pullAll(sock, store)).pages[0].backendId
    })
    mkdirSync(SHOTS, { recursive: true })
    // A fresh profile each run; the flags keep Chromium from reaching out to Google's services,
    // which this closed network refuses.
    userDataDir = mkdtempSync(path.join(os.tmpdir(), 'inspector-chromium-'))
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    })
    page = context.pages()[0] ?? (await context.newPage())
    page.on('pageerror', (e) => pageErrors.push(e.message))
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()))
    page.on('response', (r) => r.status() >= 400 && failedResponses.push(`${r.status()} ${new URL(r.url()).pathname}`))
  })

  after(async () => {
    await context?.close()
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true })
    await w?.stop()
    receiver.server?.close()
  })

  test('the page and its files are served without a token, with a strict policy and no caching', async () => {
    const res = await fetch(`${w.url}/_admin/`)
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8')
    const csp = res.headers.get('content-security-policy')
    assert.match(csp, /default-src 'none'/)
    assert.match(csp, /script-src 'self'/)
    assert.doesNotMatch(csp, /unsafe/)
    assert.equal(res.headers.get('cache-control'), 'no-store')
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff')
    assert.match(await res.text(), /<script src="inspector\/app.js" defer><\/script>/)
    for (const [file, type] of [
      ['app.js', 'text/javascript; charset=utf-8'],
      ['style.css', 'text/css; charset=utf-8'],
      ['icon.svg', 'image/svg+xml'],
    ]) {
      const asset = await fetch(`${w.url}/_admin/inspector/${file}`)
      assert.equal(asset.status, 200, file)
      assert.equal(asset.headers.get('content-type'), type)
      assert.equal(asset.headers.get('cache-control'), 'no-store')
    }
    const bare = await fetch(`${w.url}/_admin`, { redirect: 'manual' })
    assert.equal(bare.status, 308)
    assert.equal(bare.headers.get('location'), '/_admin/')
    // The API itself still wants the token; `ping` only checks it.
    assert.equal((await fetch(`${w.url}/_admin/ping`)).status, 401)
    const ping = await fetch(`${w.url}/_admin/ping`, { headers: { Authorization: `Bearer ${ADMIN}` } })
    assert.equal(ping.status, 200)
    assert.deepEqual(await ping.json(), { ok: true })
  })

  test('a wrong secret is refused with a clear error', async (t) => {
    await page.goto(`${w.url}/_admin/`)
    await page.fill('#secret', 'not-the-admin-token')
    await page.click('#sign-in')
    await page.locator('#sign-in-error').waitFor({ state: 'visible', ...WAIT })
    assert.match(await text('#sign-in-error'), /Wrong admin secret.*401/)
    assert.equal(await page.locator('#store-view').isHidden(), true)
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused secret is not kept')
    await shot(t, '1-wrong-secret')
  })

  test('sign in, open a store, see its figures', async (t) => {
    await page.fill('#secret', ADMIN)
    await page.click('#sign-in')
    await page.locator('#store-view').waitFor({ state: 'visible', ...WAIT })
    assert.equal(await page.locator('#sign-in-error').isHidden(), true)
    // Signed in, the page shows the store directory first.
    await page.locator('#directory').waitFor({ state: 'visible', ...WAIT })
    await page.fill('#store-id', store)
    await page.click('#open')
    await waitText('#info dd[data-field="head"]', String(COUNT))
    assert.equal(await field('eventCount'), String(COUNT))
    assert.equal(await field('backendId'), backendId)
    assert.equal(await field('storage'), STORAGE)
    assert.equal(await text('#store-title'), store)
    // The secret is kept in this tab's sessionStorage only: not in the URL, not in localStorage.
    const kept = await page.evaluate(() => ({
      session: Object.values(sessionStorage),
      local: localStorage.length,
      href: location.href,
    }))
    assert.deepEqual(kept.session, [ADMIN])
    assert.equal(kept.local, 0)
    assert.ok(!kept.href.includes(ADMIN))
    await firstRowIs('#event-table', 1)
    await shot(t, '2-store')
  })

  test('the outbox shows the paused sink, and Resume delivers every event', async (t) => {
    const row = '#outbox-sinks tbody tr'
    // Clicks Refresh until the sink's row shows `state` (the page reloads figures only now and then).
    const refreshUntil = (state) =>
      page.waitForFunction(
        ([r, s]) => {
          if (document.querySelector(r)?.dataset.state === s) return true
          document.querySelector('#refresh').click()
          return false
        },
        [row, state],
        { ...WAIT, polling: 500 },
      )
    // The sink may pause after the page loaded: Refresh until it shows.
    await refreshUntil('paused')
    const cells = await page.$$eval(`${row} td`, (tds) => tds.map((td) => td.textContent))
    assert.equal(cells[0], 'webhook (webhook)')
    assert.equal(cells[2], '0', 'nothing delivered: the cursor is where the store began')
    assert.equal(cells[3], String(COUNT), 'the backlog is every event')
    assert.equal(cells[6], 'HTTP 500')
    await shot(t, '2b-outbox-paused')
    receiver.accepting = true
    await page.click(`${row} button:text("Resume")`)
    await refreshUntil('caught up')
    assert.deepEqual(
      receiver.events.map((e) => e.seqNum),
      Array.from({ length: COUNT }, (_, i) => i + 1),
    )
    assert.equal(await page.locator(`${row} button`).count(), 0, 'nothing to resume or skip')
  })

  test('pages through the events, 50 at a time', async (t) => {
    const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i)
    assert.deepEqual(await seqs('#event-table'), range(1, 50))
    assert.equal(await page.locator('#prev').isDisabled(), true)
    assert.equal(await page.locator('#next').isEnabled(), true)
    await page.click('#next')
    await firstRowIs('#event-table', 51)
    assert.deepEqual(await seqs('#event-table'), range(51, 100))
    assert.equal(await text('#page-label'), 'Page 2 · seqNum 51–100')
    await page.click('#next')
    await firstRowIs('#event-table', 101)
    assert.deepEqual(await seqs('#event-table'), range(101, COUNT))
    assert.equal(await page.locator('#next').isDisabled(), true, 'the last page')
    await shot(t, '3-last-page')
    await page.click('#prev')
    await firstRowIs('#event-table', 51)
    assert.deepEqual(await seqs('#event-table'), range(51, 100))
    await page.click('#first')
    await firstRowIs('#event-table', 1)
    assert.deepEqual(await seqs('#event-table'), range(1, 50))
  })

  test('event data is rendered as text, never as markup', async (t) => {
    const name = await page.locator('#event-table tbody tr[data-seq="8"] td').nth(2).textContent()
    assert.equal(name, HOSTILE_NAME)
    const args = await page.locator('#event-table tbody tr[data-seq="7"] td').last().textContent()
    assert.equal(args, JSON.stringify({ id: 'todo-7', text: HOSTILE_TEXT, completed: false }))
    assert.equal(await page.locator('main img, main script, #event-table b').count(), 0, 'no element came from event data')
    assert.equal(await page.evaluate(() => window.__inspectorPwned), undefined)
    await page.locator('#event-table tbody tr[data-seq="7"]').scrollIntoViewIfNeeded()
    await shot(t, '4-hostile-payload')
  })

  test('pushed events appear live, without a reload', async (t) => {
    await page.evaluate(() => {
      window.__sameDocument = true
    })
    await withSocket(w, store, async (sock) => {
      const more = makeEvents(3, { start: COUNT + 1, parent: COUNT, clientId: 'client-live' })
      assert.deepEqual((await push(sock, store, more, backendId)).exit, OK)
    })
    await firstRowIs('#live-events', COUNT + 3)
    assert.deepEqual(await seqs('#live-events'), [COUNT + 3, COUNT + 2, COUNT + 1])
    await waitText('#info dd[data-field="head"]', String(COUNT + 3))
    assert.equal(await field('eventCount'), String(COUNT + 3))
    assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload happened')
    const liveCells = await page.$$eval('#live-events tbody tr:first-child td', (tds) => tds.map((td) => td.textContent))
    assert.equal(liveCells[3], 'client-live')
    await shot(t, '5-live')
  })

  test('a reset of the open store is noticed: new backendId, empty log', async (t) => {
    const reset = await fetch(`${w.url}/_admin/stores/${encodeURIComponent(store)}/reset`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${ADMIN}` },
    })
    assert.equal(reset.status, 200)
    await waitText('#info dd[data-field="head"]', '0')
    await page.waitForFunction(() => document.querySelectorAll('#live-events tbody tr').length === 0, null, WAIT)
    await page.locator('#events-empty').waitFor({ state: 'visible', ...WAIT })
    assert.equal(await field('eventCount'), '0')
    assert.notEqual(await field('backendId'), backendId)
    assert.equal(await page.locator('#event-table tbody tr').count(), 0)
    await page.waitForFunction(() => /reset at/.test(document.querySelector('#live-status').textContent), null, WAIT)
    await shot(t, '6-after-reset')
  })

  test('a reload keeps the session in this tab; signing out forgets the secret', async (t) => {
    await page.reload()
    await waitText('#info dd[data-field="head"]', '0')
    assert.equal(await page.locator('#sign-in-view').isHidden(), true)
    await page.click('#sign-out')
    await page.locator('#sign-in-view').waitFor({ state: 'visible', ...WAIT })
    assert.equal(await page.evaluate(() => sessionStorage.length), 0)
    assert.equal(await page.locator('#store-view').isHidden(), true)
    await shot(t, '7-signed-out')
  })

  test('opens on the store directory: figures, search, sort, paging, open a store, a deleted one is gone', async (t) => {
    const prefix = storeId('dir')
    const [alpha1, alpha2, beta] = [`${prefix}-alpha-1`, `${prefix}-alpha-2`, `${prefix}-beta`]
    const counts = { [alpha1]: 3, [alpha2]: 12, [beta]: 6 }
    // Eight more under the prefix, one event each: 11 stores make two pages of 10.
    const filler = Array.from({ length: 8 }, (_, i) => `${prefix}-page-${i}`)
    for (const id of filler) counts[id] = 1
    for (const [id, n] of Object.entries(counts)) {
      await withSocket(w, id, async (sock) => assert.deepEqual((await push(sock, id, makeEvents(n))).exit, OK))
    }
    const byId = Object.keys(counts).sort()
    // Each store sends its figures from its alarm: wait until the directory has them all.
    let listed
    await waitFor(
      async () => {
        listed = await adminGet(`stores?${new URLSearchParams({ prefix, sort: 'id' })}`)
        return listed.total === byId.length && listed.stores.every((e) => e.events === counts[e.storeId])
      },
      { timeout: 30_000, interval: 250, message: 'the 11 stores in the directory' },
    )
    const entry = Object.fromEntries(listed.stores.map((e) => [e.storeId, e]))

    // Signed out above; the page without a #store= opens on the directory once signed in.
    await page.goto(`${w.url}/_admin/`)
    await page.fill('#secret', ADMIN)
    await page.click('#sign-in')
    await page.locator('#directory').waitFor({ state: 'visible', ...WAIT })
    // The whole directory (these 11 and the first test's store at most) fits one page of 50.
    await page.waitForFunction(
      (ids) => ids.every((id) => document.querySelector(`#dir-table tbody tr[data-store-id="${id}"]`)),
      byId,
      WAIT,
    )
    for (const id of [alpha1, alpha2, beta]) {
      const row = `#dir-table tbody tr[data-store-id="${id}"]`
      const cells = await page.$$eval(`${row} td`, (tds) => tds.map((td) => td.textContent))
      assert.deepEqual(cells.slice(0, 3), [id, STORAGE, String(counts[id])])
      assert.equal(await page.getAttribute(`${row} td:nth-child(4)`, 'data-bytes'), String(entry[id].bytes))
      assert.match(cells[3], /^\d+(\.\d)? (B|KiB|MiB)$/, 'the size is human readable')
      assert.equal(await page.getAttribute(`${row} td:nth-child(5) time`, 'datetime'), entry[id].lastActivityAt)
      assert.equal(cells[5], '—', 'no expiry without EXPIRE_IDLE_STORES_AFTER')
    }
    await shot(t, '8-directory')

    // The search asks the Worker (prefix=) once typing pauses.
    const listings = []
    const onRequest = (r) => {
      const url = new URL(r.url())
      if (url.pathname === '/_admin/stores') listings.push(url.searchParams.get('prefix'))
    }
    page.on('request', onRequest)
    await page.locator('#dir-search').pressSequentially(`${prefix}-alpha`, { delay: 20 })
    await page.waitForFunction(
      () => document.querySelectorAll('#dir-table tbody tr').length === 2 && document.querySelector('#dir-range').textContent === '1–2 of 2',
      null,
      WAIT,
    )
    page.off('request', onRequest)
    assert.deepEqual((await dirRows()).sort(), [alpha1, alpha2])
    assert.equal(listings.at(-1), `${prefix}-alpha`)
    assert.ok(listings.length < 5, `debounced: ${listings.length} listing requests while typing`)
    assert.equal(await page.locator('#dir-prev').isDisabled(), true)
    assert.equal(await page.locator('#dir-next').isDisabled(), true)
    await shot(t, '9-directory-search')

    // Sorting: a column header, again for the other order, and the select.
    await page.fill('#dir-search', prefix)
    await page.press('#dir-search', 'Enter')
    await page.waitForFunction((n) => document.querySelectorAll('#dir-table tbody tr').length === n, byId.length, WAIT)
    const eventsOrder = (desc) =>
      [...byId].sort((a, b) => (desc ? counts[b] - counts[a] : counts[a] - counts[b]) || (desc ? b.localeCompare(a) : a.localeCompare(b)))
    await page.click('#dir-table th[data-sort="events"] button')
    await dirRowsAre(eventsOrder(true))
    assert.equal(await page.getAttribute('#dir-table th[data-sort="events"]', 'aria-sort'), 'descending')
    assert.equal(await page.inputValue('#dir-sort'), 'events:desc')
    await page.click('#dir-table th[data-sort="events"] button')
    await dirRowsAre(eventsOrder(false))
    assert.equal(await page.getAttribute('#dir-table th[data-sort="events"]', 'aria-sort'), 'ascending')
    await page.selectOption('#dir-sort', 'bytes:desc')
    await dirRowsAre([...byId].sort((a, b) => entry[b].bytes - entry[a].bytes || b.localeCompare(a)))
    assert.equal(await page.getAttribute('#dir-table th[data-sort="bytes"]', 'aria-sort'), 'descending')
    await page.selectOption('#dir-sort', 'id:asc')
    await dirRowsAre(byId)

    // Paging: 10 a page, Next, Previous.
    await page.selectOption('#dir-page-size', '10')
    await dirRowsAre(byId.slice(0, 10))
    assert.equal(await text('#dir-range'), '1–10 of 11')
    assert.equal(await page.locator('#dir-prev').isDisabled(), true)
    await page.click('#dir-next')
    await dirRowsAre(byId.slice(10))
    assert.equal(await text('#dir-range'), '11–11 of 11')
    assert.equal(await page.locator('#dir-next').isDisabled(), true)
    await shot(t, '10-directory-page-2')
    await page.click('#dir-prev')
    await dirRowsAre(byId.slice(0, 10))
    await page.selectOption('#dir-page-size', '50')
    await dirRowsAre(byId)

    // No match: an empty table and a note.
    await page.fill('#dir-search', `${prefix}-nothing`)
    await page.locator('#dir-empty').waitFor({ state: 'visible', ...WAIT })
    assert.equal(await page.locator('#dir-table tbody tr').count(), 0)
    assert.equal(await text('#dir-range'), '0 of 0')

    // A click on a store opens it; Back returns to the directory as it was.
    await page.fill('#dir-search', `${prefix}-alpha`)
    await dirRowsAre([alpha1, alpha2])
    await page.click(`#dir-table tbody tr[data-store-id="${alpha2}"] a`)
    await waitText('#store-title', alpha2)
    await waitText('#info dd[data-field="eventCount"]', String(counts[alpha2]))
    assert.equal(await field('approxSizeBytes'), String(entry[alpha2].bytes), 'the directory counts bytes as the info does')
    assert.equal(await page.locator('#directory').isHidden(), true)
    assert.equal(await page.evaluate(() => location.hash), `#store=${alpha2}`)
    await page.click('#back')
    await page.locator('#directory').waitFor({ state: 'visible', ...WAIT })
    await dirRowsAre([alpha1, alpha2])
    assert.equal(await page.locator('#store').isHidden(), true)
    assert.equal(await page.evaluate(() => location.hash), '')
    // The browser's Back goes to the store again, Forward to the directory.
    await page.goBack()
    await waitText('#store-title', alpha2)
    await page.locator('#store').waitFor({ state: 'visible', ...WAIT })
    await page.goForward()
    await page.locator('#directory').waitFor({ state: 'visible', ...WAIT })

    // Deleted through the API, then Refresh: gone from the list.
    const del = await fetch(`${w.url}/_admin/stores/${encodeURIComponent(alpha1)}`, {
      method: 'DELETE',
      headers: { Authorization: `Bearer ${ADMIN}` },
    })
    assert.equal(del.status, 200)
    assert.equal((await del.json()).deleted, true)
    await page.click('#dir-refresh')
    await dirRowsAre([alpha2])
    assert.equal(await text('#dir-range'), '1–1 of 1')
    await shot(t, '11-directory-after-delete')
  })

  test('the page ran without script errors or policy violations', () => {
    assert.deepEqual(pageErrors, [])
    // The refused sign-in is a 401 the browser reports as a failed load; nothing else may fail.
    assert.deepEqual(failedResponses, ['401 /_admin/ping'])
    assert.deepEqual(consoleErrors.filter((m) => !/status of 401/.test(m)), [])
  })
})
