/**
 * One conformance suite, run against every strategy from one table (Hono's
 * `runTest({ newRouter })`): each entry says what kind of strategy it is (sticky,
 * hashing, stateless…) and how to make a request for "user k"; the suite checks the
 * properties that apply to that kind. Strategy-specific behaviour (cookie format,
 * key rotation, IP folding, bounded loads, option validation) follows the table.
 *
 * Pure logic: no server is started and nothing is mocked. Upstreams are real
 * `Upstream` objects whose undici pools are never used (and closed on teardown);
 * health and membership changes are pushed to the strategy as fresh `Members`
 * snapshots, as the Balancer does.
 */
import t, { type Test } from 'tap'
import { Pool } from 'undici'
import {
  AffinityError,
  Balancer,
  Choice,
  consistentHash,
  createBalancer,
  ipHash,
  leastConnections,
  Members,
  memoryStickStore,
  roundRobin,
  stickyCookie,
  stickyIp,
  type PickResult,
  type Remap,
  type RemapEvent,
  type RouteRequest,
  type Strategy,
} from '@affinity/core'
import { isPromise, TokenCodec, Upstream } from '@affinity/core/internal'

const SECRET = 'conformance-secret-0123456789-abcdefghij'
const OLD_SECRET = 'old-rotation-secret-0123456789-abcdefghij'
const NEW_SECRET = 'new-rotation-secret-0123456789-abcdefghij'

// ---------------------------------------------------------------------------
// Harness: a cluster of upstreams around one strategy, and users with cookie jars.
// ---------------------------------------------------------------------------

interface Spec { id: string, weight?: number }
const specs = (...ids: string[]): Spec[] => ids.map(id => ({ id }))

/** The same id always gets the same URL, so two "instances" describe the same servers. */
const ports = new Map<string, number>()
function urlOf (id: string): string {
  let port = ports.get(id)
  if (port === undefined) { port = 31001 + ports.size; ports.set(id, port) }
  return `http://127.0.0.1:${port}`
}

function settle (r: PickResult): Upstream | undefined {
  if (isPromise(r)) throw new Error('expected a synchronous pick (in-memory state only)')
  return r
}

/** What the Balancer does around a strategy, minus forwarding and health checks. */
class Cluster {
  readonly byId = new Map<string, Upstream>()
  readonly totals = { load: 0 }
  readonly strategy: Strategy
  #version = 0
  readonly #pools: Pool[] = []

  constructor (t: Test, strategy: Strategy, list: readonly Spec[]) {
    this.strategy = strategy
    for (const s of list) this.#create(s)
    this.sync()
    t.teardown(async () => {
      await strategy.close?.()
      await Promise.all(this.#pools.map(p => p.close()))
    })
  }

  get (id: string): Upstream {
    const u = this.byId.get(id)
    if (u === undefined) throw new Error(`no upstream ${id}`)
    return u
  }

  sync (): void {
    this.strategy.update(new Members(this.byId.values(), ++this.#version, this.totals))
  }

  add (id: string, weight = 1): void { this.#create({ id, weight }); this.sync() }
  remove (id: string): void { const u = this.get(id); u.removed = true; this.byId.delete(id); this.sync() }
  down (id: string): void { this.get(id).healthy = false; this.sync() }
  up (id: string): void { this.get(id).healthy = true; this.sync() }
  drain (id: string): void { this.get(id).draining = true; this.sync() }
  undrain (id: string): void { this.get(id).draining = false; this.sync() }

  choose (user: User): Choice {
    const req = user.request()
    const choice = new Choice(req)
    choice.upstream = settle(this.strategy.pick(req, choice))
    user.accept(choice)
    return choice
  }

  /** The forwarder's retry: the failed upstream joins `choice.tried` and the same choice is re-picked. */
  repick (user: User, choice: Choice, failed: Upstream): Upstream | undefined {
    (choice.tried ??= []).push(failed)
    choice.upstream = settle(this.strategy.pick(choice.request, choice))
    user.accept(choice)
    return choice.upstream
  }

  pick (user: User): string | undefined {
    return this.choose(user).upstream?.id
  }

  #create ({ id, weight = 1 }: Spec): void {
    const url = urlOf(id)
    const pool = new Pool(new URL(url).origin)
    this.#pools.push(pool)
    this.byId.set(id, new Upstream(url, id, weight, pool))
  }
}

/** A client: a number, plus a cookie jar that keeps whatever Set-Cookie the balancer sent. */
class User {
  readonly jar: Record<string, string> = {}
  readonly entry: Entry
  readonly k: number
  readonly over: Partial<RouteRequest>

  constructor (entry: Entry, k: number, over: Partial<RouteRequest> = {}) {
    this.entry = entry
    this.k = k
    this.over = over
  }

  request (): RouteRequest {
    return { ...this.entry.request(this), ...this.over }
  }

  accept (choice: Choice): void {
    const sc = choice.setCookie
    if (sc === undefined) return
    const semi = sc.indexOf(';')
    const pair = semi === -1 ? sc : sc.slice(0, semi)
    const eq = pair.indexOf('=')
    this.jar[pair.slice(0, eq)] = pair.slice(eq + 1)
  }
}

const users = (entry: Entry, n: number, from = 0): User[] => Array.from({ length: n }, (_, i) => new User(entry, from + i))

/** `u`'s request through a real Balancer (which never connects: only `choose` is called); `u` keeps any cookie. */
function chooseOn (b: Balancer, u: User): Choice {
  const r = b.choose(u.request())
  if (isPromise(r)) throw new Error('expected a synchronous choice')
  u.accept(r)
  return r
}

function tally (ids: ReadonlyArray<string | undefined>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const id of ids) out[String(id)] = (out[String(id)] ?? 0) + 1
  return out
}

function base (u: User): RouteRequest {
  return { method: 'GET', url: '/', headers: {}, ip: undefined, cookies: { ...u.jar } }
}
const ipOf = (k: number): string => `10.${(k >>> 16) & 255}.${(k >>> 8) & 255}.${k & 255}`
const byJar = (u: User): RouteRequest => base(u)
const byIp = (u: User): RouteRequest => ({ ...base(u), ip: ipOf(u.k) })
const byHeader = (u: User): RouteRequest => ({ ...base(u), headers: { 'x-user': `user-${u.k}` } })

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

interface Traits {
  /** Binds a user to the upstream it was first placed on (cookie, stick table). */
  sticky: boolean
  /** Placement is a pure function of the request's key and the membership. */
  hashing: boolean
  /** Keeps no per-user state at all. */
  stateless: boolean
  /** A second instance with the same ids and options agrees, with no shared state. */
  portable: boolean
  /** Sets the balancer cookie. */
  cookie: boolean
  /** Hashing only: 'exact' = removal/addition moves only the keys on/onto that upstream. */
  movement?: 'exact' | 'loose'
}

interface Entry {
  name: string
  make: () => Strategy
  traits: Traits
  request: (u: User) => RouteRequest
}

const plain: Traits = { sticky: false, hashing: false, stateless: true, portable: false, cookie: false }
const sticky: Traits = { sticky: true, hashing: false, stateless: false, portable: false, cookie: false }
const hashing: Traits = { sticky: false, hashing: true, stateless: true, portable: true, cookie: false, movement: 'exact' }

const TABLE: Entry[] = [
  { name: 'roundRobin', make: () => roundRobin(), traits: plain, request: byJar },
  { name: 'leastConnections', make: () => leastConnections(), traits: plain, request: byJar },
  { name: 'stickyCookie', make: () => stickyCookie({ secret: SECRET }), traits: { ...sticky, portable: true, cookie: true }, request: byJar },
  { name: 'stickyIp', make: () => stickyIp(), traits: sticky, request: byIp },
  { name: 'consistentHash ring', make: () => consistentHash({ key: { header: 'x-user' }, algorithm: 'ring' }), traits: hashing, request: byHeader },
  { name: 'consistentHash maglev', make: () => consistentHash({ key: { header: 'x-user' }, algorithm: 'maglev' }), traits: { ...hashing, movement: 'loose' }, request: byHeader },
  { name: 'consistentHash ring balanceFactor 1.25', make: () => consistentHash({ key: { header: 'x-user' }, balanceFactor: 1.25 }), traits: hashing, request: byHeader },
  { name: 'ipHash', make: () => ipHash(), traits: hashing, request: byIp },
]

const entry = (name: string): Entry => {
  const e = TABLE.find(x => x.name === name)
  if (e === undefined) throw new Error(name)
  return e
}

const FOUR = ['a', 'b', 'c', 'd']
const FIVE = ['a', 'b', 'c', 'd', 'e']

// ---------------------------------------------------------------------------
// The conformance suite
// ---------------------------------------------------------------------------

function runConformance (t: Test, e: Entry): void {
  const { traits } = e
  const cluster = (t: Test, list: readonly Spec[] = specs(...FOUR)): Cluster => new Cluster(t, e.make(), list)
  const keys = (n: number, from = 0): User[] => users(e, n, from)

  t.test('picks only upstreams that are up; nothing when none is', t => {
    const c = cluster(t)
    c.down('a'); c.down('b'); c.drain('c')
    const placed = keys(200).map(u => c.choose(u))
    t.same(tally(placed.map(ch => ch.upstream?.id)), { d: 200 }, 'every new user on the only upstream that is up')
    if (traits.cookie) t.equal(placed.filter(ch => ch.setCookie !== undefined).length, 200, 'each got a cookie')
    c.down('d')
    const none = keys(100, 1000).map(u => c.choose(u))
    t.same(tally(none.map(ch => ch.upstream?.id)), { undefined: 100 }, 'draining and down upstreams take no new user')
    t.equal(none.filter(ch => ch.setCookie !== undefined).length, 0, 'no cookie when nothing was chosen')
    t.end()
  })

  t.test('a re-pick never returns an upstream in choice.tried', t => {
    const weighted = cluster(t, [{ id: 'a', weight: 1 }, { id: 'b', weight: 2 }, { id: 'c', weight: 1 }, { id: 'd', weight: 3 }])
    const equal = cluster(t)
    let violations = 0
    let exhaustive = 0
    for (const u of keys(200)) {
      const c = u.k % 2 === 0 ? weighted : equal
      const choice = c.choose(u)
      const seen = new Set<string>()
      let cur = choice.upstream
      for (let step = 0; cur !== undefined && step < 10; step++) {
        if (seen.has(cur.id) || (choice.tried?.includes(cur) ?? false)) violations++
        seen.add(cur.id)
        cur = c.repick(u, choice, cur)
      }
      if (cur === undefined && seen.size === 4) exhaustive++
    }
    t.equal(violations, 0, 'no re-pick returned a tried upstream')
    t.equal(exhaustive, 200, 'each request could try all four upstreams, then got none (weighted and equal weights)')
    t.end()
  })

  t.test('weights are respected', t => {
    const n = traits.hashing ? 20_000 : 4000
    const tol = traits.hashing ? 0.03 : 0.005
    const c = cluster(t, [{ id: 'heavy', weight: 3 }, { id: 'light', weight: 1 }])
    const counts = tally(keys(n).map(u => c.pick(u)))
    const share = (counts.heavy ?? 0) / n
    t.ok(Math.abs(share - 0.75) <= tol, `weight 3 vs 1 → heavy share ${share.toFixed(4)} ≈ 0.75 ± ${tol}`)
    t.equal((counts.heavy ?? 0) + (counts.light ?? 0), n, 'every request placed')

    const c4 = cluster(t)
    const even = tally(keys(n, n).map(u => c4.pick(u)))
    const shares = FOUR.map(id => (even[id] ?? 0) / n)
    t.ok(shares.every(s => Math.abs(s - 0.25) <= tol), `equal weights → shares ${shares.map(s => s.toFixed(3)).join(' ')} ≈ 0.25 ± ${tol}`)
    t.end()
  })

  if (traits.sticky || traits.hashing) {
    t.test('a user keeps its upstream across requests', t => {
      const c = cluster(t)
      const us = keys(300)
      const first = us.map(u => c.pick(u))
      let moved = 0
      let cookies = 0
      for (let round = 0; round < 2; round++) {
        us.forEach((u, i) => {
          const ch = c.choose(u)
          if (ch.upstream?.id !== first[i]) moved++
          if (ch.setCookie !== undefined) cookies++
        })
      }
      t.equal(moved, 0, 'no user moved on later requests')
      t.equal(cookies, 0, 'no Set-Cookie on later requests')
      t.ok(Object.keys(tally(first)).length === 4, 'users spread over all upstreams')
      t.end()
    })
  } else {
    t.test('never sticky: one user\'s requests rotate', t => {
      const c = cluster(t)
      const u = new User(e, 1)
      t.same(tally(Array.from({ length: 8 }, () => c.pick(u))), { a: 2, b: 2, c: 2, d: 2 })
      t.end()
    })
  }

  if (traits.sticky || traits.hashing) {
    t.test('failover: users of a down upstream move, others stay; recovery', t => {
      const c = cluster(t, specs(...FIVE))
      const us = keys(2000)
      const before = us.map(u => c.pick(u))
      const onC = before.filter(id => id === 'c').length
      t.ok(onC > 100, `${onC} users on c`)

      c.down('c')
      const after = us.map(u => c.choose(u))
      let moved = 0
      let stayed = 0
      let cookies = 0
      let wrongCookies = 0
      us.forEach((_, i) => {
        const id = after[i]!.upstream?.id
        if (before[i] === 'c') {
          if (id !== undefined && id !== 'c') moved++
          if (after[i]!.setCookie !== undefined) cookies++
        } else {
          if (id === before[i]) stayed++
          if (after[i]!.setCookie !== undefined) wrongCookies++
        }
      })
      t.equal(moved, onC, 'every user of the down upstream moved to an up one')
      t.equal(stayed, us.length - onC, 'no other user moved')
      if (traits.cookie) {
        t.equal(cookies, onC, 'each moved user got a fresh cookie')
        t.equal(wrongCookies, 0, 'nobody else got one')
        t.ok(after.every((ch, i) => before[i] !== 'c' || ch.reason === 'failover'), "moved users' reason is 'failover'")
      }
      if (traits.hashing) {
        t.ok(after.every((ch, i) => ch.reason === (before[i] === 'c' ? 'successor' : 'hash')), "reasons: 'hash', and 'successor' for moved keys")
        const other = new Cluster(t, e.make(), specs(...[...FIVE].reverse()))
        other.down('c')
        const mismatch = us.filter((u, i) => other.pick(u) !== after[i]!.upstream?.id).length
        t.equal(mismatch, 0, 'a second instance (upstreams listed in another order) picks the same successors')
      }

      c.up('c')
      const back = us.map(u => c.choose(u))
      if (traits.hashing) {
        t.equal(back.filter((ch, i) => ch.upstream?.id !== before[i]).length, 0, 'every key returns when its upstream recovers')
      } else {
        t.equal(back.filter((ch, i) => ch.upstream?.id !== after[i]!.upstream?.id).length, 0, 're-pinned users stay where they were re-pinned')
        t.equal(back.filter(ch => ch.setCookie !== undefined).length, 0, 'no Set-Cookie after recovery')
      }
      t.end()
    })
  }

  t.test('adding an upstream', t => {
    const n = traits.hashing ? 20_000 : 2000
    const c = cluster(t)
    const us = keys(n)
    const before = us.map(u => c.pick(u))
    c.add('e')
    if (traits.sticky || traits.hashing) {
      const after = us.map(u => c.pick(u))
      const moved = after.filter((id, i) => id !== before[i])
      if (traits.sticky) {
        t.equal(moved.length, 0, 'no existing user moves')
      } else {
        const frac = moved.length / n
        const ontoNew = moved.filter(id => id === 'e').length
        t.ok(frac > 0.12 && frac < 0.28, `moved ${(frac * 100).toFixed(1)}% ≈ 1/5`)
        if (traits.movement === 'exact') {
          t.equal(ontoNew, moved.length, 'every moved key moved onto the new upstream')
        } else {
          t.comment(`maglev: ${moved.length - ontoNew} of ${n} keys moved between old upstreams`)
          t.ok(moved.length / n < 3 / 5, 'movement stays well below a rehash')
          t.ok(ontoNew / n > 0.12, 'the new upstream took its share')
        }
        t.equal(after.filter(id => id === 'e').length, ontoNew, 'keys on the new upstream are exactly the moved ones')
      }
    }
    const newcomers = tally(keys(800, 1_000_000).map(u => c.pick(u)))
    t.ok((newcomers.e ?? 0) > 800 / 5 / 2, `new users reach the new upstream (${newcomers.e ?? 0} of 800)`)
    t.end()
  })

  if (traits.sticky || traits.hashing) {
    t.test('removing an upstream moves only its users', t => {
      const n = traits.hashing ? 20_000 : 2000
      const c = cluster(t, specs(...FIVE))
      const us = keys(n)
      const before = us.map(u => c.pick(u))
      c.remove('c')
      const after = us.map(u => c.pick(u))
      const onC = before.filter(id => id === 'c').length
      const leftC = after.filter((id, i) => before[i] === 'c' && id !== undefined && id !== 'c').length
      const others = after.filter((id, i) => before[i] !== 'c' && id !== before[i]).length
      t.equal(leftC, onC, 'every user of the removed upstream moved to a remaining one')
      if (traits.movement === 'loose') {
        t.comment(`maglev: ${others} of ${n - onC} keys on other upstreams moved (${(others / n * 100).toFixed(2)}%)`)
        t.ok((onC + others) / n < 3 / 5, 'movement stays well below a rehash')
        t.ok(others / n < 0.05, 'few keys on other upstreams moved')
      } else {
        t.equal(others, 0, 'no other user moved')
      }
      t.end()
    })
  }

  t.test('draining: bound users stay, no new user lands there', t => {
    const c = cluster(t)
    const us = keys(1000)
    const before = us.map(u => c.pick(u))
    c.drain('b')
    const after = us.map(u => c.choose(u))
    if (traits.sticky) {
      t.equal(after.filter((ch, i) => ch.upstream?.id !== before[i]).length, 0, 'every bound user stays, the draining upstream\'s included')
      t.equal(after.filter(ch => ch.setCookie !== undefined).length, 0, 'no Set-Cookie')
    }
    if (traits.hashing) {
      t.equal(after.filter((ch, i) => before[i] === 'b' && ch.upstream?.id === 'b').length, 0, "the draining upstream's keys went to successors")
      t.equal(after.filter((ch, i) => before[i] !== 'b' && ch.upstream?.id !== before[i]).length, 0, 'other keys stay')
      const down = cluster(t)
      down.down('b')
      t.equal(us.filter((u, i) => down.pick(u) !== after[i]!.upstream?.id).length, 0, 'its successors are the ones a down upstream gets')
    }
    const newcomers = tally(keys(500, 50_000).map(u => c.pick(u)))
    t.equal(newcomers.b, undefined, 'no new user on the draining upstream')
    t.equal((newcomers.a ?? 0) + (newcomers.c ?? 0) + (newcomers.d ?? 0), 500, 'new users go to the others')
    c.undrain('b')
    if (traits.sticky || traits.hashing) {
      t.equal(us.filter((u, i) => c.pick(u) !== before[i]).length, 0, 'after undrain everyone is where they started')
    }
    t.end()
  })

  t.test('preview predicts who moves, and the remap event reports the same', async t => {
    type Step = { label: string, change: () => Remap, apply: (b: Balancer) => unknown }
    const steps = (b: Balancer): Step[] => [
      { label: 'remove c', change: () => b.preview({ remove: 'c' }), apply: () => b.remove('c') },
      { label: 'add f', change: () => b.preview({ add: { url: urlOf('f'), id: 'f' } }), apply: () => b.add({ url: urlOf('f'), id: 'f' }) },
      { label: 'drain b', change: () => b.preview(), apply: () => b.drain('b') },
    ]
    for (let k = 0; k < 3; k++) {
      const b = createBalancer({ upstreams: FIVE.map(id => ({ url: urlOf(id), id })), strategy: e.make(), passive: false })
      t.teardown(() => b.close())
      const step = steps(b)[k]!
      const us = keys(1000)
      const before = us.map(u => chooseOn(b, u).upstream!.id)
      const predicted = step.change()
      t.same(b.list().map(u => `${u.id}:${u.state}`), FIVE.map(id => `${id}:up`), `${step.label}: preview changes nothing`)
      const events: RemapEvent[] = []
      b.on('remap', r => events.push(r))
      void step.apply(b)
      t.equal(events.length, 1, `${step.label}: one remap event`)
      const { change, changes, ...reported } = events[0]!
      t.same(changes, [change], `${step.label}: one change, also in \`changes\``)
      if (step.label === 'drain b') {
        t.match(change, { upstream: 'b', from: 'up', to: 'draining' }, 'the event names the change')
        // preview() describes membership changes only: a drain's moves come with its event.
        t.equal(predicted.moved, 0, 'previewing no change moves nobody')
        t.same(predicted.flows, [], 'and has no flows')
      } else {
        t.same(reported, predicted, `${step.label}: the event reports what preview predicted`)
      }
      // What really moves: every known user or key picked again.
      const after = us.map(u => chooseOn(b, u).upstream?.id)
      const real = new Map<string, number>()
      let moved = 0
      us.forEach((_, i) => {
        if (after[i] === before[i]) return
        moved++
        const key = `${before[i]}→${traits.sticky ? 'null' : String(after[i] ?? null)}`
        real.set(key, (real.get(key) ?? 0) + 1)
      })
      const flows = new Map(reported.flows.map(f => [`${f.from}→${String(f.to)}`, f.count]))
      if (traits.stateless && !traits.hashing) {
        t.same(reported, { known: 'none', total: 0, moved: 0, flows: [] }, `${step.label}: nothing bound, nothing to move`)
        continue
      }
      t.equal(reported.known, traits.sticky ? 'bound' : 'sampled')
      t.equal(reported.total, us.length, `${step.label}: every user is known`)
      t.equal(reported.moved, moved, `${step.label}: moved ${moved} of ${us.length}, as predicted`)
      t.same(flows, real, `${step.label}: from → to counts as predicted${traits.sticky ? ' (sticky: re-placed at their next request, to: null)' : ''}`)
      if (traits.sticky && step.label !== 'remove c') t.equal(reported.moved, 0, `${step.label}: no bound user moves`)
    }
  })

  if (traits.portable) {
    t.test('two independent instances agree (Balancer, upstreams listed in another order)', async t => {
      const make = (ids: string[]): Balancer => {
        const b = createBalancer({ upstreams: ids.map(id => ({ url: urlOf(id), id })), strategy: e.make() })
        t.teardown(() => b.close())
        return b
      }
      const A = make(FIVE)
      const B = make(['d', 'b', 'e', 'a', 'c'])
      t.same(A.members.all.map(u => u.id), B.members.all.map(u => u.id), 'same membership order')
      const choose = chooseOn
      const us = keys(1500)
      const compare = (label: string): void => {
        let differ = 0
        let cookies = 0
        for (const u of us) {
          const a = choose(A, u)
          const b = choose(B, u)
          if (a.upstream === undefined || a.upstream.id !== b.upstream?.id) differ++
          if (traits.cookie && (b.setCookie !== undefined || b.reason !== 'sticky')) cookies++
        }
        t.equal(differ, 0, `${label}: same upstream on both instances`)
        if (traits.cookie) t.equal(cookies, 0, `${label}: B honours A's cookie without re-issuing it`)
      }
      compare('all up')
      await Promise.all([A.drain('c'), B.drain('c')])
      compare('c draining')
      const fresh = keys(500, 70_000)
      t.equal(fresh.filter(u => choose(A, u).upstream?.id === 'c').length, 0, 'no new user on the draining upstream')
      A.remove('c'); B.remove('c')
      compare('c removed')
      A.add({ url: urlOf('f'), id: 'f' }); B.add({ url: urlOf('f'), id: 'f' })
      compare('f added')
    })
  }
}

for (const e of TABLE) t.test(`conformance: ${e.name}`, t => { runConformance(t, e); t.end() })

// ---------------------------------------------------------------------------
// Strategy specifics
// ---------------------------------------------------------------------------

t.test('roundRobin', async t => {
  const e = entry('roundRobin')
  t.test('equal weights: every upstream once per cycle', t => {
    const c = new Cluster(t, roundRobin(), specs(...FOUR))
    const u = new User(e, 0)
    for (let cycle = 0; cycle < 10; cycle++) {
      const ids = new Set(FOUR.map(() => c.pick(u)))
      t.equal(ids.size, 4, `cycle ${cycle} visits all four`)
    }
    t.end()
  })
  t.test('smooth weighted rotation (nginx): 5:1:1 → a a b a c a a', t => {
    const c = new Cluster(t, roundRobin(), [{ id: 'a', weight: 5 }, { id: 'b', weight: 1 }, { id: 'c', weight: 1 }])
    const u = new User(e, 0)
    const seq = Array.from({ length: 14 }, () => c.pick(u)).join('')
    t.equal(seq, 'aabacaaaabacaa')
    t.end()
  })
})

t.test('leastConnections', async t => {
  const e = entry('leastConnections')
  t.test('ties rotate instead of always taking the first', t => {
    const c = new Cluster(t, leastConnections(), specs(...FOUR))
    const u = new User(e, 0)
    t.same(tally(Array.from({ length: 8 }, () => c.pick(u))), { a: 2, b: 2, c: 2, d: 2 }, 'all idle: each upstream in turn')
    c.get('a').inFlight = 5
    c.get('d').inFlight = 5
    t.same(tally(Array.from({ length: 6 }, () => c.pick(u))), { b: 3, c: 3 }, 'the two least loaded share')
    t.end()
  })
  t.test('fewest in-flight requests plus WebSockets per unit of weight', t => {
    const c = new Cluster(t, leastConnections(), [{ id: 'a', weight: 2 }, { id: 'b', weight: 1 }, { id: 'c', weight: 1 }])
    const u = new User(e, 0)
    c.get('a').inFlight = 3 // 1.5 per unit
    c.get('b').inFlight = 1 // 1
    c.get('c').inFlight = 2 // 2
    t.equal(c.pick(u), 'b')
    c.get('b').websockets = 5 // 6
    t.equal(c.pick(u), 'a', 'open WebSockets count as load')
    const choice = c.choose(u)
    t.equal(c.repick(u, choice, choice.upstream!)?.id, 'c', 'a retry takes the next least loaded')
    t.end()
  })
})

t.test('stickyCookie', async t => {
  const e = entry('stickyCookie')
  const COOKIE = /^affinity=([A-Za-z0-9_-]{51}); Path=\/; HttpOnly; SameSite=Lax$/
  const valueOf = (setCookie: string): string => /^[^=]+=([^;]*)/.exec(setCookie)![1]!
  const codec = new TokenCodec([SECRET])
  const nowSec = (): number => Math.floor(Date.now() / 1000)

  t.test('exactly one Set-Cookie on a first visit, none on later valid visits', t => {
    const c = new Cluster(t, stickyCookie({ secret: SECRET }), specs(...FOUR))
    for (const u of users(e, 20)) {
      const first = c.choose(u)
      t.match(first.setCookie, COOKIE, 'one balancer cookie with the default attributes')
      t.equal(first.setCookie!.split('affinity=').length, 2, 'a single cookie, not several')
      t.equal(first.reason, 'assigned')
      for (let i = 0; i < 3; i++) {
        const next = c.choose(u)
        t.equal(next.upstream?.id, first.upstream?.id)
        t.equal(next.setCookie, undefined, 'no Set-Cookie on a valid visit')
        t.equal(next.reason, 'sticky')
      }
    }
    t.end()
  })

  t.test('attributes: Secure only over https with secure: auto; options', t => {
    const auto = new Cluster(t, stickyCookie({ secret: SECRET }), specs(...FOUR))
    t.match(auto.choose(new User(e, 1, { protocol: 'https' })).setCookie, /; HttpOnly; SameSite=Lax; Secure$/, 'https → Secure')
    t.notMatch(auto.choose(new User(e, 2, { protocol: 'http' })).setCookie, /Secure/, 'http → no Secure')
    t.notMatch(auto.choose(new User(e, 3)).setCookie, /Secure/, 'unknown protocol → no Secure')
    const always = new Cluster(t, stickyCookie({ secret: SECRET, secure: true }), specs(...FOUR))
    t.match(always.choose(new User(e, 4, { protocol: 'http' })).setCookie, /; Secure$/, 'secure: true → always')
    const never = new Cluster(t, stickyCookie({ secret: SECRET, secure: false }), specs(...FOUR))
    t.notMatch(never.choose(new User(e, 5, { protocol: 'https' })).setCookie, /Secure/, 'secure: false → never')
    const custom = new Cluster(t, stickyCookie({ secret: SECRET, name: 'sid', path: '/app', domain: 'example.com', maxAge: 3600, httpOnly: false, sameSite: 'strict' }), specs(...FOUR))
    const sc = custom.choose(new User(e, 6)).setCookie!
    t.match(sc, /^sid=[A-Za-z0-9_-]{51}; Path=\/app; Domain=example\.com; Max-Age=3600; SameSite=Strict$/, 'name, path, domain, maxAge, httpOnly, sameSite')
    const token = new TokenCodec([SECRET]).verify(valueOf(sc))
    t.ok(token !== undefined && Math.abs(token.expires - (nowSec() + 3600)) <= 2, 'the signed expiry matches Max-Age')
    t.end()
  })

  t.test('garbage, forged and other-secret cookies are ignored and replaced', t => {
    const c = new Cluster(t, stickyCookie({ secret: SECRET }), specs(...FOUR))
    const other = new Cluster(t, stickyCookie({ secret: NEW_SECRET }), specs(...FOUR))
    const u = new User(e, 1)
    const good = valueOf(c.choose(u).setCookie!)
    const elsewhere = valueOf(other.choose(new User(e, 2)).setCookie!)
    const bytes = Buffer.from(good, 'base64url')
    const flippedChar = good.slice(0, 20) + (good[20] === 'A' ? 'B' : 'A') + good.slice(21)
    const cases: Array<[string, string]> = [
      ['garbage', 'garbage'], ['empty', ''], ['too long', good + 'A'], ['not base64url', good.slice(0, 50) + '='],
      ['one character changed', flippedChar], ['another secret', elsewhere],
    ]
    for (const [label, value] of cases) {
      const v = new User(e, 3)
      v.jar.affinity = value
      const ch = c.choose(v)
      t.ok(ch.upstream !== undefined, `${label}: still served`)
      t.match(ch.setCookie, COOKIE, `${label}: a fresh cookie`)
      t.not(ch.reason, 'sticky', `${label}: not treated as sticky`)
      const again = c.choose(v)
      t.ok(again.reason === 'sticky' && again.setCookie === undefined && again.upstream === ch.upstream, `${label}: the fresh cookie sticks`)
    }
    // Every single-byte change of a genuine token: never honoured as it stands.
    let honoured = 0
    for (let i = 0; i < bytes.length; i++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const b = Buffer.from(bytes)
        b[i]! ^= mask
        const v = new User(e, 4)
        v.jar.affinity = b.toString('base64url')
        const ch = c.choose(v)
        if (ch.reason === 'sticky' || ch.setCookie === undefined) honoured++
      }
    }
    t.equal(honoured, 0, 'no single-byte change of a token is honoured')
    t.end()
  })

  t.test('the value names no upstream URL, host, port or id', t => {
    const ids = ['app-server-1', 'app-server-2', 'app-server-3']
    const c = new Cluster(t, stickyCookie({ secret: SECRET }), specs(...ids))
    const values = new Map<string, string[]>()
    for (const u of users(e, 60)) {
      const ch = c.choose(u)
      const list = values.get(ch.upstream!.id) ?? []
      list.push(valueOf(ch.setCookie!))
      values.set(ch.upstream!.id, list)
    }
    t.same([...values.keys()].sort(), ids, 'users on every upstream')
    let leaks = 0
    for (const id of ids) {
      const up = c.get(id)
      const { host, port, origin } = new URL(up.url)
      const needles = [id, up.url, origin, host, port, '127.0.0.1', 'app-server'].map(s => s.toLowerCase())
      for (const value of values.get(id)!) {
        const raw = Buffer.from(value, 'base64url')
        const hay = [value, raw.toString('latin1'), raw.toString('utf8'), Buffer.from(value, 'base64').toString('latin1')].map(s => s.toLowerCase())
        for (const h of hay) for (const n of needles) if (h.includes(n)) leaks++
        // The id's bytes in hex. (Not every needle: a 5-digit port turns up in the hex of
        // random bytes about once in 200 runs by chance alone; as text it would show above.)
        if (raw.toString('hex').includes(Buffer.from(id).toString('hex'))) leaks++
      }
      const [v1, v2] = values.get(id)!
      if (v1 !== undefined && v2 !== undefined) {
        t.not(v1, v2, `two cookies for ${id} differ`)
        t.not(Buffer.from(v1, 'base64url').subarray(14, 22).toString('hex'), Buffer.from(v2, 'base64url').subarray(14, 22).toString('hex'), `and their masked tags differ (${id})`)
      }
    }
    t.equal(leaks, 0, 'nothing identifying, raw or decoded')
    t.end()
  })

  t.test('key rotation: an old-secret cookie is honoured and re-issued', t => {
    const old = new Cluster(t, stickyCookie({ secret: OLD_SECRET }), specs(...FOUR))
    const rotated = new Cluster(t, stickyCookie({ secret: [NEW_SECRET, OLD_SECRET] }), specs(...FOUR))
    const newOnly = new Cluster(t, stickyCookie({ secret: NEW_SECRET }), specs(...FOUR))
    for (const u of users(e, 8)) {
      const first = old.choose(u)
      const oldValue = u.jar.affinity!
      const ch = rotated.choose(u)
      t.equal(ch.upstream?.id, first.upstream?.id, 'same upstream after rotation')
      t.equal(ch.reason, 'sticky')
      t.match(ch.setCookie, COOKIE, 're-issued')
      const reissued = valueOf(ch.setCookie!)
      t.equal(new TokenCodec([NEW_SECRET]).verify(reissued)?.secret, 0, 'the new cookie is signed by the new secret')
      t.equal(new TokenCodec([OLD_SECRET]).verify(reissued), undefined, 'and not by the old one')
      const next = rotated.choose(u)
      t.ok(next.setCookie === undefined && next.upstream === ch.upstream, 'then no more Set-Cookie')
      const stranger = new User(e, 99)
      stranger.jar.affinity = oldValue
      t.equal(newOnly.choose(stranger).reason, 'assigned', 'once the old secret is dropped, its cookies are not honoured')
    }
    t.end()
  })

  t.test('expiry: inside the signed value, checked by the balancer, renewed at half-life', t => {
    const c = new Cluster(t, stickyCookie({ secret: SECRET, maxAge: 3600 }), specs(...FOUR))
    const visit = (value: string): Choice => {
      const u = new User(e, 1)
      u.jar.affinity = value
      return c.choose(u)
    }
    const tagB = codec.tag(0, 'b')
    const valid = visit(codec.issue(tagB, nowSec() + 3000))
    t.ok(valid.upstream?.id === 'b' && valid.reason === 'sticky' && valid.setCookie === undefined, 'unexpired: sticky, no renewal')
    const expired = visit(codec.issue(tagB, nowSec() - 5))
    t.ok(expired.reason === 'assigned' && expired.setCookie !== undefined, 'expired: re-pinned with a fresh cookie')
    t.ok(Math.abs(codec.verify(valueOf(expired.setCookie!))!.expires - (nowSec() + 3600)) <= 2, 'the fresh cookie expires in maxAge')
    const renew = visit(codec.issue(tagB, nowSec() + 600))
    t.ok(renew.upstream?.id === 'b' && renew.reason === 'sticky', 'under half its age left: still sticky')
    t.ok(renew.setCookie !== undefined && codec.verify(valueOf(renew.setCookie))!.expires >= nowSec() + 3598, 'and renewed for maxAge')
    const ghost = visit(codec.issue(codec.tag(0, 'ghost'), 0))
    t.ok(ghost.upstream !== undefined && ghost.setCookie !== undefined && ghost.reason === 'failover', 'a valid cookie for an unknown upstream: re-pinned as a failover')
    const session = visit(codec.issue(tagB, 0))
    t.ok(session.upstream?.id === 'b' && session.reason === 'sticky', 'a session cookie from before maxAge was set: still sticky')
    t.ok(session.setCookie !== undefined && codec.verify(valueOf(session.setCookie))!.expires >= nowSec() + 3598, 'and re-issued with an expiry inside')

    // A cookie verified (and cached) earlier still expires.
    const u = new User(e, 2)
    const first = c.choose(u)
    t.equal(c.choose(u).setCookie, undefined)
    const realNow = Date.now
    try {
      Date.now = () => realNow() + 3601_000
      const late = c.choose(u)
      t.ok(late.reason === 'assigned' && late.setCookie !== undefined, 'after maxAge the cached cookie is expired')
    } finally {
      Date.now = realNow
    }
    t.ok(first.upstream !== undefined)
    t.end()
  })

  t.test('failover rewrites the cookie; a removed upstream too', t => {
    const c = new Cluster(t, stickyCookie({ secret: SECRET }), specs(...FOUR))
    const u = new User(e, 1)
    const home = c.pick(u)!
    c.down(home)
    const moved = c.choose(u)
    t.ok(moved.upstream !== undefined && moved.upstream.id !== home && moved.reason === 'failover', 'failover')
    t.match(moved.setCookie, COOKIE, 'new cookie')
    const second = moved.upstream!.id
    t.equal(c.choose(u).reason, 'sticky', 'the new cookie sticks')
    c.remove(second)
    const again = c.choose(u)
    t.ok(again.upstream !== undefined && again.upstream.id !== second && again.upstream.id !== home, 'removed upstream: re-pinned')
    t.match(again.setCookie, COOKIE)
    // A failed connection (choice.tried) re-pins too, and the cookie follows.
    const ch = c.choose(u)
    const failed = ch.upstream!
    const retried = c.repick(u, ch, failed)
    t.ok(retried !== undefined && retried !== failed && ch.reason === 'failover' && ch.setCookie !== undefined, 'retry: re-pinned with a cookie')
    t.equal(c.pick(u), retried!.id, 'the user stays on the upstream that answered')
    t.end()
  })
})

t.test('stickyIp', async t => {
  const e = entry('stickyIp')
  const at = (ip: string | undefined): User => new User(e, 0, { ip })

  t.test('IPv4-mapped IPv6 and plain IPv4 are the same client', t => {
    const c = new Cluster(t, stickyIp(), specs(...FOUR))
    let differ = 0
    for (let k = 0; k < 200; k++) {
      const first = c.choose(at(`::ffff:${ipOf(k)}`))
      const second = c.choose(at(ipOf(k)))
      const third = c.choose(at(`[::FFFF:${ipOf(k)}]`))
      if (second.upstream !== first.upstream || second.reason !== 'sticky' || third.upstream !== first.upstream) differ++
    }
    t.equal(differ, 0)
    t.end()
  })

  t.test('ipv4Prefix 24 groups a /24; ipv6 /64 by default', t => {
    const c = new Cluster(t, stickyIp({ ipv4Prefix: 24 }), specs(...FOUR))
    const groups = Array.from({ length: 8 }, (_, g) => Array.from({ length: 30 }, (_, h) => c.pick(at(`192.0.${g}.${h + 1}`))))
    t.ok(groups.every(g => new Set(g).size === 1), 'one upstream per /24')
    t.equal(new Set(groups.map(g => g[0])).size, 4, 'different /24s are different clients')
    const v6 = new Cluster(t, stickyIp(), specs(...FOUR))
    const home = v6.pick(at('2001:db8:1:2::1'))
    t.same(['2001:db8:1:2:aaaa::7', '2001:DB8:1:2:ffff:ffff:ffff:ffff', '[2001:db8:1:2::99]', '2001:db8:1:2::5%eth0'].map(ip => v6.pick(at(ip))), [home, home, home, home])
    t.end()
  })

  t.test('no usable address: assigned, not bound', t => {
    const c = new Cluster(t, stickyIp(), specs(...FOUR))
    for (const ip of [undefined, '', 'unknown', '300.1.1.1']) {
      t.same(tally(Array.from({ length: 4 }, () => c.pick(at(ip)))), { a: 1, b: 1, c: 1, d: 1 }, `ip ${String(ip)} rotates`)
    }
    t.equal(c.choose(at(undefined)).reason, 'assigned')
    t.end()
  })

  t.test('a shared store lets two instances agree', t => {
    const store = memoryStickStore()
    const A = new Cluster(t, stickyIp({ store }), specs(...FOUR))
    const B = new Cluster(t, stickyIp({ store }), specs(...[...FOUR].reverse()))
    const us = users(e, 300)
    const placed = us.map(u => A.pick(u))
    const seen = us.map(u => B.choose(u))
    t.equal(seen.filter((ch, i) => ch.upstream?.id !== placed[i] || ch.reason !== 'sticky').length, 0)
    t.end()
  })

  t.test('each hit refreshes the TTL; an idle client is forgotten', async t => {
    // Real time: the in-memory store keeps its own monotonic clock (lru-cache).
    const c = new Cluster(t, stickyIp({ ttlMs: 300 }), specs(...FOUR))
    const u = at('198.51.100.7')
    const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))
    t.equal(c.choose(u).reason, 'assigned')
    await sleep(200)
    t.equal(c.choose(u).reason, 'sticky', 'within the TTL')
    await sleep(200)
    t.equal(c.choose(u).reason, 'sticky', 'the previous hit refreshed it (400 ms after the first)')
    await sleep(450)
    t.equal(c.choose(u).reason, 'assigned', 'idle longer than the TTL: forgotten')
  })

  t.test('memoryStickStore: bounded, least recently refreshed first', t => {
    const s = memoryStickStore({ maxEntries: 3 })
    s.set('a', 'x', 60_000); s.set('b', 'x', 60_000); s.set('c', 'x', 60_000)
    s.set('a', 'y', 60_000) // refreshed: now the newest
    s.set('d', 'x', 60_000)
    t.same(['a', 'b', 'c', 'd'].map(k => s.get(k)), ['y', undefined, 'x', 'x'])
    t.end()
  })
})

t.test('consistentHash and ipHash', async t => {
  const e = entry('consistentHash ring')

  t.test('a request without the key goes to the fallback', t => {
    const c = new Cluster(t, consistentHash({ key: { header: 'x-user' } }), specs(...FOUR))
    const anon = new User(entry('roundRobin'), 0)
    const picks = Array.from({ length: 4 }, () => c.choose(anon))
    t.same(tally(picks.map(ch => ch.upstream?.id)), { a: 1, b: 1, c: 1, d: 1 }, 'round robin by default')
    t.ok(picks.every(ch => ch.reason === 'fallback'))
    const emptyKey = c.choose(new User(e, 0, { headers: { 'x-user': '' } }))
    t.equal(emptyKey.reason, 'fallback', 'an empty key counts as missing')
    const ip = new Cluster(t, ipHash(), specs(...FOUR))
    t.equal(ip.choose(new User(entry('ipHash'), 0, { ip: undefined })).reason, 'fallback', 'ipHash without an address')
    t.end()
  })

  t.test('header, cookie, query and function keys hash the same key alike', t => {
    const mk = (key: Parameters<typeof consistentHash>[0]['key']): Cluster => new Cluster(t, consistentHash({ key }), specs(...FIVE))
    const byH = mk({ header: 'X-User' })
    const byC = mk({ cookie: 'uid' })
    const byQ = mk({ query: 'uid' })
    const byF = mk(req => String(req.headers['x-fn'] ?? ''))
    let differ = 0
    for (let k = 0; k < 300; k++) {
      const key = `user ${k}/é`
      const h = byH.pick(new User(e, 0, { headers: { 'x-user': [key, 'second'] } }))
      const c = byC.pick(new User(e, 0, { cookies: { uid: key } }))
      const q = byQ.pick(new User(e, 0, { url: `/x?other=1&uid=${encodeURIComponent(key).replace(/%20/g, '+')}&uid=zzz` }))
      const f = byF.pick(new User(e, 0, { headers: { 'x-fn': key } }))
      if (h === undefined || h !== c || c !== q || q !== f) differ++
    }
    t.equal(differ, 0)
    t.end()
  })

  t.test('IPv4-mapped IPv6 folds; ipv4Prefix 24 groups a /24', t => {
    const plainIp = new Cluster(t, ipHash(), specs(...FOUR))
    const ipE = entry('ipHash')
    t.equal(Array.from({ length: 300 }, (_, k) => k).filter(k => plainIp.pick(new User(ipE, 0, { ip: ipOf(k) })) !== plainIp.pick(new User(ipE, 0, { ip: `::ffff:${ipOf(k)}` }))).length, 0)
    const c = new Cluster(t, ipHash({ ipv4Prefix: 24 }), specs(...FOUR))
    const groups = Array.from({ length: 40 }, (_, g) => new Set(Array.from({ length: 20 }, (_, h) => c.pick(new User(ipE, 0, { ip: `172.16.${g}.${h * 12}` })))))
    t.ok(groups.every(g => g.size === 1), 'one upstream per /24')
    t.equal(new Set(groups.map(g => [...g][0])).size, 4, '/24s spread over all upstreams')
    t.end()
  })

  t.test('bounded loads: no upstream above ceil(1.25 × average) in flight', t => {
    const factor = 1.25
    const c = new Cluster(t, consistentHash({ key: { header: 'x-user' }, balanceFactor: factor }), specs(...FIVE))
    const plainRing = new Cluster(t, consistentHash({ key: { header: 'x-user' } }), specs(...FIVE))
    const hot = new User(e, 7)
    const owner = c.pick(hot)
    t.equal(owner, plainRing.pick(hot), 'idle: the same owner as the plain ring')
    let over = 0
    const reasons = new Set<string>()
    const held: Upstream[] = []
    for (let i = 0; i < 200; i++) {
      const ch = c.choose(hot)
      const u = ch.upstream!
      reasons.add(ch.reason)
      u.inFlight++; c.totals.load++; held.push(u)
      if (u.load > Math.ceil(factor * c.totals.load / FIVE.length)) over++
    }
    t.equal(over, 0, 'a hot key never overloads one upstream')
    // 200 in flight, at most ceil(1.25 × 200 / 5) = 50 each: at least four upstreams share it.
    t.ok(new Set(held.map(u => u.id)).size >= 4, `it spills over ${new Set(held.map(u => u.id)).size} upstreams`)
    t.ok(reasons.has('spill') && reasons.has('hash'), `reasons ${[...reasons].join(',')}`)
    const max = Math.max(...held.map(u => u.load))
    t.ok(max <= Math.ceil(factor * 200 / 5), `busiest holds ${max} of 200`)
    for (const u of held) { u.inFlight--; c.totals.load-- }
    const back = c.choose(hot)
    t.ok(back.upstream?.id === owner && back.reason === 'hash', 'idle again: back to its owner')
    // Many keys in flight at once.
    let overMixed = 0
    for (const u of users(e, 1000, 5000)) {
      const up = c.choose(u).upstream!
      up.inFlight++; c.totals.load++
      if (up.load > Math.ceil(factor * c.totals.load / FIVE.length)) overMixed++
    }
    t.equal(overMixed, 0, 'never above the bound with 1,000 keys in flight')
    t.end()
  })
})

// ---------------------------------------------------------------------------
// Option validation: stable error codes
// ---------------------------------------------------------------------------

t.test('invalid options throw an AffinityError with a stable code', async t => {
  const codeOf = (fn: () => unknown): string => {
    let made: unknown
    try {
      made = fn()
    } catch (err) {
      return err instanceof AffinityError ? err.code : `not an AffinityError: ${String(err)}`
    }
    if (made instanceof Balancer) void made.close()
    return 'no error'
  }
  const bad = (v: unknown): never => v as never
  const cases: Array<[string, () => unknown, string]> = [
    ['stickyCookie short secret', () => stickyCookie({ secret: 'short' }), 'AFFINITY_ERR_SECRET_TOO_SHORT'],
    ['stickyCookie 31-char secret', () => stickyCookie({ secret: 'x'.repeat(31) }), 'AFFINITY_ERR_SECRET_TOO_SHORT'],
    ['stickyCookie short second secret', () => stickyCookie({ secret: [SECRET, 'short'] }), 'AFFINITY_ERR_SECRET_TOO_SHORT'],
    ['stickyCookie no secret', () => stickyCookie(bad({})), 'AFFINITY_ERR_SECRET_REQUIRED'],
    ['stickyCookie no options', () => stickyCookie(bad(undefined)), 'AFFINITY_ERR_SECRET_REQUIRED'],
    ['stickyCookie empty secret list', () => stickyCookie({ secret: [] }), 'AFFINITY_ERR_SECRET_REQUIRED'],
    ['stickyCookie non-string secret', () => stickyCookie({ secret: bad(12345) }), 'AFFINITY_ERR_SECRET_REQUIRED'],
    ['stickyCookie maxAge 0', () => stickyCookie({ secret: SECRET, maxAge: 0 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['stickyCookie maxAge 1.5', () => stickyCookie({ secret: SECRET, maxAge: 1.5 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['stickyCookie bad name', () => stickyCookie({ secret: SECRET, name: 'a b' }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['stickyCookie bad path', () => stickyCookie({ secret: SECRET, path: 'app' }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['stickyCookie SameSite=None without Secure', () => stickyCookie({ secret: SECRET, sameSite: 'none', secure: false }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash vnodes 0', () => consistentHash({ key: { header: 'x' }, vnodes: 0 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash vnodes 1.5', () => consistentHash({ key: { header: 'x' }, vnodes: 1.5 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash vnodes 100001', () => consistentHash({ key: { header: 'x' }, vnodes: 100_001 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash balanceFactor 1', () => consistentHash({ key: { header: 'x' }, balanceFactor: 1 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash balanceFactor 0.5', () => consistentHash({ key: { header: 'x' }, balanceFactor: 0.5 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash balanceFactor NaN', () => consistentHash({ key: { header: 'x' }, balanceFactor: NaN }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash balanceFactor Infinity', () => consistentHash({ key: { header: 'x' }, balanceFactor: Infinity }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash tableSize 65536', () => consistentHash({ key: { header: 'x' }, algorithm: 'maglev', tableSize: 65536 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash tableSize 2', () => consistentHash({ key: { header: 'x' }, algorithm: 'maglev', tableSize: 2 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash algorithm', () => consistentHash({ key: { header: 'x' }, algorithm: bad('modulo') }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash empty key', () => consistentHash({ key: bad({}) }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash empty header name', () => consistentHash({ key: { header: '' } }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash no options', () => consistentHash(bad(undefined)), 'AFFINITY_ERR_INVALID_OPTION'],
    ['ipHash ipv4Prefix 33', () => ipHash({ ipv4Prefix: 33 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['ipHash ipv6Prefix -1', () => ipHash({ ipv6Prefix: -1 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['stickyIp ttlMs 0', () => stickyIp({ ttlMs: 0 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['stickyIp bad store', () => stickyIp({ store: bad({}) }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['memoryStickStore maxEntries 0', () => memoryStickStore({ maxEntries: 0 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['createBalancer no upstreams', () => createBalancer({ upstreams: [] }), 'AFFINITY_ERR_NO_UPSTREAMS'],
    ['createBalancer no options', () => createBalancer(bad(undefined)), 'AFFINITY_ERR_NO_UPSTREAMS'],
    ['createBalancer bad URL', () => createBalancer({ upstreams: ['not a url'] }), 'AFFINITY_ERR_INVALID_URL'],
    ['createBalancer ftp URL', () => createBalancer({ upstreams: ['ftp://127.0.0.1:21'] }), 'AFFINITY_ERR_INVALID_URL'],
    ['createBalancer URL with credentials', () => createBalancer({ upstreams: ['http://u:p@127.0.0.1:1'] }), 'AFFINITY_ERR_INVALID_URL'],
    ['createBalancer duplicate URL', () => createBalancer({ upstreams: ['http://127.0.0.1:1', 'http://127.0.0.1:1'] }), 'AFFINITY_ERR_DUPLICATE_ID'],
    ['createBalancer duplicate id', () => createBalancer({ upstreams: [{ url: 'http://127.0.0.1:1', id: 'x' }, { url: 'http://127.0.0.1:2', id: 'x' }] }), 'AFFINITY_ERR_DUPLICATE_ID'],
    ['createBalancer weight 0', () => createBalancer({ upstreams: [{ url: 'http://127.0.0.1:1', weight: 0 }] }), 'AFFINITY_ERR_INVALID_WEIGHT'],
    ['createBalancer weight -1', () => createBalancer({ upstreams: [{ url: 'http://127.0.0.1:1', weight: -1 }] }), 'AFFINITY_ERR_INVALID_WEIGHT'],
    ['createBalancer weight NaN', () => createBalancer({ upstreams: [{ url: 'http://127.0.0.1:1', weight: NaN }] }), 'AFFINITY_ERR_INVALID_WEIGHT'],
    ['createBalancer weight Infinity', () => createBalancer({ upstreams: [{ url: 'http://127.0.0.1:1', weight: Infinity }] }), 'AFFINITY_ERR_INVALID_WEIGHT'],
  ]
  for (const [label, fn, code] of cases) t.equal(codeOf(fn), code, label)

  const s = roundRobin()
  const b = createBalancer({ upstreams: ['http://127.0.0.1:1'], strategy: s })
  t.teardown(() => b.close())
  t.equal(codeOf(() => createBalancer({ upstreams: ['http://127.0.0.1:2'], strategy: s })), 'AFFINITY_ERR_STRATEGY_IN_USE', 'one strategy per balancer')
  t.equal(codeOf(() => b.add('http://127.0.0.1:1')), 'AFFINITY_ERR_DUPLICATE_ID', 'add: duplicate')
  t.equal(codeOf(() => b.add({ url: 'http://127.0.0.1:3', weight: 0 })), 'AFFINITY_ERR_INVALID_WEIGHT', 'add: bad weight')
  t.equal(codeOf(() => b.remove('nope')), 'AFFINITY_ERR_UNKNOWN_UPSTREAM', 'remove: unknown id')
  const err = new AffinityError('AFFINITY_ERR_SECRET_TOO_SHORT', 0, 5)
  t.ok(err instanceof Error && err.name === 'AffinityError' && /5 characters/.test(err.message), 'a readable message')
})
