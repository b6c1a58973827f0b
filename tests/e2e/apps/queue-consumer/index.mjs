// A Cloudflare Queue consumer Worker for tests/e2e/outbox-queue.test.mjs: it runs beside the sync
// Worker in one `wrangler dev`, consumes the queue the sync Worker's `queue` sink sends to, and
// forwards every message, in the order of its batch, to the test's HTTP collector
// (COLLECTOR_URL) as `{ id, attempts, body }` — `body` as the queue handed it over, so the test
// sees whether it was an object or a string. A message is acknowledged only once the collector
// answered 2xx; otherwise the batch's remaining messages are retried by the queue.
export default {
  async fetch() {
    return new Response('queue consumer\n')
  },

  async queue(batch, env) {
    for (const message of batch.messages) {
      const res = await fetch(env.COLLECTOR_URL, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ queue: batch.queue, id: message.id, attempts: message.attempts, body: message.body }),
      })
      await res.arrayBuffer()
      if (!res.ok) throw new Error(`collector answered ${res.status}`)
      message.ack()
    }
  },
}
