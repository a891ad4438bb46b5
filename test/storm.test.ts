/**
 * A failover storm, small (bench/storm.js is the full-size run with figures):
 * three upstreams that serve 5 requests at once and slow down sharply beyond
 * (thrashing-upstream.ts), 300 sticky users spread over them by stickyCookie under
 * a session cap, maxInFlight at that capacity with a queue and a retry budget.
 * One upstream dies under load (killed when it has requests in flight: an event,
 * not a time). What must hold, whatever the timing:
 * - its users are re-pinned onto the survivors within the session cap;
 * - no survivor ever serves more than maxInFlight at once, as the survivor counts;
 * - no 5xx but the requests sent to the dead upstream before the balancer knew it
 *   was down, and clean 503s from queues (queue_full, queue_timeout);
 * - the books balance: nothing in flight or queued at the end.
 * Latency (the 2× p99 requirement) is measured by the benchmark, never asserted
 * here. Through the Fastify adapter: the admission under test is the core's, the
 * same under both adapters (adapters/overload.ts runs the rules through both).
 */
import t from 'tap'
import { Pool } from 'undici'
import { createBalancer, stickyCookie, type UpstreamInfo } from '@affinity/core'
import { fastifyHarness } from './adapters/harness.js'
import { ThrashingUpstream } from './helpers/thrashing-upstream.js'
import { until } from './helpers/http.js'

const SECRET = 'storm-test-secret-0123456789abcdefghijklmn'
const USERS = 300
const VISITS = 5
const CAPACITY = 5
const FACTOR = 1.25

interface Sent { user: number, pinned: string | undefined, sentAt: number, status: number, servedBy: string | undefined, message: string | undefined }

t.test('failover storm: re-pinned within the caps, survivors within maxInFlight, only allowed errors', async t => {
  const ups = await Promise.all(['A', 'B', 'C'].map((name, i) => new ThrashingUpstream(name, { capacity: CAPACITY, workMs: 20, seed: 17 + i }).start()))
  t.teardown(() => Promise.all(ups.map(u => u.close())))
  const balancer = createBalancer({
    upstreams: ups.map(u => ({ url: u.url, id: u.name })),
    strategy: stickyCookie({ secret: SECRET, sessionBalanceFactor: FACTOR }),
    maxInFlight: CAPACITY,
    queue: { max: 20, timeoutMs: 2000 },
    retryBudget: {},
  })
  t.teardown(() => balancer.close())
  let downAt = Infinity
  let downId: string | undefined
  balancer.on('down', (u: UpstreamInfo) => { downAt = performance.now(); downId = u.id })
  const app = await fastifyHarness().start(t, { source: { balancer } })
  const pool = new Pool(app.url, { connections: 128 })
  t.teardown(() => pool.close())

  // The victim dies once every user has been placed and it has requests in flight.
  const victim = ups[0]!
  let completed = 0
  let killedAt = Infinity
  const killed = new Promise<void>(resolve => {
    victim.onArrival = () => {
      if (completed < USERS * 2 || victim.concurrent < 2) return
      victim.onArrival = undefined
      killedAt = performance.now()
      victim.kill()
      resolve()
    }
  })

  const cookies: Array<string | undefined> = new Array(USERS).fill(undefined)
  const home: Array<string | undefined> = new Array(USERS).fill(undefined)
  const sent: Sent[] = []
  let r = 0x5eed
  // Think times: exponential, mean 1.5 s: about a quarter of the fleet's capacity
  // before the failure (300 users / 1.52 s × 20 ms ≈ 4 of 15 slots), twice as much on
  // the survivors after — with the event loop this test shares with everything else
  // holding each request longer than its 20 ms of work.
  const think = (): number => { r = Math.imul(r, 1103515245) + 12345 & 0x7fffffff; return -Math.log((r + 1) / 0x80000001) * 1500 }
  const user = async (k: number): Promise<void> => {
    for (let v = 0; v < VISITS; v++) {
      await new Promise(resolve => setTimeout(resolve, think()))
      const sentAt = performance.now()
      const pinned = home[k]
      const res = await pool.request({ method: 'GET', path: `/api/work?u=${k}`, headers: cookies[k] === undefined ? {} : { cookie: cookies[k] } })
      const body = await res.body.text()
      const setCookie = res.headers['set-cookie']
      if (setCookie !== undefined) cookies[k] = String(setCookie).split(';')[0]
      const servedBy = res.headers['x-served-by'] as string | undefined
      sent.push({ user: k, pinned, sentAt, status: res.statusCode, servedBy, message: res.statusCode >= 500 ? JSON.parse(body).message : undefined })
      if (servedBy !== undefined) home[k] = servedBy
      completed++
    }
  }
  await Promise.all([...Array.from({ length: USERS }, (_, k) => user(k)), killed])
  t.ok(killedAt < Infinity, 'the victim was killed under load')
  await until(() => downId === victim.name, 10_000, 'the balancer to see it down')

  const survivors = ups.filter(u => u !== victim)
  for (const u of survivors) t.ok(u.maxConcurrent <= CAPACITY, `${u.name} never served more than maxInFlight at once (at most ${u.maxConcurrent})`)
  const cap = Math.ceil(FACTOR * USERS / survivors.length)
  // Where each user was served last, among those served after the kill.
  const finalHome = new Map<string, number>()
  const victimUsers = new Set(sent.filter(s => s.sentAt < killedAt && s.servedBy === victim.name).map(s => s.user))
  let repinned = 0
  for (const [k, h] of home.entries()) {
    if (h === undefined || !sent.some(s => s.user === k && s.sentAt > killedAt && s.servedBy !== undefined)) continue
    finalHome.set(h, (finalHome.get(h) ?? 0) + 1)
    if (victimUsers.has(k)) repinned++
  }
  t.equal(finalHome.get(victim.name) ?? 0, 0, "nobody served after the kill is still served by the victim")
  t.ok(repinned > 0, `${repinned} of the victim's ${victimUsers.size} users were re-pinned and served by survivors`)
  for (const u of survivors) t.ok((finalHome.get(u.name) ?? 0) <= cap, `${u.name} holds ${finalHome.get(u.name)} users: within the session cap (${cap})`)
  const bound = balancer.stats().upstreams.filter(u => u.id !== victim.name)
  for (const u of bound) t.ok((u.boundUsers ?? 0) <= cap, `${u.id}: ${u.boundUsers} bound users by the balancer's count, within the cap`)

  const clean = new Set(['The upstream is at capacity and no more requests can wait for it', 'The upstream had no capacity for this request in time'])
  const errors = sent.filter(s => s.status >= 500)
  // Sent to the dead upstream before the balancer knew it was down: in flight at the
  // kill, or picked for it in the moment before the passive check ejected it. A user's
  // first visit has no home yet (the client cannot see where it was placed): its 502
  // before the victim was marked down is allowed too, since only the victim refuses
  // or resets connections here (a slow survivor answers late, or 504s, never 502s).
  const toVictim = (s: Sent): boolean => s.sentAt < downAt && (s.pinned === victim.name || (s.pinned === undefined && s.status === 502))
  const allowed = errors.filter(s => clean.has(s.message!) || toVictim(s))
  t.same(errors.filter(s => !allowed.includes(s)).map(s => ({ status: s.status, message: s.message, pinned: s.pinned })), [], `no other 5xx (${errors.length} 5xx in all: ${errors.length - allowed.length} not allowed)`)
  t.equal(sent.length, USERS * VISITS, 'every visit answered')
  await until(() => balancer.list().every(u => u.inFlight === 0 && u.queued === 0), 5000, 'nothing in flight or queued')
  t.comment(`served ${sent.filter(s => s.status === 200).length} of ${sent.length}; 5xx: ${errors.length} (${errors.filter(s => clean.has(s.message!)).length} clean 503s); retries ${JSON.stringify(balancer.stats().retries)}`)
})
