// Section 3 of bench/strategies.js: ns per balancer.choose(req), each case in processes of its own.
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { consistentHash, createBalancer, ipHash, leastConnections, roundRobin, stickyCookie, stickyIp } from '@affinity/core'
import { median, round } from '../numbers.js'
import { PICK_SEED, prng, flat, randomKey, randomIpv4, randomIpv6, upstreamIds, maxOf, minOf, nowNs, msSince, progress, table, f1 } from './shared.js'


/** The entry script: each pick case runs in a child started as `strategies.js --pick-worker <case>`. */
const MAIN = fileURLToPath(new URL('../strategies.js', import.meta.url))
const PICK_N = 100
const POOL = 10_000
const ROUNDS = 5
const ROUND_NS = 300e6 // aim for ≈ 0.3 s per round
const MAX_ITERS = 2_000_000
const MIN_ITERS = 20_000
const SECRET = 'bench-secret-0123456789abcdef-0123456789abcdef'
const WARM_COOKIES = 4_000

export const PICK_CASES = [
  { name: 'ring', label: 'consistentHash ring (header)', target: 150, strategy: () => consistentHash({ key: { header: 'x-user-id' } }), req: r => ({ headers: { 'x-user-id': randomKey(r) } }) },
  { name: 'maglev', label: 'consistentHash maglev (header)', target: 150, strategy: () => consistentHash({ key: { header: 'x-user-id' }, algorithm: 'maglev' }), req: r => ({ headers: { 'x-user-id': randomKey(r) } }) },
  { name: 'ipHash-v4', label: 'ipHash IPv4', target: 150, strategy: () => ipHash(), req: r => ({ ip: randomIpv4(r) }) },
  { name: 'ipHash-v6', label: 'ipHash IPv6 (/64)', target: 150, strategy: () => ipHash(), req: r => ({ ip: randomIpv6(r) }) },
  { name: 'roundRobin', label: 'roundRobin', strategy: () => roundRobin(), req: r => ({ ip: randomIpv4(r) }) },
  { name: 'leastConnections', label: "leastConnections full scan (choices: 'all', all idle)", strategy: () => leastConnections({ choices: 'all' }), req: r => ({ ip: randomIpv4(r) }) },
  { name: 'leastConnections-p2c', label: 'leastConnections two choices (choices: 2, all idle)', target: 100, strategy: () => leastConnections({ choices: 2, seed: PICK_SEED }), req: r => ({ ip: randomIpv4(r) }) },
  { name: 'stickyIp', label: 'stickyIp, memory store, hits', strategy: () => stickyIp(), req: r => ({ ip: randomIpv4(r) }) },
  { name: 'cookie-warm', label: `stickyCookie verify, warm (cached)`, target: 2000, cookie: 'valid', strategy: () => stickyCookie({ secret: SECRET, maxAge: 86400 }) },
  { name: 'cookie-cold', label: 'stickyCookie verify, cold (cacheSize 0)', target: 2000, cookie: 'valid', strategy: () => stickyCookie({ secret: SECRET, maxAge: 86400, cacheSize: 0 }) },
  { name: 'cookie-issue', label: 'stickyCookie issue (new user)', cookie: 'none', strategy: () => stickyCookie({ secret: SECRET, maxAge: 86400 }) },
  // Extra rows (no target): how two costs above scale.
  { name: 'ring-N10', extra: true, n: 10, label: 'extra: consistentHash ring, N = 10', strategy: () => consistentHash({ key: { header: 'x-user-id' } }), req: r => ({ headers: { 'x-user-id': randomKey(r) } }) },
  { name: 'stickyIp-1k', extra: true, pool: 1_000, label: 'extra: stickyIp hits, 1,000 clients', strategy: () => stickyIp(), req: r => ({ ip: randomIpv4(r) }) },
]

function baseRequest (extra) {
  return { method: 'GET', url: '/', headers: {}, ip: undefined, cookies: {}, ...extra }
}

/** The timed loop: pre-built requests cycled through, nothing built per pick. */
function pickLoop (balancer, reqs, iterations) {
  let misses = 0
  let j = 0
  const m = reqs.length
  for (let i = 0; i < iterations; i++) {
    const choice = balancer.choose(reqs[j])
    if (choice.upstream === undefined) misses++
    if (++j === m) j = 0
  }
  return misses
}

export async function runPickCase (name) {
  const c = PICK_CASES.find(x => x.name === name)
  if (c === undefined) throw new Error(`unknown pick case ${name}`)
  const r = prng(PICK_SEED)
  const n = c.n ?? PICK_N
  const pool = c.pool ?? POOL
  const balancer = createBalancer({ upstreams: upstreamIds(0, n), strategy: c.strategy() })
  let reqs
  if (c.cookie === undefined) {
    reqs = Array.from({ length: pool }, () => baseRequest(c.req(r)))
  } else if (c.cookie === 'none') {
    reqs = Array.from({ length: pool }, () => baseRequest({ ip: randomIpv4(r) }))
  } else {
    // Valid cookies, issued by this balancer to new users, then replayed.
    const tokens = []
    for (let i = 0; i < WARM_COOKIES; i++) {
      const set = balancer.choose(baseRequest({ ip: randomIpv4(r) })).setCookie
      tokens.push(flat(set.slice(set.indexOf('=') + 1, set.indexOf(';'))))
    }
    reqs = Array.from({ length: pool }, (_, i) => baseRequest({ ip: randomIpv4(r), cookies: { affinity: tokens[i % WARM_COOKIES] } }))
  }
  // Warm-up: at least two passes over the pool (binds stick entries, fills the cookie
  // cache) and ≈ 0.3 s of picks so the loop is optimised before it is timed.
  let t0 = nowNs()
  let warm = 0
  while (warm < 2 * pool || msSince(t0) < 300) { pickLoop(balancer, reqs, pool); warm += pool }
  const perOp = Number(nowNs() - t0) / warm
  const iterations = Math.max(MIN_ITERS, Math.min(MAX_ITERS, Math.round(ROUND_NS / perOp / pool) * pool || pool))
  const samples = []
  let misses = 0
  for (let k = 0; k < ROUNDS; k++) {
    t0 = nowNs()
    misses += pickLoop(balancer, reqs, iterations)
    samples.push(Number(nowNs() - t0) / iterations)
  }
  // What the timed picks did, from one more pass over the pool.
  const reasons = {}
  let setCookies = 0
  for (const req of reqs) {
    const ch = balancer.choose(req)
    reasons[ch.reason] = (reasons[ch.reason] ?? 0) + 1
    if (ch.setCookie !== undefined) setCookies++
  }
  await balancer.close()
  const med = median(samples)
  return {
    case: c.name,
    label: c.label,
    n,
    pool,
    iterations,
    rounds: ROUNDS,
    nsMedian: round(med, 1),
    nsMin: round(minOf(samples), 1),
    nsMax: round(maxOf(samples), 1),
    target: c.target,
    verdict: c.target === undefined ? undefined : med <= c.target ? 'PASS' : 'FAIL',
    misses,
    reasons,
    setCookieShare: round(setCookies / reqs.length, 4),
  }
}

const PROCESSES = 3

function runIsolated (name) {
  return new Promise((resolve, reject) => {
    // execArgv is inherited, so `node --cpu-prof bench/strategies.js --only pick` profiles each case.
    const child = fork(MAIN, ['--pick-worker', name], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
    let result
    child.on('message', (m) => { result = m })
    child.on('error', reject)
    child.on('exit', (code) => (result?.error ? reject(new Error(result.error)) : result && code === 0 ? resolve(result) : reject(new Error(`pick worker ${name} exited with ${code}`))))
  })
}

export async function pick (opts) {
  const cases = PICK_CASES.filter(c => opts.cases === undefined || opts.cases.includes(c.name))
  const rows = []
  // On a shared VM one process can land on a slow core or a cold cache for its whole
  // life, so each case runs in PROCESSES fresh processes and the median process counts.
  for (const c of cases) {
    const runs = []
    for (let i = 0; i < (opts.isolate ? PROCESSES : 1); i++) runs.push(opts.isolate ? await runIsolated(c.name) : await runPickCase(c.name))
    runs.sort((a, b) => a.nsMedian - b.nsMedian)
    const mid = runs[runs.length >> 1]
    rows.push({ ...mid, nsProcesses: runs.map(r => r.nsMedian) })
    progress(`pick ${c.name}: ${mid.nsMedian} ns (processes: ${runs.map(r => r.nsMedian).join(', ')})`)
  }
  return { n: PICK_N, pool: POOL, rounds: ROUNDS, processes: opts.isolate ? PROCESSES : 1, isolated: opts.isolate, rows }
}

export function printPick (p) {
  const reasons = (r) => Object.entries(r.reasons).map(([k, v]) => `${k} ${Math.round((v / r.pool) * 100)}%`).join(', ') +
    (r.setCookieShare > 0 ? `; Set-Cookie ${Math.round(r.setCookieShare * 100)}%` : '') + (r.misses > 0 ? `; ${r.misses} undefined!` : '')
  return table(
    `3. Pick cost — ns per balancer.choose(req), median of ${p.rounds} rounds, median of ${p.processes} processes`,
    [
      { label: 'case', key: 'label', left: true },
      { label: 'N', key: 'n' },
      { label: 'requests', get: r => r.pool.toLocaleString('en-US') },
      { label: 'picks/round', get: r => r.iterations.toLocaleString('en-US') },
      { label: 'ns/pick', get: r => f1(r.nsMedian) },
      { label: 'per process', get: r => (r.nsProcesses ?? [r.nsMedian]).map(f1).join(' · ') },
      { label: 'target', get: r => (r.target === undefined ? undefined : `≤ ${r.target} ns`) },
      { label: 'verdict', key: 'verdict', left: true },
      { label: 'what the picks did', get: reasons, left: true },
    ],
    p.rows,
    [
      '',
      `requests = distinct pre-built RouteRequests cycled through (flat strings, as from the HTTP parser); the cost includes Choice allocation,`,
      `key extraction and hashing. Targets apply at N = ${p.n}.`,
      `Warm-up ≥ 2 passes and ≥ 0.3 s first; rounds sized to ≈ 0.3 s (≤ ${MAX_ITERS.toLocaleString('en-US')} picks). ` +
        (p.isolated ? 'Each case runs in its own process (monomorphic call sites, as in an app with one strategy).' : 'All cases ran in one process (--no-isolate).'),
      `stickyCookie: maxAge 86400; ${WARM_COOKIES.toLocaleString('en-US')} valid cookies replayed: warm = verified-token cache hits (the same string objects`,
      `replayed, so their Map hash is cached: real requests bring fresh strings and pay ≈ one string hash more); cold = cacheSize 0, an HMAC per pick.`,
    ],
  )
}
