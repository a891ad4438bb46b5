import { escapeXml as escapeHtml } from '../render/svg.js'
import type { OutcomeKind } from '../model/types.js'
import { chartSvg, colorOf } from './status-chart.js'
import { STATUS_SCRIPT } from './status-script.js'
import type { StatusUpstream, StatusView } from './status-view.js'

/**
 * The status page as one HTML document: inline CSS, one inline script (allowed by
 * its nonce), an inline SVG chart; nothing loaded from anywhere. Every string that
 * comes from configuration (upstream ids, URLs, reasons, the balancer's name) goes
 * through escapeHtml. Every figure carries `data-field` (and `data-upstream` inside
 * the table), which the script uses to re-render and tests use to read it back.
 */

/**
 * How a cell shows its value; the page's script formats the same way (status-script.ts).
 * number (default): 1,234, or '—' for null; state: the word with its colour;
 * flag: shown only when true; check: the last health check; time: HH:MM:SS UTC (or
 * '—'); text: as it is (or '—').
 */
type Format = 'number' | 'state' | 'flag' | 'check' | 'time' | 'text'

interface Column { head: string, field: string, title?: string, format?: Format }

const OUTCOME_HEADS: Record<OutcomeKind, [string, string]> = {
  '2xx': ['2xx', 'answered 2xx'],
  '3xx': ['3xx', 'answered 3xx'],
  '4xx': ['4xx', 'answered 4xx'],
  '5xx': ['5xx', 'answered 5xx'],
  upgrade: ['WS', 'WebSocket upgrades accepted'],
  connect_error: ['conn', 'could not connect'],
  timeout: ['timeout', 'no response headers within timeoutMs'],
  reset: ['reset', 'connection failed after the request reached it'],
  aborted: ['abort', 'the client left first'],
  idle_timeout: ['idle', 'the body went silent for idleTimeoutMs: stream cut (not charged)'],
  invalid_request: ['inval', 'no valid upstream request could be built from the client\'s (not charged)'],
  unrelayable: ['unrel', 'an answer the proxy cannot relay, e.g. an unsolicited 100 Continue (not charged)'],
  queue_full: ['q full', 'answered 503: at maxInFlight and its queue full, or no queue (not charged)'],
  queue_timeout: ['q time', 'answered 503: waited in its queue longer than queue.timeoutMs (not charged)'],
  websockets_full: ['WS full', 'upgrade answered 503: a bound user, the upstream at maxWebSockets (not charged)'],
}

const GROUPS: Array<{ head: string, columns: Column[] }> = [
  {
    head: 'Load',
    columns: [
      { head: 'In flight', field: 'inFlight', title: 'requests in flight now' },
      { head: 'Max', field: 'maxInFlight', title: 'maxInFlight: more wait in its queue' },
      { head: 'Queued', field: 'queued', title: 'requests waiting for a slot now' },
      { head: 'Wait ms', field: 'queueWaitMeanMs', title: 'mean wait in its queue since start, ms' },
      { head: 'WS', field: 'websockets', title: 'open WebSockets' },
      { head: 'Bound', field: 'boundUsers', title: 'users pinned here and seen lately (sticky strategies)' },
    ],
  },
  {
    head: 'Requests',
    columns: [
      { head: 'Total', field: 'requests', title: 'attempts sent here, retries included' },
      { head: 'Failed', field: 'failures', title: 'connect errors, timeouts, resets, 5xx' },
    ],
  },
  {
    head: 'Outcomes',
    columns: (Object.keys(OUTCOME_HEADS) as OutcomeKind[]).map(k => ({ head: OUTCOME_HEADS[k][0], title: OUTCOME_HEADS[k][1], field: `outcomes.${k}` })),
  },
  {
    head: 'Health checks',
    columns: [
      { head: 'Pass', field: 'health.passed' },
      { head: 'Fail', field: 'health.failed' },
      { head: 'Last', field: 'health.last', format: 'check' },
    ],
  },
  {
    head: 'Ejections',
    columns: [
      { head: 'Row', field: 'ejections', title: 'passive ejections in a row (decays while healthy)' },
      { head: 'Total', field: 'ejectionsTotal', title: 'passive ejections since start' },
    ],
  },
]

/** The value behind a `data-field` path, in an upstream or in the whole view. */
function fieldValue (root: object, field: string): unknown {
  if (field === 'health.last') {
    const recent = (root as StatusUpstream).health.recent
    return recent[recent.length - 1]
  }
  let v: unknown = root
  for (const key of field.split('.')) {
    v = v !== null && typeof v === 'object' && Object.hasOwn(v, key) ? (v as Record<string, unknown>)[key] : undefined
  }
  return v
}

const time = (at: number): string => `${new Date(at).toISOString().slice(11, 19)} UTC`

/** [data-value, text] of a cell. */
function formatted (v: unknown, format: Format): [string, string] {
  switch (format) {
    case 'time': return v === undefined || v === null ? ['', '—'] : [String(v), time(Number(v))]
    case 'text': return v === undefined || v === null ? ['', '—'] : [String(v), String(v)]
    case 'state': return [String(v), String(v)]
    case 'flag': return [String(v === true), '']
    case 'check': {
      if (v === undefined) return ['', '—']
      const c = v as { ok: boolean, detail: string, ms: number }
      return [c.ok ? 'pass' : 'fail', `${c.ok ? '✓' : '✗'} ${c.detail}, ${c.ms} ms`]
    }
    default: return typeof v === 'number' ? [String(v), v.toLocaleString('en-US')] : ['', '—']
  }
}

/** An element whose content the script keeps current. */
function live (tag: string, root: object, field: string, opts: { upstream?: string, format?: Format, cls?: string, label?: string } = {}): string {
  const format = opts.format ?? 'number'
  const v = fieldValue(root, field)
  const [value, text] = formatted(v, format)
  const cls = [opts.cls, format === 'state' ? `state ${value}` : format === 'check' ? `check ${value}` : undefined].filter(Boolean).join(' ')
  const attrs = [
    cls === '' ? '' : ` class="${escapeHtml(cls)}"`,
    opts.upstream === undefined ? '' : ` data-upstream="${escapeHtml(opts.upstream)}"`,
    ` data-field="${escapeHtml(field)}"`,
    format === 'number' ? '' : ` data-format="${format}"`,
    ` data-value="${escapeHtml(value)}"`,
    format === 'flag' && v !== true ? ' hidden' : '',
  ].join('')
  return `<${tag}${attrs}>${escapeHtml(format === 'flag' ? opts.label ?? '' : text)}</${tag}>`
}

function upstreamRow (u: StatusUpstream, i: number): string {
  const id = u.id
  const url = u.url === undefined ? '' : `<div class="url">${escapeHtml(u.url)}</div>`
  const cells = [
    `<th scope="row" class="id"><span class="swatch" style="background:${colorOf(i)}"></span>${escapeHtml(id)}${url}</th>`,
    `<td>${live('span', u, 'state', { upstream: id, format: 'state' })} ${live('span', u, 'ejected', { upstream: id, format: 'flag', cls: 'tag', label: 'ejected' })}</td>`,
    live('td', u, 'weight', { upstream: id, cls: 'num' }),
    live('td', u, 'effectiveWeight', { upstream: id, cls: 'num' }),
  ]
  for (const g of GROUPS) {
    g.columns.forEach((c, j) => {
      const cls = [c.format === 'check' ? 'last' : 'num', j === 0 ? 'group' : ''].filter(Boolean).join(' ')
      cells.push(live('td', u, c.field, { upstream: id, format: c.format, cls }))
    })
  }
  return `<tr data-id="${escapeHtml(id)}">${cells.join('')}</tr>`
}

function upstreamTable (view: StatusView): string {
  const groupHeads = GROUPS.map(g => `<th colspan="${g.columns.length}" class="group">${g.head}</th>`).join('')
  const heads = GROUPS.flatMap(g => g.columns.map((c, j) => {
    const title = c.title === undefined ? '' : ` title="${escapeHtml(c.title)}"`
    return `<th${title}${j === 0 ? ' class="group"' : ''}>${c.head}</th>`
  })).join('')
  const rows = view.upstreams.map(upstreamRow).join('')
  return `<div class="scroll"><table class="upstreams" data-ids="${escapeHtml(JSON.stringify(view.history.ids))}">` +
    `<thead><tr><th rowspan="2">Upstream</th><th rowspan="2">State</th><th rowspan="2" title="weight">Wt</th><th rowspan="2" title="effective weight: below the weight while slow start ramps it">Eff</th>${groupHeads}</tr><tr>${heads}</tr></thead>` +
    `<tbody>${rows}</tbody></table></div>`
}

/** Identifies the list of state changes, so the script knows when it has grown. */
function changesKey (view: Pick<StatusView, 'changes'>): string {
  const last = view.changes[view.changes.length - 1]
  return last === undefined ? '0' : `${view.changes.length}:${last.at}:${last.upstream}:${last.to}`
}

function changesTable (view: StatusView): string {
  if (view.changes.length === 0) return '<p class="muted">No state change since start.</p>'
  const rows = view.changes.slice().reverse().map(c =>
    `<tr><td class="time"><time datetime="${new Date(c.at).toISOString()}">${time(c.at)}</time></td>` +
    `<td>${escapeHtml(c.upstream)}</td>` +
    `<td><span class="state ${escapeHtml(c.from)}">${escapeHtml(c.from)}</span> → <span class="state ${escapeHtml(c.to)}">${escapeHtml(c.to)}</span></td>` +
    `<td>${escapeHtml(c.reason)}</td></tr>`).join('')
  return `<table class="changes"><thead><tr><th>Time</th><th>Upstream</th><th>Change</th><th>Reason</th></tr></thead><tbody>${rows}</tbody></table>`
}

function picksTable (view: StatusView): string {
  const rows = Object.keys(view.picks).map(reason =>
    `<tr><th scope="row">${escapeHtml(reason)}</th>${live('td', view, `picks.${reason}`, { cls: 'num' })}</tr>`).join('')
  return `<table class="picks"><tbody>${rows}</tbody></table>`
}

function tiles (view: StatusView): string {
  const tile = (label: string, field: string): string => `<div class="tile"><div class="label">${label}</div>${live('div', view, field, { cls: 'big' })}</div>`
  return `<div class="tiles">${[
    `<div class="tile"><div class="label">Up</div><div class="big">${live('span', view, 'totals.up')}<span class="of"> / ${live('span', view, 'totals.upstreams')}</span></div></div>`,
    tile('Requests/s', 'totals.rps'),
    tile('In flight', 'totals.inFlight'),
    tile('Queued', 'totals.queued'),
    tile('WebSockets', 'totals.websockets'),
    tile('Bound users', 'totals.boundUsers'),
    tile('Requests', 'totals.requests'),
    tile('Retries refused', 'retries.refused'),
    tile('Bindings evicted', 'evicted'),
  ].join('')}</div>`
}

/** How the membership source is followed: members, last list, errors and the last one. */
function discovery (view: StatusView): string {
  if (view.discovery === null) return ''
  return '<section class="discovery"><h2>Membership source</h2><p>' +
    `${live('b', view, 'discovery.members')} members · last list ${live('span', view, 'discovery.lastUpdate', { format: 'time' })}` +
    ` · ${live('b', view, 'discovery.errors', { cls: 'errors' })} errors` +
    ` · last error ${live('span', view, 'discovery.lastError.at', { format: 'time' })}: ${live('span', view, 'discovery.lastError.message', { format: 'text', cls: 'error' })}` +
    '</p></section>'
}

function legend (view: StatusView): string {
  return `<ul class="legend">${view.history.ids.map((id, i) =>
    `<li><span class="swatch" style="background:${colorOf(i)}"></span>${escapeHtml(id)}</li>`).join('')}</ul>`
}

function minutes (ms: number): string {
  return ms >= 120_000 ? `${Math.round(ms / 60_000)} min` : `${Math.round(ms / 1000)} s`
}

/** The part of the page the script swaps whole when the upstreams or the state changes differ. */
function statusMain (view: StatusView): string {
  const samples = view.history.samples.length
  const empty = samples < 2 ? `<p class="muted collecting">Collecting: a point every ${minutes(view.history.intervalMs)}.</p>` : ''
  return `<main data-changes="${escapeHtml(changesKey(view))}">` +
    tiles(view) +
    discovery(view) +
    `<section><h2>Upstreams</h2>${upstreamTable(view)}</section>` +
    '<div class="row">' +
    `<section class="wide"><h2>Requests/s by upstream, last ${minutes(view.history.windowMs)}</h2>${chartSvg(view.chart, view.history.ids, view.history.windowMs)}${legend(view)}${empty}</section>` +
    `<section><h2>Picks by reason</h2>${picksTable(view)}</section>` +
    '</div>' +
    `<section><h2>Recent state changes</h2>${changesTable(view)}</section>` +
    '</main>'
}

const CSS = `
:root{color-scheme:light;--ink:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#f6f8fa}
*{box-sizing:border-box}
[hidden]{display:none!important}
body{margin:0;font:13px/1.4 system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;color:var(--ink);background:#fff}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:4px 16px;padding:12px 20px;border-bottom:1px solid var(--line);background:var(--bg)}
h1{font-size:18px;margin:0}h1 .name{color:var(--muted);font-weight:normal}
h2{font-size:14px;margin:18px 0 8px}
header .meta{color:var(--muted)}header b{color:var(--ink)}
main{padding:0 20px 20px}
.tiles{display:flex;flex-wrap:wrap;gap:10px;margin-top:14px}
.tile{border:1px solid var(--line);border-radius:6px;padding:6px 12px;min-width:110px}
.tile .label{color:var(--muted);font-size:12px}.big{font-size:20px;font-weight:600;font-variant-numeric:tabular-nums}.of{color:var(--muted);font-weight:normal}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:3px 5px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
thead th{background:var(--bg);font-weight:600;font-size:12px}
.upstreams thead tr:first-child th.group{text-align:center}
.group{border-left:1px solid var(--line)}
tbody tr:nth-child(even){background:#fbfcfd}
.num{text-align:right}
.num[data-value="0"]{color:#8c959f}
th.id{font-weight:600;max-width:26em;overflow:hidden;text-overflow:ellipsis}
.url{font-weight:normal;color:var(--muted);font-size:12px}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:baseline}
.state{display:inline-block;padding:0 7px;border-radius:9px;font-weight:600;font-size:12px}
.state.up{background:#dafbe1;color:#116329}.state.draining{background:#fff1c2;color:#7d4e00}.state.down{background:#ffebe9;color:#a40e26}
.state.absent,.state.removed{background:#eaeef2;color:var(--muted)}
.tag{display:inline-block;padding:0 6px;border-radius:9px;font-size:11px;background:#a40e26;color:#fff}
.check.fail{color:#a40e26}.last{font-size:12px}
.discovery .errors:not([data-value="0"]),.discovery .error:not([data-value=""]){color:#a40e26}
.row{display:flex;flex-wrap:wrap;gap:0 32px}.row .wide{flex:1 1 560px;max-width:760px}
.chart{width:100%;height:auto;display:block}.chart .grid{stroke:var(--line);stroke-width:1}.chart .tick{font-size:11px;fill:var(--muted)}
.legend{list-style:none;display:flex;flex-wrap:wrap;gap:4px 14px;padding:0;margin:4px 0 0 44px}
.picks th{font-weight:normal}
.muted{color:var(--muted)}
#live{font-weight:600;color:#116329}#live[data-status=stale]{color:#a40e26}
body.stale main{opacity:.55}
footer{padding:10px 20px;color:var(--muted);border-top:1px solid var(--line);font-size:12px}
`

export function statusHtml (view: StatusView, nonce: string): string {
  const name = view.name === null ? '' : ` <span class="name">${escapeHtml(view.name)}</span>`
  const every = `${Math.round(view.refreshMs / 100) / 10} s`
  return `<!doctype html><html lang="en" data-refreshes="0" data-at="${view.at}" data-refresh-ms="${view.refreshMs}"><head>` +
    '<meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width,initial-scale=1"><meta name="referrer" content="no-referrer">' +
    // An empty icon: otherwise the browser asks the proxy for /favicon.ico.
    '<link rel="icon" href="data:,">' +
    `<title>Affinity status${view.name === null ? '' : ` · ${escapeHtml(view.name)}`}</title><style>${CSS}</style></head><body>` +
    `<header><h1>Affinity status${name}</h1><div class="meta">strategy <b>${escapeHtml(view.strategy)}</b>` +
    ` · updated ${live('time', view, 'at', { format: 'time' })}` +
    ` · <span id="live" data-status="live" data-every="${every}">live, every ${every}</span>` +
    ` ${live('span', view, 'panic', { format: 'flag', cls: 'tag', label: 'PANIC: health ignored' })}</div></header>` +
    statusMain(view) +
    '<footer>Shows which upstream each user is pinned to: keep this page behind authentication. ' +
    'The same data as JSON: <code>?format=json</code>.</footer>' +
    `<script nonce="${nonce}">${STATUS_SCRIPT}</script></body></html>`
}
