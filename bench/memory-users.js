// Memory per bound user (`node bench/memory.js --users`, or `npm run bench:memory -- --users`):
// the balancer's heap (and RSS) after N distinct users were placed, for
//   stickyIp       the in-memory stick table (memoryStickStore, maxEntries = N): one entry per
//                  client address (key string, upstream id, TTL and recency bookkeeping)
//   stickyCookie   the verified-token cache (cacheSize = N): one entry per issued cookie (the
//                  token string, its decoded stamp, LRU bookkeeping), which bound users and the
//                  session cap count from
// Each (strategy, N) runs in a child process of its own with --expose-gc: createBalancer over
// three upstreams (never contacted: choose() does not forward), 1,000 warm-up users, then
// N new users through balancer.choose(), each a first visit (stickyIp: its own address;
// stickyCookie: no cookie, so one is issued and cached). Heap figures are process.memoryUsage()
// after three full GCs. Two figures per user:
//   all-in     (heap after the N users − heap before the balancer was created) ÷ N: includes
//              what the table allocates for its capacity up front (lru-cache's arrays of
//              `max` slots), which a deployment pays for its configured size
//   marginal   (heap after the N users − heap after the warm-up) ÷ N: what each user adds
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

const SELF = fileURLToPath(import.meta.url)
const STRATEGIES = ['stickyIp', 'stickyCookie']
const WARMUP = 1000
const SECRET = 'bench-memory-secret-0123456789abcdef-0123456789'

async function settledHeap () {
  for (let i = 0; i < 3; i++) { globalThis.gc(); await new Promise(resolve => setImmediate(resolve)) }
  const m = process.memoryUsage()
  return { heap: m.heapUsed, rss: m.rss, external: m.external + m.arrayBuffers }
}

/** Client i's address (distinct for i < 2^24). */
const address = (i) => `10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`

/** The child: one strategy, N users; reports the heap at each step. */
async function child (strategyName, n) {
  if (typeof globalThis.gc !== 'function') throw new Error('run with --expose-gc')
  const core = await import('@affinity/core')
  const before = await settledHeap()
  const capacity = n + WARMUP
  const strategy = strategyName === 'stickyIp'
    ? core.stickyIp({ store: core.memoryStickStore({ maxEntries: capacity }) })
    : core.stickyCookie({ secret: SECRET, cacheSize: capacity })
  const balancer = core.createBalancer({ upstreams: ['http://127.0.0.1:1', 'http://127.0.0.1:2', 'http://127.0.0.1:3'], strategy })
  const visit = (i) => balancer.choose({ method: 'GET', url: '/', headers: {}, ip: strategyName === 'stickyIp' ? address(i) : '10.0.0.1', cookies: {}, protocol: 'http' })
  for (let i = 0; i < WARMUP; i++) visit(n + i)
  const warm = await settledHeap()
  const t0 = performance.now()
  for (let i = 0; i < n; i++) visit(i)
  const ms = performance.now() - t0
  const after = await settledHeap()
  const bound = [...(balancer.stats().upstreams ?? [])].reduce((a, u) => a + (u.boundUsers ?? 0), 0)
  process.send({ before, warm, after, bound, ms })
  await balancer.close()
}

/** The parent: every strategy at every N, each in a child; returns the rows. */
export async function runUsers ({ counts, log }) {
  log('Memory per bound user: balancer heap after N new users through balancer.choose() (no forwarding),')
  log(`each (strategy, N) in its own process (--expose-gc, heap after 3 full GCs); ${WARMUP.toLocaleString('en-US')} warm-up users first.`)
  log('stickyIp: memoryStickStore({ maxEntries: N + 1,000 }); stickyCookie: stickyCookie({ secret, cacheSize: N + 1,000 }).')
  log('all-in: (heap after − heap before the balancer existed) ÷ N, capacity preallocation included; marginal: (after − after warm-up) ÷ N')
  log('')
  log(`${'strategy'.padEnd(13)} ${'users'.padStart(10)} ${'bound*'.padStart(10)} ${'heap MiB'.padStart(9)} ${'B/user all-in'.padStart(14)} ${'B/user marginal'.padStart(16)} ${'RSS B/user'.padStart(11)} ${'µs/user'.padStart(8)}`)
  const rows = []
  for (const strategy of STRATEGIES) {
    for (const n of counts) {
      const proc = fork(SELF, ['--child', strategy, String(n)], { execArgv: ['--expose-gc', '--max-old-space-size=8192'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      const [[m]] = await Promise.all([once(proc, 'message'), once(proc, 'exit')])
      const row = {
        strategy,
        users: n,
        bound: m.bound,
        heapMiB: Number(((m.after.heap - m.before.heap) / 2 ** 20).toFixed(1)),
        bytesPerUserAllIn: Math.round((m.after.heap + m.after.external - m.before.heap - m.before.external) / n),
        bytesPerUserMarginal: Math.round((m.after.heap + m.after.external - m.warm.heap - m.warm.external) / n),
        rssBytesPerUser: Math.round((m.after.rss - m.before.rss) / n),
        usPerUser: Number(((m.ms * 1000) / n).toFixed(2)),
      }
      rows.push(row)
      log(`${strategy.padEnd(13)} ${n.toLocaleString('en-US').padStart(10)} ${m.bound.toLocaleString('en-US').padStart(10)} ${String(row.heapMiB).padStart(9)} ${String(row.bytesPerUserAllIn).padStart(14)} ${String(row.bytesPerUserMarginal).padStart(16)} ${String(row.rssBytesPerUser).padStart(11)} ${String(row.usPerUser).padStart(8)}`)
    }
  }
  log('* bound: the balancer\'s own count (stats().upstreams[].boundUsers), warm-up users included')
  return rows
}

if (process.argv[1] === SELF && process.argv[2] === '--child') {
  await child(process.argv[3], Number(process.argv[4]))
}
