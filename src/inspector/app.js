// The inspector's script. Everything it shows comes from the admin API of the Worker that
// served it, with the admin secret the person signed in with. Data from the store reaches the
// page only through textContent, never as markup.
'use strict'

const SECRET_KEY = 'livestore-inspector-admin-secret'
// The page is /_admin/; the API's paths are relative to it.
const API_BASE = new URL('./', location.href)
const POLL_MS = 1000
// A poll fetches at most this many new events per request and asks again while more remain.
const POLL_LIMIT = 500
// The live list keeps the newest rows only, so a busy store cannot grow the page without bound.
const LIVE_ROWS = 200
// Figures are refreshed every this many quiet polls, to notice a reset or an import.
const INFO_EVERY = 5
// The directory's search asks the Worker once typing pauses this long.
const SEARCH_DEBOUNCE_MS = 250

const $ = (id) => document.getElementById(id)

class Unauthorized extends Error {}

// The secret lives in memory and in sessionStorage (this tab only, gone when it closes), never
// in the URL or localStorage.
let secret = sessionStorage.getItem(SECRET_KEY)
// Bumped whenever the open store changes or the person signs out: a reply or a poll of an
// older generation is dropped.
let generation = 0
let store = null

async function api(path, token = secret, method = 'GET') {
  let res
  try {
    res = await fetch(new URL(path, API_BASE), {
      method,
      headers: { Authorization: `Bearer ${token}` },
      cache: 'no-store',
      credentials: 'omit',
    })
  } catch (e) {
    throw new Error(`The Worker could not be reached (${e.message}).`)
  }
  if (res.status === 401) {
    throw new Unauthorized('Wrong admin secret: the Worker answered 401 Unauthorized.')
  }
  if (!res.ok) {
    let detail = res.statusText
    try {
      const body = await res.json()
      detail = body.message ?? body.error ?? detail
    } catch {}
    throw new Error(`The Worker answered ${res.status}: ${detail}`)
  }
  return res
}

const storePath = (id, rest = '') => `stores/${encodeURIComponent(id)}${rest}`

function parseNdjson(text) {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      try {
        return JSON.parse(line)
      } catch {
        return { unparsable: line }
      }
    })
}

function showError(el, message) {
  el.textContent = message
  el.hidden = !message
}

// --- signing in and out ---

function showSignedIn(signedIn) {
  $('sign-in-view').hidden = signedIn
  $('store-view').hidden = !signedIn
  $('session').hidden = !signedIn
}

function signOut(message = '') {
  generation++
  directoryTicket++
  store = null
  secret = null
  sessionStorage.removeItem(SECRET_KEY)
  $('store').hidden = true
  $('directory').hidden = true
  $('back-bar').hidden = true
  $('live-events').tBodies[0].replaceChildren()
  $('event-table').tBodies[0].replaceChildren()
  $('dir-table').tBodies[0].replaceChildren()
  showSignedIn(false)
  showError($('sign-in-error'), message)
  $('secret').focus()
}

async function signIn(candidate) {
  await api('ping', candidate)
  secret = candidate
  sessionStorage.setItem(SECRET_KEY, candidate)
  showSignedIn(true)
  showError($('sign-in-error'), '')
}

$('sign-in-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const candidate = $('secret').value
  $('sign-in').disabled = true
  try {
    await signIn(candidate)
    $('secret').value = ''
    route()
    $(storeFromHash() === null ? 'dir-search' : 'store-id').focus()
  } catch (e) {
    showError($('sign-in-error'), e.message)
    $('secret').select()
  } finally {
    $('sign-in').disabled = false
  }
})

$('sign-out').addEventListener('click', () => signOut())

// --- where the page is: #store=<id> shows that store, no hash the directory ---

const storeHash = (id) => `#store=${encodeURIComponent(id)}`

// The store the URL names, or null for the directory.
function storeFromHash() {
  const match = /^#store=(.+)$/.exec(location.hash)
  if (!match) return null
  try {
    return decodeURIComponent(match[1])
  } catch {
    return null
  }
}

function route() {
  const id = storeFromHash()
  if (id === null) {
    showDirectory()
  } else {
    $('store-id').value = id
    openStore(id)
  }
}

// A link to a store, Back and Forward change the hash; pushState (the Back button) does not.
window.addEventListener('hashchange', () => {
  if (secret !== null && !$('store-view').hidden) route()
})

$('open-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const id = $('store-id').value.trim()
  if (!id) return
  // Through the hash, so the browser's Back returns to where the person was.
  if (location.hash === storeHash(id)) openStore(id)
  else location.hash = storeHash(id)
})

$('back').addEventListener('click', () => {
  history.pushState(null, '', location.pathname + location.search)
  route()
})

// --- the store directory: GET stores?prefix=&sort=&order=&limit=&offset= ---

const directory = { prefix: '', sort: 'lastActivity', order: 'desc', offset: 0, total: 0, shown: 0 }
// Only the newest listing request may fill the table.
let directoryTicket = 0
let searchTimer = null

function showDirectory() {
  // Stops a store's polling and drops its replies.
  generation++
  store = null
  $('store').hidden = true
  $('back-bar').hidden = true
  $('live-events').tBodies[0].replaceChildren()
  $('event-table').tBodies[0].replaceChildren()
  showError($('store-error'), '')
  $('directory').hidden = false
  loadDirectory()
}

const DEFAULT_ORDER = { id: 'asc', lastActivity: 'desc', firstActivity: 'desc', events: 'desc', bytes: 'desc' }

function formatBytes(n) {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let value = n / 1024
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`
}

function timeCell(iso, none = '—') {
  const td = document.createElement('td')
  if (iso === null || iso === undefined) {
    td.textContent = none
    return td
  }
  const time = document.createElement('time')
  time.dateTime = iso
  time.title = iso
  const date = new Date(iso)
  time.textContent = Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString()
  td.append(time)
  return td
}

function directoryRow(entry) {
  const tr = document.createElement('tr')
  tr.dataset.storeId = entry.storeId
  const idCell = document.createElement('td')
  const link = document.createElement('a')
  link.href = storeHash(entry.storeId)
  link.textContent = entry.storeId
  idCell.append(link)
  const engine = document.createElement('td')
  engine.textContent = String(entry.engine)
  const events = document.createElement('td')
  events.className = 'num'
  events.textContent = String(entry.events)
  const bytes = document.createElement('td')
  bytes.className = 'num'
  bytes.textContent = formatBytes(entry.bytes)
  bytes.title = `${entry.bytes} bytes`
  bytes.dataset.bytes = String(entry.bytes)
  tr.append(idCell, engine, events, bytes, timeCell(entry.lastActivityAt), timeCell(entry.expiresAt))
  return tr
}

function showSort() {
  $('dir-sort').value = `${directory.sort}:${directory.order}`
  for (const th of $('dir-table').tHead.querySelectorAll('th[data-sort]')) {
    if (th.dataset.sort === directory.sort) th.setAttribute('aria-sort', directory.order === 'asc' ? 'ascending' : 'descending')
    else th.removeAttribute('aria-sort')
  }
}

async function loadDirectory() {
  const ticket = ++directoryTicket
  const limit = Number($('dir-page-size').value)
  const query = new URLSearchParams({
    sort: directory.sort,
    order: directory.order,
    limit: String(limit),
    offset: String(directory.offset),
  })
  if (directory.prefix) query.set('prefix', directory.prefix)
  showSort()
  $('dir-refresh').disabled = true
  try {
    const res = await api(`stores?${query}`)
    const page = await res.json()
    if (ticket !== directoryTicket) return
    // A page past the end (stores deleted meanwhile): show the last one instead.
    const lastPage = Math.floor(Math.max(page.total - 1, 0) / limit) * limit
    if (page.stores.length === 0 && directory.offset > lastPage) {
      directory.offset = lastPage
      return loadDirectory()
    }
    directory.total = page.total
    directory.shown = page.stores.length
    showError($('dir-error'), '')
    $('dir-table').tBodies[0].replaceChildren(...page.stores.map(directoryRow))
    const first = page.stores.length > 0 ? directory.offset + 1 : 0
    const last = directory.offset + page.stores.length
    $('dir-range').textContent = page.stores.length > 0 ? `${first}–${last} of ${page.total}` : `0 of ${page.total}`
    $('dir-prev').disabled = directory.offset === 0
    $('dir-next').disabled = last >= page.total
    const empty = $('dir-empty')
    empty.hidden = page.stores.length > 0
    empty.textContent = directory.prefix
      ? `No store id starts with “${directory.prefix}”.`
      : 'No stores with events yet. A store is listed within seconds of its first push.'
    $('dir-status').textContent = `Listed at ${new Date().toLocaleTimeString()}`
  } catch (e) {
    if (ticket !== directoryTicket) return
    if (e instanceof Unauthorized) return signOut('The admin secret is no longer accepted; sign in again.')
    $('dir-table').tBodies[0].replaceChildren()
    $('dir-range').textContent = ''
    $('dir-prev').disabled = $('dir-next').disabled = true
    $('dir-empty').hidden = true
    showError($('dir-error'), e.message)
  } finally {
    if (ticket === directoryTicket) $('dir-refresh').disabled = false
  }
}

function searchNow() {
  clearTimeout(searchTimer)
  searchTimer = null
  const prefix = $('dir-search').value.trim()
  if (prefix === directory.prefix) return
  directory.prefix = prefix
  directory.offset = 0
  loadDirectory()
}

$('dir-search').addEventListener('input', () => {
  clearTimeout(searchTimer)
  searchTimer = setTimeout(searchNow, SEARCH_DEBOUNCE_MS)
})
$('dir-search').addEventListener('keydown', (event) => {
  if (event.key === 'Enter') searchNow()
})

function sortBy(sort, order) {
  directory.sort = sort
  directory.order = order
  directory.offset = 0
  loadDirectory()
}

$('dir-sort').addEventListener('change', () => {
  const [sort, order] = $('dir-sort').value.split(':')
  sortBy(sort, order)
})
// A column's header sorts by it; clicking the sorted column again turns the order around.
for (const th of $('dir-table').tHead.querySelectorAll('th[data-sort]')) {
  th.querySelector('button').addEventListener('click', () => {
    const sort = th.dataset.sort
    if (sort === directory.sort) sortBy(sort, directory.order === 'asc' ? 'desc' : 'asc')
    else sortBy(sort, DEFAULT_ORDER[sort])
  })
}

$('dir-prev').addEventListener('click', () => {
  directory.offset = Math.max(0, directory.offset - Number($('dir-page-size').value))
  loadDirectory()
})
$('dir-next').addEventListener('click', () => {
  directory.offset += Number($('dir-page-size').value)
  loadDirectory()
})
$('dir-page-size').addEventListener('change', () => {
  directory.offset = 0
  loadDirectory()
})
$('dir-refresh').addEventListener('click', () => loadDirectory())

// --- a store ---

async function openStore(id) {
  const mine = ++generation
  directoryTicket++
  store = { id, info: null, pages: [null], index: 0, nextAfter: null, live: null }
  history.replaceState(null, '', storeHash(id))
  showError($('store-error'), '')
  $('directory').hidden = true
  $('back-bar').hidden = false
  $('store').hidden = true
  $('live-events').tBodies[0].replaceChildren()
  $('event-table').tBodies[0].replaceChildren()
  try {
    const info = await loadInfo(mine)
    if (mine !== generation) return
    $('store-title').textContent = id
    $('store').hidden = false
    store.live = { after: info.head, backendId: info.backendId, quiet: 0, seen: 0, note: '' }
    await loadPage(mine)
    schedulePoll(mine)
  } catch (e) {
    failed(e, $('store-error'), mine)
  }
}

function failed(e, where, mine) {
  if (mine !== generation) return
  if (e instanceof Unauthorized) {
    signOut('The admin secret is no longer accepted; sign in again.')
  } else {
    showError(where, e.message)
  }
}

async function loadInfo(mine) {
  const res = await api(storePath(store.id))
  const info = await res.json()
  if (mine !== generation) return info
  store.info = info
  for (const dd of $('info').querySelectorAll('dd[data-field]')) {
    const value = info[dd.dataset.field]
    dd.textContent = value === undefined ? '—' : String(value)
  }
  await loadOutbox(mine)
  return info
}

// --- outbox: each sink's delivery state, with resume and skip for a stuck one ---

async function loadOutbox(mine) {
  const res = await api(storePath(store.id, '/outbox'))
  const outbox = await res.json()
  if (mine !== generation) return
  $('outbox').hidden = outbox.sinks.length === 0
  $('outbox-sinks').tBodies[0].replaceChildren(...outbox.sinks.map((sink) => sinkRow(sink, mine)))
}

function sinkRow(sink, mine) {
  const tr = document.createElement('tr')
  const state = sink.paused ? 'paused' : sink.attempts > 0 ? 'retrying' : sink.backlog > 0 ? 'sending' : 'caught up'
  const when = (iso) => (iso === null ? '—' : new Date(iso).toLocaleString())
  const cells = [`${sink.sink} (${sink.kind})`, state, sink.cursor, sink.backlog, sink.delivered, sink.attempts, sink.lastError ?? '—', when(sink.lastAttemptAt), when(sink.nextAttemptAt)]
  for (const value of cells) {
    const td = document.createElement('td')
    td.textContent = String(value)
    tr.append(td)
  }
  tr.dataset.state = state
  const actions = document.createElement('td')
  const button = (label, action, title) => {
    const b = document.createElement('button')
    b.type = 'button'
    b.textContent = label
    b.title = title
    b.addEventListener('click', () => sinkAction(sink.sink, action, mine))
    actions.append(b)
  }
  if (sink.paused || sink.attempts > 0) button('Resume', 'resume', 'Try the waiting batch again now')
  if (sink.backlog > 0) button('Skip to head', 'skip', 'Move the cursor to the newest event: what is in between is not sent')
  tr.append(actions)
  return tr
}

async function sinkAction(name, action, mine) {
  if (action === 'skip' && !confirm(`Skip sink ${name} to the newest event? The events in between are not delivered.`)) return
  showError($('outbox-error'), '')
  try {
    await api(storePath(store.id, `/outbox/${encodeURIComponent(name)}/${action}`), secret, 'POST')
    await loadOutbox(mine)
  } catch (e) {
    failed(e, $('outbox-error'), mine)
  }
}

$('refresh').addEventListener('click', async () => {
  const mine = generation
  if (!store) return
  try {
    await loadInfo(mine)
    await loadPage(mine)
  } catch (e) {
    failed(e, $('store-error'), mine)
  }
})

// --- events ---

function eventRow(e) {
  const tr = document.createElement('tr')
  if (e.unparsable !== undefined) {
    const td = document.createElement('td')
    td.colSpan = 7
    td.textContent = e.unparsable
    tr.append(td)
    return tr
  }
  tr.dataset.seq = String(e.seqNum)
  const cells = [e.seqNum, e.parentSeqNum, e.name, e.clientId, e.sessionId, e.createdAt]
  for (const value of cells) {
    const td = document.createElement('td')
    td.textContent = value === undefined ? '—' : String(value)
    tr.append(td)
  }
  const args = document.createElement('td')
  const code = document.createElement('code')
  code.className = 'args'
  code.textContent = e.args === undefined ? '—' : JSON.stringify(e.args)
  args.append(code)
  tr.append(args)
  return tr
}

// Only the newest page request may fill the table: a poll's refresh of the last page must not
// land after, and overwrite, a page the person turned to meanwhile.
let pageTicket = 0

async function loadPage(mine) {
  const ticket = ++pageTicket
  const size = Number($('page-size').value)
  const query = new URLSearchParams({ limit: String(size) })
  const after = store.pages[store.index]
  if (after !== null) query.set('after', after)
  const res = await api(storePath(store.id, `/events?${query}`))
  const nextAfter = res.headers.get('x-next-after')
  const events = parseNdjson(await res.text())
  if (mine !== generation || ticket !== pageTicket) return
  store.nextAfter = nextAfter
  $('event-table').tBodies[0].replaceChildren(...events.map(eventRow))
  $('events-empty').hidden = events.length > 0 || store.index > 0
  const seqs = events.map((e) => e.seqNum).filter((n) => n !== undefined)
  $('page-label').textContent =
    seqs.length > 0 ? `Page ${store.index + 1} · seqNum ${seqs[0]}–${seqs[seqs.length - 1]}` : `Page ${store.index + 1}`
  $('first').disabled = $('prev').disabled = store.index === 0
  $('next').disabled = nextAfter === null
}

async function turnPage(change) {
  const mine = generation
  if (!store) return
  change()
  try {
    await loadPage(mine)
  } catch (e) {
    failed(e, $('store-error'), mine)
  }
}

$('next').addEventListener('click', () =>
  turnPage(() => {
    if (store.nextAfter === null) return
    store.pages.length = store.index + 1
    store.pages.push(store.nextAfter)
    store.index++
  }),
)
$('prev').addEventListener('click', () => turnPage(() => (store.index = Math.max(0, store.index - 1))))
$('first').addEventListener('click', () => turnPage(() => (store.index = 0)))
$('page-size').addEventListener('change', () =>
  turnPage(() => {
    store.pages = [null]
    store.index = 0
  }),
)

// --- live: polls the export for events after the newest one seen ---

function schedulePoll(mine) {
  setTimeout(() => poll(mine), POLL_MS)
}

async function poll(mine) {
  if (mine !== generation) return
  const live = store.live
  if (!$('follow').checked) {
    $('live-status').textContent = 'Paused.'
    return schedulePoll(mine)
  }
  try {
    let arrived = 0
    for (;;) {
      const from = live.after
      const query = new URLSearchParams({ after: String(from), limit: String(POLL_LIMIT) })
      const res = await api(storePath(store.id, `/events?${query}`))
      const more = res.headers.get('x-next-after') !== null
      const events = parseNdjson(await res.text())
      if (mine !== generation) return
      const body = $('live-events').tBodies[0]
      for (const e of events) {
        if (typeof e.seqNum === 'number') live.after = Math.max(live.after, e.seqNum)
        body.prepend(eventRow(e))
      }
      while (body.rows.length > LIVE_ROWS) body.lastElementChild.remove()
      arrived += events.length
      // Asks again only while that moves the cursor forward.
      if (!more || live.after === from) break
    }
    live.seen += arrived
    live.quiet = arrived > 0 ? 0 : live.quiet + 1
    if (arrived > 0 || live.quiet % INFO_EVERY === 0) {
      const info = await loadInfo(mine)
      if (mine !== generation) return
      if (info.backendId !== live.backendId) {
        // A reset (or a reset and an import): the old seqNums mean nothing any more.
        live.backendId = info.backendId
        live.after = info.head
        live.seen = 0
        live.note = ` · reset at ${new Date().toLocaleTimeString()} (new backendId)`
        $('live-events').tBodies[0].replaceChildren()
        store.pages = [null]
        store.index = 0
        await loadPage(mine)
      } else if (arrived > 0 && store.nextAfter === null) {
        // The last page is on screen: show the new events there too.
        await loadPage(mine)
      }
    }
    if (mine !== generation) return
    const time = new Date().toLocaleTimeString()
    $('live-status').textContent = `Newest seqNum ${live.after} · ${live.seen} arrived since the store was opened${live.note} · checked ${time}`
  } catch (e) {
    if (e instanceof Unauthorized) return failed(e, $('store-error'), mine)
    if (mine === generation) $('live-status').textContent = `Polling failed, retrying: ${e.message}`
  }
  schedulePoll(mine)
}

// --- start ---

showSignedIn(false)
if (secret !== null) {
  // A reload in the same tab: check the kept secret again before showing anything.
  signIn(secret).then(route, (e) => signOut(e.message))
}
