// A throwaway PostgreSQL for the Postgres engine's tests: Debian's `postgresql` package, a
// cluster made with initdb in the system temp directory on a free port, SCRAM password login on
// TCP (what Hyperdrive and POSTGRES_URL use), stopped when this process exits. One cluster per
// test process; each worker the suite starts gets a database of its own (see worker.mjs), so
// tests stay as isolated as they are on DO SQLite. E2E_POSTGRES_ADMIN_URL points the suite at
// an existing server instead (a superuser's URL).
import { execFileSync, spawnSync } from 'node:child_process'
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'

/** Where Debian's package puts the server's programs (the newest version installed). */
export const pgBin = () => {
  if (process.env.PG_BIN) return process.env.PG_BIN
  const base = '/usr/lib/postgresql'
  const versions = existsSync(base) ? readdirSync(base).filter((v) => /^\d+$/.test(v)).sort((a, b) => b - a) : []
  if (!versions.length) throw new Error('PostgreSQL is not installed: run ./scripts/setup (it installs the postgresql package)')
  return path.join(base, versions[0], 'bin')
}

const ADMIN_PASSWORD = 'postgres-test-password'
/** The role the workers log in as; every test database is its own. */
export const APP_USER = 'app'
export const APP_PASSWORD = 'app-test-password'

const asRoot = process.getuid?.() === 0
// runuser lives in sbin, which a minimal PATH (CI's, cron's) may leave out.
const runuser = ['/usr/sbin/runuser', '/sbin/runuser', '/usr/bin/runuser', '/bin/runuser'].find((p) => existsSync(p)) ?? 'runuser'
// initdb and postgres refuse to run as root: there they run as the package's postgres user.
const run = (program, args, options = {}) => {
  const command = asRoot ? runuser : program
  const argv = asRoot ? ['-u', 'postgres', '--', program, ...args] : args
  return execFileSync(command, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...options })
}

let cluster
/**
 * The cluster of this process, started on first use: { port, adminUrl, url(db), sql(db, text),
 * createDatabase(name), stop(), kill(), start() }.
 */
export async function postgres() {
  cluster ??= await startCluster()
  return cluster
}

async function startCluster() {
  const external = process.env.E2E_POSTGRES_ADMIN_URL
  if (external) return clusterAt(new URL(external), null)
  const bin = pgBin()
  const dir = mkdtempSync(path.join(os.tmpdir(), 'livestore-pg-'))
  const data = path.join(dir, 'data')
  const pwfile = path.join(dir, 'pw')
  writeFileSync(pwfile, ADMIN_PASSWORD)
  if (asRoot) {
    const { uid, gid } = postgresUser()
    chownSync(dir, uid, gid)
    chownSync(pwfile, uid, gid)
  }
  chmodSync(dir, 0o700)
  // -E UTF8: with no locale in the environment initdb would make a SQL_ASCII cluster, whose JSONB
  // refuses \u00e9-style escapes.
  run(path.join(bin, 'initdb'), ['-D', data, '-E', 'UTF8', '--no-locale', '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', `--pwfile=${pwfile}`])
  const { freePort } = await import('./worker.mjs')
  const port = await freePort()
  const handle = clusterAt(new URL(`postgres://postgres:${ADMIN_PASSWORD}@127.0.0.1:${port}/postgres`), { bin, dir, data, port })
  handle.start()
  process.on('exit', () => {
    try {
      handle.kill()
    } catch {}
    try {
      rmSync(dir, { recursive: true, force: true })
    } catch {}
  })
  handle.sql('postgres', `CREATE ROLE ${APP_USER} LOGIN PASSWORD '${APP_PASSWORD}'`)
  return handle
}

const postgresUser = () => {
  const [uid, gid] = execFileSync('id', ['-u', 'postgres']).toString().trim().split(/\s+/).concat(execFileSync('id', ['-g', 'postgres']).toString().trim())
  return { uid: Number(uid), gid: Number(gid) }
}

function clusterAt(admin, local) {
  const port = Number(admin.port || 5432)
  const host = admin.hostname
  const psql = local ? path.join(local.bin, 'psql') : 'psql'
  const env = { ...process.env, PGPASSWORD: decodeURIComponent(admin.password), PGCONNECT_TIMEOUT: '5' }
  const handle = {
    port,
    host,
    adminUrl: admin.toString(),
    /** The connection string of `db` for the workers' role. */
    url: (db) => `postgres://${APP_USER}:${APP_PASSWORD}@${host}:${port}/${db}`,
    /** Runs SQL as the superuser in `db`; returns psql's unaligned output (rows as `a|b` lines). */
    sql: (db, text) =>
      execFileSync(psql, ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', host, '-p', String(port), '-U', decodeURIComponent(admin.username), '-d', db, '-c', text], { env, stdio: ['ignore', 'pipe', 'pipe'] })
        .toString()
        .trim(),
    /** A database owned by the workers' role, made once. */
    createDatabase: (db) => {
      const exists = handle.sql('postgres', `SELECT 1 FROM pg_database WHERE datname = '${db}'`)
      if (!exists) handle.sql('postgres', `CREATE DATABASE "${db}" OWNER ${APP_USER}`)
      return handle.url(db)
    },
    /**
     * Starts the server (again, after stop or kill), waiting until it accepts connections. Each
     * store with live pulls holds a connection per node, and load.test.mjs opens 200 such stores
     * at once: more than Postgres's default 100 connections.
     */
    start: () => {
      if (!local) throw new Error('an external server is not started here')
      run(path.join(local.bin, 'pg_ctl'), ['-D', local.data, '-l', path.join(local.dir, 'log'), '-w', '-o', `-p ${local.port} -k ${local.dir} -c listen_addresses=127.0.0.1 -c max_connections=400`, 'start'])
    },
    /** A clean shutdown. */
    stop: () => local && run(path.join(local.bin, 'pg_ctl'), ['-D', local.data, '-m', 'fast', '-w', 'stop']),
    /** kill -9 of the server's processes, as a crash; returns once they are all gone. */
    kill: () => {
      if (!local) return
      const pidFile = path.join(local.data, 'postmaster.pid')
      if (!existsSync(pidFile)) return
      const pid = Number(spawnSync('head', ['-n1', pidFile]).stdout.toString().trim())
      // The postmaster and its backends (its children). Not by process group: the postmaster
      // may share this test process's.
      const children = spawnSync('ps', ['-o', 'pid=', '--ppid', String(pid)]).stdout.toString().split(/\s+/).filter(Boolean).map(Number)
      const pids = [pid, ...children]
      for (const p of pids) {
        try {
          process.kill(p, 'SIGKILL')
        } catch {}
      }
      // Until they have exited they hold the port and the shared memory, and a new postmaster
      // would refuse to start. (Exited ones may linger as zombies where nothing reaps orphans.)
      const alive = () =>
        spawnSync('ps', ['-o', 'stat=', '-p', pids.join(',')]).stdout.toString().split('\n').some((stat) => stat && !stat.startsWith('Z'))
      for (const deadline = Date.now() + 10_000; alive() && Date.now() < deadline; ) spawnSync('sleep', ['0.05'])
      // A new postmaster refuses to start while the pid in its lock files exists, and a zombie's
      // does.
      for (const lock of [pidFile, path.join(local.dir, `.s.PGSQL.${local.port}.lock`), path.join(local.dir, `.s.PGSQL.${local.port}`)]) {
        rmSync(lock, { force: true })
      }
    },
  }
  return handle
}

/** A database name for a state directory: a restarted worker (same directory) finds its data. */
export const databaseFor = (state) => {
  let h = 2166136261
  for (const c of state) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0
  return `ls_${h.toString(36)}`
}
