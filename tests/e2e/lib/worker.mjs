// Starts the built worker (or the reference worker) under `wrangler dev` on a free port, the way
// a developer runs it, and stops it again. Each server gets its own wrangler config in
// tests/e2e/.tmp, derived from the project's wrangler.toml minus the [build] step (the suite
// builds once, up front), and its own persistence directory unless one is given.
// With E2E_RUNTIME=workerd they run instead on workerd alone, the way ./scripts/selfhost runs
// our worker: selfhost/workerd.capnp, settings in environment variables, no wrangler (the
// reference is bundled with esbuild, as wrangler would; D1 does not exist there).
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
export const TMP = path.join(ROOT, 'tests/e2e/.tmp')
export const DEFAULT_TOKEN = 'insecure-token-change-me'
/**
 * The storage engine the suite runs against: `E2E_STORAGE=d1` selects D1, `E2E_STORAGE=postgres`
 * Postgres (a throwaway cluster, lib/postgres.mjs; the build with the engine), else DO SQLite.
 */
export const STORAGE = ['d1', 'postgres'].includes(process.env.E2E_STORAGE) ? process.env.E2E_STORAGE : 'do-sqlite'
/** The runtime: `E2E_RUNTIME=workerd` selects workerd alone (self-hosted), else `wrangler dev`. */
export const RUNTIME = process.env.E2E_RUNTIME === 'workerd' ? 'workerd' : 'wrangler'
if (RUNTIME === 'workerd' && STORAGE === 'd1') throw new Error('E2E_RUNTIME=workerd has no D1; run it with the event logs in DO SQLite')

/**
 * For a test that only runs under `wrangler dev`: under workerd alone, the `skip` option with the
 * reason (node --test prints it), else false.
 */
export const wranglerOnly = (reason) => (RUNTIME === 'workerd' ? `needs wrangler dev: ${reason}` : false)

/** For a test of what one engine's own storage holds: the `skip` reason on the others, else false. */
export const engineOnly = (engines, reason) => (engines.includes(STORAGE) ? false : `${STORAGE}: ${reason}`)

/**
 * The build directory of our worker for an engine: Postgres needs a build with its feature, and
 * the suite uses its test build (`./scripts/build-worker --test-faults`: test faults, off unless
 * TEST_FAULTS=true, and Postgres), which ./scripts/test builds anyway.
 */
export const buildDirFor = (storage) => (storage === 'postgres' ? 'build-test-faults' : 'build')

/** The preload that keeps wrangler 4.86's local Hyperdrive proxy alive (see the file). */
export const HYPERDRIVE_PRELOAD = path.join(ROOT, 'scripts/hyperdrive-preload.cjs')

/**
 * What a worker needs to store in Postgres under wrangler dev: a Hyperdrive binding (its local
 * connection string in the environment, as a developer keeps credentials out of files) and the
 * preload. Returns { block, env }.
 */
export const hyperdriveFor = (url) => ({
  block: `
[[hyperdrive]]
binding = "HYPERDRIVE"
id = "00000000000000000000000000000000"
`,
  env: {
    CLOUDFLARE_HYPERDRIVE_LOCAL_CONNECTION_STRING_HYPERDRIVE: `${url}?sslmode=disable`,
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${HYPERDRIVE_PRELOAD}`.trim(),
  },
})

const wranglerBin = path.join(ROOT, 'node_modules/wrangler/bin/wrangler.js')
const wranglerEnv = () => ({ ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1', CI: '1' })

/** The D1 database the worker (and the reference) use when the engine is D1. */
export const d1Block = () => `
[[d1_databases]]
binding = "DB"
database_name = "livestore-sync-test"
database_id = "local-test"
migrations_dir = ${JSON.stringify(path.join(ROOT, 'migrations'))}
`

let counter = 0
const uniq = (label) => `${label}-${process.pid}-${Date.now().toString(36)}-${counter++}`

// Ports handed out by this process: the kernel may offer a just-released port again, and the
// server port and the inspector port of one worker must differ.
const handedOut = new Set()
export const freePort = async () => {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const srv = net.createServer()
      srv.unref()
      srv.on('error', reject)
      srv.listen(0, '127.0.0.1', () => {
        const { port } = srv.address()
        srv.close(() => resolve(port))
      })
    })
    if (!handedOut.has(port)) {
      handedOut.add(port)
      return port
    }
  }
}

/**
 * A project wrangler.toml (the root's, or an example's) without its [build] section, pointing at
 * the already built worker.
 */
export const ourConfigText = (crateDir = '.', outDir = 'build') => {
  const dir = path.join(ROOT, crateDir)
  const lines = readFileSync(path.join(dir, 'wrangler.toml'), 'utf8').split('\n')
  const out = []
  let skipping = false
  for (const line of lines) {
    if (/^\s*\[/.test(line)) skipping = /^\s*\[build\]\s*$/.test(line)
    if (skipping) continue
    out.push(line.replace(/^main\s*=.*$/, `main = ${JSON.stringify(path.join(dir, outDir, 'index.js'))}`))
  }
  return out.join('\n')
}

/**
 * A wrangler config for the TypeScript reference server (or, with `main`, another JavaScript
 * worker of the tests), sharing our worker and class names.
 */
export const referenceConfigText = (storage, main) => `
name = "livestore-sync"
main = ${JSON.stringify(main ?? path.join(ROOT, `tests/reference-worker/${storage === 'd1' ? 'index-d1.js' : 'index.js'}`))}
compatibility_date = "2026-04-01"
compatibility_flags = ["enable_request_signal"]

[[durable_objects.bindings]]
name = "SYNC_BACKEND_DO"
class_name = "SyncBackendDO"

[[migrations]]
tag = "v1"
new_sqlite_classes = ["SyncBackendDO"]
`

/**
 * Starts a worker. Returns { url, wsUrl, port, persistTo, logs(), logLines() (the structured log lines, parsed), stop(), kill() }.
 * `crateDir` picks the worker (the root, or e.g. `examples/custom-worker`); `editConfig` may
 * rewrite its wrangler.toml text.
 * `vars` become `--var` flags (environment variables under workerd, where `editConfig` edits
 * the capnp text); `database` names the Postgres database (default: one per state directory;
 * two workers given one are two sync nodes); `persistTo` reuses a state directory and `port` a port (for restart
 * tests); the server counts as up once `GET /` answers `readyStatus`, polled every `pollMs` (200;
 * a cold start's figure, `readyMs`, takes a short one).
 */
export async function startWorker(options = {}) {
  // A free port can still be taken by another process before workerd binds it; with ports of
  // our own choosing, pick new ones and try again.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startWorkerOnce(options)
    } catch (e) {
      if (options.port !== undefined || attempt >= 3 || !String(e.message).includes('Address already in use')) throw e
    }
  }
}

async function startWorkerOnce({
  vars = { AUTH_TOKEN: DEFAULT_TOKEN },
  persistTo,
  reference = false,
  jsMain,
  crateDir = '.',
  outDir,
  editConfig = (text) => text,
  label = 'worker',
  readyStatus = 200,
  readyPath = '/',
  port: fixedPort,
  storage = STORAGE,
  migrate = true,
  database,
  pollMs,
} = {}) {
  const dir = path.join(TMP, uniq(label))
  mkdirSync(dir, { recursive: true })
  if ((reference || jsMain) && storage === 'postgres') throw new Error('the reference has no Postgres engine; skip the test with engineOnly')
  outDir ??= buildDirFor(storage)
  const state = persistTo ?? path.join(dir, 'state')
  // Postgres: a database per state directory, so every worker starts on an empty one as it does
  // on DO SQLite, and a restarted one (same directory) finds its data.
  let postgresUrl
  if (storage === 'postgres') {
    const { postgres, databaseFor } = await import('./postgres.mjs')
    postgresUrl = (await postgres()).createDatabase(database ?? databaseFor(state))
    vars = { STORAGE: 'postgres', ...vars }
  }
  if (RUNTIME === 'workerd') {
    if (jsMain || storage === 'd1') throw new Error('under workerd alone only our workers and the reference run, on DO SQLite; mark the test wranglerOnly')
    if (postgresUrl) vars = { POSTGRES_URL: postgresUrl, ...vars }
    return startWorkerd({ dir, vars, persistTo: state, reference, crateDir, outDir, editConfig, label, readyStatus, readyPath, port: fixedPort, storage, pollMs })
  }
  const config = path.join(dir, 'wrangler.toml')
  let text = editConfig(reference || jsMain ? referenceConfigText(storage, jsMain) : ourConfigText(crateDir, outDir))
  if (storage === 'd1') {
    text += d1Block()
    if (!reference) vars = { STORAGE: 'd1', ...vars }
  }
  let env
  if (postgresUrl) {
    const hyperdrive = hyperdriveFor(postgresUrl)
    text += hyperdrive.block
    env = hyperdrive.env
  }
  writeFileSync(config, text)
  if (storage === 'd1' && migrate) applyMigrations(config, state)
  return wranglerDev({ configs: [config], state, vars, env, port: fixedPort, dir, readyPath, readyStatus, pollMs, extra: { persistTo: state, config, storage, postgresUrl } })
}

/**
 * `wrangler dev` on one config per script (the first one's Worker answers on the port), with
 * `vars` as `--var` flags and its state in `state`, on a free port unless `port` is given;
 * resolves once `GET readyPath` answers `readyStatus` (see `launch`).
 */
export async function wranglerDev({ configs, state, vars = {}, env = {}, port, dir, name = 'wrangler dev', readyPath, readyStatus, timeoutMs, pollMs, extra = {} }) {
  port ??= await freePort()
  const inspectorPort = await freePort()
  const args = [
    wranglerBin,
    'dev',
    ...configs.flatMap((config) => ['-c', config]),
    '--ip', '127.0.0.1',
    '--port', String(port),
    '--inspector-port', String(inspectorPort),
    '--persist-to', state,
    '--show-interactive-dev-session=false',
    '--log-level', 'log',
  ]
  for (const [k, v] of Object.entries(vars)) args.push('--var', `${k}:${v}`)
  return launch({ name, command: process.execPath, args, env: { ...wranglerEnv(), ...env }, dir, port, readyPath, readyStatus, timeoutMs, pollMs, extra: { ...extra, inspectorPort } })
}

/**
 * Runs a server process in its own process group (so stopping it reaches every child), collects
 * its output, and resolves once `GET readyPath` answers `readyStatus`.
 */
export async function launch({ name, command, args, env, dir, port, readyPath = '/', readyStatus = 200, timeoutMs = 90_000, pollMs = 200, extra = {} }) {
  const logFile = path.join(dir, 'server.log')
  const logStream = createWriteStream(logFile)
  let output = ''
  const child = spawn(command, args, {
    cwd: dir,
    detached: true, // own process group, so stop() reaches workerd too
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  for (const stream of [child.stdout, child.stderr]) {
    stream.on('data', (d) => {
      output += d.toString()
      logStream.write(d)
    })
  }
  const spawnedAt = performance.now()
  let exited = false
  child.on('exit', () => (exited = true))
  // 'close' comes after 'exit', once the process's output has been read to the end: a test may
  // stop a server and then look at everything it printed.
  const closed = once(child, 'close').catch(() => {})
  let stopped
  const stopGroup = async (signal) => {
    if (!exited) {
      try {
        process.kill(-child.pid, signal)
      } catch {}
    }
    stopped ??= (async () => {
      // A deadline, not a wait for an event: a server that ignores SIGTERM is killed after 5 s.
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid, 'SIGKILL')
        } catch {}
      }, 5000)
      if (!exited) await once(child, 'exit').catch(() => {})
      clearTimeout(timer)
      // The whole group is gone, so its pipes close at once; the race only guards against a
      // process that left the group and still holds them.
      await Promise.race([closed, new Promise((r) => setTimeout(r, 5000).unref())])
      logStream.end()
    })()
    await stopped
  }
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (exited) throw new Error(`${name} exited early:\n${output}`)
    try {
      const res = await fetch(`${url}${readyPath}`)
      await res.arrayBuffer()
      if (res.status === readyStatus) break
    } catch {}
    if (Date.now() > deadline) {
      await stopGroup('SIGKILL')
      throw new Error(`${name} did not answer within ${timeoutMs / 1000} s:\n${output}`)
    }
    // Polls for the server's first answer, which nothing announces sooner.
    await new Promise((r) => setTimeout(r, pollMs))
  }
  const readyMs = performance.now() - spawnedAt
  const handle = {
    url,
    wsUrl: `ws://127.0.0.1:${port}`,
    port,
    dir,
    pid: child.pid,
    // From spawning the process to its first answer (polled every `pollMs`).
    readyMs,
    ...extra,
    logs: () => output,
    logLines: () => jsonLogLines(output),
    stop: () => stopGroup('SIGTERM'),
    kill: () => stopGroup('SIGKILL'),
  }
  activeWorkers.add(handle)
  return handle
}

/**
 * The worker's structured log lines in `output`, parsed. `wrangler dev` prints `console.log`
 * lines as they are, and wraps `console.error` ones in a banner, hence the search for the object.
 */
export const jsonLogLines = (output) =>
  output.split('\n').flatMap((line) => {
    const start = line.indexOf('{"level":"')
    const end = line.lastIndexOf('}')
    if (start < 0 || end < start) return []
    try {
      return [JSON.parse(line.slice(start, end + 1))]
    } catch {
      return []
    }
  })

/** The `[vars]` of a project wrangler.toml (plain `KEY = "value"` lines, as ours are). */
const tomlVars = (crateDir) => {
  const vars = {}
  let inVars = false
  for (const line of readFileSync(path.join(ROOT, crateDir, 'wrangler.toml'), 'utf8').split('\n')) {
    if (/^\s*\[/.test(line)) inVars = /^\s*\[vars\]\s*$/.test(line)
    const m = inVars && line.match(/^\s*([A-Z0-9_]+)\s*=\s*"([^"]*)"\s*$/)
    if (m) vars[m[1]] = m[2]
  }
  return vars
}

/**
 * The self-hosting config serving the TypeScript reference instead of our worker, with the same
 * Durable Object namespace and storage: the reference bundled as wrangler would bundle it.
 */
const referenceCapnp = (text, dir) => {
  execFileSync(path.join(ROOT, 'node_modules/.bin/esbuild'), [
    path.join(ROOT, 'tests/reference-worker/index.js'),
    '--bundle', '--format=esm', '--platform=browser', '--conditions=workerd,worker,browser', '--external:cloudflare:*', '--log-level=warning',
    `--outfile=${path.join(dir, 'reference.js')}`,
  ])
  const modules = /  modules = \[\n[^\]]*\],\n/
  const date = 'compatibilityDate = "2026-04-01",\n'
  if (!modules.test(text) || !text.includes(date)) throw new Error('selfhost/workerd.capnp changed shape; update referenceCapnp')
  return text
    .replace(modules, '  modules = [(name = "index.js", esModule = embed "reference.js")],\n')
    .replace(date, `${date}  compatibilityFlags = ["enable_request_signal"],\n`)
}

const workerdBin = () => createRequire(import.meta.url)('workerd').default

/**
 * Our worker under workerd alone, as ./scripts/selfhost runs it: selfhost/workerd.capnp with its
 * modules taken from the crate's build/, the Durable Objects' SQLite in `persistTo`, and the
 * settings as environment variables (the wrangler.toml's [vars], then `vars`) — nothing else of
 * this process's environment, so a stray AUTH_TOKEN there cannot change a test.
 */
async function startWorkerd({ dir, vars, persistTo, reference, crateDir, outDir = 'build', editConfig, readyStatus, readyPath, port: fixedPort, storage = 'do-sqlite', pollMs }) {
  // capnp reads embed paths relative to the config file (a leading / means its import path).
  const buildDir = path.relative(dir, path.join(ROOT, crateDir, outDir))
  let text = readFileSync(path.join(ROOT, 'selfhost/workerd.capnp'), 'utf8').replaceAll('embed "../build/', `embed "${buildDir}/`)
  if (reference) text = referenceCapnp(text, dir)
  text = editConfig(text)
  const config = path.join(dir, 'workerd.capnp')
  writeFileSync(config, text)
  const state = persistTo ?? path.join(dir, 'state')
  mkdirSync(state, { recursive: true })
  const port = fixedPort ?? (await freePort())
  const args = ['serve', config, '--socket-addr', `http=127.0.0.1:${port}`, '--directory-path', `do-storage=${state}`]
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, ...tomlVars(crateDir), ...vars }
  return launch({ name: 'workerd', command: workerdBin(), args, env, dir, port, readyPath, readyStatus, pollMs, extra: { persistTo: state, config, storage, postgresUrl: vars.POSTGRES_URL } })
}

/** `wrangler d1 migrations apply --local`, as a developer runs it, into a state directory. */
export function applyMigrations(config, state) {
  execFileSync(process.execPath, [wranglerBin, 'd1', 'migrations', 'apply', 'DB', '--local', '--persist-to', state, '-c', config], {
    env: wranglerEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
}

/** Runs SQL against the local D1 database of a state directory (`wrangler d1 execute --local`). */
export function d1Execute(worker, command) {
  const out = execFileSync(
    process.execPath,
    [wranglerBin, 'd1', 'execute', 'DB', '--local', '--persist-to', worker.persistTo, '-c', worker.config, '--json', '--command', command],
    { env: wranglerEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  )
  return JSON.parse(out.toString())[0].results
}

/** Starts a worker (`startWorker(options)`), runs `fn(worker)`, and stops it however `fn` ends. */
export const withWorker = async (options, fn) => withServer(await startWorker(options), fn)

/** Runs `fn(server)` and stops `server` (a worker, a DO RPC pair: anything with `stop()`) however `fn` ends. */
export async function withServer(server, fn) {
  try {
    return await fn(server)
  } finally {
    await server.stop()
  }
}

const activeWorkers = new Set()
process.on('exit', () => {
  for (const w of activeWorkers) w.kill()
})

/** A storeId no other test uses. */
export const storeId = (label) => uniq(`test-${label}`).replace(/[^A-Za-z0-9-]/g, '-')

/** The query string the LiveStore client builds: payload JSON, percent-encoded twice (`payload: null` leaves it out). */
export const syncQuery = (store, { payload = { authToken: DEFAULT_TOKEN }, transport = 'ws' } = {}) => {
  const params = new URLSearchParams({ storeId: store })
  if (payload !== null) params.set('payload', encodeURIComponent(JSON.stringify(payload)))
  params.set('transport', transport)
  return params.toString()
}
