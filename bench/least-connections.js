// leastConnections: the full scan against power of two choices, at 3, 10, 100 and
// 1,000 upstreams (the BUILT package: run `tsc -b` first, or `npm run bench:least`).
//   1. cost     CPU ns per balancer.choose(req), upstreams idle and loaded, each case in
//               its own processes (median of 3), the variants interleaved per N
//   1b. aside   CPU ns per strategy.pick() with and without one upstream set aside (what
//               the balancer hands stateless picks while an upstream is at maxInFlight)
//   2. balance  a simulation through the real strategy (pick + in-flight counts, no
//               network): Poisson arrivals, exponential service times, ≈ 8 requests in
//               flight per unit of weight; how far the busiest upstream sits above
//               the mean, time-averaged, and how often a pick missed the least loaded
// Usage: node bench/least-connections.js [--json] [--only cost,aside,balance] [--arrivals N] [--n 3,10,100,1000]
// Figures are printed, never asserted.
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Choice, createBalancer, leastConnections, Members, roundRobin } from '@affinity/core'
import { Upstream, mulberry32 } from '@affinity/core/internal'
import { die as dieWith, list, parseArgs } from './args.js'
import { machine, machineLines } from './machine.js'
import { median, round } from './numbers.js'

const SELF = fileURLToPath(import.meta.url)
const VARIANTS = [
  { name: 'scan', label: "full scan (choices: 'all')", opts: { choices: 'all' } },
  { name: 'p2c', label: 'two choices (choices: 2)', opts: { choices: 2 } },
  { name: 'default', label: 'default (scan ≤ 32, else two choices)', opts: {} },
]
const SEED = 0x5eed0017
const PROCESSES = 3
const ROUNDS = 5
const ROUND_NS = 150e6

const opts = parseArgs(process.argv.slice(2), {
  script: 'bench/least-connections.js',
  defaults: { json: false, only: ['cost', 'aside', 'balance'], arrivals: 200_000, n: [3, 10, 100, 1000], worker: undefined },
  flags: { '--json': o => { o.json = true } },
  values: {
    '--only': (o, v) => { o.only = list(v) },
    '--arrivals': (o, v) => { o.arrivals = Number(v) },
    '--n': (o, v) => { o.n = list(v).map(Number) },
    '--cost-worker': (o, v) => { o.worker = v },
  },
  help: 'node bench/least-connections.js [--json] [--only cost,aside,balance] [--arrivals N] [--n 3,10,100,1000]',
})
const NS = opts.n
if (!NS.every(n => Number.isInteger(n) && n >= 2)) dieWith('bench/least-connections.js', '--n: expected upstream counts ≥ 2')
for (const s of opts.only) if (!['cost', 'aside', 'balance'].includes(s)) dieWith('bench/least-connections.js', `--only: unknown section ${s}`)
if (!Number.isInteger(opts.arrivals) || opts.arrivals < 10_000) dieWith('bench/least-connections.js', '--arrivals: expected an integer ≥ 10000')

const ids = (n) => Array.from({ length: n }, (_, i) => `http://10.1.${i >> 8}.${i & 255}:8080`)
const req = () => ({ method: 'GET', url: '/', headers: {}, ip: '10.0.0.1', cookies: {} })

// ───────────────────────────── 1. cost ─────────────────────────────


/**
 * CPU ns per iteration of `loop(iterations)`: ≥ 0.3 s of warm-up, then ROUNDS rounds
 * sized to ≈ ROUND_NS each, the median. CPU time, not wall time: on a shared machine a
 * process loses whole time slices to others, which wall time would charge to the picks.
 */
function cpuNsPerOp (loop) {
  const t0 = process.hrtime.bigint()
  let warm = 0
  while (Number(process.hrtime.bigint() - t0) < 300e6) { loop(10_000); warm += 10_000 }
  const perOp = Number(process.hrtime.bigint() - t0) / warm
  const iterations = Math.max(20_000, Math.min(3_000_000, Math.round(ROUND_NS / perOp)))
  const samples = []
  for (let k = 0; k < ROUNDS; k++) {
    const c0 = process.cpuUsage()
    loop(iterations)
    const c = process.cpuUsage(c0)
    samples.push((c.user + c.system) * 1000 / iterations)
  }
  return median(samples)
}

/** One case in this process: ns per choose() for N upstreams, idle or loaded (random in-flight 0–15). */
async function costCase (variant, n, loaded) {
  const v = VARIANTS.find(x => x.name === variant)
  const balancer = createBalancer({ upstreams: ids(n), strategy: leastConnections({ ...v.opts, seed: SEED }) })
  const r = mulberry32(SEED)
  if (loaded) for (const u of balancer.members.all) u.inFlight = r() % 16
  const reqs = Array.from({ length: 1024 }, req)
  const loop = (iterations) => {
    let misses = 0
    for (let i = 0; i < iterations; i++) if (balancer.choose(reqs[i & 1023]).upstream === undefined) misses++
    return misses
  }
  const cost = cpuNsPerOp(loop)
  await balancer.close()
  return cost
}

/** One aside case in this process: ns per strategy.pick(), loaded upstreams, with `aside` undefined or one upstream in it. */
async function asideCase (variant, n, withAside) {
  const strategy = variant === 'roundRobin' ? roundRobin() : leastConnections({ ...VARIANTS.find(x => x.name === variant).opts, seed: SEED })
  const ups = ids(n).map((id) => new Upstream(id, id, 1, {}))
  strategy.update(new Members(ups, 0))
  const r = mulberry32(SEED)
  for (const u of ups) u.inFlight = r() % 16
  const aside = withAside ? new Set([ups[0]]) : undefined
  const rq = req()
  const loop = (iterations) => { let misses = 0; for (let i = 0; i < iterations; i++) if (strategy.pick(rq, new Choice(rq), aside) === undefined) misses++; return misses }
  return cpuNsPerOp(loop)
}

async function aside () {
  const rows = []
  for (const variant of ['scan', 'p2c', 'roundRobin']) {
    for (const n of [10, 100]) {
      const runs = { none: [], one: [] }
      for (let p = 0; p < PROCESSES; p++) for (const w of ['none', 'one']) runs[w].push(await isolated(`aside-${variant}`, n, w === 'one'))
      const row = { variant, n, none: round(median(runs.none), 1), one: round(median(runs.one), 1) }
      rows.push(row)
      process.stderr.write(`  … aside ${variant} N=${n}: ${row.none} → ${row.one} ns\n`)
    }
  }
  return rows
}

function isolated (variant, n, loaded) {
  return new Promise((resolve, reject) => {
    const child = fork(SELF, ['--cost-worker', `${variant}:${n}:${loaded ? 1 : 0}`], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
    let result
    child.on('message', (m) => { result = m })
    child.on('error', reject)
    child.on('exit', (code) => (code === 0 && result !== undefined ? resolve(result.ns) : reject(new Error(`cost worker exited with ${code}`))))
  })
}

async function cost () {
  const rows = []
  for (const n of NS) {
    for (const loaded of [false, true]) {
      // Interleaved: one process of each variant in turn, PROCESSES times.
      const runs = Object.fromEntries(VARIANTS.map(v => [v.name, []]))
      for (let p = 0; p < PROCESSES; p++) for (const v of VARIANTS) runs[v.name].push(await isolated(v.name, n, loaded))
      const row = { n, loads: loaded ? 'loaded' : 'idle' }
      for (const v of VARIANTS) row[v.name] = round(median(runs[v.name]), 1)
      rows.push(row)
      process.stderr.write(`  … cost N=${n} ${row.loads}: ${VARIANTS.map(v => `${v.name} ${row[v.name]} ns`).join(', ')}\n`)
    }
  }
  return rows
}

// ───────────────────────────── 2. balance ─────────────────────────────

/** A binary min-heap of [time, upstream index] completions. */
class Completions {
  times = []
  who = []
  push (t, i) {
    const { times, who } = this
    let k = times.length
    times.push(t); who.push(i)
    while (k > 0) {
      const p = (k - 1) >> 1
      if (times[p] <= t) break
      times[k] = times[p]; who[k] = who[p]; k = p
    }
    times[k] = t; who[k] = i
  }

  get next () { return this.times[0] }
  pop () {
    const { times, who } = this
    const i = who[0]
    const t = times.pop(); const w = who.pop()
    const n = times.length
    if (n > 0) {
      let k = 0
      for (;;) {
        const l = 2 * k + 1
        if (l >= n) break
        const c = l + 1 < n && times[l + 1] < times[l] ? l + 1 : l
        if (times[c] >= t) break
        times[k] = times[c]; who[k] = who[c]; k = c
      }
      times[k] = t; who[k] = w
    }
    return i
  }
}

/**
 * Arrivals (Poisson, rate = 8 × total weight) picked by the real strategy; each
 * request holds its upstream for an exponential time (mean 1). Loads are the
 * upstreams' own inFlight fields, which the strategy reads.
 */
function simulate (variant, n, weighted, arrivals) {
  const v = VARIANTS.find(x => x.name === variant)
  const weights = Array.from({ length: n }, (_, i) => (weighted ? 1 + (i % 4) : 1))
  const ups = ids(n).map((id, i) => new Upstream(id, id, weights[i], {}))
  const strategy = leastConnections({ ...v.opts, seed: SEED })
  strategy.update(new Members(ups, 0))
  const totalWeight = weights.reduce((a, b) => a + b, 0)
  const rate = 8 * totalWeight
  const r = mulberry32(SEED ^ n)
  const exp = () => -Math.log((r() + 1) / 4294967297)
  const done = new Completions()
  const rq = req()
  let now = 0
  let inFlight = 0
  const warmup = Math.floor(arrivals / 5)
  let excessArea = 0
  let spanArea = 0
  let missed = 0
  let picks = 0
  let measuredFrom = -1
  for (let a = 0; a < arrivals; a++) {
    const at = now + exp() / rate
    while (done.times.length > 0 && done.next <= at) {
      const t = done.next
      if (measuredFrom >= 0) { const [ex, sp] = spread(ups, weights, inFlight, totalWeight); excessArea += ex * (t - now); spanArea += sp * (t - now) }
      now = t
      ups[done.pop()].inFlight--
      inFlight--
    }
    if (measuredFrom >= 0) { const [ex, sp] = spread(ups, weights, inFlight, totalWeight); excessArea += ex * (at - now); spanArea += sp * (at - now) }
    now = at
    if (a === warmup) measuredFrom = now
    const u = strategy.pick(rq, new Choice(rq))
    if (a >= warmup) {
      picks++
      let least = Infinity
      for (let i = 0; i < n; i++) least = Math.min(least, ups[i].inFlight / weights[i])
      if (u.inFlight / u.weight > least) missed++
    }
    u.inFlight++
    inFlight++
    done.push(now + exp(), ups.indexOf(u))
  }
  const span = now - measuredFrom
  return { maxOverMean: round(excessArea / span, 3), maxMinusMin: round(spanArea / span, 2), missed: round(missed / picks, 4) }
}

/** [max(load/weight) ÷ mean(load/weight), max(load/weight) − min(load/weight)] now. */
function spread (ups, weights, inFlight, totalWeight) {
  let max = 0
  let min = Infinity
  for (let i = 0; i < ups.length; i++) {
    const x = ups[i].inFlight / weights[i]
    if (x > max) max = x
    if (x < min) min = x
  }
  const mean = inFlight / totalWeight
  return [mean === 0 ? 1 : max / mean, max - min]
}

function balance () {
  const rows = []
  for (const weighted of [false, true]) {
    for (const n of NS) {
      // Upstream.indexOf per arrival is O(n): fewer arrivals at 1,000 keep it short.
      const arrivals = n >= 1000 ? Math.min(opts.arrivals, 100_000) : opts.arrivals
      const row = { n, weights: weighted ? '1,2,3,4…' : 'equal', arrivals }
      for (const v of VARIANTS.slice(0, 2)) row[v.name] = simulate(v.name, n, weighted, arrivals)
      rows.push(row)
      process.stderr.write(`  … balance N=${n} ${row.weights}: scan ${JSON.stringify(row.scan)}, p2c ${JSON.stringify(row.p2c)}\n`)
    }
  }
  return rows
}

// ───────────────────────────── report ─────────────────────────────

function pad (cells, widths) { return cells.map((c, i) => String(c).padStart(widths[i])).join('  ') }

async function main () {
  if (opts.worker !== undefined) {
    const [variant, n, loaded] = opts.worker.split(':')
    const ns = variant.startsWith('aside-') ? await asideCase(variant.slice(6), Number(n), loaded === '1') : await costCase(variant, Number(n), loaded === '1')
    process.send({ ns })
    return
  }
  const m = machine()
  const out = { machine: m, command: `node bench/least-connections.js ${process.argv.slice(2).join(' ')}`.trim() }
  if (opts.only.includes('cost')) out.cost = await cost()
  if (opts.only.includes('aside')) out.aside = await aside()
  if (opts.only.includes('balance')) out.balance = balance()
  if (opts.json) { process.stdout.write(JSON.stringify(out, null, 2) + '\n'); return }
  const lines = ['leastConnections: full scan vs power of two choices', '', ...machineLines(m, out.command, 9), '']
  if (out.cost) {
    lines.push(`1. Cost: CPU ns per balancer.choose() (process.cpuUsage), median of ${ROUNDS} rounds, median of ${PROCESSES} processes per variant (interleaved)`, '')
    const w = [6, 7, 12, 12, 12]
    lines.push(pad(['N', 'loads', 'scan', 'p2c', 'default'], w))
    for (const r of out.cost) lines.push(pad([r.n, r.loads, r.scan, r.p2c, r.default], w))
    lines.push('', 'idle: every upstream at 0 in flight (the scan ties them all: smooth rotation over N); loaded: random 0–15 in flight each.', '')
  }
  if (out.aside) {
    lines.push('1b. Aside: CPU ns per strategy.pick() (no balancer, loaded upstreams), aside undefined vs one upstream set aside (a Set)', '')
    const w = [12, 6, 10, 10]
    lines.push(pad(['strategy', 'N', 'none', 'one aside'], w))
    for (const r of out.aside) lines.push(pad([r.variant, r.n, r.none, r.one], w))
    lines.push('', 'roundRobin with equal weights; scan = leastConnections({ choices: \'all\' }), p2c = leastConnections({ choices: 2 }).', '')
  }
  if (out.balance) {
    lines.push('2. Balance: simulated Poisson arrivals, exp(1) service, 8 in flight per unit of weight, loads read by the real strategy', '')
    const w = [6, 9, 9, 14, 14, 12, 12, 12, 12]
    lines.push(pad(['N', 'weights', 'arrivals', 'scan max/mean', 'p2c max/mean', 'scan max−min', 'p2c max−min', 'scan missed', 'p2c missed'], w))
    for (const r of out.balance) lines.push(pad([r.n, r.weights, r.arrivals, r.scan.maxOverMean, r.p2c.maxOverMean, r.scan.maxMinusMin, r.p2c.maxMinusMin, `${(r.scan.missed * 100).toFixed(1)}%`, `${(r.p2c.missed * 100).toFixed(1)}%`], w))
    lines.push('', 'max/mean, max−min: of in-flight per unit of weight, time-averaged after a warm-up (a fifth of the arrivals);',
      'missed: picks that did not go to a least loaded upstream (per unit of weight).')
  }
  process.stdout.write(lines.join('\n') + '\n')
}

await main()
