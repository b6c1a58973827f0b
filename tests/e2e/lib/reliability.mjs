// Shared bookkeeping of the reliability tests (crash, load, hibernation): a ledger of every push
// attempt and what the server answered, and the checks a store's log must pass against it —
// every acknowledged event exactly once with its exact content, nothing refused, no batch in
// part, a gapless parent chain, exact paging.
import assert from 'node:assert/strict'

import { pullAll } from './raw.mjs'

export const randInt = (lo, hi) => lo + Math.floor(Math.random() * (hi - lo + 1))

/** Events of one push, chained to `parent`; each carries a unique `args.id` to find it by. */
export const tagged = (ids, { parent, clientId, sessionId = `${clientId}-session`, text = () => '' }) =>
  ids.map((id, i) => ({
    name: 'v1.TodoCreated',
    args: { id, text: `${id} ${text(i)}`, completed: false },
    seqNum: parent + i + 1,
    parentSeqNum: parent + i,
    clientId,
    sessionId,
  }))

/**
 * Every push attempt of a test and its outcome: `pending` (no answer yet), `acked`, `refused`;
 * after a crash, an unanswered batch is settled by what the restarted server has: `stored` or
 * `absent`, and must stay so.
 */
export class Ledger {
  constructor() {
    this.attempts = []
    this.ids = new Map() // args.id → the event as sent
  }

  /** Records a batch before it is sent; returns the attempt, whose status the caller updates. */
  sent(batch, who) {
    for (const e of batch) {
      assert.ok(!this.ids.has(e.args.id), `test bug: event id ${e.args.id} sent twice`)
      this.ids.set(e.args.id, e)
    }
    const attempt = { batch, who, status: 'pending' }
    this.attempts.push(attempt)
    return attempt
  }

  count(status) {
    return this.attempts.filter((a) => a.status === status).reduce((n, a) => n + a.batch.length, 0)
  }

  pushes(status) {
    return this.attempts.filter((a) => a.status === status).length
  }

  /**
   * Checks a store's whole log against the ledger: each event is one this test sent, exactly
   * once and unchanged; every acknowledged (or earlier found stored) batch is there in full,
   * every refused (or earlier found absent) one not at all, and an unanswered one in full or not
   * at all. With `settle`, unanswered batches become `stored` or `absent` by what was found.
   * Returns how many unanswered batches were found stored and absent.
   */
  check(log, label = 'log', { settle = false } = {}) {
    const byId = new Map()
    for (const e of log) {
      const id = e.args?.id
      assert.ok(this.ids.has(id), `${label}: event ${JSON.stringify(e)} was never sent`)
      assert.ok(!byId.has(id), `${label}: event ${id} is stored twice (seqNums ${byId.get(id)?.seqNum} and ${e.seqNum})`)
      byId.set(id, e)
      assert.deepEqual(e, this.ids.get(id), `${label}: event ${id} is stored with other content than was sent`)
    }
    const found = { stored: 0, absent: 0 }
    for (const a of this.attempts) {
      const present = a.batch.filter((e) => byId.has(e.args.id)).length
      const ids = `${a.batch[0].args.id}…(${a.batch.length}) by ${a.who}`
      if (a.status === 'acked') assert.equal(present, a.batch.length, `${label}: acknowledged batch ${ids} lost ${a.batch.length - present} event(s)`)
      else if (a.status === 'stored') assert.equal(present, a.batch.length, `${label}: batch ${ids}, stored before, lost ${a.batch.length - present} event(s)`)
      else if (a.status === 'refused') assert.equal(present, 0, `${label}: refused batch ${ids} was stored`)
      else if (a.status === 'absent') assert.equal(present, 0, `${label}: batch ${ids}, absent before, appeared`)
      else {
        assert.ok(present === 0 || present === a.batch.length, `${label}: unanswered batch ${ids} stored in part (${present}/${a.batch.length})`)
        found[present ? 'stored' : 'absent']++
        if (settle) a.status = present ? 'stored' : 'absent'
      }
    }
    return found
  }
}

/** A log is gapless: seqNums 1, 2, 3, … and each event's parent is the event before it. */
export function assertGapless(events, label = 'log') {
  events.forEach((e, i) => {
    assert.equal(e.seqNum, i + 1, `${label}: event #${i} has seqNum ${e.seqNum}`)
    assert.equal(e.parentSeqNum, i === 0 ? 0 : events[i - 1].seqNum, `${label}: event ${e.seqNum} has parent ${e.parentSeqNum}`)
  })
}

/** A full pull's pages: one backendId, exact `remaining` on every page, `NoMore` on the last. */
export function assertPaging(pages, backendId, label = 'pull') {
  const total = pages.reduce((n, p) => n + p.batch.length, 0)
  let seen = 0
  pages.forEach((p, i) => {
    assert.equal(p.backendId, backendId, `${label}: page ${i} has another backendId`)
    seen += p.batch.length
    const expected = i === pages.length - 1 ? { _tag: 'NoMore' } : { _tag: 'MoreKnown', remaining: total - seen }
    assert.deepEqual(p.pageInfo, expected, `${label}: page ${i} of ${pages.length}`)
  })
}

/** A full non-live pull: `{ events, pages, backendId }`, with the Exit checked. */
export async function fullPull(sock, store) {
  const { exit, pages, events } = await pullAll(sock, store)
  assert.deepEqual(exit.exit, { _tag: 'Success' }, 'the pull ends with Exit Success')
  return { events, pages, backendId: pages[0].backendId }
}

/** Prints a figure line the README can quote. */
export const figures = (label, values) =>
  console.log(`[figures] ${label}: ${Object.entries(values).map(([k, v]) => `${k}=${v}`).join(' ')}`)
