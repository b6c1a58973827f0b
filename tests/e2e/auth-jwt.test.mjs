// Signed tokens (JWT) scoped to stores: minted here with Node's own crypto, presented by the real
// LiveStore clients as `syncPayload.authToken` and by bare clients in an `Authorization: Bearer`
// header, checked by the worker at every WebSocket upgrade and every HTTP request.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { after, before, describe, test } from 'node:test'

import { connectClient } from './lib/client.mjs'
import { OK, openSocket, sleep, withSocket } from './lib/helpers.mjs'
import { INVALID_TOKEN, postSync, rawHttp, tokenRefused as refusedBecause, UPGRADE_HEADERS as upgrade } from './lib/http.mjs'
import { makeEvents, push, request } from './lib/raw.mjs'
import { DEFAULT_TOKEN, startWorker, storeId, syncQuery, withWorker } from './lib/worker.mjs'
/** The clock skew the worker allows on exp and nbf (src/jwt.rs LEEWAY_SECS). */
const LEEWAY = 30

const SECRET = crypto.randomBytes(32).toString('base64url')
const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
const JWKS = JSON.stringify({
  keys: [
    { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'rsa-1', alg: 'RS256', use: 'sig' },
    { ...ec.publicKey.export({ format: 'jwk' }), kid: 'ec-1', alg: 'ES256', use: 'sig' },
  ],
})

const b64 = (data) => Buffer.from(data).toString('base64url')
const now = () => Math.floor(Date.now() / 1000)

/** A compact JWS, signed the way any JWT library signs it. */
function mint(claims, { alg = 'HS256', kid, secret = SECRET } = {}) {
  const header = { alg, typ: 'JWT', ...(kid ? { kid } : {}) }
  const input = `${b64(JSON.stringify(header))}.${b64(JSON.stringify(claims))}`
  let signature
  if (alg === 'HS256') signature = crypto.createHmac('sha256', secret).update(input).digest()
  else if (alg === 'RS256') signature = crypto.sign('sha256', Buffer.from(input), rsa.privateKey)
  else if (alg === 'ES256') signature = crypto.sign('sha256', Buffer.from(input), { key: ec.privateKey, dsaEncoding: 'ieee-p1363' })
  else signature = Buffer.alloc(0)
  return `${input}.${b64(signature)}`
}
const tokenFor = (stores, { ttl = 600, alg = 'HS256', ...claims } = {}) =>
  mint({ sub: 'user-1', stores, iat: now(), exp: now() + ttl, ...claims }, { alg, kid: { RS256: 'rsa-1', ES256: 'ec-1' }[alg] })

/** A WebSocket upgrade request as a browser client makes it; the reply's status and body. */
const tryUpgrade = (w, store, { payload, headers = {} } = {}) =>
  rawHttp(`${w.url}/?${syncQuery(store, { payload })}`, { headers: { ...upgrade, ...headers } })

/** One HTTP transport request (a Ping unless `body` says otherwise). */
const httpRpc = (w, store, { payload, headers = {}, body } = {}) =>
  postSync(w, store, body ?? request('SyncHttpRpc.Ping', { storeId: store }), { payload, headers })
const PONG = [{ _tag: 'Exit', requestId: '', exit: { _tag: 'Success', value: { _tag: 'SyncMessage.Pong' } } }]
const assertPong = (res) => {
  assert.equal(res.status, 200, res.body)
  assert.deepEqual(JSON.parse(res.body).map((m) => ({ ...m, requestId: '' })), PONG)
}

// Closed before their worker stops, so no HTTP client polls a stopped server.
const clients = []
const closeClients = () => Promise.all(clients.splice(0).map((c) => c.close().catch(() => {})))
const client = async (w, opts) => {
  const c = await connectClient({ url: w.url, clientId: 'test-client', ...opts })
  clients.push(c)
  return c
}
const events = (n, start = 1) => makeEvents(n, { start, parent: start - 1, clientId: 'test-client', sessionId: 'test-session' })
const pulledEvents = async (c) => (await c.pullPages()).flatMap((p) => p.batch.map((b) => b.eventEncoded))

describe('signed tokens beside the shared token', () => {
  let w
  before(async () => (w = await startWorker({ label: 'jwt', vars: { AUTH_TOKEN: DEFAULT_TOKEN, JWT_SECRET: SECRET, JWT_JWKS: JWKS } })))
  after(async () => {
    await closeClients()
    await w?.stop()
  })

  test('the real clients sync a store with an HS256 token scoped to it, over WebSocket and HTTP', async () => {
    const store = storeId('jwt-hs256')
    const token = tokenFor([store, 'some-other-store'])
    const ws = await client(w, { storeId: store, transport: 'ws', payload: { authToken: token } })
    await ws.push(events(2))
    assert.deepEqual(await pulledEvents(ws), events(2))
    const http = await client(w, { storeId: store, transport: 'http', payload: { authToken: token } })
    assert.deepEqual(await pulledEvents(http), events(2))
    await http.push(events(1, 3))
    assert.deepEqual(await pulledEvents(ws), events(3))
  })

  for (const alg of ['RS256', 'ES256']) {
    test(`${alg} tokens verified against the JWKS open their store, over WebSocket and HTTP`, async () => {
      for (const transport of ['ws', 'http']) {
        const store = storeId(`jwt-${alg}-${transport}`)
        const c = await client(w, { storeId: store, transport, payload: { authToken: tokenFor([store], { alg }) } })
        await c.push(events(1))
        assert.deepEqual(await pulledEvents(c), events(1))
        const other = storeId(`jwt-${alg}-other`)
        const res = transport === 'ws' ? await tryUpgrade(w, other, { payload: { authToken: tokenFor([store], { alg }) } }) : await httpRpc(w, other, { payload: { authToken: tokenFor([store], { alg }) } })
        assert.equal(res.status, 400)
        assert.equal(res.body, refusedBecause('token not valid for this store'))
      }
    })
  }

  test('a token for one store never opens another: WebSocket upgrade and HTTP request are refused with 400', async () => {
    const mine = storeId('jwt-mine')
    const token = tokenFor([mine])
    assert.equal((await tryUpgrade(w, mine, { payload: { authToken: token } })).status, 101)
    assertPong(await httpRpc(w, mine, { payload: { authToken: token } }))
    // Neighbours by prefix, suffix or case are other stores.
    for (const other of [storeId('jwt-theirs'), `${mine}-2`, mine.slice(0, -1), mine.toUpperCase(), '*']) {
      for (const res of [await tryUpgrade(w, other, { payload: { authToken: token } }), await httpRpc(w, other, { payload: { authToken: token } })]) {
        assert.equal(res.status, 400, other)
        assert.equal(res.body, refusedBecause('token not valid for this store'))
        assert.equal(res.headers['access-control-allow-origin'], '*')
      }
    }
  })

  test('expired, not yet valid, forged and unsigned tokens are refused with a reason that quotes nothing', async () => {
    const store = storeId('jwt-bad')
    const cases = [
      [tokenFor([store], { exp: now() - LEEWAY - 60 }), 'token expired'],
      [tokenFor([store], { nbf: now() + LEEWAY + 600 }), 'token not valid yet'],
      [mint({ stores: [store], exp: now() + 600 }, { secret: 'another-secret-of-at-least-32-bytes!!' }), 'bad signature'],
      [mint({ stores: [store], exp: now() + 600 }, { alg: 'none' }), 'unsupported algorithm'],
      [mint({ stores: [store], exp: now() + 600 }, { alg: 'RS256', kid: 'rsa-9' }), 'unknown signing key'],
      [mint({ stores: [store] }), 'token has no exp'],
      [mint({ exp: now() + 600 }), 'token names no stores'],
    ]
    for (const [token, reason] of cases) {
      for (const res of [await tryUpgrade(w, store, { payload: { authToken: token } }), await httpRpc(w, store, { payload: { authToken: token } })]) {
        assert.equal(res.status, 400, reason)
        assert.equal(res.body, refusedBecause(reason))
        assert.ok(!res.body.includes(token.split('.')[1]) && !res.body.includes(SECRET))
      }
    }
  })

  test('Authorization: Bearer works for HTTP requests and for a bare WebSocket upgrade', async () => {
    const store = storeId('jwt-bearer')
    const token = tokenFor([store])
    const headers = { Authorization: `Bearer ${token}` }
    // HTTP: no syncPayload at all.
    assertPong(await httpRpc(w, store, { payload: null, headers }))
    const pushed = await httpRpc(w, store, { payload: null, headers, body: request('SyncHttpRpc.Push', { storeId: store, batch: events(1), backendId: { _tag: 'None' } }) })
    assert.equal(pushed.status, 200, pushed.body)
    assert.deepEqual(JSON.parse(pushed.body)[0].exit, OK)
    // WebSocket: a non-browser client sets the header on the upgrade request.
    await withSocket(w, store, async (sock) => assert.deepEqual((await push(sock, store, events(1, 2))).exit, OK), { payload: null, headers })
    // The header's token is scoped like any other.
    const other = storeId('jwt-bearer-other')
    assert.equal((await tryUpgrade(w, other, { payload: null, headers })).body, refusedBecause('token not valid for this store'))
    assert.equal((await httpRpc(w, other, { payload: null, headers })).status, 400)
    await assert.rejects(openSocket(w, other, { payload: null, headers }), { status: 400 })
    // Without the header, nothing.
    assert.equal((await httpRpc(w, store, { payload: null })).body, INVALID_TOKEN)
  })

  test('the shared AUTH_TOKEN keeps working, with the same refusal as before', async () => {
    const store = storeId('jwt-shared')
    const c = await client(w, { storeId: store, transport: 'ws', payload: { authToken: DEFAULT_TOKEN } })
    await c.push(events(1))
    assert.deepEqual(await pulledEvents(c), events(1))
    for (const payload of [{ authToken: 'wrong' }, null, { authToken: DEFAULT_TOKEN + 'x' }]) {
      const res = await tryUpgrade(w, store, { payload })
      assert.equal(res.status, 400)
      assert.equal(res.body, INVALID_TOKEN)
      assert.equal((await httpRpc(w, store, { payload })).body, INVALID_TOKEN)
    }
  })

  test('every HTTP request is checked: a token that expires between two requests is refused on the second', { timeout: 60_000 }, async () => {
    const store = storeId('jwt-expiring')
    // Valid (with the leeway) for 8 more seconds.
    const validUntil = now() + 8
    const token = tokenFor([store], { exp: validUntil - LEEWAY })
    const c = await client(w, { storeId: store, transport: 'http', payload: { authToken: token } })
    await c.push(events(1))
    assertPong(await httpRpc(w, store, { payload: { authToken: token } }))
    // The clock has to pass the token's expiry: time itself is what this test waits for.
    while (now() <= validUntil) await sleep(250)
    const res = await httpRpc(w, store, { payload: { authToken: token } })
    assert.equal(res.status, 400)
    assert.equal(res.body, refusedBecause('token expired'))
    // The real client's next request fails the same way.
    const exit = await c.runExit(c.backend.push(events(1, 2)))
    assert.equal(exit._tag, 'Failure')
    assert.match(JSON.stringify(exit.cause), /400|Invalid auth token|token expired/)
  })
})

describe('the longest a signed token may still be valid (JWT_MAX_LIFETIME)', () => {
  // Valid for practically ever: a leaked token like this would open its stores for good.
  const forever = (store) => tokenFor([store], { exp: 1e308 })
  const eightDays = (store) => tokenFor([store], { ttl: 8 * 24 * 3600 })

  test('by default (7 days) a token valid for longer is refused with 400; one valid for an hour is accepted', { timeout: 60_000 }, async () => {
    await withWorker({ label: 'jwt-lifetime', vars: { JWT_SECRET: SECRET } }, async (w) => {
      const store = storeId('jwt-lifetime')
      for (const [what, token] of [['exp 1e308', forever(store)], ['exp in 8 days', eightDays(store)]]) {
        for (const res of [await tryUpgrade(w, store, { payload: { authToken: token } }), await httpRpc(w, store, { payload: { authToken: token } })]) {
          assert.equal(res.status, 400, what)
          assert.match(res.body, /token lifetime too long/, what)
          assert.equal(res.body, refusedBecause('token lifetime too long'))
        }
      }
      const hour = tokenFor([store], { ttl: 3600 })
      assert.equal((await tryUpgrade(w, store, { payload: { authToken: hour } })).status, 101)
      assertPong(await httpRpc(w, store, { payload: { authToken: hour } }))
    })
  })

  test('JWT_MAX_LIFETIME=0 lifts the cap', { timeout: 60_000 }, async () => {
    await withWorker({ label: 'jwt-no-cap', vars: { JWT_SECRET: SECRET, JWT_MAX_LIFETIME: '0' } }, async (w) => {
      const store = storeId('jwt-no-cap')
      for (const token of [forever(store), eightDays(store)]) {
        assert.equal((await tryUpgrade(w, store, { payload: { authToken: token } })).status, 101)
        assertPong(await httpRpc(w, store, { payload: { authToken: token } }))
      }
    })
  })
})

describe('signed tokens only, with an audience and an issuer', () => {
  let w
  const aud = 'livestore-sync-test'
  const iss = 'https://auth.example.test'
  before(
    async () =>
      (w = await startWorker({ label: 'jwt-only', vars: { JWT_SECRET: SECRET, JWT_JWKS: JWKS, JWT_AUDIENCE: aud, JWT_ISSUER: iss } })),
  )
  after(async () => {
    await closeClients()
    await w?.stop()
  })

  test('requests without a signed token are refused with 400: never open, never the unconfigured 500', async () => {
    const store = storeId('jwt-only-none')
    for (const payload of [null, { authToken: DEFAULT_TOKEN }, { authToken: '' }, { other: 1 }]) {
      for (const res of [await tryUpgrade(w, store, { payload }), await httpRpc(w, store, { payload })]) {
        assert.equal(res.status, 400, JSON.stringify(payload))
        assert.equal(res.body, INVALID_TOKEN)
      }
    }
  })

  test('aud and iss are checked when configured', async () => {
    const store = storeId('jwt-only-aud')
    const good = tokenFor([store], { aud: [aud, 'other'], iss, alg: 'ES256' })
    const c = await client(w, { storeId: store, transport: 'ws', payload: { authToken: good } })
    await c.push(events(1))
    assert.deepEqual(await pulledEvents(c), events(1))
    for (const [token, reason] of [
      [tokenFor([store], { aud: 'someone-else', iss }), 'wrong audience'],
      [tokenFor([store], { iss }), 'wrong audience'],
      [tokenFor([store], { aud, iss: 'https://evil.example.test' }), 'wrong issuer'],
      [tokenFor([store], { aud }), 'wrong issuer'],
    ]) {
      assert.equal((await tryUpgrade(w, store, { payload: { authToken: token } })).body, refusedBecause(reason))
      assert.equal((await httpRpc(w, store, { payload: { authToken: token } })).body, refusedBecause(reason))
    }
  })
})

describe('a key configuration that cannot be used', () => {
  let w
  before(async () => (w = await startWorker({ label: 'jwt-bad-config', vars: { JWT_SECRET: 'short' }, readyStatus: 500 })))
  after(async () => {
    await closeClients()
    await w?.stop()
  })

  test('is reported by name, without the secret', async () => {
    const res = await rawHttp(`${w.url}/`)
    assert.equal(res.status, 500)
    assert.match(res.body, /JWT_SECRET/)
    assert.match(res.body, /32 bytes/)
    assert.ok(!res.body.includes('"short"'), res.body)
  })
})
