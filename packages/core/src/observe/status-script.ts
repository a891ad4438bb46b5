/**
 * The status page's only script (inline, allowed by the response's CSP nonce). Every
 * `refreshMs` it fetches the JSON view of the same route and re-renders without a
 * reload: each `[data-field]` element gets its value formatted as status-html.ts
 * formats it, the chart gets its new paths and labels. When the upstreams or the
 * list of state changes differ from what is shown, it fetches the page itself and
 * swaps <main> (server-rendered, so escaped in one place only). A failed fetch keeps
 * the figures and marks them stale; the next one is tried on schedule.
 *
 * Plain ES2020 for the browser, kept as text: it never runs in Node.
 */
export const STATUS_SCRIPT = `(() => {
'use strict'
const root = document.documentElement
const live = document.getElementById('live')
const refreshMs = Number(root.dataset.refreshMs) || 5000
const time = (at) => new Date(at).toISOString().slice(11, 19) + ' UTC'
const has = (o, k) => o !== null && typeof o === 'object' && Object.prototype.hasOwnProperty.call(o, k)
function lookup (obj, field) {
  if (field === 'health.last') { const r = obj.health.recent; return r[r.length - 1] }
  let v = obj
  for (const k of field.split('.')) v = has(v, k) ? v[k] : undefined
  return v
}
function format (v, f) {
  switch (f) {
    case 'time': return v === undefined || v === null ? ['', '—'] : [String(v), time(Number(v))]
    case 'text': return v === undefined || v === null ? ['', '—'] : [String(v), String(v)]
    case 'state': return [String(v), String(v)]
    case 'flag': return [String(v === true), '']
    case 'check': return v === undefined ? ['', '—'] : [v.ok ? 'pass' : 'fail', (v.ok ? '✓ ' : '✗ ') + v.detail + ', ' + v.ms + ' ms']
    default: return typeof v === 'number' ? [String(v), v.toLocaleString('en-US')] : ['', '—']
  }
}
function changesKey (view) {
  const c = view.changes[view.changes.length - 1]
  return c === undefined ? '0' : view.changes.length + ':' + c.at + ':' + c.upstream + ':' + c.to
}
function structural (view) {
  const table = document.querySelector('table.upstreams')
  const main = document.querySelector('main')
  return table === null || main === null || table.dataset.ids !== JSON.stringify(view.history.ids) ||
    main.dataset.changes !== changesKey(view) ||
    (document.querySelector('.collecting') !== null && view.history.samples.length >= 2)
}
async function swap (signal) {
  const res = await fetch(location.pathname, { cache: 'no-store', signal, headers: { accept: 'text/html' } })
  if (!res.ok) throw new Error('HTTP ' + res.status)
  const next = new DOMParser().parseFromString(await res.text(), 'text/html').querySelector('main')
  if (next !== null) document.querySelector('main').replaceWith(document.adoptNode(next))
}
function apply (view) {
  const byId = new Map(view.upstreams.map((u) => [u.id, u]))
  for (const el of document.querySelectorAll('[data-field]')) {
    const id = el.dataset.upstream
    const src = id === undefined ? view : byId.get(id)
    if (src === undefined) continue
    const f = el.dataset.format || 'number'
    const v = lookup(src, el.dataset.field)
    const [value, text] = format(v, f)
    if (f === 'state' || f === 'check') {
      if (el.dataset.value) el.classList.remove(el.dataset.value)
      if (value) el.classList.add(value)
    }
    el.dataset.value = value
    if (f === 'flag') el.hidden = v !== true
    else el.textContent = text
  }
  document.querySelectorAll('path[data-series]').forEach((p) => p.setAttribute('d', view.chart.paths[Number(p.dataset.series)] || ''))
  document.querySelectorAll('text[data-tick]').forEach((t) => { t.textContent = view.chart.yLabels[Number(t.dataset.tick)] || '' })
  root.dataset.at = String(view.at)
  root.dataset.refreshes = String(Number(root.dataset.refreshes) + 1)
}
function state (status, text) {
  live.dataset.status = status
  live.textContent = text
  document.body.classList.toggle('stale', status === 'stale')
}
async function refresh () {
  const ctl = new AbortController()
  const timer = setTimeout(() => ctl.abort(), Math.max(refreshMs, 4000))
  try {
    const res = await fetch(location.pathname + '?format=json', { cache: 'no-store', signal: ctl.signal, headers: { accept: 'application/json' } })
    if (!res.ok) throw new Error('HTTP ' + res.status)
    const view = await res.json()
    if (structural(view)) await swap(ctl.signal)
    apply(view)
    state('live', 'live, every ' + live.dataset.every)
  } catch (err) {
    state('stale', 'stale since ' + time(Number(root.dataset.at)) + ' (' + (err.name === 'AbortError' ? 'no answer' : err.message) + '), retrying')
  } finally {
    clearTimeout(timer)
  }
}
async function loop () {
  if (!document.hidden) await refresh()
  setTimeout(loop, refreshMs)
}
setTimeout(loop, refreshMs)
})()
`
