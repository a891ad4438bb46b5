// Session-count balance, with and without a session cap (`sessionBalanceFactor`),
// for @affinity/core (the BUILT package: run `tsc -b` first). The figure is the
// busiest upstream's bound users ÷ the mean (max/mean; 1.00 is perfect), as the
// strategy itself counts them (balancer.stats().upstreams[].boundUsers), over many
// seeded runs: median and 90th percentile.
//
// Scenarios (users go through a real Balancer; only choose() is called, nothing connects):
//   hash    stickyIp({ assign: ipHash() }): each client placed by a hash of its
//           address (uniform random placement, a perfect hash), S clients, none leave.
//           The "10 servers × 100 sessions: the busiest carries 1.5× the mean" case.
//   churn   the default assign (leastConnections, all idle: an even rotation), then
//           3 × S rounds in which a random user leaves and a new one arrives. The
//           rotation places evenly; departures are what unbalance it.
//           stickyIp: a leaving client's binding ends (deleted, as an expiry would).
//           stickyCookie: a leaving user stops coming back and stops counting once
//           unseen for activeMs (S/4 virtual ms; the others come back every activeMs/2,
//           one virtual ms per round: Date.now is replaced by a virtual clock).
//
// Usage: node bench/sessions.js [--json] [--seeds 100] [--factor 1.25] [--sizes 10x100,10x1000]
// Figures are printed, never asserted.
import {
  createBalancer, ipHash, memoryStickStore, stickyCookie, stickyIp,
} from '@affinity/core'
import { parseArgs } from 'node:util'
import { mulberry32 } from '@affinity/core/internal'

const SECRET = 'bench-sessions-secret-0123456789abcdef-0123'
const DEFAULT_SIZES = ['3x30', '3x300', '10x100', '10x1000', '20x200', '50x500']

function parseOptions (argv) {
  let values
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        json: { type: 'boolean', default: false },
        seeds: { type: 'string', default: '100' },
        factor: { type: 'string', default: '1.25' },
        sizes: { type: 'string', default: DEFAULT_SIZES.join(',') },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }))
  } catch (err) {
    die(err.message)
  }
  if (values.help) {
    process.stdout.write('node bench/sessions.js [--json] [--seeds 100] [--factor 1.25] [--sizes 10x100,10x1000]\n')
    process.exit(0)
  }
  const seeds = Number(values.seeds)
  const factor = Number(values.factor)
  if (!Number.isInteger(seeds) || seeds < 1) die('--seeds: expected an integer ≥ 1')
  if (!(factor > 1)) die('--factor: expected a number > 1')
  const sizes = values.sizes.split(',').filter(Boolean).map(s => {
    const m = /^(\d+)x(\d+)$/.exec(s)
    if (m === null) die(`--sizes: expected NxS (upstreams x users), got ${s}`)
    return { n: Number(m[1]), s: Number(m[2]) }
  })
  return { json: values.json, seeds, factor, sizes }
}

function die (msg) {
  process.stderr.write(`bench/sessions.js: ${msg}\n`)
  process.exit(2)
}

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]
}
const round2 = (x) => Math.round(x * 100) / 100

function balancer (n, strategy) {
  return createBalancer({
    upstreams: Array.from({ length: n }, (_, i) => ({ id: `s${String(i + 1).padStart(2, '0')}`, url: `http://10.0.0.${i + 1}:8080` })),
    strategy,
    passive: false,
  })
}

/**
 * max/mean of the strategy's own bound-user counts, and what the cap allows at that
 * mean: ceil(factor × mean) ÷ mean.
 */
function measure (b, factor) {
  const counts = b.stats().upstreams.map(u => u.boundUsers ?? 0)
  const mean = counts.reduce((s, c) => s + c, 0) / counts.length
  return { ratio: mean === 0 ? 1 : Math.max(...counts) / mean, allowed: Math.ceil((factor ?? 1) * mean) / mean }
}

const ipOf = (v) => `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`
const request = (ip, cookie) => ({ method: 'GET', url: '/', headers: {}, ip, cookies: cookie === undefined ? {} : { affinity: cookie } })

/** hash: S clients placed by ipHash on random addresses; nobody leaves. */
async function hashRun (n, s, factor, seed) {
  const next = mulberry32(seed)
  const b = balancer(n, stickyIp({ assign: ipHash(), sessionBalanceFactor: factor, store: memoryStickStore({ maxEntries: s + 1 }) }))
  for (let k = 0; k < s; k++) b.choose(request(ipOf(next())))
  const r = measure(b, factor)
  await b.close()
  return r
}

/**
 * S arrivals, then 3 × S rounds of one departure (a random live user) and one
 * arrival; `tick()` runs first in every round. Returns the live users.
 */
function churn (s, next, { arrive, leave, tick = () => {} }) {
  const live = []
  for (let k = 0; k < s; k++) { tick(); live.push(arrive()) }
  for (let k = 0; k < 3 * s; k++) {
    tick()
    const i = next() % live.length
    leave(live[i])
    live[i] = live[live.length - 1]
    live.pop()
    live.push(arrive())
  }
  return live
}

/** churn, stickyIp: a leaving client's binding is deleted. */
async function ipChurnRun (n, s, factor, seed) {
  const next = mulberry32(seed)
  const store = memoryStickStore({ maxEntries: 4 * s + 1 })
  const b = balancer(n, stickyIp({ sessionBalanceFactor: factor, store }))
  churn(s, next, {
    arrive: () => { const ip = ipOf(next()); b.choose(request(ip)); return ip },
    leave: (ip) => store.delete(ip),
  })
  const r = measure(b, factor)
  await b.close()
  return r
}

/** churn, stickyCookie: as above, on a virtual clock; a departing user simply stops coming back. */
async function cookieChurnRun (n, s, factor, seed) {
  const next = mulberry32(seed)
  const activeMs = Math.max(8, Math.round(s / 4))
  const realNow = Date.now
  let clock = 1_700_000_000_000
  Date.now = () => clock
  try {
    const b = balancer(n, stickyCookie({ secret: SECRET, activeMs, sessionBalanceFactor: factor, cacheSize: 8 * s }))
    const users = new Set() // { cookie, due }: the users still coming back
    churn(s, next, {
      arrive: () => {
        const set = b.choose(request(ipOf(next()))).setCookie
        const u = { cookie: set.slice(set.indexOf('=') + 1, set.indexOf(';')), due: clock + activeMs / 2 }
        users.add(u)
        return u
      },
      leave: (u) => users.delete(u),
      // One virtual ms per round; every user still around comes back every activeMs / 2.
      tick: () => {
        clock += 1
        for (const u of users) {
          if (u.due > clock) continue
          b.choose(request(undefined, u.cookie))
          u.due = clock + activeMs / 2
        }
      },
    })
    const r = measure(b, factor)
    await b.close()
    return r
  } finally {
    Date.now = realNow
  }
}

const SCENARIOS = [
  { name: 'hash', strategy: 'stickyIp, assign ipHash()', run: hashRun },
  { name: 'churn', strategy: 'stickyIp (leastConnections)', run: ipChurnRun },
  { name: 'churn', strategy: 'stickyCookie (leastConnections)', run: cookieChurnRun },
]

async function main () {
  const o = parseOptions(process.argv.slice(2))
  const rows = []
  const started = performance.now()
  for (const sc of SCENARIOS) {
    for (const { n, s } of o.sizes) {
      const off = []
      const on = []
      for (let seed = 1; seed <= o.seeds; seed++) {
        off.push(await sc.run(n, s, undefined, seed))
        on.push(await sc.run(n, s, o.factor, seed))
      }
      const allowed = Math.max(...on.map(r => r.allowed))
      const ratio = (runs) => runs.map(r => r.ratio)
      rows.push({
        scenario: sc.name,
        strategy: sc.strategy,
        upstreams: n,
        users: s,
        noCap: { median: round2(quantile(ratio(off), 0.5)), p90: round2(quantile(ratio(off), 0.9)), max: round2(Math.max(...ratio(off))) },
        cap: { median: round2(quantile(ratio(on), 0.5)), p90: round2(quantile(ratio(on), 0.9)), max: round2(Math.max(...ratio(on))) },
        // What the cap allows at the measured mean, ceil(factor × mean) ÷ mean (the largest over the seeds).
        bound: round2(allowed),
      })
      process.stderr.write(`  … ${sc.name} ${sc.strategy} ${n}×${s} done\n`)
    }
  }
  const result = { factor: o.factor, seeds: o.seeds, seconds: round2((performance.now() - started) / 1000), rows }
  if (o.json) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n')
    return
  }
  const head = ['scenario', 'strategy', 'N × users', 'no cap: median', 'p90', `cap ${o.factor}: median`, 'p90', 'worst', 'ceil(f × mean) ÷ mean']
  const body = rows.map(r => [r.scenario, r.strategy, `${r.upstreams} × ${r.users}`, r.noCap.median.toFixed(2), r.noCap.p90.toFixed(2), r.cap.median.toFixed(2), r.cap.p90.toFixed(2), r.cap.max.toFixed(2), r.bound.toFixed(2)])
  const widths = head.map((h, i) => Math.max(h.length, ...body.map(b => b[i].length)))
  const line = (cells) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')
  console.log(`Bound users per upstream, busiest ÷ mean, over ${o.seeds} seeds (session cap: sessionBalanceFactor ${o.factor})\n`)
  console.log(line(head))
  console.log(widths.map(w => '─'.repeat(w)).join('  '))
  for (const b of body) console.log(line(b))
  console.log([
    '',
    'The cap bounds where new users go: with nobody leaving (hash) the busiest upstream never exceeds ceil(f × mean).',
    'With churn, departures can leave an upstream above it until its own users leave; the cap then sends it nobody.',
    'stickyCookie counts users seen within activeMs, so recent leavers still count (the mean is above users ÷ N).',
    `${result.seconds} s`,
  ].join('\n'))
}

await main()
