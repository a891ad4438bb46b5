// Membership-change benchmark (the BUILT packages: run `tsc -b` first, or
// `npm run bench:membership`): how long a membership or health change blocks the event
// loop at fleet scale, and what a rolling deploy does to requests in flight.
//
// Method. This process is the balancer: @affinity/core's forwarder (balancer.choose +
// balancer.forward) on a plain node:http server, with what an app attaches that runs on
// every change: a 'remap' listener, Prometheus metrics (createMetrics) and state-change
// logging (logStateChanges, to a logger that drops lines). The upstreams (a few node:http
// servers on 127.0.0.2, 127.0.0.3, … behind N upstream ids, each with its own URL path and
// undici pool) and the load generator (autocannon, --connections keep-alive connections
// cycling --users returning users, each with its own x-user header, X-Forwarded-For
// address and, for stickyCookie, the balancer cookie of its first visit) run in child
// processes, so nothing else runs on the measured event loop.
// For each fleet size N (--sizes) and strategy (--strategies):
//   steady  --steady s of traffic, no change            → request p99, event-loop delay
//   roll    every upstream replaced one by one while traffic flows: add the new one,
//           drain the old one, remove it (--changes: only the first K), --interval-ms
//           apart; then a health phase: min(K, 50) upstreams drained and undrained
//           (drain and undrain take the same path as down and up: a new Members
//           snapshot, the remap preview, strategy.update with one upstream's eligibility
//           flipped)                                    → request p99, event-loop delay
//   preview after the roll, five pairs of Balancer.preview() calls (one add, one remove)
// With --source K[,K…], each case is also run source-driven: the balancer follows a
// membership source (`upstreams: source`, the README's hand-written one, removeGraceMs 0)
// and the roll is a series of updates, each the whole list with K more old upstreams
// replaced by new ones (K added and K removed in one update: one snapshot, the way a DNS
// answer that changed K records is applied); each update is timed directly, and per
// change = update time / 2K; the health phase is the same.
// Blocking per change is the change call timed directly (performance.now() around
// balancer.add / drain / undrain / remove, listeners included): max and p99 per kind,
// and the case's first change apart (the first of a kind in the process runs code V8
// has not optimised yet), with the process CPU time it took (process.cpuUsage: on a
// busy machine the wall time also counts time the process waited for a core; on a
// quiet one the two agree). At fleet scale the hash strategies apply a change in
// slices on later turns of the loop (strategies/consistent-hash.ts): every
// slice of the roll is timed too (`slices`, max / p99 once the first
// 12 changes have warmed the code up; `warm-up`: the max of all of them), and
// "≤ 10 ms" holds when the calls and the slices all stay within it ('after warm-up':
// all but the first call, and the slices after the first 12 changes). The longest garbage
// collection pause of the roll is reported beside them (PerformanceObserver 'gc'), with
// the longest of steady state: a pause lands in whatever runs at the time, a change call
// or a slice included. So each call and each slice over 1 ms is also measured by its
// own work: its time less the GC pauses within it (membership/gc-pauses.js);
// "≤ 10 ms, own" checks those. With --pin (the default where `taskset` exists and
// there are 2 cores or more) the main thread of this process gets the last core to
// itself and everything else (the children, V8's helper threads) the others, so that
// a change's time does not count a wait for a core the load generator holds. For each
// call and slice over 10 ms the process's CPU time during it is kept ("CPU of those":
// all of its threads, so an upper bound on the main thread's), and the hypervisor's
// steal on the main thread's core over the roll (/proc/stat, 10 ms ticks): a call that
// took longer than any CPU it used was off its core for the rest. Where a C compiler and
// Node's headers are at hand, each call's and slice's main-thread CPU time is measured
// too (membership/thread-cpu.js): the change's own work, apart from any time off the core.
// With --stalls (root, `perf` installed, the main thread pinned), the main thread's core is
// sampled by `perf record` and each call's and slice's main-thread CPU time is also given
// less the time its vCPU made no progress (membership/stalls.js): on a VM that time can be
// charged to the thread as CPU without being shown as steal.
// The event-loop delay (perf_hooks.monitorEventLoopDelay, 1 ms timer) is reported for
// steady state and for the roll: its max is the longest the loop was blocked by
// anything. CPU per request is this process's CPU time (process.cpuUsage) over the
// responses in the phase.
// `--strategies control` (not in the default list) is the baseline for the maxima: every
// change replaced by 1 ms of spinning on the clock, with the same traffic; whatever it
// measures beyond 1 ms comes from the machine and the runtime, not from a change.
// --core label=path[,label=path]: compare builds of @affinity/core in one interleaved
// run (e.g. base=/tmp/base/packages/core/dist/index.js,new=@affinity/core): each case is
// run for every build in turn, the order alternating from one case to the next.
//
// Usage: node bench/membership.js [--sizes 100,1000] [--strategies a,b] [--changes K] [--no-pin]
//          [--interval-ms 10] [--steady 3] [--warmup 1] [--connections 16] [--users 2000]
//          [--servers 4] [--source K,…] [--core label=path,…] [--stalls] [--json] [--list]
// Figures are printed, never asserted. The machine must be quiet for figures to quote.
import { execFileSync, fork } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import { createHistogram, monitorEventLoopDelay } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { threadCpuClock } from './membership/thread-cpu.js'
import { stallRecorder } from './membership/stalls.js'
import { die as dieWith, list, parseArgs as parseWith } from './args.js'
import { machine, machineLines } from './machine.js'
import { runLoad } from './membership/load.js'
import { report } from './membership/report.js'
import { gcPauses } from './membership/gc-pauses.js'
import { runUpstreams } from './membership/upstreams.js'
import { round } from './numbers.js'
import { makeUsers } from './proxy/users.js'

const SELF = fileURLToPath(import.meta.url)
const SECRET = 'bench-membership-secret-0123456789abcdef-0123'
/** monitorEventLoopDelay's sampling timer (ms): blocking shorter than this shows as up to this much delay. */
const RESOLUTION = 1
const HEALTH_FLIPS = 50
/** Changes after which slices count as warm (the first four add / drain / remove rounds). */
const WARM_UP = 12
/** Calls and slices with at least this much main-thread CPU (ms) are kept for --stalls: the rest cannot be a row's maximum. */
const SPAN_CPU_MS = 1

/** The strategies, as an app would configure them. */
const STRATEGIES = {
  roundRobin: (c) => c.roundRobin(),
  leastConnections: (c) => c.leastConnections(),
  stickyCookie: (c) => c.stickyCookie({ secret: SECRET }),
  'stickyCookie+cap': (c) => c.stickyCookie({ secret: SECRET, sessionBalanceFactor: 1.25 }),
  stickyIp: (c) => c.stickyIp(),
  'stickyIp+cap': (c) => c.stickyIp({ sessionBalanceFactor: 1.25 }),
  hashRing: (c) => c.consistentHash({ key: { header: 'x-user' } }),
  'hashRing+bf': (c) => c.consistentHash({ key: { header: 'x-user' }, balanceFactor: 1.25 }),
  hashMaglev: (c) => c.consistentHash({ key: { header: 'x-user' }, algorithm: 'maglev' }),
  'hashMaglev+bf': (c) => c.consistentHash({ key: { header: 'x-user' }, algorithm: 'maglev', balanceFactor: 1.25 }),
  ipHash: (c) => c.ipHash(),
  // Not a strategy: roundRobin, with every change replaced by CONTROL_MS of spinning
  // on the clock. What it measures over CONTROL_MS is not work but the environment:
  // the core taken away, an interrupt, a V8 task at a loop's back edge.
  control: (c) => c.roundRobin(),
}

/** The control's stand-in for a change, ms: about what a change costs at 1,000 upstreams (p99). */
const CONTROL_MS = 1
const spin = (ms) => { const end = performance.now() + ms; while (performance.now() < end); }

function parseArgs (argv) {
  const help = fs.readFileSync(SELF, 'utf8').split('\n').filter(l => l.startsWith('//')).map(l => l.slice(3)).join('\n')
  const o = parseWith(argv, {
    script: 'bench/membership.js',
    help,
    defaults: { pin: true, stalls: false, sizes: [100, 1000], strategies: Object.keys(STRATEGIES).filter(s => s !== 'control'), changes: undefined, intervalMs: 10, steady: 3, warmup: 1, connections: 16, users: 2000, servers: 4, source: [], cores: [{ label: 'built', path: '@affinity/core' }], json: false, list: false, role: undefined },
    flags: { '--json': o => { o.json = true }, '--list': o => { o.list = true }, '--no-pin': o => { o.pin = false }, '--stalls': o => { o.stalls = true } },
    values: {
      '--sizes': (o, v) => { o.sizes = list(v).map(Number) },
      '--strategies': (o, v) => { o.strategies = list(v) },
      '--changes': (o, v) => { o.changes = Number(v) },
      '--interval-ms': (o, v) => { o.intervalMs = Number(v) },
      '--steady': (o, v) => { o.steady = Number(v) },
      '--warmup': (o, v) => { o.warmup = Number(v) },
      '--connections': (o, v) => { o.connections = Number(v) },
      '--users': (o, v) => { o.users = Number(v) },
      '--servers': (o, v) => { o.servers = Number(v) },
      '--source': (o, v) => { o.source = list(v).map(Number) },
      '--core': (o, v) => { o.cores = list(v).map(s => { const eq = s.indexOf('='); return eq === -1 ? { label: s, path: s } : { label: s.slice(0, eq), path: s.slice(eq + 1) } }) },
      '--role': (o, v) => { o.role = v },
    },
  })
  const die = (m) => dieWith('bench/membership.js', m)
  for (const n of o.sizes) if (!Number.isInteger(n) || n < 2 || n > 60_000) die('--sizes: expected integers from 2 to 60000')
  for (const s of o.strategies) if (!Object.hasOwn(STRATEGIES, s)) die(`--strategies: unknown ${s} (${Object.keys(STRATEGIES).join(', ')})`)
  if (o.changes !== undefined && !(Number.isInteger(o.changes) && o.changes >= 1)) die('--changes: expected an integer ≥ 1')
  if (!(o.intervalMs >= 0)) die('--interval-ms: expected ms ≥ 0')
  if (!(o.steady > 0) || !(o.warmup >= 0)) die('--steady: expected seconds > 0; --warmup: seconds ≥ 0')
  if (!Number.isInteger(o.connections) || o.connections < 1 || !Number.isInteger(o.users) || o.users < o.connections) die('--connections ≥ 1 and --users ≥ --connections, integers')
  if (!Number.isInteger(o.servers) || o.servers < 1 || o.servers > 200) die('--servers: expected an integer from 1 to 200')
  for (const k of o.source) if (!Number.isInteger(k) || k < 1) die('--source: expected batch sizes, integers ≥ 1')
  return o
}

// ───────────────────────────── children ─────────────────────────────

function child (role, args = []) {
  const proc = fork(SELF, ['--role', role, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] })
  const expect = (type) => new Promise((resolve, reject) => {
    const onMessage = (m) => { if (m?.type === type) { proc.off('message', onMessage); proc.off('exit', onExit); resolve(m) } }
    const onExit = (code) => { proc.off('message', onMessage); reject(new Error(`${role} child exited (${code})`)) }
    proc.on('message', onMessage)
    proc.once('exit', onExit)
  })
  const ask = (msg, type) => { const p = expect(type); proc.send(msg); return p }
  return { proc, expect, ask }
}

/**
 * This process's main thread alone on the last core, everything else on the others:
 * a change's time then counts no wait for a core the load generator or a helper
 * thread holds. Returns the line for the report and the main thread's core
 * (undefined when not pinned: no steal figure then).
 */
function pin (children) {
  const n = os.availableParallelism()
  if (n < 2) return { text: 'not pinned (one core)' }
  const others = n === 2 ? '0' : `0-${n - 2}`
  try {
    // Every thread of this process there too (V8's concurrent marking and compilers),
    // then the main thread alone on the last core: a helper thread that shared its
    // core would slow it down with no trace in the GC entries.
    for (const pid of [...children, process.pid]) execFileSync('taskset', ['-a', '-cp', others, String(pid)], { stdio: 'ignore' })
    execFileSync('taskset', ['-cp', String(n - 1), String(process.pid)], { stdio: 'ignore' })
  } catch (err) {
    return { text: `not pinned (taskset: ${err.code ?? err.status})` }
  }
  return { core: n - 1, others, text: `this process's main thread on CPU ${n - 1}; its other threads, the upstreams and the load generator on CPU ${others} (taskset)` }
}

// ───────────────────────────── one case ─────────────────────────────

const parseCookies = (header) => {
  const out = {}
  if (header === undefined) return out
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0) out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim()
  }
  return out
}

/** Generation g's N upstreams: id `10.g.x.y:8080` (as DNS discovery names them), path /u<g>-<i> on server i mod S. */
const generation = (origins, g, n) => Array.from({ length: n }, (_, i) => ({ url: `${origins[i % origins.length]}/u${g}-${i}`, id: `10.${g}.${i >> 8}.${i & 255}:8080` }))

const ms = (t0) => performance.now() - t0
/**
 * Time the hypervisor ran something else while this VM's CPU `core` wanted to run
 * (/proc/stat's steal column, proc(5): USER_HZ ticks, 10 ms each), or undefined.
 */
const stealMs = (core) => {
  if (core === undefined) return undefined
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n').find(l => l.startsWith(`cpu${core} `))
    return Number(line.trim().split(/\s+/)[8]) * 10
  } catch { return undefined }
}
const cpuSeconds = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6 }
const loopFigures = (h) => ({ max: round(h.max / 1e6, 1), p99: round(h.percentile(99) / 1e6, 1) })

/** The README's hand-written membership source: `set` sends the whole list. */
function manualSource () {
  let push
  let last
  return {
    set (list) { last = list; push?.(list) },
    subscribe (update) { push = update; if (last !== undefined) queueMicrotask(() => update(last)); return () => { push = undefined } },
  }
}

async function runCase ({ core, label }, name, n, opts, ctx, batch) {
  const { load, origins, histogram, mainCore } = ctx
  // batch: undefined for the roll by add/drain/remove calls; K for the source-driven roll.
  const source = batch === undefined ? undefined : manualSource()
  source?.set(generation(origins, 0, n))
  const balancer = core.createBalancer({ upstreams: source ?? generation(origins, 0, n), strategy: STRATEGIES[name](core), name: 'bench', ...(source ? { removeGraceMs: 0 } : {}) })
  if (source !== undefined) await balancer.ready() // (a build without sources has no ready(): --core comparisons)
  let moved = 0
  balancer.on('remap', (r) => { moved += r.moved })
  const metrics = await core.createMetrics(balancer)
  const nothing = () => {}
  const stopLogging = core.logStateChanges(balancer, { debug: nothing, info: nothing, warn: nothing })
  const server = http.createServer((req, res) => {
    const route = { method: req.method, url: req.url, headers: req.headers, ip: req.headers['x-forwarded-for'], cookies: parseCookies(req.headers.cookie), protocol: 'http' }
    const c = balancer.choose(route)
    if (typeof c.then === 'function') c.then(choice => balancer.forward(choice, req, res, { path: req.url }))
    else balancer.forward(c, req, res, { path: req.url })
  })
  server.keepAliveTimeout = 120_000
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = server.address().port
  const row = { strategy: name, core: label, n, rollBy: batch === undefined ? 'calls' : `source ×${batch}` }
  try {
    row.primeFailures = (await load.ask({ type: 'prime', port }, 'primed')).failed
    if (opts.warmup > 0) await load.ask({ type: 'run', port, connections: opts.connections, seconds: opts.warmup }, 'result')

    histogram.reset()
    let cpu0 = cpuSeconds()
    const steadyGc = gcPauses()
    const steady = await load.ask({ type: 'run', port, connections: opts.connections, seconds: opts.steady }, 'result')
    row.steady = { ...summarize(steady), loop: loopFigures(histogram), cpuUsPerReq: round((cpuSeconds() - cpu0) / steady.responses * 1e6, 1), gcMax: round(steadyGc.stop().max, 2) }

    const old = generation(origins, 0, n)
    const fresh = generation(origins, 1, n)
    const k = Math.min(n, opts.changes ?? n)
    const times = { add: [], drain: [], undrain: [], remove: [], update: [] }
    const cpu = { add: [], drain: [], undrain: [], remove: [], update: [] }
    const perChange = []
    const cpuPerChange = []
    const later = []
    let overCalls = 0
    // The most process CPU time during a call over 10 ms: a call that was off its
    // core (preempted, or the VM's steal) takes longer than the CPU it used.
    let overCallsCpuMax
    row.cpuSpans = []
    const slices = sliceMeter(row.cpuSpans)
    // The main thread's CPU time in a call: the most, and the most in one over 10 ms.
    const callsCpu = { max: 0, later: 0, overMax: undefined }
    const callsOff = offCore()
    // Each call's interval, for its own work net of GC (after the roll).
    const spans = { from: [], to: [] }
    const control = name === 'control'
    const timed = (kind, change) => {
      const fn = control ? () => spin(CONTROL_MS) : change
      const c0 = process.cpuUsage()
      const s0 = threadCpu?.switches()
      const tc0 = threadCpu?.()
      const h0 = process.hrtime.bigint()
      const t0 = performance.now()
      fn()
      const t1 = performance.now()
      const h1 = process.hrtime.bigint()
      const onCpu = tc0 === undefined ? undefined : threadCpu() - tc0
      const wall = t1 - t0
      if (onCpu >= SPAN_CPU_MS) row.cpuSpans.push({ slice: false, first: row.firstMs === undefined, from: h0, to: h1, wall, onCpu })
      if (wall > 10) callsOff.add(s0)
      if (onCpu !== undefined) {
        callsCpu.max = Math.max(callsCpu.max, onCpu)
        if (row.firstMs !== undefined) callsCpu.later = Math.max(callsCpu.later, onCpu)
        if (wall > 10) callsCpu.overMax = Math.max(callsCpu.overMax ?? 0, onCpu)
      }
      spans.from.push(t0)
      spans.to.push(t1)
      times[kind].push(wall)
      const c = process.cpuUsage(c0)
      cpu[kind].push((c.user + c.system) / 1000)
      if (wall > 10) { overCalls++; overCallsCpuMax = Math.max(overCallsCpuMax ?? 0, (c.user + c.system) / 1000) }
      if (row.firstMs === undefined) row.firstMs = round(wall, 2)
      else later.push(wall)
      if (later.length === WARM_UP) slices.warm()
    }
    const pause = () => (opts.intervalMs > 0 ? sleep(opts.intervalMs) : new Promise(resolve => setImmediate(resolve)))
    await load.ask({ type: 'start', port, connections: opts.connections }, 'started')
    await sleep(200) // connections open and traffic flowing before the first change
    const gc = gcPauses()
    histogram.reset()
    const steal0 = stealMs(mainCore)
    cpu0 = cpuSeconds()
    const t0 = performance.now()
    for (let i = 0; batch === undefined && i < k; i++) {
      timed('add', () => balancer.add(fresh[i]))
      await pause()
      timed('drain', () => { balancer.drain(old[i].id) })
      await pause()
      timed('remove', () => balancer.remove(old[i].id))
      await pause()
    }
    for (let i = 0; batch !== undefined && i < k; i += batch) {
      const j = Math.min(k, i + batch)
      timed('update', () => source.set([...fresh.slice(0, j), ...old.slice(j)]))
      perChange.push(times.update.at(-1) / (2 * (j - i)))
      cpuPerChange.push(cpu.update.at(-1) / (2 * (j - i)))
      await pause()
    }
    for (let i = 0; i < Math.min(k, HEALTH_FLIPS); i++) {
      timed('drain', () => { balancer.drain(fresh[i].id) })
      await pause()
      timed('undrain', () => balancer.undrain(fresh[i].id))
      await pause()
    }
    // The last change's slices (and its remap) before the meter stops.
    await balancer.strategy.settled?.()
    const pauses = gc.stop()
    row.slices = slices.stop(pauses)
    row.gc = { count: pauses.count, max: round(pauses.max, 2) }
    // Own work = the call's time less the GC pauses within it.
    const inCalls = spans.from.map((from, i) => pauses.within(from, spans.to[i]))
    const own = spans.from.map((from, i) => spans.to[i] - from - inCalls[i])
    row.overCalls = overCalls
    row.overCallsCpuMax = overCallsCpuMax === undefined ? undefined : round(overCallsCpuMax, 2)
    if (threadCpu !== undefined) row.threadCpu = { calls: round(callsCpu.max, 2), later: round(callsCpu.later, 2), overCalls: callsCpu.overMax === undefined ? undefined : round(callsCpu.overMax, 2), overCallsOff: callsOff.counts }
    row.stealMs = steal0 === undefined ? undefined : stealMs(mainCore) - steal0
    row.own = { all: stats(own), later: stats(own.slice(1)), gcInCallsMax: round(Math.max(...inCalls), 2) }
    row.rollSeconds = round(ms(t0) / 1000, 1)
    const roll = await load.ask({ type: 'stop' }, 'result')
    row.roll = { ...summarize(roll), loop: loopFigures(histogram), cpuUsPerReq: round((cpuSeconds() - cpu0) / roll.responses * 1e6, 1) }
    row.changes = Object.fromEntries(Object.entries(times).map(([kind, xs]) => [kind, stats(xs)]))
    row.changes.all = stats(Object.values(times).flat())
    row.changes.later = stats(later)
    row.changes.perChange = stats(perChange)
    row.cpu = Object.fromEntries(Object.entries(cpu).map(([kind, xs]) => [kind, stats(xs)]))
    row.cpu.perChange = stats(cpuPerChange)
    row.cpu.all = stats(Object.values(cpu).flat())
    row.remapMoved = moved
    // Balancer.preview(): an explicit what-if, off the change path (it may be slower).
    const previews = []
    for (let i = 0; i < (control ? 0 : 5); i++) {
      const t1 = performance.now()
      balancer.preview({ add: { url: `${origins[0]}/preview-${i}`, id: `10.9.0.${i}:8080` } })
      balancer.preview({ remove: fresh[i % k].id })
      previews.push(ms(t1) / 2)
    }
    row.previewMs = control ? undefined : stats(previews)
  } finally {
    stopLogging()
    metrics.close()
    server.closeAllConnections()
    server.close()
    await balancer.close()
  }
  return row
}

/** The name of the strategy's slice callback (strategies/consistent-hash.ts, `#onSlice`). */
const SLICE = '#onSlice'

/**
 * The strategy's slices until stop(): at fleet scale the hash strategies apply a
 * change in setImmediate callbacks, after the call (strategies/consistent-hash.ts),
 * told from undici's own callbacks there by name. Wraps the global, which the
 * strategy looks up at each call. A slice over 1 ms also keeps its interval, for its
 * own work net of GC at stop().
 */
function sliceMeter (cpuSpans) {
  const original = globalThis.setImmediate
  // Histograms, not lists: the roll runs millions of callbacks, and sorting them
  // would itself block the loop (in µs, 1 µs to 10 s). `warm` after the first
  // changes: the slices of a process's first changes run code V8 has not optimised.
  const all = createHistogram({ lowest: 1, highest: 1e7 })
  let warm
  const long = { from: [], to: [], warm: [] }
  let over = 0
  let overCpuMax = 0
  // The main thread's CPU time in a slice: the most, and the most in one over 10 ms.
  let cpuMax = 0
  let cpuWarmMax = 0
  let overThreadCpuMax
  const off = offCore()
  globalThis.setImmediate = (fn, ...args) => fn.name !== SLICE ? original(fn, ...args) : original((...a) => {
    const c0 = process.cpuUsage()
    const s0 = threadCpu?.switches()
    const tc0 = threadCpu?.()
    const h0 = process.hrtime.bigint()
    const t = performance.now()
    try { return fn(...a) } finally {
      const end = performance.now()
      const h1 = process.hrtime.bigint()
      const onCpu = tc0 === undefined ? undefined : threadCpu() - tc0
      if (onCpu >= SPAN_CPU_MS) cpuSpans.push({ slice: true, warm: warm !== undefined, from: h0, to: h1, wall: end - t, onCpu })
      const us = Math.max(1, Math.round((end - t) * 1000))
      if (onCpu !== undefined) {
        cpuMax = Math.max(cpuMax, onCpu)
        if (warm !== undefined) cpuWarmMax = Math.max(cpuWarmMax, onCpu)
        if (us > 10_000) overThreadCpuMax = Math.max(overThreadCpuMax ?? 0, onCpu)
      }
      if (us > 10_000) off.add(s0)
      all.record(us)
      warm?.record(us)
      if (us > 10_000) {
        over++
        const c = process.cpuUsage(c0)
        overCpuMax = Math.max(overCpuMax, (c.user + c.system) / 1000)
      }
      if (us > 1000) {
        long.from.push(t)
        long.to.push(end)
        long.warm.push(warm !== undefined)
      }
    }
  }, ...args)
  const figures = (h) => (h === undefined || h.count === 0 ? { count: 0 } : { count: h.count, median: round(h.percentile(50) / 1000, 2), p99: round(h.percentile(99) / 1000, 2), max: round(h.max / 1000, 2) })
  return {
    warm () { warm ??= createHistogram({ lowest: 1, highest: 1e7 }) },
    stop (pauses) {
      globalThis.setImmediate = original
      const own = long.from.map((from, i) => long.to[i] - from - pauses.within(from, long.to[i]))
      const ownWarm = own.filter((_, i) => long.warm[i])
      return { ...figures(all), warm: figures(warm), over, overCpuMax: over === 0 ? undefined : round(overCpuMax, 2), ownMax: round(Math.max(0, ...own), 2), ownWarmMax: round(Math.max(0, ...ownWarm), 2), ...(threadCpu === undefined ? {} : { threadCpu: round(cpuMax, 2), threadCpuWarm: round(cpuWarmMax, 2), overThreadCpu: overThreadCpuMax === undefined ? undefined : round(overThreadCpuMax, 2), overOff: off.counts }) }
    },
  }
}

/**
 * Of the calls or slices over 10 ms, how many the main thread was preempted in (an
 * involuntary context switch: another task ran on its core) and how many it waited in
 * (a voluntary one: a lock, or another thread such as a GC helper). `add(before)` with
 * the switch counts read before the call (membership/thread-cpu.js).
 */
function offCore () {
  const counts = { preempted: 0, waited: 0 }
  return {
    counts,
    add (before) {
      if (before === undefined) return
      const [voluntary, involuntary] = threadCpu.switches()
      if (involuntary > before[1]) counts.preempted++
      if (voluntary > before[0]) counts.waited++
    },
  }
}

/**
 * --stalls: of a row's calls and slices, the most main-thread CPU time less the time
 * the vCPU was stalled within them (max: calls / slices, and the slices after warm-up),
 * how many had a stall of 1 ms or more, and of the calls and slices over 10 ms, how many.
 */
function stallFigures (spans) {
  const net = (s) => s.onCpu - s.stalledMs
  const most = (xs) => (xs.length === 0 ? undefined : round(Math.max(...xs.map(net)), 2))
  const calls = spans.filter(s => !s.slice)
  const slices = spans.filter(s => s.slice)
  return {
    calls: most(calls),
    later: most(calls.filter(s => !s.first)),
    slices: most(slices),
    slicesWarm: most(slices.filter(s => s.warm)),
    stalled: spans.filter(s => s.stalledMs >= 1).length,
    stalledMax: round(Math.max(0, ...spans.map(s => s.stalledMs)), 2),
    over: spans.filter(s => s.wall > 10).length,
    overStalled: spans.filter(s => s.wall > 10 && s.stalledMs >= 1).length,
  }
}

function summarize (r) {
  return { rps: round(r.rps, 0), p50: round(r.p50, 2), p99: round(r.p99, 2), max: round(r.max, 1), responses: r.responses, non2xx: r.non2xx, errors: r.errors, timeouts: r.timeouts }
}

function stats (xs) {
  if (xs.length === 0) return { count: 0 }
  const s = [...xs].sort((a, b) => a - b)
  const at = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p / 100 * s.length) - 1))]
  return { count: s.length, median: round(at(50), 2), p99: round(at(99), 2), max: round(s[s.length - 1], 2) }
}

// ───────────────────────────── main ─────────────────────────────

/** The main thread's CPU time in ms (membership/thread-cpu.js), or undefined where it cannot be read. */
let threadCpu

async function main (opts) {
  if (opts.list) { for (const s of Object.keys(STRATEGIES)) process.stdout.write(`${s}\n`); return }
  const out = opts.json ? process.stderr : process.stdout
  const args = process.argv.slice(2).join(' ')
  const command = process.env.npm_lifecycle_event === 'bench:membership' ? `npm run bench:membership${args ? ` -- ${args}` : ''}` : `node bench/membership.js${args ? ` ${args}` : ''}`
  const host = machine()
  const loadStart = os.loadavg().map(x => round(x, 2))
  out.write([
    'Membership changes at fleet scale (bench/membership.js)',
    '',
    ...machineLines(host, command, 10),
    `load:     ${loadStart.join(' ')} (1/5/15-min load average at start; the machine must be quiet for figures to quote)`,
    `method:   balancer = @affinity/core forwarder on node:http in this process (remap listener, metrics, logging attached);`,
    `          ${opts.servers} upstream servers (127.0.0.2…) behind N ids and autocannon (${opts.connections} connections, ${opts.users} users) in child processes;`,
    `          per N and strategy: ${opts.steady} s steady, then a roll: add new, drain old, remove old, for ${opts.changes === undefined ? 'every' : `the first ${opts.changes}`} upstream(s), ${opts.intervalMs} ms apart,`,
    ...(opts.source.length === 0 ? [] : [`          and source-driven (${opts.source.map(k => `×${k}`).join(', ')}): updates from a membership source, each replacing K upstreams (K added + K removed, one snapshot);`]),
    `          then ${HEALTH_FLIPS} drain/undrain pairs; blocking per change = the change call timed directly; loop delay = monitorEventLoopDelay.`,
    '',
  ].join('\n') + '\n')

  const clock = threadCpuClock()
  threadCpu = typeof clock === 'function' ? clock : undefined
  out.write(`threads:  ${threadCpu === undefined ? `the main thread's CPU time is not measured: ${clock.none}` : 'the main thread\'s CPU time in each call and slice: clock_gettime(CLOCK_THREAD_CPUTIME_ID), steal excluded'}\n`)
  const cores = []
  for (const c of opts.cores) cores.push({ label: c.label, core: await import(c.path) })
  const upstreams = child('upstreams', ['--servers', String(opts.servers)])
  const { origins } = await upstreams.expect('ready')
  const load = child('load')
  await load.expect('ready')
  const pinned = opts.pin ? pin([upstreams.proc.pid, load.proc.pid]) : { text: 'not pinned (--no-pin)' }
  out.write(`cores:    ${pinned.text}\n`)
  const stalls = opts.stalls ? await stallRecorder(pinned.core, pinned.others) : { none: 'not asked for (--stalls)' }
  out.write(`stalls:   ${stalls.none === undefined ? `perf record -e cpu-clock -F 4000 on CPU ${pinned.core}: each call's and slice's time with the vCPU stalled (membership/stalls.js)` : `not measured: ${stalls.none}`}\n\n`)
  load.proc.send({ type: 'users', users: makeUsers(opts.users) })
  const histogram = monitorEventLoopDelay({ resolution: RESOLUTION })
  histogram.enable()
  const rows = []
  let turn = 0
  try {
    for (const n of opts.sizes) {
      for (const name of opts.strategies) {
        const order = turn++ % 2 === 0 ? cores : [...cores].reverse()
        for (const c of order) {
          process.stderr.write(`  … N=${n} ${name}${cores.length > 1 ? ` [${c.label}]` : ''}\n`)
          for (const batch of [undefined, ...opts.source]) {
            const row = await runCase(c, name, n, opts, { load, origins, histogram, mainCore: pinned.core }, batch)
            rows.push(row)
            process.stderr.write(`    roll by ${row.rollBy}: all changes: max ${row.changes.all.max} ms, p99 ${row.changes.all.p99} ms; slices max ${row.slices.max ?? '—'} ms; request p99 ${row.steady.p99} → ${row.roll.p99} ms\n`)
          }
        }
      }
    }
  } finally {
    upstreams.proc.kill('SIGTERM')
    load.proc.kill('SIGTERM')
    if (stalls.none === undefined) {
      const spans = rows.flatMap(r => r.cpuSpans)
      const stalled = await stalls.stop(spans)
      spans.forEach((span, i) => { span.stalledMs = stalled[i] })
      for (const r of rows) r.stalls = stallFigures(r.cpuSpans)
    }
    for (const r of rows) delete r.cpuSpans
  }
  const loadEnd = os.loadavg().map(x => round(x, 2))
  out.write(report(rows, cores.length > 1) + `\nload average at end: ${loadEnd.join(' ')}\n`)
  if (opts.json) process.stdout.write(JSON.stringify({ machine: host, command, date: new Date().toISOString(), loadAverage: { start: loadStart, end: loadEnd }, params: { ...opts, cores: opts.cores }, rows }, null, 2) + '\n')
}

const opts = parseArgs(process.argv.slice(2))
if (opts.role === 'upstreams') await runUpstreams(opts.servers)
else if (opts.role === 'load') await runLoad()
else {
  try {
    await main(opts)
  } catch (err) {
    process.stderr.write(`${err?.stack ?? err}\n`)
    process.exitCode = 1
  }
}
