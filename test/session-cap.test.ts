/**
 * Session caps (`sessionBalanceFactor` on stickyCookie and stickyIp): bounded loads
 * on bound users (Mirrokni, Thorup, Zadimoghaddam 2018). Property tests with
 * fast-check over random populations, weights, factors and `assign` choices
 * (including the worst: always the same upstream), through a real Balancer
 * (only `choose` is called, so nothing connects); then the counters behind them.
 */
import fc from 'fast-check'
import t, { type Test } from 'tap'
import {
  AffinityError, createBalancer, memoryStickStore, stickyCookie, stickyIp,
  type Balancer, type Choice, type Members, type RouteRequest, type StickStore, type Strategy, type Upstream,
} from '@affinity/core'
import { isPromise } from '@affinity/core/internal'

const SEED = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31)
t.comment(`fast-check seed ${SEED}`)
const SECRET = 'session-cap-test-secret-0123456789abcdef'

function holds<Ts extends [unknown, ...unknown[]]> (t: Test, name: string, prop: fc.IProperty<Ts>, numRuns = 100): void {
  const r = fc.check(prop, { numRuns, seed: SEED })
  t.ok(!r.failed, name, r.failed ? { diagnostic: true, report: fc.defaultReportMessage(r) } : {})
}

/**
 * An `assign` that places each user where a script says (index `wants[k] mod n`
 * among the eligible upstreams, the next one if that one is set aside): from
 * "always the first upstream" to any random placement.
 */
function scripted (wants: readonly number[]): Strategy {
  let list: readonly Upstream[] = []
  let k = 0
  return {
    name: 'scripted',
    update (m: Members) { list = m.eligible },
    pick (_req: RouteRequest, choice: Choice) {
      const n = list.length
      const start = n === 0 ? 0 : (wants[k++ % wants.length] ?? 0) % n
      for (let i = 0; i < n; i++) {
        const u = list[(start + i) % n]!
        if (!choice.avoids(u)) return u
      }
      return undefined
    },
  }
}

type Kind = 'cookie' | 'ip'

/** A user: a cookie jar (stickyCookie) or an address (stickyIp). */
class Client {
  cookie: string | undefined
  constructor (readonly k: number) {}
  request (): RouteRequest {
    const ip = `10.${(this.k >> 16) & 255}.${(this.k >> 8) & 255}.${this.k & 255}`
    return { method: 'GET', url: '/', headers: {}, ip, cookies: this.cookie === undefined ? {} : { affinity: this.cookie } }
  }
}

function visit (b: Balancer, c: Client): Choice {
  const r = b.choose(c.request())
  if (isPromise(r)) throw new Error('expected a synchronous choice')
  const sc = r.setCookie
  if (sc !== undefined) c.cookie = sc.slice(sc.indexOf('=') + 1, sc.indexOf(';'))
  return r
}

function make (kind: Kind, weights: readonly number[], assign: Strategy, factor: number | undefined, store?: StickStore): Balancer {
  const strategy = kind === 'cookie'
    ? stickyCookie({ secret: SECRET, assign, sessionBalanceFactor: factor })
    : stickyIp({ assign, sessionBalanceFactor: factor, store })
  return createBalancer({ upstreams: weights.map((w, i) => ({ url: `http://127.0.0.1:${32001 + i}`, id: `u${i}`, weight: w })), strategy, passive: false })
}

/** Bound users per upstream id, as stats() reports them. */
function boundUsers (b: Balancer): Map<string, number> {
  return new Map(b.stats().upstreams.map(u => [u.id, u.boundUsers ?? 0]))
}

/** The cap after `bound` users in all: ceil(factor × bound × weight ÷ total weight), rounding noise aside. */
const capOf = (factor: number, bound: number, weight: number, total: number): number => Math.ceil(factor * bound / total * weight * (1 - 1e-12))

const population = fc.record({
  kind: fc.constantFrom<Kind>('cookie', 'ip'),
  weights: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 2, maxLength: 10 }),
  users: fc.integer({ min: 1, max: 250 }),
  factor: fc.double({ min: 1.01, max: 2.5, noNaN: true }),
  wants: fc.oneof(fc.constant([0]), fc.array(fc.nat(50), { minLength: 1, maxLength: 40 })),
})

t.test('with a cap, no upstream ever holds more than ceil(factor × average) bound users', async t => {
  holds(t, 'after every placement, the upstream that took the user is within its weighted cap', fc.property(population, ({ kind, weights, users, factor, wants }) => {
    const b = make(kind, weights, scripted(wants), factor)
    try {
      const total = weights.reduce((s, w) => s + w, 0)
      const clients = Array.from({ length: users }, (_, k) => new Client(k))
      for (const [n, c] of clients.entries()) {
        const u = visit(b, c).upstream!
        const count = boundUsers(b).get(u.id)!
        if (count > capOf(factor, n + 1, u.weight, total)) return false
      }
      // Everybody holds: every upstream within the cap for all users, and all counted.
      const counts = boundUsers(b)
      if ([...counts.values()].reduce((s, n) => s + n, 0) !== users) return false
      return b.members.all.every(u => (counts.get(u.id) ?? 0) <= capOf(factor, users, u.weight, total))
    } finally {
      void b.close()
    }
  }), 60)

  holds(t, 'bound users never move: every user comes back to where it was first placed', fc.property(population, ({ kind, weights, users, factor, wants }) => {
    const b = make(kind, weights, scripted(wants), factor)
    try {
      const clients = Array.from({ length: users }, (_, k) => new Client(k))
      const first = clients.map(c => visit(b, c).upstream!.id)
      return clients.every((c, i) => {
        const again = visit(b, c)
        return again.upstream!.id === first[i] && again.reason === 'sticky' && again.setCookie === undefined
      })
    } finally {
      void b.close()
    }
  }), 60)

  holds(t, 'stickyIp with clients leaving: a new client never lands on an upstream that was full', fc.property(
    population, fc.array(fc.boolean(), { minLength: 1, maxLength: 60 }),
    ({ weights, users, factor, wants }, leaves) => {
      const store = memoryStickStore()
      const b = make('ip', weights, scripted(wants), factor, store)
      try {
        const total = weights.reduce((s, w) => s + w, 0)
        const live: Client[] = []
        for (let k = 0; k < users * 2; k++) {
          // A departure: the client's binding ends (an expiry does the same to the counts).
          if (leaves[k % leaves.length]! && live.length > 0) store.delete(live.splice((k * 7) % live.length, 1)[0]!.request().ip!)
          const before = boundUsers(b)
          const bound = [...before.values()].reduce((s, n) => s + n, 0)
          const c = new Client(k)
          live.push(c)
          const u = visit(b, c).upstream!
          if ((before.get(u.id) ?? 0) >= capOf(factor, bound + 1, u.weight, total)) return false
        }
        return true
      } finally {
        void b.close()
      }
    },
  ), 40)
})

t.test('without a cap the same script piles users up; with it they are capped', async t => {
  for (const kind of ['cookie', 'ip'] as const) {
    const loose = make(kind, [1, 1, 1, 1], scripted([0]), undefined)
    const capped = make(kind, [1, 1, 1, 1], scripted([0]), 1.25)
    t.teardown(async () => { await loose.close(); await capped.close() })
    const reasons = new Map<string, number>()
    for (let k = 0; k < 100; k++) {
      visit(loose, new Client(k))
      const ch = visit(capped, new Client(k))
      reasons.set(ch.reason, (reasons.get(ch.reason) ?? 0) + 1)
    }
    t.same([...boundUsers(loose).values()], [100, 0, 0, 0], `${kind}: no cap, all 100 on the script's upstream`)
    const counts = [...boundUsers(capped).values()]
    t.ok(Math.max(...counts) <= Math.ceil(1.25 * 100 / 4), `${kind}: capped at ceil(1.25 × 25) = 32 (${counts.join(', ')})`)
    t.ok((reasons.get('capped') ?? 0) > 0 && (reasons.get('assigned') ?? 0) > 0, `${kind}: reasons assigned ${reasons.get('assigned')}, capped ${reasons.get('capped')}`)
    t.equal(capped.stats().picks.capped, reasons.get('capped'), `${kind}: capped placements counted in stats().picks`)
  }
})

t.test('failover under a cap: re-placed users avoid full upstreams and keep reason failover', async t => {
  const b = make('cookie', [1, 1, 1], scripted([0]), 1.5)
  t.teardown(() => b.close())
  const clients = Array.from({ length: 30 }, (_, k) => new Client(k))
  for (const c of clients) visit(b, c)
  const onU0 = clients.filter(c => visit(b, c).upstream!.id === 'u0')
  t.ok(onU0.length > 0, `users bound to u0 before it goes (${onU0.length})`)
  b.remove('u0')
  const moved = onU0.map(c => visit(b, c))
  t.ok(moved.every(ch => ch.reason === 'failover' && ch.upstream!.id !== 'u0'), 'every user of the removed upstream failed over')
  const counts = boundUsers(b)
  t.ok(Math.max(counts.get('u1')!, counts.get('u2')!) <= Math.ceil(1.5 * 30 / 2), `within ceil(1.5 × 15) after failover (${[...counts].join(' ')})`)
})

t.test('options: the factor must be > 1; stickyIp needs a counting store, stickyCookie its cache', async t => {
  const code = (fn: () => unknown): string => {
    try { fn() } catch (err) { return err instanceof AffinityError ? err.code : String(err) }
    return 'no error'
  }
  for (const bad of [1, 0.5, 0, -1, NaN, Infinity, '1.5' as unknown as number]) {
    t.equal(code(() => stickyCookie({ secret: SECRET, sessionBalanceFactor: bad })), 'AFFINITY_ERR_INVALID_OPTION', `stickyCookie factor ${String(bad)}`)
    t.equal(code(() => stickyIp({ sessionBalanceFactor: bad })), 'AFFINITY_ERR_INVALID_OPTION', `stickyIp factor ${String(bad)}`)
  }
  const uncounted: StickStore = { get: () => undefined, set: () => {}, delete: () => {} }
  t.equal(code(() => stickyIp({ sessionBalanceFactor: 1.25, store: uncounted })), 'AFFINITY_ERR_INVALID_OPTION', 'a store without boundLive()')
  t.equal(code(() => stickyIp({ store: uncounted })), 'no error', 'fine without a cap')
  t.equal(code(() => stickyCookie({ secret: SECRET, sessionBalanceFactor: 1.25, cacheSize: 0 })), 'AFFINITY_ERR_INVALID_OPTION', 'stickyCookie cacheSize 0')
})

t.test('memoryStickStore: boundLive() follows sets, re-binds, deletes, evictions and expiry; bound() agrees', async t => {
  const s = memoryStickStore({ maxEntries: 4 })
  const live = (): Record<string, number> => Object.fromEntries([...s.boundLive!()].sort())
  s.set('a', 'x', 60_000); s.set('b', 'x', 60_000); s.set('c', 'y', 60_000)
  t.same(live(), { x: 2, y: 1 })
  s.set('a', 'x', 60_000)
  t.same(live(), { x: 2, y: 1 }, 'a refresh changes nothing')
  s.set('a', 'y', 60_000)
  t.same(live(), { x: 1, y: 2 }, 'a re-bind moves the count')
  s.delete('b')
  t.same(live(), { y: 2 }, 'a delete')
  s.set('d', 'z', 60_000); s.set('e', 'z', 60_000); s.set('f', 'z', 60_000)
  t.same(live(), { y: 1, z: 3 }, 'evicted entries leave the counts (max 4)')
  s.set('g', 'x', 30)
  t.same(live(), { x: 1, z: 3 }, 'g in, a (the least recently refreshed) out')
  await new Promise(resolve => setTimeout(resolve, 60))
  t.same(Object.fromEntries([...s.bound!()].sort()), { z: 3 }, 'bound() sweeps the expired entry')
  t.same(live(), { z: 3 }, 'and the live counts agree')
  s.set('h', 'x', 30)
  t.same(live(), { x: 1, z: 3 }, 'h in')
  await new Promise(resolve => setTimeout(resolve, 60))
  t.same(live(), { z: 3 }, 'boundLive() sweeps expired entries too, at most every ttl / 8')
})

t.test('stickyCookie: bound users are those seen within activeMs; renewals and failovers count once', async t => {
  const realNow = Date.now
  let now = realNow()
  Date.now = () => now
  t.teardown(() => { Date.now = realNow })
  const b = createBalancer({
    upstreams: ['a', 'b'].map((id, i) => ({ url: `http://127.0.0.1:${32101 + i}`, id })),
    strategy: stickyCookie({ secret: SECRET, activeMs: 80_000, maxAge: 3600 }),
  })
  t.teardown(() => b.close())
  const total = (): number => [...boundUsers(b).values()].reduce((s, n) => s + n, 0)
  const clients = Array.from({ length: 10 }, (_, k) => new Client(k))
  for (const c of clients) visit(b, c)
  t.equal(total(), 10, 'ten new users')
  now += 50_000
  for (const c of clients.slice(0, 4)) visit(b, c)
  t.equal(total(), 10, 'returning users are not counted twice')
  now += 45_000
  t.equal(total(), 4, 'after activeMs (up to 9/8 of it), only the four seen again still count')
  now += 40 * 60_000 // past half of maxAge: the next visit renews the cookie
  const renewed = visit(b, clients[0]!)
  t.ok(renewed.setCookie !== undefined && renewed.reason === 'sticky', 'renewed')
  t.equal(total(), 1, 'a renewed user counts once')
  const home = renewed.upstream!.id
  b.remove(home)
  const moved = visit(b, clients[0]!)
  t.ok(moved.reason === 'failover' && moved.upstream!.id !== home, 'failed over')
  t.same(boundUsers(b), new Map([[moved.upstream!.id, 1]]), 'counted on its new upstream only')
})
