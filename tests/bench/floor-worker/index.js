// The runtime's own floor, for the benchmark: a bare JavaScript Durable Object that does the
// least each benchmark load needs — store pushed events with one SQL statement, send them to
// live pulls, read pages back — and nothing a real sync server must also do: no validation,
// no auth, no head checks, no hibernation-safe state, no typed errors. Not a sync server; the
// lower bound a server in this runtime can approach.
import { DurableObject } from 'cloudflare:workers'

const INSERT =
  'INSERT INTO events (seqNum, parentSeqNum, name, clientId, sessionId, args, createdAt) SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value -> 5, ? FROM json_each(?)'

export class SyncBackendDO extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env)
    this.sql = ctx.storage.sql
    this.sql.exec('CREATE TABLE IF NOT EXISTS events (seqNum integer primary key, parentSeqNum integer not null, name text not null, args text, createdAt text not null, clientId text not null, sessionId text not null) strict')
    // FLOOR_HEAD_ROW=true: the store's head in a row of its own, written with every push, as the
    // reference's layout keeps it (`context_7`): the floor for a server that must keep that layout.
    this.headRow = env.FLOOR_HEAD_ROW === 'true'
    if (this.headRow) {
      this.sql.exec('CREATE TABLE IF NOT EXISTS head (id integer primary key, seqNum integer not null)')
      this.sql.exec('INSERT OR IGNORE INTO head VALUES (1, 0)')
    }
    this.live = new Map() // socket -> live pull request ids
  }

  item(row) {
    return `{"eventEncoded":{"name":${JSON.stringify(row.name)},"args":${row.args ?? 'null'},"seqNum":${row.seqNum},"parentSeqNum":${row.parentSeqNum},"clientId":${JSON.stringify(row.clientId)},"sessionId":${JSON.stringify(row.sessionId)}},"metadata":{"_tag":"Some","value":{"_tag":"SyncMessage.SyncMetadata","createdAt":"${row.createdAt}"}}}`
  }

  /** Pages (PullResponse JSON) of every event after `after`. */
  pages(after) {
    const rows = this.sql.exec('SELECT * FROM events WHERE seqNum > ? ORDER BY seqNum', after).toArray()
    const pages = []
    for (let i = 0; i < rows.length; i += 100) {
      const slice = rows.slice(i, i + 100)
      const remaining = rows.length - i - slice.length
      const info = remaining > 0 ? `{"_tag":"MoreKnown","remaining":${remaining}}` : '{"_tag":"NoMore"}'
      pages.push(`{"batch":[${slice.map((r) => this.item(r)).join(',')}],"pageInfo":${info},"backendId":"floor"}`)
    }
    return pages.length > 0 ? pages : ['{"batch":[],"pageInfo":{"_tag":"NoMore"},"backendId":"floor"}']
  }

  push(batch) {
    const createdAt = new Date().toISOString()
    // FLOOR_LOG_LINES=true: one JSON line per push, as a sync server logs at `info`, to show what
    // the runtime's console costs on its own.
    if (this.env.FLOOR_LOG_LINES === 'true') console.log(JSON.stringify({ level: 'info', msg: 'push', events: batch.length, head: batch.at(-1)?.seqNum }))
    this.sql.exec(INSERT, createdAt, JSON.stringify(batch.map((e) => [e.seqNum, e.parentSeqNum, e.name, e.clientId, e.sessionId, e.args])))
    if (this.headRow && batch.length > 0) this.sql.exec('UPDATE head SET seqNum = ? WHERE id = 1', batch.at(-1).seqNum)
    const page = `{"batch":[${batch.map((e) => this.item({ ...e, args: JSON.stringify(e.args), createdAt })).join(',')}],"pageInfo":{"_tag":"NoMore"},"backendId":"floor"}`
    for (const [ws, ids] of this.live) for (const id of ids) ws.send(`{"_tag":"Chunk","requestId":"${id}","values":[${page}]}`)
  }

  webSocketMessage(ws, text) {
    if (!text.startsWith('{"_tag":"Request"')) return
    const req = JSON.parse(text)
    const p = req.payload
    if (req.tag === 'SyncWsRpc.Push') {
      this.push(p.batch)
      ws.send(`{"_tag":"Exit","requestId":"${req.id}","exit":{"_tag":"Success","value":{}}}`)
    } else if (req.tag === 'SyncWsRpc.Pull') {
      if (p.live) this.live.set(ws, [...(this.live.get(ws) ?? []), req.id])
      for (const page of this.pages(p.cursor._tag === 'Some' ? p.cursor.value.eventSequenceNumber : -1)) ws.send(`{"_tag":"Chunk","requestId":"${req.id}","values":[${page}]}`)
      if (!p.live) ws.send(`{"_tag":"Exit","requestId":"${req.id}","exit":{"_tag":"Success"}}`)
    }
  }

  webSocketClose(ws) {
    this.live.delete(ws)
  }

  async fetch(request) {
    if (request.headers.get('Upgrade') === 'websocket') {
      const [client, server] = Object.values(new WebSocketPair())
      this.ctx.acceptWebSocket(server)
      return new Response(null, { status: 101, webSocket: client })
    }
    const req = await request.json()
    const messages = []
    if (req.tag === 'SyncHttpRpc.Push') {
      this.push(req.payload.batch)
      messages.push(`{"_tag":"Exit","requestId":"${req.id}","exit":{"_tag":"Success","value":{}}}`)
    } else {
      for (const page of this.pages(-1)) messages.push(`{"_tag":"Chunk","requestId":"${req.id}","values":[${page}]}`)
      messages.push(`{"_tag":"Exit","requestId":"${req.id}","exit":{"_tag":"Success"}}`)
    }
    return new Response(`[${messages.join(',')}]`, { headers: { 'content-type': 'application/json' } })
  }
}

export default {
  fetch(request, env) {
    const storeId = new URL(request.url).searchParams.get('storeId')
    if (!storeId) return new Response('Info: floor', { status: 200 })
    return env.SYNC_BACKEND_DO.get(env.SYNC_BACKEND_DO.idFromName(storeId)).fetch(request)
  },
}
