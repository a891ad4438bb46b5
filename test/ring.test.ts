/**
 * The consistent-hash ring is updated change by change (hashing/ring.ts,
 * point-store.ts, successors.ts) instead of rebuilt: these properties check that
 * whatever sequence of adds, removes, weight and health changes led to a
 * membership, the ring equals one built from scratch for it, and both equal the
 * documented rule (points murmur3(id, seed j), equal points by id, successors the
 * first eligible owner clockwise), recomputed here the way the former ring did it:
 * one packed sort of every point. The what-if lookup behind remap previews
 * (ring-what-if.ts) is checked against rings built for the target membership.
 */
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { Choice, consistentHash, Members, murmur3 } from '@affinity/core'
import { lookupIf, Ring, type Upstream } from '@affinity/core/internal'

/** A new seed per run (FC_SEED=… replays one); printed so a failure can be reproduced. */
const SEED = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31)
t.comment(`fast-check seed ${SEED}`)

function holds<Ts extends [unknown, ...unknown[]]> (t: Test, name: string, prop: fc.IProperty<Ts>, numRuns: number): void {
  const r = fc.check(prop, { numRuns, seed: SEED })
  t.ok(!r.failed, name, r.failed ? { diagnostic: true, report: fc.defaultReportMessage(r) } : {})
}

interface Member { id: string, weight: number }
interface State { weight: number, eligible: boolean }
type Fleet = Map<string, State>

/** Ids that share prefixes, differ in case and leave ASCII, so the id order matters and murmur3 sees UTF-8. */
const IDS = ['a', 'b', 'B', 'ab', 'a:1', 'a:10', 'a:2', '10.0.0.1:8080', '10.0.0.10:8080', 'é', 'ü-1', '日本', 'x'.repeat(40), 'z']
const WEIGHTS = [1, 2, 3, 0.5, 1.7, 0.01]

type Op =
  | { kind: 'set', id: string, weight: number, eligible: boolean } // add, or change weight and health
  | { kind: 'remove', id: string }
  | { kind: 'health', id: string, eligible: boolean }

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), id: fc.constantFrom(...IDS), weight: fc.constantFrom(...WEIGHTS), eligible: fc.boolean() }),
  fc.record({ kind: fc.constant('remove' as const), id: fc.constantFrom(...IDS) }),
  fc.record({ kind: fc.constant('health' as const), id: fc.constantFrom(...IDS), eligible: fc.boolean() }),
)

function apply (fleet: Fleet, op: Op): void {
  if (op.kind === 'set') fleet.set(op.id, { weight: op.weight, eligible: op.eligible })
  else if (op.kind === 'remove') fleet.delete(op.id)
  else { const s = fleet.get(op.id); if (s !== undefined) s.eligible = op.eligible }
}

/** Members order (sorted by id) and the eligibility mask, as ConsistentHash hands them to the ring. */
function membership (fleet: Fleet): { all: Member[], eligible: Uint8Array } {
  const all = [...fleet].map(([id, s]) => ({ id, weight: s.weight })).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  return { all, eligible: Uint8Array.from(all, u => (fleet.get(u.id)!.eligible ? 1 : 0)) }
}

interface Model { points: number[], owners: string[], resolved: Array<string | undefined>, successor: boolean[] }

/** The documented ring, computed as the former implementation did: every point packed with its owner's index, one sort. */
function model (all: readonly Member[], eligible: Uint8Array, vnodes: number): Model {
  let wanted = 0
  for (const u of all) wanted += vnodes * u.weight
  const scale = wanted > 2 ** 22 ? 2 ** 22 / wanted : 1
  const counts = all.map(u => Math.max(1, Math.round(vnodes * u.weight * scale)))
  const sorted = new Float64Array(counts.reduce((a, b) => a + b, 0))
  let n = 0
  all.forEach((u, i) => {
    for (let j = 0; j < counts[i]!; j++) sorted[n++] = murmur3(u.id, j) * 1048576 + i
  })
  sorted.sort()
  const points = Array.from(sorted, v => Math.floor(v / 1048576))
  const index = Array.from(sorted, (v, k) => v - points[k]! * 1048576)
  const resolved = new Array<string | undefined>(points.length).fill(undefined)
  const successor = new Array<boolean>(points.length).fill(false)
  let next = -1
  for (let pass = 0; pass < 2; pass++) {
    for (let k = points.length - 1; k >= 0; k--) {
      if (eligible[index[k]!] === 1) next = index[k]!
      resolved[k] = next === -1 ? undefined : all[next]!.id
      successor[k] = next !== -1 && next !== index[k]
    }
    if (next === -1) break
  }
  return { points, owners: index.map(i => all[i]!.id), resolved, successor }
}

/** The first point at or after `hash`, wrapping: what a key on the ring lands on. */
function landing (points: readonly number[], hash: number): number {
  let lo = 0
  let hi = points.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (points[mid]! < hash) lo = mid + 1
    else hi = mid
  }
  return lo === points.length ? 0 : lo
}

/** Where the ring differs from the model, or undefined: entries in order, then lookups of `hashes`. */
function differs (ring: Ring<Member>, m: Model, hashes: readonly number[]): string | undefined {
  const s = ring.snapshot()
  if (s.points.length !== m.points.length) return `size ${s.points.length}, want ${m.points.length}`
  for (let k = 0; k < m.points.length; k++) {
    if (s.points[k] !== m.points[k] || s.owners[k] !== m.owners[k] || s.resolved[k] !== m.resolved[k] || s.successor[k] !== m.successor[k]) {
      return `entry ${k}: ${s.points[k]} ${s.owners[k]} → ${s.resolved[k]}${s.successor[k] ? '*' : ''}, want ${m.points[k]} ${m.owners[k]} → ${m.resolved[k]}${m.successor[k] ? '*' : ''}`
    }
  }
  if (m.points.length === 0) return undefined
  // Points themselves and their neighbours (every one on small rings, ≈ 10,000 on
  // large ones), both ends of the hash space and random keys.
  const stride = Math.max(1, Math.floor(m.points.length / 10_000))
  const near = m.points.filter((_, k) => k % stride === 0).flatMap(p => [p, (p + 1) >>> 0, (p - 1) >>> 0])
  const probes = [0, 0xffffffff, ...hashes, ...near]
  for (const h of probes) {
    const k = landing(m.points, h)
    const pos = ring.slot(h)
    const r = ring.resolved(pos)
    const got = r === -1 ? undefined : ring.owners[r >> 1]?.id
    if (ring.point(pos) !== m.points[k] || ring.idOf(ring.owner(pos)) !== m.owners[k] || got !== m.resolved[k] || (r !== -1 && ((r & 1) === 1) !== m.successor[k])) {
      return `hash ${h}: lands on ${ring.point(pos)} ${ring.idOf(ring.owner(pos))} → ${got}, want ${m.points[k]} ${m.owners[k]} → ${m.resolved[k]}`
    }
  }
  return undefined
}

/** Steps of one to four changes each, applied together (as a panic-mode switch flips many upstreams at once). */
const opsArb = fc.array(fc.array(opArb, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 30 })
const hashesArb = fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 20, maxLength: 20 })

/** Runs the steps on a ring synced after each; checks every step against a fresh ring and the model. */
function replay (vnodes: number, steps: ReadonlyArray<readonly Op[]>, hashes: readonly number[]): string | undefined {
  const fleet: Fleet = new Map()
  const ring = new Ring<Member>(vnodes)
  for (const [step, ops] of steps.entries()) {
    for (const op of ops) apply(fleet, op)
    const { all, eligible } = membership(fleet)
    ring.sync(all, eligible)
    const fresh = new Ring<Member>(vnodes)
    fresh.sync(all, eligible)
    const m = model(all, eligible, vnodes)
    const problem = differs(ring, m, hashes) ?? differs(fresh, m, hashes)
    if (problem !== undefined) return `step ${step} (${JSON.stringify(ops)}): ${problem}`
  }
  return undefined
}

t.test('an incrementally updated ring equals one built from scratch', async t => {
  holds(t, 'small rings (1–60 points per unit of weight): every step of random add / remove / weight / health sequences, several changes a step', fc.property(
    fc.integer({ min: 1, max: 60 }), opsArb, hashesArb,
    (vnodes, ops, hashes) => {
      const problem = replay(vnodes, ops, hashes)
      if (problem !== undefined) throw new Error(problem)
      return true
    },
  ), 150)

  // 3,000 points per upstream across 40 ids: past 65,536 points, so the ring spans several
  // chunks and uses 2^16 buckets, as at fleet scale.
  const many = Array.from({ length: 40 }, (_, i) => `10.0.${i >> 4}.${i & 15}:8080`)
  const bigOp: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), id: fc.constantFrom(...many), weight: fc.constantFrom(1, 2, 0.5), eligible: fc.boolean() }),
    fc.record({ kind: fc.constant('remove' as const), id: fc.constantFrom(...many) }),
    fc.record({ kind: fc.constant('health' as const), id: fc.constantFrom(...many), eligible: fc.boolean() }),
  )
  holds(t, 'fleet-sized rings (3,000 points per unit of weight, up to 40 upstreams)', fc.property(
    fc.array(fc.array(bigOp, { minLength: 1, maxLength: 6 }), { minLength: 8, maxLength: 16 }), hashesArb,
    (steps, hashes) => {
      // Start from 30 upstreams, so later changes are applied incrementally, not rebuilt.
      const start: Op[] = many.slice(0, 30).map(id => ({ kind: 'set', id, weight: 1, eligible: true }))
      const fleet: Fleet = new Map()
      const ring = new Ring<Member>(3000)
      for (const op of start) apply(fleet, op)
      ring.sync(membership(fleet).all, membership(fleet).eligible)
      for (const ops of steps) {
        for (const op of ops) apply(fleet, op)
        const { all, eligible } = membership(fleet)
        ring.sync(all, eligible)
      }
      const { all, eligible } = membership(fleet)
      const problem = differs(ring, model(all, eligible, 3000), hashes)
      if (problem !== undefined) throw new Error(problem)
      return true
    },
  ), 6)
})

t.test('past 2^22 points every count scales alike, also after a change applied to the ring', async t => {
  // 3 × 100,000 × 20 = 6 M points wanted: scaled to 4 M; one weight change moves every count a little.
  const vnodes = 100_000
  let all: Member[] = [{ id: 'a', weight: 20 }, { id: 'b', weight: 20 }, { id: 'c', weight: 20 }]
  const eligible = new Uint8Array([1, 0, 1])
  const ring = new Ring<Member>(vnodes)
  ring.sync(all, eligible)
  all = [{ id: 'a', weight: 20 }, { id: 'b', weight: 21 }, { id: 'c', weight: 20 }]
  ring.sync(all, eligible)
  const m = model(all, eligible, vnodes)
  t.equal(ring.size, m.points.length, `${m.points.length} points, as scaled from scratch`)
  t.equal(differs(ring, m, [0, 2 ** 31, 12345]), undefined, 'the same ring as the model')
})

t.test('the what-if lookup (remap previews) equals a ring built for the target membership', async t => {
  const fleetArb = fc.array(fc.tuple(fc.constantFrom(...IDS), fc.constantFrom(...WEIGHTS), fc.boolean()), { maxLength: 10 })
    .map(xs => new Map(xs.map(([id, weight, eligible]) => [id, { weight, eligible }])) as Fleet)
  holds(t, 'for random current and target memberships, every key goes where the target ring sends it', fc.property(
    fc.integer({ min: 1, max: 40 }), fleetArb, fleetArb, hashesArb,
    (vnodes, current, target, hashes) => {
      const now = membership(current)
      const ring = new Ring<Member>(vnodes)
      ring.sync(now.all, now.eligible)
      const then = membership(target)
      const wanted = new Ring<Member>(vnodes)
      wanted.sync(then.all, then.eligible)
      const lookup = lookupIf(ring, then.all, then.eligible, vnodes)
      const m = model(then.all, then.eligible, vnodes)
      for (const h of [0, 0xffffffff, ...hashes, ...m.points]) {
        const i = lookup(h, ring.size > 0 ? ring.slot(h) : -1)
        const want = m.points.length === 0 ? undefined : m.resolved[landing(m.points, h)]
        if ((i === -1 ? undefined : then.all[i]!.id) !== want) throw new Error(`hash ${h}: ${i === -1 ? 'none' : then.all[i]!.id}, want ${want}`)
      }
      return true
    },
  ), 200)
})

t.test('two consistentHash instances agree whatever path led to the same membership', async t => {
  // What Members and the strategy read of an upstream: id, weight, health (no pool: never forwarded to).
  const upstream = (id: string, weight = 1): Upstream => {
    const u = { id, weight, healthy: true, ejected: false, draining: false, load: 0, get state () { return u.healthy ? 'up' : 'down' } }
    return u as unknown as Upstream
  }
  const fleet = Array.from({ length: 12 }, (_, i) => upstream(`10.0.0.${i}:8080`))
  const a = consistentHash({ key: { header: 'x-user' } })
  const b = consistentHash({ key: { header: 'x-user' } })
  // a: all twelve at once. b: four, then the rest one by one, one of them weighted 3 and back, one down and up.
  a.update(new Members(fleet, 0))
  b.update(new Members(fleet.slice(0, 4), 0))
  for (let i = 4; i < 12; i++) b.update(new Members(fleet.slice(0, i + 1), i))
  const heavy = upstream('10.0.0.5:8080', 3)
  b.update(new Members([...fleet.slice(0, 5), heavy, ...fleet.slice(6)], 20))
  fleet[7]!.healthy = false
  b.update(new Members(fleet, 21))
  fleet[7]!.healthy = true
  b.update(new Members(fleet, 22))
  let same = 0
  for (let k = 0; k < 5000; k++) {
    const req = { method: 'GET', url: '/', headers: { 'x-user': `user-${k}` }, ip: undefined, cookies: {} }
    const ua = a.pick(req, new Choice(req)) as Upstream
    const ub = b.pick(req, new Choice(req)) as Upstream
    if (ua.id === ub.id) same++
  }
  t.equal(same, 5000, 'every one of 5,000 keys goes to the same upstream id')
})

/** A deadline that passes after `n` looks: slices of a known size, the same on any machine. */
function after (n: number): () => boolean {
  let left = n
  return () => --left < 0
}

t.test('a ring applied in slices answers with a member that takes keys at every slice, and ends as one built from scratch', async t => {
  /** Whether `ring` sends every probe to an upstream of `fleet` that is eligible there (or nowhere, when none of those has a point yet). */
  const live = (ring: Ring<Member>, fleet: Fleet, hashes: readonly number[]): string | undefined => {
    if (ring.size === 0) return undefined
    const takes = (code: number): boolean => { const u = ring.owners[code]; return u !== undefined && fleet.get(u.id)?.eligible === true }
    let anyLive = false
    for (let k = 0, p = ring.slot(0); k < ring.size; k++, p = ring.next(p)) if (takes(ring.owner(p))) anyLive = true
    for (const h of hashes) {
      const r = ring.resolved(ring.slot(h))
      if (r === -1 ? anyLive : !takes(r >> 1)) return `hash ${h} → ${r === -1 ? 'none' : ring.owners[r >> 1]?.id ?? `left code ${r >> 1}`}`
    }
    return undefined
  }
  // A step's work is left unfinished when its `rest` is false: the next change then arrives mid-move.
  const stepArb = fc.record({ ops: fc.array(opArb, { minLength: 1, maxLength: 4 }), slice: fc.integer({ min: 0, max: 6 }), rest: fc.boolean() })
  holds(t, 'random changes (1–300 points per unit of weight), each applied a few points at a time, some cut short by the next change', fc.property(
    fc.integer({ min: 1, max: 300 }), fc.array(stepArb, { minLength: 1, maxLength: 20 }), hashesArb,
    (vnodes, steps, hashes) => {
      const fleet: Fleet = new Map()
      const ring = new Ring<Member>(vnodes, 0)
      for (const [n, { ops, slice, rest }] of steps.entries()) {
        for (const op of ops) apply(fleet, op)
        const { all, eligible } = membership(fleet)
        let more = ring.sync(all, eligible, true)
        for (let k = 0; more && (rest || k < 2); k++) {
          const problem = live(ring, fleet, hashes)
          if (problem !== undefined) throw new Error(`step ${n}, slice ${k}: ${problem}`)
          more = ring.work(after(slice))
        }
        const problem = live(ring, fleet, hashes)
        if (problem !== undefined) throw new Error(`step ${n}, its last slice: ${problem}`)
      }
      const { all, eligible } = membership(fleet)
      ring.work()
      if (ring.busy) throw new Error('busy after work()')
      const problem = differs(ring, model(all, eligible, vnodes), hashes)
      if (problem !== undefined) throw new Error(`settled: ${problem}`)
      return true
    },
  ), 200)
})
