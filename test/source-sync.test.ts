/**
 * How a balancer follows a membership source (src/balancer/source-sync.ts), with a
 * source written by hand (test/helpers/manual-source.ts, the README's example):
 * each update applied as one difference in one snapshot, drains on leave, removal
 * once idle or after removeGraceMs, undrain on return, operator drains kept, the
 * reason 'discovery' on every event a source causes. Real upstreams on 127.0.0.1:0
 * behind the core front where requests matter; every wait is on an event.
 */
import { once } from 'node:events'
import http from 'node:http'
import t, { type Test } from 'tap'
import {
  createBalancer, roundRobin, stickyCookie,
  type Balancer, type BalancerEvent, type BalancerOptions, type RemapEvent, type UpstreamInfo, type UpstreamInput,
} from '@affinity/core'
import { startCoreFront } from './helpers/core-front.js'
import { Browser, request, until } from './helpers/http.js'
import { manualSource, type ManualSource } from './helpers/manual-source.js'
import { startUpstreams, type TestUpstream } from './helpers/upstreams.js'

const SECRET = 'source-sync-test-secret-0123456789abcdefghij'
const EVENTS: BalancerEvent[] = ['down', 'up', 'added', 'removed', 'drained', 'draining', 'undrained', 'weight']

interface Rig {
  balancer: Balancer
  source: ManualSource
  ups: TestUpstream[]
  /** Entries for the source: `{ id: name, url }` of the upstreams named. */
  entries (...names: string[]): UpstreamInput[]
  /** Every balancer event so far, as `event id reason`. */
  log: string[]
  url: string
}

async function rig (t: Test, opts: Partial<BalancerOptions> = {}, n = 4): Promise<Rig> {
  const ups = await startUpstreams(n)
  const source = manualSource()
  const balancer = createBalancer({ upstreams: source, strategy: stickyCookie({ secret: SECRET }), ...opts })
  const log: string[] = []
  for (const e of EVENTS) balancer.on(e, (u, reason) => log.push(`${e} ${u.id} ${reason}`))
  const front = await startCoreFront(balancer)
  t.teardown(async () => { await front.close(); await balancer.close(); await Promise.all(ups.map(u => u.close())) })
  const entries = (...names: string[]): UpstreamInput[] => names.map(name => ({ id: name, url: ups.find(u => u.name === name)!.url }))
  return { balancer, source, ups, entries, log, url: front.url }
}

const states = (b: Balancer): string[] => b.list().map(u => `${u.id}:${u.state}`)

/** A user bound to `name` (new users are spread by leastConnections: a few tries find one). */
async function userOn (url: string, name: string): Promise<Browser> {
  for (let i = 0; i < 40; i++) {
    const user = new Browser()
    if (await user.visit(url) === name) return user
  }
  throw new Error(`no new user landed on ${name}`)
}

t.test('ready(): at once for a list; with a source once its first list is applied, 503 before; the first list is announced with reason discovery and never ramps', async t => {
  const listed = createBalancer({ upstreams: ['http://127.0.0.1:9'] })
  await listed.ready()
  await listed.close()
  await t.rejects(listed.ready(), { code: 'AFFINITY_ERR_CLOSED' }, 'a closed balancer is never ready')

  const { balancer, source, entries, log, url } = await rig(t, { slowStartMs: 60_000 })
  t.equal(source.subscribers, 1, 'subscribed at construction')
  let ready = false
  void balancer.ready().then(() => { ready = true })
  const early = await request(`${url}/echo`)
  t.equal(early.status, 503, 'no list yet: 503, none up')
  t.equal(early.headers['retry-after'] !== undefined, true, 'with Retry-After')
  t.equal(ready, false)
  t.same(balancer.stats().discovery, { members: 0, lastUpdate: null, lastError: null, errors: 0 })

  source.set(entries('S1', 'S2', 'S3'))
  await balancer.ready()
  t.same(log, ['added S1 discovery', 'added S2 discovery', 'added S3 discovery'])
  t.same(states(balancer), ['S1:up', 'S2:up', 'S3:up'])
  t.ok(balancer.stats().upstreams.every(u => u.effectiveWeight === u.weight), 'no slow start at the start, though slowStartMs is set')
  const d = balancer.stats().discovery!
  t.equal(d.members, 3)
  t.ok(d.lastUpdate !== null && Math.abs(d.lastUpdate - Date.now()) < 60_000, 'lastUpdate: when the list was applied (epoch ms)')
  t.equal((await request(`${url}/echo`)).status, 200)
})

t.test('each update is one batch: one snapshot and one remap for all its changes, every event with reason discovery', async t => {
  const { balancer, source, entries, log } = await rig(t, {}, 6)
  source.set(entries('S1', 'S2', 'S3', 'S4'))
  await balancer.ready()
  const remaps: RemapEvent[] = []
  balancer.on('remap', r => remaps.push(r))
  log.length = 0
  const version = balancer.members.version
  source.set(entries('S1', 'S2', 'S5', 'S6'))
  t.equal(balancer.members.version, version + 1, 'two added and two leaving: one new snapshot')
  t.same(log, ['added S5 discovery', 'added S6 discovery', 'draining S3 discovery', 'draining S4 discovery'])
  t.equal(remaps.length, 1, 'one remap event')
  t.same(remaps[0]!.changes.map(c => `${c.upstream} ${c.from}→${c.to} ${c.reason}`), [
    'S5 absent→up discovery', 'S6 absent→up discovery', 'S3 up→draining discovery', 'S4 up→draining discovery',
  ], 'listing every change of the batch')
  t.same(remaps[0]!.change, remaps[0]!.changes[0], '`change` is the first')
  t.same(states(balancer), ['S1:up', 'S2:up', 'S3:draining', 'S4:draining', 'S5:up', 'S6:up'])
  t.equal(balancer.stats().discovery!.members, 4, 'members: the last list, those draining aside')

  const again = balancer.members.version
  source.set(entries('S2', 'S1', 'S5', 'S6'))
  t.equal(balancer.members.version, again + 1, 'the same list in another order: nothing to do beyond one rebuild')
  t.equal(log.length, 4, 'and no event')
})

/** A request held in flight (the upstream never answers /hang) until `abort()`. */
function hanging (url: string, cookie: string | undefined): { abort (): void } {
  const req = http.request(`${url}/hang`, { headers: cookie === undefined ? {} : { cookie }, agent: false })
  req.on('error', () => {})
  req.end()
  return { abort: () => req.destroy() }
}

const inFlight = (b: Balancer, id: string): number => b.list().find(u => u.id === id)?.inFlight ?? -1

t.test('a member left out drains: its bound users stay, no new user goes there; removed once idle, its users re-pinned', async t => {
  // drainIdleMs 0: removed as soon as nothing is in flight (the window defaults to removeGraceMs).
  const { balancer, source, entries, log, url } = await rig(t, { removeGraceMs: 60_000, drainIdleMs: 0 }, 3)
  source.set(entries('S1', 'S2', 'S3'))
  await balancer.ready()
  const user = await userOn(url, 'S2')
  const held = hanging(url, user.jar.header())
  await until(() => inFlight(balancer, 'S2') === 1, 5000, 'the held request to reach S2')
  log.length = 0
  source.set(entries('S1', 'S3'))
  t.same(log, ['draining S2 discovery'])
  for (let i = 0; i < 3; i++) t.equal(await user.visit(url), 'S2', 'the bound user keeps reaching it')
  for (let i = 0; i < 6; i++) t.not(await new Browser().visit(url), 'S2', 'no new user goes there')
  t.same(states(balancer), ['S1:up', 'S2:draining', 'S3:up'], 'still there while a request is in flight')

  const removed = once(balancer, 'removed')
  held.abort()
  const [info, reason] = await removed as [UpstreamInfo, string]
  t.equal(`${info.id} ${reason}`, 'S2 discovery', 'removed once idle')
  t.same(log.slice(1), ['drained S2 nothing in flight', 'removed S2 discovery'])
  const cookie = user.cookie()
  const now = await user.visit(url)
  t.not(now, 'S2', `re-pinned (to ${now})`)
  t.not(user.cookie(), cookie, 'with a new cookie')
  t.same(states(balancer), ['S1:up', 'S3:up'])
})

t.test('removal at the latest after removeGraceMs, even with a request in flight; idle window = removeGraceMs by default', async t => {
  const { balancer, source, entries, log, url } = await rig(t, { removeGraceMs: 300 }, 3)
  source.set(entries('S1', 'S2', 'S3'))
  await balancer.ready()
  const user = await userOn(url, 'S3')
  const held = hanging(url, user.jar.header())
  t.teardown(() => held.abort())
  await until(() => inFlight(balancer, 'S3') === 1, 5000, 'the held request to reach S3')
  log.length = 0
  const removed = once(balancer, 'removed')
  source.set(entries('S1', 'S2'))
  const [info, reason] = await removed as [UpstreamInfo, string]
  t.equal(`${info.id} ${reason} in flight ${info.inFlight}`, 'S3 discovery in flight 1', 'the grace is over: removed with its request still in flight')
  t.same(log, ['draining S3 discovery', 'removed S3 discovery'], 'no drain completed before')
})

t.test('a member listed again before its removal is undrained (reason discovery); one an operator drained stays drained', async t => {
  const { balancer, source, entries, log } = await rig(t, { removeGraceMs: 60_000 }, 4)
  source.set(entries('S1', 'S2', 'S3', 'S4'))
  await balancer.ready()
  void balancer.drain('S3')
  log.length = 0
  source.set(entries('S1'))
  t.same(log, ['draining S2 discovery', 'draining S4 discovery'], 'S3 was already draining (the operator\'s)')
  source.set(entries('S1', 'S2', 'S3', 'S4'))
  t.same(log.slice(2), ['undrained S2 discovery', 'undrained S4 discovery'], 'back: undrained, S3 left alone')
  t.same(states(balancer), ['S1:up', 'S2:up', 'S3:draining', 'S4:up'], "the operator's drain stands")

  // The operator's drain and undrain while the source leaves a member out.
  log.length = 0
  source.set(entries('S1', 'S2', 'S3'))
  void balancer.drain('S4')
  balancer.undrain('S4')
  t.same(log, ['draining S4 discovery', 'draining S4 draining', 'undrained S4 drain cancelled'], "the operator's actions are reported")
  t.same(states(balancer), ['S1:up', 'S2:up', 'S3:draining', 'S4:draining'], 'still draining: its source left it out')
  source.set(entries('S1', 'S2', 'S3', 'S4'))
  balancer.undrain('S3')
  t.same(states(balancer), ['S1:up', 'S2:up', 'S3:up', 'S4:up'])
  t.same(log.slice(3), ['undrained S4 discovery', 'undrained S3 drain cancelled'])
})

t.test('a member back within the grace is not removed by the departure it came back from', async t => {
  // Two leave in one update (one deadline); one comes back; the other's removal is the event to wait for.
  const { balancer, source, entries, log } = await rig(t, { removeGraceMs: 200 }, 3)
  source.set(entries('S1', 'S2', 'S3'))
  await balancer.ready()
  log.length = 0
  source.set(entries('S1'))
  source.set(entries('S1', 'S2'))
  const [info] = await once(balancer, 'removed') as [UpstreamInfo]
  t.equal(info.id, 'S3')
  t.same(states(balancer), ['S1:up', 'S2:up'], 'S2 stays')
  // The idle window (removeGraceMs by default) and the deadline end together: a 'drained' may come first.
  t.same(log.filter(l => !l.startsWith('drained S3 ')), ['draining S2 discovery', 'draining S3 discovery', 'undrained S2 discovery', 'removed S3 discovery'])
})

t.test("weights: the source's changes apply (reason discovery); an operator's setWeight stands until the source changes that weight", async t => {
  const { balancer, source, entries, log } = await rig(t, {}, 2)
  const [s1, s2] = entries('S1', 'S2') as Array<{ id: string, url: string }>
  source.set([{ ...s1, weight: 2 }, s2])
  await balancer.ready()
  log.length = 0
  source.set([{ ...s1, weight: 3 }, s2])
  t.same(log, ['weight S1 discovery'])
  balancer.setWeight('S2', 5)
  source.set([{ ...s1, weight: 3 }, s2, ...entries()])
  t.same(balancer.list().map(u => `${u.id}:${u.weight}`), ['S1:3', 'S2:5'], "the source did not change S2's weight: the operator's stands")
  source.set([{ ...s1, weight: 3 }, { ...s2, weight: 4 }])
  t.same(balancer.list().map(u => `${u.id}:${u.weight}`), ['S1:3', 'S2:4'], 'the source changed it: the source wins')
  t.same(log, ['weight S1 discovery', 'weight S2 weight 5', 'weight S2 discovery'])
})

t.test("a URL changed under the same id: one snapshot replaces the upstream; users bound to the id follow; an operator's drain carries over", async t => {
  const { balancer, source, ups, log, url } = await rig(t, { removeGraceMs: 60_000 }, 3)
  const [s1, s2, s3] = ups
  source.set([{ id: 'a', url: s1!.url }, { id: 'b', url: s2!.url }])
  await balancer.ready()
  const user = await userOn(url, 'S2')
  void balancer.drain('a')
  log.length = 0
  const version = balancer.members.version
  source.set([{ id: 'a', url: s3!.url }, { id: 'b', url: s2!.url }])
  t.equal(balancer.members.version, version + 1, 'one snapshot')
  t.same(log, ['removed a discovery', 'added a discovery'])
  t.same(balancer.list().map(u => `${u.id} ${u.url} ${u.state}`).sort(), [`a ${s3!.url} draining`, `b ${s2!.url} up`], 'the new URL, still drained')
  source.set([{ id: 'a', url: s3!.url }, { id: 'b', url: s1!.url }])
  t.equal(await user.visit(url), 'S1', "b's user follows b to its new address")
  balancer.setWeight('b', 3)
  source.set([{ id: 'a', url: s2!.url }, { id: 'b', url: s1!.url }])
  t.same(balancer.list().map(u => `${u.id}:${u.weight}`).sort(), ['a:1', 'b:3'], "the source's weight for b did not change: the operator's stands")
})

t.test('empty, invalid and non-list updates, and source errors: discovery-error, counted; the membership stays', async t => {
  const { balancer, source, entries, log } = await rig(t, {}, 2)
  const errors: Array<Error & { code?: string }> = []
  balancer.on('discovery-error', err => errors.push(err))
  source.fail(new Error('before the first list'))
  t.equal(errors.length, 1)
  source.set(entries('S1', 'S2'))
  await balancer.ready()
  log.length = 0
  source.set([])
  source.set('S1')
  source.set([...entries('S1'), ...entries('S1')])
  source.set([{ url: 'ftp://x' }])
  source.set([{ url: 'http://127.0.0.1:1', colour: 'red' }])
  source.fail(Object.assign(new Error('lookup failed'), { code: 'ESERVFAIL' }))
  t.same(errors.map(e => e.code), [undefined, 'AFFINITY_ERR_DISCOVERY_UPDATE', 'AFFINITY_ERR_DISCOVERY_UPDATE', 'AFFINITY_ERR_DISCOVERY_UPDATE', 'AFFINITY_ERR_DISCOVERY_UPDATE', 'AFFINITY_ERR_DISCOVERY_UPDATE', 'ESERVFAIL'])
  t.match(errors[1]!.message, /an empty list .*the membership is left as it was/)
  t.match(errors[2]!.message, /expected the whole list of upstreams, got string/)
  t.match(errors[3]!.message, /an invalid list \(upstream id .* is used twice/)
  t.match(errors[5]!.message, /unknown option `colour`/)
  t.same(log, [], 'no membership change')
  t.same(states(balancer), ['S1:up', 'S2:up'])
  const d = balancer.stats().discovery!
  t.equal(d.errors, 7)
  t.equal(d.members, 2)
  t.match(d.lastError, { code: 'ESERVFAIL', message: 'lookup failed' })
  t.ok(Math.abs(d.lastError!.at - Date.now()) < 60_000)
})

t.test('add() and remove() are refused with a source; drain, undrain and setWeight apply', async t => {
  const { balancer, source, entries } = await rig(t, {}, 2)
  source.set(entries('S1', 'S2'))
  await balancer.ready()
  t.throws(() => balancer.add('http://127.0.0.1:1'), { code: 'AFFINITY_ERR_SOURCE_MANAGED', message: /add\(\) is refused: this balancer's membership comes from its source/ })
  t.throws(() => balancer.remove('S1'), { code: 'AFFINITY_ERR_SOURCE_MANAGED', message: /remove\(\) is refused/ })
  t.throws(() => balancer.remove('nope'), { code: 'AFFINITY_ERR_UNKNOWN_UPSTREAM' })
  void balancer.drain('S1')
  balancer.setWeight('S2', 2)
  t.same(balancer.list().map(u => `${u.id}:${u.state}:${u.weight}`), ['S1:draining:1', 'S2:up:2'])
})

t.test('removeGraceMs: 0 removes a member that leaves at once, in the same snapshot', async t => {
  const { balancer, source, entries, log } = await rig(t, { removeGraceMs: 0 }, 3)
  source.set(entries('S1', 'S2'))
  await balancer.ready()
  log.length = 0
  const version = balancer.members.version
  source.set(entries('S1', 'S3'))
  t.equal(balancer.members.version, version + 1)
  t.same(log, ['removed S2 discovery', 'added S3 discovery'])
})

t.test('close(): unsubscribes; a pending ready() rejects; later callbacks are ignored', async t => {
  const source = manualSource()
  const balancer = createBalancer({ upstreams: source, strategy: roundRobin() })
  const ready = balancer.ready()
  t.equal(source.subscribers, 1)
  await balancer.close()
  t.equal(source.unsubscribed, 1, 'unsubscribed')
  await t.rejects(ready, { code: 'AFFINITY_ERR_CLOSED' })
  // A source that breaks its contract and calls back anyway changes nothing.
  let update: ((list: UpstreamInput[]) => void) | undefined
  const rude = createBalancer({ upstreams: { subscribe (u) { update = u; return () => {} } } })
  await rude.close()
  update!(['http://127.0.0.1:1'])
  t.same(rude.list(), [])
})

t.test('options: upstreams a list or a source; removeGraceMs only with a source; removeGraceMs and slowStartMs checked', async t => {
  const source = manualSource()
  const refused: Array<[string, () => unknown, string, RegExp]> = [
    ['removeGraceMs with a list', () => createBalancer({ upstreams: ['http://127.0.0.1:1'], removeGraceMs: 1000 }), 'AFFINITY_ERR_INVALID_OPTION', /removeGraceMs.*applies to a membership source/],
    ['upstreams neither', () => createBalancer({ upstreams: { watch () {} } as never }), 'AFFINITY_ERR_INVALID_OPTION', /upstreams.*a list of upstreams or a membership source/],
    ['upstreams a string', () => createBalancer({ upstreams: 'http://127.0.0.1:1' as never }), 'AFFINITY_ERR_INVALID_OPTION', /upstreams/],
    ['removeGraceMs negative', () => createBalancer({ upstreams: source, removeGraceMs: -1 }), 'AFFINITY_ERR_INVALID_OPTION', /removeGraceMs.*expected milliseconds from 0 \(removed at once, without a drain\) to 2147483647/],
    ['removeGraceMs NaN', () => createBalancer({ upstreams: source, removeGraceMs: Number.NaN }), 'AFFINITY_ERR_INVALID_OPTION', /removeGraceMs/],
    ['removeGraceMs past a timer', () => createBalancer({ upstreams: source, removeGraceMs: 2 ** 31 }), 'AFFINITY_ERR_INVALID_OPTION', /removeGraceMs/],
    ['removeGraceMs a string', () => createBalancer({ upstreams: source, removeGraceMs: '30s' as never }), 'AFFINITY_ERR_INVALID_OPTION', /removeGraceMs/],
    ['slowStartMs negative', () => createBalancer({ upstreams: source, slowStartMs: -5 }), 'AFFINITY_ERR_INVALID_OPTION', /slowStartMs.*expected milliseconds from 0 \(off\)/],
    ['slowStartMs infinite', () => createBalancer({ upstreams: ['http://127.0.0.1:1'], slowStartMs: Infinity }), 'AFFINITY_ERR_INVALID_OPTION', /slowStartMs/],
    ['slowStartMs past a timer', () => createBalancer({ upstreams: ['http://127.0.0.1:1'], slowStartMs: 1e12 }), 'AFFINITY_ERR_INVALID_OPTION', /slowStartMs/],
    ['an empty list', () => createBalancer({ upstreams: [] }), 'AFFINITY_ERR_NO_UPSTREAMS', /at least one upstream/],
    ['no upstreams', () => createBalancer({} as never), 'AFFINITY_ERR_NO_UPSTREAMS', /at least one upstream/],
    ['drainIdleMs checked with a source', () => createBalancer({ upstreams: source, drainIdleMs: -1 }), 'AFFINITY_ERR_INVALID_OPTION', /drainIdleMs/],
  ]
  for (const [what, make, code, message] of refused) t.throws(make, { name: 'AffinityError', code, message }, what)
  t.equal(source.subscribers, 0, 'a refused balancer never subscribed')
  for (const ok of [0, 1, 30_000, 2 ** 31 - 1]) {
    const b = createBalancer({ upstreams: source, removeGraceMs: ok, slowStartMs: ok })
    await b.close()
  }
  t.equal(source.unsubscribed, 4, 'the accepted ones did, and let go on close()')
})
