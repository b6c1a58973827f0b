// The benchmark's outputs: a text table, the JSON of every figure, and an SVG chart of the
// ratios (drawn here, so the benchmark needs no plotting package).

const money = (v) => (v >= 10 ? v.toFixed(2) : v.toPrecision(3))
const fmt = (v) => (v >= 100 ? Math.round(v).toLocaleString('en-US') : v >= 10 ? v.toFixed(1) : v.toFixed(2))

/** Ours relative to the reference: >1 means ours is better, whichever way the figure runs. */
export const ratio = (row) => (row.ours.lowerIsBetter ? row.reference.value / row.ours.value : row.ours.value / row.reference.value)

export function table(rows) {
  const head = ['figure', 'unit', 'ours', 'TypeScript', 'ours vs TS', 'bare JS DO', 'ours vs bare']
  const vsFloor = (r) => (r.floor ? `${fmt(ratio({ ours: r.ours, reference: r.floor }))}×` : '—')
  const body = rows.map((r) => [
    r.label,
    r.ours.unit,
    fmt(r.ours.value),
    r.reference ? fmt(r.reference.value) : '—',
    r.reference ? `${fmt(ratio(r))}×` : '—',
    r.floor ? fmt(r.floor.value) : '—',
    vsFloor(r),
  ])
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)))
  const line = (cells) => `| ${cells.map((c, i) => (i >= 2 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ')} |`
  return [line(head), `|${widths.map((w, i) => (i >= 2 ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|')}|`, ...body.map(line)].join('\n')
}

/** Our worker on each storage engine: DO SQLite (`ours`), D1 and Postgres, each relative to DO SQLite. */
/**
 * A table of ours beside other servers of ours: `columns` are [server, title, against]: the
 * server's figure, then its ratio to `against`'s (how many times better; below 1, worse).
 */
export function sideTable(rows, columns) {
  const head = ['figure', 'unit', 'ours', ...columns.flatMap(([, title, against]) => [title, `${title} vs ${against === 'ours' ? 'ours' : columns.find(([n]) => n === against)?.[1] ?? against}`])]
  const cell = (r, name) => (r[name] ? fmt(r[name].value) : '—')
  const vs = (r, name, against) => (r[name] && r[against] ? `${fmt(ratio({ ours: r[name], reference: r[against] }))}×` : '—')
  const body = rows
    .filter((r) => r.ours && columns.some(([name]) => r[name]))
    .map((r) => [r.label, r.ours.unit, fmt(r.ours.value), ...columns.flatMap(([name, , against]) => [cell(r, name), vs(r, name, against)])])
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)))
  const line = (cells) => `| ${cells.map((c, i) => (i >= 2 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ')} |`
  return [line(head), `|${widths.map((w, i) => (i >= 2 ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|')}|`, ...body.map(line)].join('\n')
}

/** Ours on DO SQLite beside ours on D1 and on Postgres. */
export const engineTable = (rows) =>
  sideTable(rows, [
    ['ours-d1', 'D1', 'ours'],
    ['ours-postgres', 'Postgres', 'ours'],
  ])

/** Ours beside the bare Durable Object without and with a console line per push. */
export const floorLogTable = (rows) =>
  sideTable(rows, [
    ['floor', 'bare JS DO', 'ours'],
    ['floor-log', 'bare JS DO + a line per push', 'floor'],
  ])

/** The Rust Worker beside the npm package (its JavaScript glue), without and with a JavaScript onPush. */
export const packageTable = (rows) =>
  sideTable(rows, [
    ['package', 'package', 'ours'],
    ['package-hook', 'package, no-op onPush', 'package'],
  ])

/**
 * The billed loads: per 1,000 events (per minute of the idle store), SQLite rows read and
 * written, billable Durable Object requests and awake milliseconds, TypeScript server beside
 * ours, then dollars per million events at `prices`.
 */
export function billTable(rows, prices) {
  const billedRows = rows.filter((r) => r.key.startsWith('bill') && r['ours-metered'] && r['reference-metered'])
  const head = ['load', 'unit', 'rows read TS', 'rows read ours', 'rows written TS', 'rows written ours', 'DO requests TS', 'DO requests ours', 'awake ms TS', 'awake ms ours', '$ TS', '$ ours', 'ours vs TS']
  const units = (m) => {
    if (m.detail.per1000) return m.detail.per1000
    // The idle store, per 1,000 sockets: connecting them, then one minute of idling.
    const { connect, idle, seconds, sockets } = m.detail
    const per = (f) => ((f(connect) + (f(idle) * 60) / seconds) * 1000) / sockets
    return {
      rowsRead: per((x) => x.rowsRead),
      rowsWritten: per((x) => x.rowsWritten),
      doRequests: per((x) => x.doFetches + x.doRpcCalls + x.alarms + x.wsMessages / prices.wsMessagesPerRequest),
      awakeMs: per((x) => x.awakeMs),
    }
  }
  const body = billedRows.map((r) => {
    const ts = units(r['reference-metered'])
    const ours = units(r['ours-metered'])
    return [
      r.label.replace(/^billed: /, ''),
      r['ours-metered'].detail.per1000 ? 'per 1,000 events' : 'per 1,000 sockets + 1 idle min',
      ...['rowsRead', 'rowsWritten', 'doRequests', 'awakeMs'].flatMap((k) => [fmt(ts[k]), fmt(ours[k])]),
      money(r['reference-metered'].value),
      money(r['ours-metered'].value),
      `${fmt(ratio({ ours: r['ours-metered'], reference: r['reference-metered'] }))}×`,
    ]
  })
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)))
  const line = (cells) => `| ${cells.map((c, i) => (i >= 2 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ')} |`
  const note = `$: dollars per million events (per million sockets, each connected and idle for a minute, for the idle store) at Cloudflare's prices of ${prices.date}: rows read $${prices.rowsReadPerMillion}/M, written $${prices.rowsWrittenPerMillion}/M, DO requests $${prices.doRequestsPerMillion}/M (incoming WebSocket messages ${prices.wsMessagesPerRequest}:1), Worker requests $${prices.workerRequestsPerMillion}/M, duration $${prices.gbSecondsPerMillion}/M GB-s at ${prices.objectGB * 1000} MB; Worker CPU time not counted.`
  return [line(head), `|${widths.map((w, i) => (i >= 2 ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|')}|`, ...body.map(line), '', note].join('\n')
}

export function svg(rows, title) {
  const compared = rows.filter((r) => r.reference)
  const barH = 22
  const left = 360
  const width = 900
  const top = 50
  const height = top + compared.length * (barH + 8) + 40
  const maxLog = Math.log10(Math.max(10, ...compared.map(ratio)))
  const x = (r) => left + (Math.max(0, Math.log10(Math.max(r, 1))) / maxLog) * (width - left - 90)
  const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;')
  const bars = compared
    .map((r, i) => {
      const y = top + i * (barH + 8)
      const v = ratio(r)
      return `<text x="${left - 8}" y="${y + 15}" text-anchor="end" font-size="12">${esc(r.label)}</text>
<rect x="${left}" y="${y}" width="${Math.max(2, x(v) - left)}" height="${barH}" fill="${v >= 1 ? '#2f7d4f' : '#b33'}"/>
<text x="${x(v) + 6}" y="${y + 15}" font-size="12">${fmt(v)}×</text>`
    })
    .join('\n')
  const ticks = [1, 10, 100, 1000]
    .filter((t) => Math.log10(t) <= maxLog)
    .map((t) => `<line x1="${x(t)}" y1="${top - 6}" x2="${x(t)}" y2="${height - 30}" stroke="#ccc"/><text x="${x(t)}" y="${top - 10}" font-size="11" text-anchor="middle">${t}×</text>`)
    .join('\n')
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="22" font-size="15" font-weight="bold">${esc(title)}</text>
${ticks}
${bars}
<text x="10" y="${height - 10}" font-size="11" fill="#555">Bars: how many times better ours is (log scale); throughput ratios, or the inverse for times and latencies.</text>
</svg>
`
}
