// Summaries of the profiles the Node proxy children write: --cpu-prof (where the CPU time
// went, within the measured rounds) and --alloc-prof (where the bytes were allocated).
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { round } from '../numbers.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url)) // the repository, with a trailing slash

const NODE_HTTP = /^node:(_http_|http$|https$|internal\/http)/
const NODE_NET = /^node:(net$|internal\/stream_base_commons|internal\/streams\/|stream$|internal\/net|internal\/dns|dns$|internal\/tcp|internal\/async_hooks)/
const FASTIFY_PKGS = /^(fastify|@fastify\/(?!http-proxy$|reply-from$)|find-my-way|avvio|light-my-request|fast-json-stringify|fast-querystring|fast-decode-uri-component|fast-uri|pino|abstract-logging|toad-cache|process-warning|rfdc|fastify-plugin|secure-json-parse|ret|safe-regex2|fast-content-type-parse|json-schema-ref-resolver)/
const EXPRESS_PKGS = /^(express|router|body-parser|finalhandler|send|serve-static|path-to-regexp|parseurl|qs|proxy-addr|forwarded|ipaddr\.js|cookie|cookie-signature|content-type|content-disposition|type-is|accepts|negotiator|mime-types|mime-db|on-finished|ee-first|depd|debug|ms|statuses|encodeurl|escape-html|etag|fresh|range-parser|vary|merge-descriptors|http-errors|setprototypeof|toidentifier|inherits|iconv-lite|raw-body|bytes|safe-buffer|utils-merge|methods|media-typer|object-inspect|side-channel.*|call-bind.*|get-intrinsic|es-.*|gopd|has-symbols|hasown|function-bind|math-intrinsics|dunder-proto|get-proto|once|wrappy|is-promise)$/

/** Native functions that are the kernel's socket send path (loopback TCP: the receiver's work too). */
const SOCKET_WRITES = new Set(['writev', 'writeBuffer', 'writeLatin1String', 'writeUtf8String', 'writeAsciiString', 'writeUcs2String', 'shutdown'])

function categorize (url, name) {
  if (url === '' && SOCKET_WRITES.has(name)) return 'socket writes (native → kernel send)'
  if (name === '(garbage collector)') return 'GC'
  if (name === '(program)') return '(program): V8/native, unattributed'
  if (name === '(idle)') return '(idle)'
  if (url === '') return undefined
  if (url.includes('/packages/core/dist/')) return 'Affinity core'
  if (url.includes('/packages/fastify/dist/')) return 'Affinity fastify adapter'
  if (url.includes('/packages/express/dist/')) return 'Affinity express adapter'
  if (url.includes('/bench/proxy.js') || url.includes('/bench/proxy/')) return 'bench harness'
  const m = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)\//.exec(url)
  if (m !== null) {
    const pkg = m[1]
    if (pkg === 'undici') return 'undici'
    if (pkg === '@fastify/http-proxy' || pkg === '@fastify/reply-from') return '@fastify/http-proxy + reply-from'
    if (pkg === 'http-proxy-middleware' || pkg === 'http-proxy' || pkg === 'micromatch' || pkg === 'is-glob' || pkg === 'is-plain-object' || pkg === 'eventemitter3' || pkg === 'follow-redirects' || pkg === 'requires-port') return 'http-proxy-middleware + http-proxy'
    if (pkg === 'lru-cache') return 'Affinity core'
    if (pkg === 'cookie') return 'cookie (parser package)'
    if (FASTIFY_PKGS.test(pkg)) return 'Fastify (+ its deps)'
    if (EXPRESS_PKGS.test(pkg)) return 'Express (+ its deps)'
    return `package ${pkg}`
  }
  if (url.startsWith('node:internal/deps/undici')) return 'node bundled undici'
  if (NODE_HTTP.test(url)) return 'Node http'
  if (NODE_NET.test(url)) return 'Node net/streams'
  if (url.startsWith('node:')) return 'Node other (events, timers, …)'
  return 'other'
}

function shortUrl (url) {
  return url
    .replace(/^file:\/\//, '')
    .replace(ROOT, '')
    .replace(/^node_modules\/\.pnpm\/[^/]+\/node_modules\//, '')
}

/** "function  file:line" of a call frame, the key functions are summed by. */
const frameKey = (f) => `${f.functionName || '(anonymous)'}  ${f.url ? `${shortUrl(f.url)}:${f.lineNumber + 1}` : '(native)'}`

/**
 * On-CPU µs within `windows` (the measured rounds; all samples without), by category, by
 * function (self) and by function including callees (`inclusive`), and the busy total.
 */
export function profileTimes (file, windows) {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8'))
  const nodes = new Map(prof.nodes.map(n => [n.id, n]))
  const parent = new Map()
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const catOf = new Map()
  const category = (id) => {
    if (catOf.has(id)) return catOf.get(id)
    const n = nodes.get(id)
    let c = categorize(n.callFrame.url, n.callFrame.functionName)
    if (c === undefined) {
      const p = parent.get(id)
      c = p === undefined ? 'native (no JS caller)' : category(p)
      if (c === '(idle)' || c === 'GC' || c.startsWith('(program)')) c = 'native (no JS caller)'
    }
    catOf.set(id, c)
    return c
  }
  const dt = prof.timeDeltas
  const selfUs = new Map()
  let busy = 0
  let idle = 0
  let t = prof.startTime
  const inWindow = (ts) => windows === undefined || windows.some(([a, b]) => ts >= a && ts <= b)
  for (let i = 0; i < prof.samples.length; i++) {
    t += dt[i]
    if (!inWindow(t)) continue
    const id = prof.samples[i]
    const d = dt[i + 1] ?? dt[i] ?? 0 // time until the next sample
    const name = nodes.get(id).callFrame.functionName
    if (name === '(idle)') { idle += d; continue }
    busy += d
    selfUs.set(id, (selfUs.get(id) ?? 0) + d)
  }
  const byCat = new Map()
  const byFn = new Map()
  const inclusive = new Map()
  for (const [id, us] of selfUs) {
    const c = category(id)
    byCat.set(c, (byCat.get(c) ?? 0) + us)
    const key = frameKey(nodes.get(id).callFrame)
    const e = byFn.get(key) ?? { fn: key, us: 0, category: c }
    e.us += us
    byFn.set(key, e)
    // inclusive time per function (counted once per stack)
    const seen = new Set()
    for (let p = id; p !== undefined; p = parent.get(p)) {
      const pf = nodes.get(p).callFrame
      if (!pf.url) continue
      const pk = frameKey(pf)
      if (seen.has(pk)) continue
      seen.add(pk)
      const ie = inclusive.get(pk) ?? { fn: pk, us: 0, category: category(p) }
      ie.us += us
      inclusive.set(pk, ie)
    }
  }
  const wall = windows === undefined ? prof.endTime - prof.startTime : windows.reduce((a, [x, y]) => a + (y - x), 0)
  return { byCat, byFn, inclusive, busy, wall }
}

function summarizeProfile (file, windows) {
  const { byCat, byFn, inclusive, busy, wall } = profileTimes(file, windows)
  const share = (us) => round((100 * us) / busy, 1)
  // JS-attributed time: without the native socket writes, GC and unattributed V8 time.
  const nonJs = (c) => c.startsWith('socket writes') || c === 'GC' || c.startsWith('(program)') || c.startsWith('native (no JS')
  let jsBusy = 0
  for (const [c, us] of byCat) if (!nonJs(c)) jsBusy += us
  const jsShare = (us, c) => (nonJs(c) ? undefined : round((100 * us) / jsBusy, 1))
  return {
    file,
    window: windows === undefined ? 'whole process life' : `the ${windows.length} measured rounds only`,
    wallSeconds: round(wall / 1e6, 1),
    busySeconds: round(busy / 1e6, 1),
    cpuShareOfWall: round(busy / wall, 3),
    categories: [...byCat].sort((a, b) => b[1] - a[1]).map(([category, us]) => ({ category, percent: share(us), percentOfJs: jsShare(us, category) })),
    topSelf: [...byFn.values()].sort((a, b) => b.us - a.us).slice(0, 30).map(e => ({ fn: e.fn, category: e.category, percent: share(e.us), percentOfJs: jsShare(e.us, e.category) })),
    affinityInclusive: [...inclusive.values()].filter(e => e.category.startsWith('Affinity')).sort((a, b) => b.us - a.us).slice(0, 20).map(e => ({ fn: e.fn, percent: share(e.us) })),
  }
}

function printProfile (name, s) {
  const lines = [`CPU profile of the ${name} proxy process: ${s.file}`,
    `  samples from ${s.window}: ${s.wallSeconds} s, on CPU ${s.busySeconds} s (${Math.round(s.cpuShareOfWall * 100)}%); shares below are of on-CPU time`,
    '  by category (native frames and builtins count for their nearest JS caller); second column: share of the JS-attributed',
    '  time (all but socket writes, GC, unattributed). In a VM, signal-based sampling over-attributes time to syscall frames:',
    '  /proc gave this kind of process ~20% system time, so read the socket-write share as an upper bound.']
  const pc = (v) => (v === undefined ? '     ' : `${String(v).padStart(5)}%`)
  for (const c of s.categories) lines.push(`    ${String(c.percent).padStart(5)}%  ${pc(c.percentOfJs)}  ${c.category}`)
  lines.push('  top self time (of all on-CPU; of JS-attributed):')
  for (const f of s.topSelf) lines.push(`    ${String(f.percent).padStart(5)}%  ${pc(f.percentOfJs)}  ${f.fn}  [${f.category}]`)
  lines.push('  Affinity functions by inclusive time (callees included):')
  for (const f of s.affinityInclusive) lines.push(`    ${String(f.percent).padStart(5)}%  ${f.fn}`)
  return lines.join('\n') + '\n'
}

/** Bytes allocated per category and per function, from a sampling heap profile (whole child life). */
function summarizeAllocations (file) {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8'))
  const byCat = new Map()
  const byFn = new Map()
  let total = 0
  const walk = (node, inherited) => {
    const f = node.callFrame
    let c = categorize(f.url, f.functionName)
    if (c === undefined || c === '(idle)') c = inherited
    const bytes = node.selfSize
    if (bytes > 0) {
      total += bytes
      byCat.set(c, (byCat.get(c) ?? 0) + bytes)
      const key = frameKey(f)
      const e = byFn.get(key) ?? { fn: key, bytes: 0, category: c }
      e.bytes += bytes
      byFn.set(key, e)
    }
    for (const ch of node.children ?? []) walk(ch, c)
  }
  walk(prof.head, 'native (no JS caller)')
  const pct = (b) => round((100 * b) / total, 1)
  return {
    file,
    totalMiB: round(total / 2 ** 20, 1),
    categories: [...byCat].sort((a, b) => b[1] - a[1]).map(([category, b]) => ({ category, percent: pct(b) })),
    top: [...byFn.values()].sort((a, b) => b.bytes - a.bytes).slice(0, 25).map(e => ({ fn: e.fn, category: e.category, percent: pct(e.bytes) })),
  }
}

function printAllocations (name, a) {
  const lines = [`Allocation profile of the ${name} proxy process (sampled, collected objects included; whole process life): ${a.file}`,
    `  ≈ ${a.totalMiB} MiB allocated in total; by category:`]
  for (const c of a.categories) lines.push(`    ${String(c.percent).padStart(5)}%  ${c.category}`)
  lines.push('  top allocating functions:')
  for (const f of a.top) lines.push(`    ${String(f.percent).padStart(5)}%  ${f.fn}  [${f.category}]`)
  return lines.join('\n') + '\n'
}

/**
 * Reads the profiles the targets' children wrote (--cpu-prof: within the measured rounds;
 * --alloc-prof: whole child life), prints each summary with `emit` and returns them for the JSON.
 */
export function collectProfiles (rows, opts, emit) {
  const profiles = []
  if (opts.cpuProf) {
    for (const r of rows) {
      const file = path.join(opts.cpuProfDir, `${r.name}.cpuprofile`)
      if (!fs.existsSync(file)) continue
      const s = summarizeProfile(file, r.windows)
      profiles.push({ target: r.name, ...s })
      emit('')
      emit(printProfile(r.name, s))
    }
  }
  if (opts.allocProf) {
    for (const r of rows) {
      const file = path.join(opts.allocProfDir, `${r.name}.heapprofile`)
      if (!fs.existsSync(file)) continue
      const a = summarizeAllocations(file)
      profiles.push({ target: r.name, allocations: a })
      emit('')
      emit(printAllocations(r.name, a))
    }
  }
  return profiles
}
