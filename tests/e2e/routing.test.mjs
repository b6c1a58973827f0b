// The Worker's routing, CORS, auth and configuration rules (spec §1), over plain HTTP.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { OK, openSocket } from './lib/helpers.mjs'
import { INVALID_TOKEN, postSync, rawHttp, UPGRADE_HEADERS as upgrade } from './lib/http.mjs'
import { makeEvents, push, request } from './lib/raw.mjs'
import { DEFAULT_TOKEN, startWorker, syncQuery } from './lib/worker.mjs'

const cors = (headers) => ({
  origin: headers['access-control-allow-origin'],
  methods: headers['access-control-allow-methods'],
  allow: headers['access-control-allow-headers'],
})

describe('with a token configured (the default set-up)', () => {
  let w
  before(async () => (w = await startWorker({ label: 'routing' })))
  after(() => w?.stop())

  test('GET / without sync parameters is the info page', async () => {
    const res = await rawHttp(`${w.url}/`)
    assert.equal(res.status, 200)
    assert.equal(res.headers['content-type'], 'text/plain')
    assert.equal(res.body, 'Info: Sync backend endpoint for @livestore/sync-cf.')
  })

  test('anything else that is not a sync request is 400 Invalid path, with CORS headers', async () => {
    for (const [method, path] of [['GET', '/other'], ['POST', '/'], ['GET', '/x?other=1']]) {
      const res = await rawHttp(`${w.url}${path}`, { method })
      assert.equal(res.status, 400, `${method} ${path}`)
      assert.equal(res.body, 'Invalid path')
      assert.equal(res.headers['content-type'], 'text/plain')
      assert.deepEqual(cors(res.headers), { origin: '*', methods: 'GET, POST, OPTIONS', allow: '*' })
    }
  })

  // The reference answers these with the info page (200) or "Invalid path"; a client that meant
  // to sync learns nothing from either. Here they are 400 with what is wrong.
  test('a request meant as sync but malformed is 400, naming what is wrong', async () => {
    for (const [path, message, headers] of [
      ['/?storeId=a', /transport search parameter is missing/],
      ['/x?transport=http', /storeId search parameter is missing/],
      ['/x?storeId=a&transport=do-rpc', /unknown transport/],
      ['/?storeId=a&transport=ws&payload=%25zz', /payload search parameter is not percent-encoded/],
      ['/p?storeId=a&transport=ws&payload=notjson', /payload search parameter is not JSON/],
      ['/?storeId=%FF-a&transport=http', /not valid UTF-8/],
      ['/', /storeId and transport=ws/, upgrade],
    ]) {
      const res = await rawHttp(`${w.url}${path}`, { headers })
      assert.equal(res.status, 400, path)
      assert.match(res.body, message, path)
      assert.equal(cors(res.headers).origin, '*')
    }
  })

  test('CORS preflight is 204 and echoes the requested headers', async () => {
    const res = await rawHttp(`${w.url}/anything?storeId=a&transport=http`, {
      method: 'OPTIONS',
      headers: { 'Access-Control-Request-Headers': 'content-type,x-livestore-store-id' },
    })
    assert.equal(res.status, 204)
    assert.equal(res.body, '')
    assert.deepEqual(cors(res.headers), { origin: '*', methods: 'GET, POST, OPTIONS', allow: 'content-type,x-livestore-store-id' })
    // The admin API's internal header is never allowed from a browser.
    const admin = await rawHttp(`${w.url}/?storeId=a&transport=http`, {
      method: 'OPTIONS',
      headers: { 'Access-Control-Request-Headers': 'content-type, x-livestore-admin' },
    })
    assert.equal(cors(admin.headers).allow, 'content-type')
  })

  test('transport=ws without Upgrade: websocket is 426', async () => {
    // (A mis-cased `Upgrade: WebSocket` never reaches the worker: the runtime answers it itself.)
    for (const headers of [{}, { Upgrade: 'h2c' }]) {
      const res = await rawHttp(`${w.url}/?${syncQuery('s426')}`, { headers })
      assert.equal(res.status, 426, JSON.stringify(headers))
      assert.equal(res.body, 'Durable Object expected Upgrade: websocket')
      assert.equal(cors(res.headers).origin, '*')
    }
  })

  test('a wrong, missing or mistyped token is refused with the reference\'s 400, before the upgrade', async () => {
    for (const payload of [{ authToken: 'wrong' }, null, { authToken: 7 }, { token: DEFAULT_TOKEN }, 'just-a-string']) {
      const res = await rawHttp(`${w.url}/?${syncQuery('sauth', { payload })}`, { headers: upgrade })
      assert.equal(res.status, 400, JSON.stringify(payload))
      assert.equal(res.body, INVALID_TOKEN)
      assert.equal(cors(res.headers).origin, '*')
    }
    // Also for a would-be token that is a prefix of, or longer than, the real one.
    for (const authToken of [DEFAULT_TOKEN.slice(0, -1), DEFAULT_TOKEN + 'x', '']) {
      const res = await rawHttp(`${w.url}/?${syncQuery('sauth', { payload: { authToken } })}`, { headers: upgrade })
      assert.equal(res.status, 400)
    }
  })

  test('the path is ignored: sync parameters on any path reach the store, and 101 carries no CORS headers', async () => {
    const sock = await openSocket(w, 'any-path', { path: '/some/deep/path' })
    assert.deepEqual((await push(sock, 'any-path', makeEvents(1))).exit, OK)
    sock.close()
    const res = await rawHttp(`${w.url}/x?${syncQuery('any-path')}`, { headers: upgrade })
    assert.equal(res.status, 101)
    assert.equal(res.headers['access-control-allow-origin'], undefined)
  })

  test('storeIds must be 1 to 512 bytes', async () => {
    assert.equal((await rawHttp(`${w.url}/?${syncQuery('')}`, { headers: upgrade })).status, 400)
    const long = await rawHttp(`${w.url}/?${syncQuery('s'.repeat(513))}`, { headers: upgrade })
    assert.equal(long.status, 400)
    assert.match(long.body, /storeId/)
    assert.equal((await rawHttp(`${w.url}/?${syncQuery('s'.repeat(512))}`, { headers: upgrade })).status, 101)
  })
})

describe('without a token', () => {
  let w
  before(async () => (w = await startWorker({ label: 'no-token', vars: {} })))
  after(() => w?.stop())

  test('sync requests are refused with a message that says how to configure a token', async () => {
    const res = await rawHttp(`${w.url}/?${syncQuery('s')}`, { headers: upgrade })
    assert.equal(res.status, 500)
    assert.match(res.body, /AUTH_TOKEN/)
    assert.match(res.body, /wrangler secret put AUTH_TOKEN/)
    assert.match(res.body, /ALLOW_ANONYMOUS/)
    assert.equal((await rawHttp(`${w.url}/`)).status, 200, 'the info page still answers')
  })
})

describe('open access and CORS switched off', () => {
  let w
  before(async () => (w = await startWorker({ label: 'open', vars: { ALLOW_ANONYMOUS: 'true', CORS: 'false' } })))
  after(() => w?.stop())

  test('anyone may sync when ALLOW_ANONYMOUS is set explicitly', async () => {
    const sock = await openSocket(w, 'anon', { payload: null })
    assert.deepEqual((await push(sock, 'anon', makeEvents(1))).exit, OK)
    sock.close()
  })

  test('without CORS there is no preflight answer and no CORS header', async () => {
    const pre = await rawHttp(`${w.url}/x`, { method: 'OPTIONS', headers: { 'Access-Control-Request-Headers': 'content-type' } })
    assert.equal(pre.status, 400)
    assert.equal(pre.body, 'Invalid path')
    assert.equal(pre.headers['access-control-allow-origin'], undefined)
    const res = await rawHttp(`${w.url}/?${syncQuery('x')}`)
    assert.equal(res.status, 426)
    assert.equal(res.headers['access-control-allow-origin'], undefined)
    const http = await rawHttp(`${w.url}/?${syncQuery('x', { transport: 'http' })}`, {
      method: 'POST',
      body: JSON.stringify({ _tag: 'Request', id: '1', tag: 'SyncHttpRpc.Ping', payload: { storeId: 'x' } }),
    })
    assert.equal(http.status, 200)
    assert.equal(http.headers['access-control-allow-origin'], undefined)
  })
})

describe('an invalid configuration', () => {
  let w
  before(async () => (w = await startWorker({ label: 'bad-config', vars: { AUTH_TOKEN: 't', CORS: 'perhaps' }, readyStatus: 500 })))
  after(() => w?.stop())

  test('is reported instead of guessed', async () => {
    const res = await rawHttp(`${w.url}/`)
    assert.equal(res.status, 500)
    assert.match(res.body, /CORS/)
  })
})

describe('an invalid limit', () => {
  let w
  before(async () => (w = await startWorker({ label: 'bad-limit', vars: { AUTH_TOKEN: DEFAULT_TOKEN, MAX_MESSAGE_BYTES: 'abc' }, readyStatus: 500 })))
  after(() => w?.stop())

  test('sync requests over WebSocket and HTTP are refused with 500 naming the setting, never served with a default', async () => {
    const upgraded = await rawHttp(`${w.url}/?${syncQuery('bad-limit')}`, { headers: upgrade })
    assert.equal(upgraded.status, 500, upgraded.body)
    assert.match(upgraded.body, /MAX_MESSAGE_BYTES/)
    await assert.rejects(openSocket(w, 'bad-limit'), { status: 500 })
    const posted = await postSync(w, 'bad-limit', request('SyncHttpRpc.Ping', { storeId: 'bad-limit' }))
    assert.equal(posted.status, 500, posted.body)
    assert.match(posted.body, /MAX_MESSAGE_BYTES/)
  })
})
