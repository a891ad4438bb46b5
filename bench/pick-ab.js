// Pick cost of this build against another, in ONE process: both builds of @affinity/core
// are loaded side by side, each case gets a balancer from each (100 upstreams, 10,000
// distinct pre-built requests), and rounds of balancer.choose() alternate between them
// (which goes first alternates too). On a machine whose speed drifts between processes
// and minutes (this project's 2-vCPU VMs: the same build measures up to 3× apart in
// separate processes), the per-round ratio of the two is what stays comparable.
// Reported: ns per pick for each (median of the rounds after the first quarter, the
// JIT's warm-up) and the median of the per-round ratios this ÷ base.
//
// Usage: node bench/pick-ab.js --base <dist/index.js of a built checkout>
//          [--case ring,maglev,ipHash-v4,ipHash-v6,cookie-warm,stickyIp,roundRobin] [--rounds 40]
//   e.g. git worktree add /tmp/base <rev> && (cd /tmp/base && npx -y pnpm@10.34.8 install
//        --frozen-lockfile && node node_modules/typescript7/bin/tsc -b)
//        node bench/pick-ab.js --base /tmp/base/packages/core/dist/index.js
import fs from 'node:fs'
import { pathToFileURL } from 'node:url'
import { die, list, parseArgs } from './args.js'
import { median } from './numbers.js'

const SCRIPT = 'bench/pick-ab.js'
const HELP = fs.readFileSync(new URL(import.meta.url), 'utf8').split('\n').filter(l => l.startsWith('//')).map(l => l.slice(3)).join('\n')
const SECRET = 'pick-ab-secret-of-at-least-32-characters'

const CASES = {
  ring: { strategy: m => m.consistentHash({ key: { header: 'x-user' } }) },
  maglev: { strategy: m => m.consistentHash({ key: { header: 'x-user' }, algorithm: 'maglev' }) },
  'ipHash-v4': { strategy: m => m.ipHash() },
  'ipHash-v6': { strategy: m => m.ipHash(), v6: true },
  'cookie-warm': { strategy: m => m.stickyCookie({ secret: SECRET }), cookies: true },
  stickyIp: { strategy: m => m.stickyIp() },
  roundRobin: { strategy: m => m.roundRobin() },
}

const o = parseArgs(process.argv.slice(2), {
  script: SCRIPT,
  defaults: { base: undefined, cases: Object.keys(CASES), rounds: 40 },
  values: {
    '--base': (o, v) => { o.base = v },
    '--case': (o, v) => { o.cases = list(v) },
    '--rounds': (o, v) => { o.rounds = Number(v) },
  },
  help: HELP,
})
if (o.base === undefined) die(SCRIPT, '--base is required (--help shows how to build one)')
for (const c of o.cases) if (!Object.hasOwn(CASES, c)) die(SCRIPT, `--case: unknown ${c} (${Object.keys(CASES).join(', ')})`)
if (!(Number.isInteger(o.rounds) && o.rounds >= 8)) die(SCRIPT, '--rounds: expected an integer ≥ 8')

const builds = { base: await import(pathToFileURL(o.base).href), this: await import('@affinity/core') }
const UPSTREAMS = Array.from({ length: 100 }, (_, i) => ({ url: `http://127.0.0.1:${10000 + i}`, id: `u${i}` }))

/** The same requests for both builds (a fixed seed): user header, IPv4 or IPv6 address, cookie. */
function setup (m, c) {
  let x = 7
  const r = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0)
  const hex = () => (r() & 0xffff).toString(16)
  const ip = () => c.v6 ? `2001:db8:${hex()}:${hex()}:${hex()}:${hex()}:${hex()}:${hex()}` : `${r() & 255}.${r() & 255}.${r() & 255}.${r() & 255}`
  const balancer = m.createBalancer({ upstreams: UPSTREAMS, strategy: c.strategy(m) })
  const tokens = []
  if (c.cookies) {
    for (let i = 0; i < 4000; i++) {
      const set = balancer.choose({ method: 'GET', url: '/', headers: {}, ip: ip(), cookies: {} }).setCookie
      tokens.push(set.slice(set.indexOf('=') + 1, set.indexOf(';')))
    }
  }
  const reqs = Array.from({ length: 10_000 }, (_, i) => ({
    method: 'GET', url: '/', headers: { 'x-user': `user-${r().toString(36)}` }, ip: ip(), cookies: c.cookies ? { affinity: tokens[i % 4000] } : {},
  }))
  return { balancer, reqs }
}

/** ns per choose() over 20 passes of the requests. */
function timed ({ balancer, reqs }) {
  let placed = 0
  const t0 = process.hrtime.bigint()
  for (let k = 0; k < 20; k++) for (let i = 0; i < reqs.length; i++) if (balancer.choose(reqs[i]).upstream !== undefined) placed++
  if (placed === 0) throw new Error('no request was placed')
  return Number(process.hrtime.bigint() - t0) / (20 * reqs.length)
}

console.log(`Pick cost, this build ÷ ${o.base}, in one process, ${o.rounds} alternating rounds (${new Date().toISOString()})`)
console.log('case          base ns   this ns   this ÷ base (median of per-round ratios, range)')
for (const name of o.cases) {
  const c = CASES[name]
  const a = setup(builds.base, c)
  const b = setup(builds.this, c)
  const base = []
  const mine = []
  for (let k = 0; k < o.rounds; k++) {
    if (k % 2 === 0) { base.push(timed(a)); mine.push(timed(b)) } else { mine.push(timed(b)); base.push(timed(a)) }
  }
  const skip = Math.floor(o.rounds / 4)
  const ratios = mine.slice(skip).map((t, i) => t / base[skip + i])
  const lo = Math.min(...ratios)
  const hi = Math.max(...ratios)
  console.log(`${name.padEnd(12)} ${median(base.slice(skip)).toFixed(1).padStart(8)}  ${median(mine.slice(skip)).toFixed(1).padStart(8)}   ${median(ratios).toFixed(2)}× (${lo.toFixed(2)}–${hi.toFixed(2)})`)
  await a.balancer.close()
  await b.balancer.close()
}
