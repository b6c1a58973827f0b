// Runs our sync Worker beside a client Worker (tests/e2e/apps/do-rpc-client.mjs) in one
// `wrangler dev` session with two configs, the way two scripts of one account bind to each
// other's Durable Objects: the client's CLIENT_DO reaches our SyncBackendDO through a binding
// with `script_name`, and ours calls back through a CLIENT_DO binding of its own.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'

import { applyMigrations, d1Block, DEFAULT_TOKEN, ourConfigText, ROOT, STORAGE, TMP, wranglerDev } from './worker.mjs'

export const CLIENT_SCRIPT = 'do-rpc-client'

const clientConfig = (syncScript) => `
name = "${CLIENT_SCRIPT}"
main = ${JSON.stringify(path.join(ROOT, 'tests/e2e/apps/do-rpc-client.mjs'))}
compatibility_date = "2026-04-01"

[[durable_objects.bindings]]
name = "CLIENT_DO"
class_name = "ClientDO"

[[durable_objects.bindings]]
name = "SYNC_BACKEND_DO"
class_name = "SyncBackendDO"
script_name = "${syncScript}"

[[services]]
binding = "SYNC"
service = "${syncScript}"

[[migrations]]
tag = "v1"
new_sqlite_classes = ["ClientDO"]
`

const syncConfig = (vars, crateDir) => {
  let text = ourConfigText(crateDir)
  const lines = Object.entries(vars).map(([k, v]) => `${k} = ${JSON.stringify(v)}`)
  text = text.replace(/^\[vars\]$/m, `[vars]\n${lines.join('\n')}`)
  text += `
[[durable_objects.bindings]]
name = "CLIENT_DO"
class_name = "ClientDO"
script_name = "${CLIENT_SCRIPT}"
`
  if (STORAGE === 'd1') text += d1Block()
  return text
}

/**
 * Starts both Workers; the client Worker answers on the port (and forwards what is not for it
 * to the sync Worker). Returns { url, wsUrl, logs(), stop() }. `crateDir` picks the sync Worker
 * (the root's, or examples/custom-worker).
 */
export async function startDoRpcPair({ vars = {}, crateDir = '.' } = {}) {
  const syncScript = readFileSync(path.join(ROOT, crateDir, 'wrangler.toml'), 'utf8').match(/^name\s*=\s*"([^"]+)"/m)[1]
  const dir = path.join(TMP, `do-rpc-${process.pid}-${Date.now().toString(36)}`)
  mkdirSync(dir, { recursive: true })
  const client = path.join(dir, 'client.toml')
  const sync = path.join(dir, 'sync.toml')
  const allVars = { AUTH_TOKEN: DEFAULT_TOKEN, ...(STORAGE === 'd1' ? { STORAGE: 'd1' } : {}), ...vars }
  writeFileSync(client, clientConfig(syncScript))
  writeFileSync(sync, syncConfig(allVars, crateDir))
  const state = path.join(dir, 'state')
  if (STORAGE === 'd1') applyMigrations(sync, state)
  // Two scripts take longer to come up than one.
  return wranglerDev({ configs: [client, sync], state, dir, name: 'wrangler dev (two scripts)', readyPath: '/ready', timeoutMs: 120_000 })
}

/** Calls the client object `name`: `/client/<name>/<action>?store=…`, JSON in and out. */
export async function clientCall(pair, name, action, store, body) {
  const q = store === undefined ? '' : `?store=${encodeURIComponent(store)}`
  const res = await fetch(`${pair.url}/client/${name}/${action}${q}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.text()
  try {
    return JSON.parse(text)
  } catch {
    throw new Error(`client ${action} answered ${res.status}: ${text}`)
  }
}
