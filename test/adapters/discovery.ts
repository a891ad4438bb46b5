/**
 * A balancer following DNS (dnsDiscovery) behind each adapter: a real dnsmasq
 * (test/helpers/dnsmasq.ts) answering for upstreams on 127.0.0.2, 127.0.0.3, … on one
 * port, as a Kubernetes headless service looks; users with cookie jars. Every wait is
 * on an event: the balancer's ('added', 'draining', 'removed', 'slow-start',
 * 'discovery-error'), or dnsmasq's log (its hosts file re-read).
 * Run by test/discovery.fastify.test.ts and test/discovery.express.test.ts.
 */
import { once } from 'node:events'
import type { Test } from 'tap'
import { createBalancer, dnsDiscovery, stickyCookie, type Balancer, type BalancerOptions, type UpstreamInfo } from '@affinity/core'
import type { AdapterHarness, Started } from './harness.js'
import { startDnsmasq, type Dnsmasq } from '../helpers/dnsmasq.js'
import { Browser, request } from '../helpers/http.js'
import { Scrape } from '../helpers/prometheus.js'
import { startHeadlessFleet, type TestUpstream } from '../helpers/upstreams.js'

const SECRET = 'discovery-scenario-secret-0123456789abcdefgh'
const NAME = 'shop.svc.test'
const ADDRESSES = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5']

interface Rig {
  dns: Dnsmasq
  ups: TestUpstream[]
  balancer: Balancer
  app: Started
  port: number
  /** DNS lists these addresses for the name (hosts file + SIGHUP). */
  list (addresses: string[]): Promise<void>
}

interface RigOptions {
  balancer?: Partial<BalancerOptions>
  /** Listed at the start (default: the first three). */
  addresses?: string[]
  name?: string
  servfail?: boolean
  /** Pause dnsmasq before the balancer asks it. */
  paused?: boolean
  observe?: boolean
}

async function rig (t: Test, h: AdapterHarness, bin: string, opts: RigOptions = {}): Promise<Rig> {
  const ups = await startHeadlessFleet(ADDRESSES.length)
  t.teardown(() => Promise.all(ups.map(u => u.close())))
  const port = ups[0]!.port
  const name = opts.name ?? NAME
  const hosts = (addresses: string[]): Array<[string, string]> => addresses.map(a => [a, name])
  const dns = await startDnsmasq(t, bin, { hosts: hosts(opts.addresses ?? ADDRESSES.slice(0, 3)), servfail: opts.servfail })
  if (opts.paused === true) dns.pause()
  const balancer = createBalancer({
    upstreams: dnsDiscovery({ name, port, servers: [dns.server], intervalMs: 30, timeoutMs: 100 }),
    strategy: stickyCookie({ secret: SECRET }),
    ...opts.balancer,
  })
  t.teardown(() => balancer.close())
  const observe = opts.observe === true ? { metrics: {}, statusPage: { intervalMs: 100 } } : {}
  const app = await h.start(t, { source: { balancer }, ...observe })
  return { dns, ups, balancer, app, port, list: (addresses) => dns.setHosts(hosts(addresses)) }
}

/** The balancer's next `event`: [upstream, reason]. */
async function next (b: Balancer, event: 'added' | 'removed' | 'draining' | 'undrained'): Promise<[UpstreamInfo, string]> {
  return await once(b, event) as [UpstreamInfo, string]
}

/** New users until every address in `on` has `per` of them: user → address it is bound to. */
async function pinUsers (base: string, on: string[], per = 2): Promise<Map<Browser, string>> {
  const users = new Map<Browser, string>()
  const count = (a: string): number => [...users.values()].filter(x => x === a).length
  for (let i = 0; i < 60 && on.some(a => count(a) < per); i++) {
    const user = new Browser()
    users.set(user, await user.visit(base))
  }
  if (on.some(a => count(a) < per)) throw new Error(`users did not reach every upstream: ${[...users.values()].join(' ')}`)
  return users
}

/** Every pinned user visits again and must reach the same address. */
async function sameAsBefore (t: Test, base: string, users: Map<Browser, string>, what: string): Promise<void> {
  const moved: string[] = []
  for (const [user, was] of users) {
    const now = await user.visit(base)
    if (now !== was) moved.push(`${was} → ${now}`)
  }
  t.same(moved, [], `${what}: no pinned user moved (${users.size} users)`)
}

export interface DiscoveryScenario {
  name: string
  run (t: Test, h: AdapterHarness, bin: string): Promise<void>
}

export const DISCOVERY_SCENARIOS: DiscoveryScenario[] = [
  {
    name: 'initial membership: 503 until DNS answers, ready() once its first list is applied; ids address:port',
    async run (t, h, bin) {
      const { dns, balancer, app, port } = await rig(t, h, bin, { paused: true })
      const [err] = await once(balancer, 'discovery-error') as [Error & { code?: string }]
      t.equal(err.code, 'AFFINITY_ERR_DNS_FAILED', 'a silent DNS server: reported')
      const early = await request(`${app.base}/echo`)
      t.equal(early.status, 503, 'no membership yet: 503')
      t.equal(early.json().message, 'No upstream is available')
      dns.resume()
      await balancer.ready()
      t.same(balancer.list().map(u => `${u.id} ${u.url} ${u.state}`), ADDRESSES.slice(0, 3).map(a => `${a}:${port} http://${a}:${port} up`))
      t.equal((await request(`${app.base}/echo`)).status, 200, 'served once ready')
      t.equal(balancer.stats().discovery!.members, 3)
    },
  },

  {
    name: 'a member added: new users reach it, no pinned user moves, its share of new users grows as its weight ramps',
    async run (t, h, bin) {
      const { balancer, app, list, port } = await rig(t, h, bin, { balancer: { slowStartMs: 3000 } })
      await balancer.ready()
      const users = await pinUsers(app.base, ADDRESSES.slice(0, 3))
      const steps: number[] = []
      let done!: () => void
      const ended = new Promise<void>(resolve => { done = resolve })
      balancer.on('slow-start', (u, w) => { steps.push(w); if (w === u.weight) done() })
      const added = next(balancer, 'added')
      await list(ADDRESSES)
      const [info, reason] = await added
      t.equal(`${info.id} ${reason}`, `127.0.0.5:${port} discovery`)
      // A batch of new users right away (early in the 3 s ramp), and one once the ramp is over.
      const batch = async (): Promise<number> => {
        let n = 0
        for (let i = 0; i < 20; i++) if (await new Browser().visit(app.base) === '127.0.0.5') n++
        return n
      }
      const early = await batch()
      await sameAsBefore(t, app.base, users, 'during the ramp')
      await ended
      const late = await batch()
      t.ok(early < late, `the new member's share of new users grew: ${early}/20 at first, ${late}/20 after the ramp`)
      // Expected ≈ 0.7 of 20 at 10% of its weight (0.1 / 3.1), ≈ 5 at 100% (a quarter).
      t.ok(late >= 3, `then its full share: ${late}/20`)
      t.ok(steps.length >= 3 && steps.every((w, i) => i === 0 || w > steps[i - 1]!), `the ramp rose step by step: ${steps.map(w => w.toFixed(2)).join(' ')}`)
      await sameAsBefore(t, app.base, users, 'after the ramp')
    },
  },

  {
    name: 'a member removed: its bound users keep reaching it during the grace period while it answers, no new user goes there; then removed, its users re-pinned',
    async run (t, h, bin) {
      const { balancer, app, list, ups, port } = await rig(t, h, bin, { balancer: { removeGraceMs: 3000 } })
      await balancer.ready()
      const users = await pinUsers(app.base, ADDRESSES.slice(0, 3), 3)
      const draining = next(balancer, 'draining')
      await list(['127.0.0.2', '127.0.0.4'])
      const [info, reason] = await draining
      t.equal(`${info.id} ${reason} ${info.state}`, `127.0.0.3:${port} discovery draining`)
      const bound = [...users].filter(([, a]) => a === '127.0.0.3').map(([u]) => u)
      const others = new Map([...users].filter(([, a]) => a !== '127.0.0.3'))
      for (const user of bound) t.equal(await user.visit(app.base), '127.0.0.3', 'a bound user still reaches it')
      for (let i = 0; i < 9; i++) t.not(await new Browser().visit(app.base), '127.0.0.3', 'a new user goes elsewhere')
      t.equal(balancer.list().find(u => u.id === `127.0.0.3:${port}`)?.state, 'draining', 'still a member, draining')

      // It stops answering within the grace (a pod whose grace ran out): its user fails over.
      const removed = next(balancer, 'removed')
      await ups[1]!.close()
      const first = bound[0]!
      const failedOver = await first.visit(app.base)
      t.not(failedOver, '127.0.0.3', `once it stops answering, its user fails over (to ${failedOver})`)
      const [gone, why] = await removed
      t.equal(`${gone.id} ${why}`, `127.0.0.3:${port} discovery`, 'removed at the end of the grace')
      for (const user of bound.slice(1)) {
        const cookie = user.cookie()
        t.not(await user.visit(app.base), '127.0.0.3', 'its users are re-pinned')
        t.not(user.cookie(), cookie, 'with a new cookie')
      }
      await sameAsBefore(t, app.base, others, 'the other members')
    },
  },

  {
    name: 'a member back within the grace period: undrained, its bound users never moved',
    async run (t, h, bin) {
      const { balancer, app, list, port } = await rig(t, h, bin, { balancer: { removeGraceMs: 60_000 } })
      await balancer.ready()
      const users = await pinUsers(app.base, ADDRESSES.slice(0, 3))
      const draining = next(balancer, 'draining')
      await list(['127.0.0.2', '127.0.0.4'])
      await draining
      await sameAsBefore(t, app.base, users, 'while it drains')
      const undrained = next(balancer, 'undrained')
      await list(ADDRESSES.slice(0, 3))
      const [info, reason] = await undrained
      t.equal(`${info.id} ${reason} ${info.state}`, `127.0.0.3:${port} discovery up`)
      await sameAsBefore(t, app.base, users, 'back')
      let reached = false
      for (let i = 0; i < 9 && !reached; i++) reached = await new Browser().visit(app.base) === '127.0.0.3'
      t.ok(reached, 'new users reach it again')
      t.same(balancer.stats().changes.filter(c => c.to === 'removed'), [], 'never removed')
    },
  },

  ...(['killed', 'SERVFAIL', 'empty'] as const).map((failure): DiscoveryScenario => ({
    name: `DNS ${failure === 'killed' ? 'server killed' : failure === 'empty' ? 'answer empty (NXDOMAIN)' : 'answers SERVFAIL'}: membership and traffic unchanged; the error in discovery-error, stats(), the metrics and the status page`,
    async run (t, h, bin) {
      // SERVFAIL comes for names of fail.test missing from the hosts file; both families
      // must be there at first (dnsmasq.ts), so ::1 is listed too, and drained: nothing listens there.
      const servfail = failure === 'SERVFAIL'
      const name = servfail ? 'shop.fail.test' : NAME
      const { dns, balancer, app, port } = await rig(t, h, bin, { servfail, name, observe: true, addresses: servfail ? [...ADDRESSES.slice(0, 3), '::1'] : undefined })
      await balancer.ready()
      if (servfail) void balancer.drain(`[::1]:${port}`)
      const before = balancer.list().map(u => `${u.id} ${u.state}`)
      const users = await pinUsers(app.base, ADDRESSES.slice(0, 3))
      const errors: Array<Error & { code?: string, cause?: { code?: string } }> = []
      balancer.on('discovery-error', err => errors.push(err as Error & { code?: string, cause?: { code?: string } }))
      const reported = once(balancer, 'discovery-error')
      if (failure === 'killed') await dns.kill()
      else await dns.setHosts([])
      await reported
      await once(balancer, 'discovery-error')
      const code = failure === 'empty' ? 'AFFINITY_ERR_DNS_EMPTY' : 'AFFINITY_ERR_DNS_FAILED'
      const cause = failure === 'killed' ? 'ECONNREFUSED' : servfail ? 'ESERVFAIL' : undefined
      t.equal(errors[0]!.code, code)
      if (cause !== undefined) t.equal(errors[0]!.cause?.code, cause)
      t.same(balancer.list().map(u => `${u.id} ${u.state}`), before, 'membership unchanged')
      await sameAsBefore(t, app.base, users, 'while DNS fails')
      t.equal((await request(`${app.base}/echo`)).status, 200, 'new users are served')

      const d = balancer.stats().discovery!
      t.ok(d.errors >= 2, `stats().discovery.errors: ${d.errors}`)
      t.equal(d.members, before.length)
      t.equal(d.lastError?.code, code)
      t.match(d.lastError?.message, /the membership is left as it was/)

      const scrape = new Scrape((await request(`${app.base}/metrics`)).body.toString())
      t.ok(scrape.get('affinity_discovery_errors_total', { balancer: 'default' })! >= 2, 'affinity_discovery_errors_total')
      t.equal(scrape.get('affinity_discovery_members', { balancer: 'default' }), before.length, 'affinity_discovery_members')
      t.equal(scrape.get('affinity_discovery_last_update_timestamp_seconds', { balancer: 'default' }), d.lastUpdate! / 1000, 'affinity_discovery_last_update_timestamp_seconds')

      const view = (await request(`${app.base}/affinity/status?format=json`)).json()
      t.ok(view.discovery.errors >= 2, 'the status view has the errors')
      t.equal(view.discovery.lastError.code, code)
      const html = (await request(`${app.base}/affinity/status`)).body.toString()
      t.match(html, /<h2>Membership source<\/h2>/, 'the status page has a membership source section')
      const message = escape(view.discovery.lastError.message)
      t.ok(html.includes(`data-field="discovery.lastError.message" data-format="text" data-value="${message}">${message}</span>`), 'with the last error, shown')
    },
  })),
]

function escape (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;')
}

export function runDiscoveryScenarios (t: Test, h: AdapterHarness, bin: string): void {
  for (const s of DISCOVERY_SCENARIOS) void t.test(`${h.name}: ${s.name}`, { timeout: 60_000 }, tt => s.run(tt, h, bin))
}
