// Backups to R2 (BACKUP_BUCKET): each store's object writes its new events to the bucket, by
// seqNum, from its alarm or when the admin API asks; a restore imports a store's backup into it
// once it is empty, and the real LiveStore client goes on as after a reset. R2 runs locally under
// wrangler dev; workerd alone has no R2, so this file runs under wrangler dev only.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { connectClient, pushUntilBackendIdMismatch } from './lib/client.mjs'
import { waitFor } from './lib/helpers.mjs'
import { makeEvents } from './lib/raw.mjs'
import { DEFAULT_TOKEN, startWorker, storeId, wranglerOnly } from './lib/worker.mjs'

const ADMIN = 'admin-token-for-backup-tests-0123'
const R2 = `
[[r2_buckets]]
binding = "BACKUPS"
bucket_name = "livestore-backups"
`

const admin = async (w, path, { method = 'GET' } = {}) => {
  const res = await fetch(`${w.url}/_admin/${path}`, { method, headers: { Authorization: `Bearer ${ADMIN}` } })
  const text = await res.text()
  let body
  try {
    body = JSON.parse(text)
  } catch {
    body = text
  }
  return { status: res.status, body }
}
const seqNums = (pages) => pages.flatMap((p) => p.batch.map((b) => b.eventEncoded.seqNum))

describe('backups to R2', { skip: wranglerOnly('R2 runs under wrangler dev; workerd alone has none') }, () => {
  let w
  before(async () => {
    w = await startWorker({
      label: 'backup',
      vars: { AUTH_TOKEN: DEFAULT_TOKEN, ADMIN_TOKEN: ADMIN, BACKUP_BUCKET: 'BACKUPS', BACKUP_INTERVAL: '2s' },
      editConfig: (text) => text + R2,
    })
  })
  after(async () => {
    await w?.stop()
  })

  test('back up, reset, restore: the store pulls as before and clients go on as after a reset', { timeout: 90_000 }, async () => {
    const store = storeId('backup')
    const c = await connectClient({ url: w.url, storeId: store, clientId: 'writer' })
    try {
      await c.push(makeEvents(3, { clientId: 'writer' }))
      // The store's first use after its object woke already set an alarm that looks for events
      // to back up, so this may find them written: what counts is how far the bucket holds it.
      const first = await admin(w, `stores/${encodeURIComponent(store)}/backup`, { method: 'POST' })
      assert.equal(first.status, 200, JSON.stringify(first.body))
      assert.equal(first.body.backedUpTo, 3)
      await c.push(makeEvents(2, { start: 4, parent: 3, clientId: 'writer' }))
      const second = await admin(w, `stores/${encodeURIComponent(store)}/backup`, { method: 'POST' })
      assert.equal(second.body.backedUpTo, 5)
      assert.ok(second.body.events <= 2, 'only the new events')
      // The client learns the store's backendId from a pull, as LiveStore's does.
      assert.deepEqual(seqNums(await c.pullPages()), [1, 2, 3, 4, 5])
      const again = await admin(w, `stores/${encodeURIComponent(store)}/backup`, { method: 'POST' })
      assert.deepEqual([again.body.backedUpTo, again.body.events, again.body.objects], [5, 0, 0])
      const before = (await fetch(`${w.url}/_admin/stores/${encodeURIComponent(store)}/events`, { headers: { Authorization: `Bearer ${ADMIN}` } }).then((r) => r.text()))

      // A restore into a store that holds events is refused; nothing changes.
      const refused = await admin(w, `stores/${encodeURIComponent(store)}/restore`, { method: 'POST' })
      assert.equal(refused.status, 409)
      assert.equal(refused.body.error, 'StoreNotEmpty')

      const reset = await admin(w, `stores/${encodeURIComponent(store)}/reset`, { method: 'POST' })
      assert.equal(reset.status, 200)
      const restored = await admin(w, `stores/${encodeURIComponent(store)}/restore`, { method: 'POST' })
      assert.equal(restored.status, 200, JSON.stringify(restored.body))
      assert.deepEqual(restored.body, { restored: 5, head: 5 })
      const after = await fetch(`${w.url}/_admin/stores/${encodeURIComponent(store)}/events`, { headers: { Authorization: `Bearer ${ADMIN}` } }).then((r) => r.text())
      assert.equal(after, before, 'the same events, createdAt included')

      // The old client holds the old backendId: told so, as after any reset.
      await pushUntilBackendIdMismatch(c, makeEvents(1, { start: 6, parent: 5, clientId: 'writer' }))
    } finally {
      await c.close()
    }
    // A client that starts over pulls the restored log and pushes on from it.
    const fresh = await connectClient({ url: w.url, storeId: store, clientId: 'fresh' })
    try {
      assert.deepEqual(seqNums(await fresh.pullPages()), [1, 2, 3, 4, 5])
      await fresh.push(makeEvents(1, { start: 6, parent: 5, clientId: 'fresh' }))
    } finally {
      await fresh.close()
    }
  })

  test('the alarm backs a written store up within BACKUP_INTERVAL; a deleted store comes back whole', { timeout: 90_000 }, async () => {
    const store = storeId('backup-alarm')
    const c = await connectClient({ url: w.url, storeId: store, clientId: 'writer' })
    try {
      await c.push(makeEvents(4, { clientId: 'writer' }))
    } finally {
      await c.close()
    }
    const written = () =>
      w.logLines().find((l) => l.event === 'backup' && l.storeId === store && l.outcome === 'written' && l.to === 4)
    await waitFor(written, { timeout: 20_000, message: 'the alarm to write the backup' })
    const deleted = await admin(w, `stores/${encodeURIComponent(store)}`, { method: 'DELETE' })
    assert.equal(deleted.status, 200)
    assert.equal(deleted.body.removedEvents, 4)
    const info = await admin(w, `stores/${encodeURIComponent(store)}`)
    assert.equal(info.body.eventCount, 0)
    const restored = await admin(w, `stores/${encodeURIComponent(store)}/restore`, { method: 'POST' })
    assert.deepEqual(restored.body, { restored: 4, head: 4 })
    const fresh = await connectClient({ url: w.url, storeId: store, clientId: 'fresh' })
    try {
      assert.deepEqual(seqNums(await fresh.pullPages()), [1, 2, 3, 4])
    } finally {
      await fresh.close()
    }
  })

  test('a store never backed up has nothing to restore; backups off answer 404', { timeout: 60_000 }, async () => {
    const none = await admin(w, `stores/${encodeURIComponent(storeId('never'))}/restore`, { method: 'POST' })
    assert.equal(none.status, 404)
    assert.equal(none.body.error, 'NoBackup')
    const off = await startWorker({ label: 'backup-off', vars: { AUTH_TOKEN: DEFAULT_TOKEN, ADMIN_TOKEN: ADMIN } })
    try {
      for (const action of ['backup', 'restore']) {
        const res = await admin(off, `stores/x/${action}`, { method: 'POST' })
        assert.equal(res.status, 404)
        assert.equal(res.body.error, 'BackupsOff')
      }
    } finally {
      await off.stop()
    }
  })
})
