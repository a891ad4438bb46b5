/**
 * At fleet scale a hash strategy applies a membership change in slices on later
 * turns of the event loop (hashing/ring.ts from 2^20 points, hashing/maglev-tables.ts
 * from 64 upstreams; strategies/consistent-hash.ts runs them), so that no change
 * blocks the loop for long (`npm run bench:membership`). What users see must not
 * depend on it: from the call on, no key goes to an upstream that left or stopped
 * taking keys, and keys of the others stay put; the 'remap' event comes once the
 * change is applied and reports what preview() predicted; once settled, every key
 * goes where a balancer built for the new membership sends it.
 */
import { once } from 'node:events'
import t, { type Test } from 'tap'
import { consistentHash, createBalancer, type Balancer, type Choice, type RemapEvent, type Strategy } from '@affinity/core'
import { urlOf } from './strategies/fixtures.js'

const idOf = (i: number): string => `10.0.${i >> 8}.${i & 255}:8080`
const KEYS = Array.from({ length: 3000 }, (_, k) => `user-${k}`)

/** `ring`: a ring moves only the keys of the upstream that changes; Maglev a few more (its table is rebuilt). */
const CASES: Array<{ name: string, n: number, ring: boolean, make: () => Strategy }> = [
  // 360 × 3,000 points: past the ring's 2^20.
  { name: 'consistentHash ring', n: 360, ring: true, make: () => consistentHash({ key: { header: 'x-user' } }) },
  { name: 'consistentHash maglev', n: 260, ring: false, make: () => consistentHash({ key: { header: 'x-user' }, algorithm: 'maglev' }) },
  // Just above the smallest Maglev fleet that slices (MAGLEV_SLICE_FROM, 64): it stays
  // above it through the removes below.
  { name: 'consistentHash maglev', n: 70, ring: false, make: () => consistentHash({ key: { header: 'x-user' }, algorithm: 'maglev' }) },
]

const where = (b: Balancer, key: string): string | undefined => (b.choose({ method: 'GET', url: '/', headers: { 'x-user': key }, ip: undefined, cookies: {} }) as Choice).upstream?.id

/** A balancer over `list` with a fresh `make()` strategy, closed when `t` ends. */
function fleet (t: Test, list: readonly string[], make: () => Strategy): Balancer {
  const b = createBalancer({ upstreams: list.map(id => ({ id, url: urlOf(id) })), strategy: make(), passive: false })
  t.teardown(() => b.close())
  return b
}

for (const { name, n, ring, make } of CASES) {
  t.test(`${name} over ${n} upstreams: a change applied in slices`, async t => {
    const ids = Array.from({ length: n }, (_, i) => idOf(i))
    const balancer = (list: readonly string[]): Balancer => fleet(t, list, make)
    const b = balancer(ids)
    const events: RemapEvent[] = []
    b.on('remap', r => events.push(r))
    // Every key once: where it goes, and the strategy's key sample (what remaps count).
    let now = new Map(KEYS.map(k => [k, where(b, k)!]))
    const holder = (skip: readonly string[]): string => KEYS.map(k => now.get(k)!).find(id => !skip.includes(id))!

    /** Applies one change; checks the keys within the call, the remap, and the settled placement against `fresh`. */
    const step = async (label: string, change: () => void, leaving: string | undefined, predicted: object | undefined, fresh: () => Promise<Balancer>): Promise<void> => {
      const seen = events.length
      change()
      t.equal(events.length, seen, `${label}: no remap within the call (the change is still being applied)`)
      const during = new Map(KEYS.map(k => [k, where(b, k)]))
      t.equal(KEYS.filter(k => during.get(k) === undefined || during.get(k) === leaving).length, 0, `${label}: from the call on, every key goes to an upstream that takes keys${leaving === undefined ? '' : `, none to ${leaving}`}`)
      if (ring) t.equal(KEYS.filter(k => now.get(k) !== leaving && during.get(k) !== now.get(k)).length, 0, `${label}: meanwhile the keys of every other upstream stay put`)
      const [remap] = await once(b, 'remap') as [RemapEvent]
      if (predicted !== undefined) {
        const { change: _c, changes: _cs, ...reported } = remap
        t.same(reported, predicted, `${label}: the remap event reports what preview() predicted`)
      }
      t.ok(remap.moved > 0, `${label}: and it moved keys (${remap.moved})`)
      await b.strategy.settled!()
      const other = await fresh()
      const after = new Map(KEYS.map(k => [k, where(b, k)!]))
      t.equal(KEYS.filter(k => after.get(k) !== where(other, k)).length, 0, `${label}: settled, every key goes where a balancer built for the new membership sends it`)
      t.equal(KEYS.filter(k => now.get(k) !== leaving && during.get(k) !== now.get(k) && during.get(k) !== after.get(k)).length, 0, `${label}: meanwhile every other key went where it went before or where it goes now`)
      now = after
    }

    const gone = holder([])
    await step('remove', () => b.remove(gone), gone, b.preview({ remove: gone }), async () => balancer(ids.filter(id => id !== gone)))
    const kept = ids.filter(id => id !== gone)

    const drained = holder([gone])
    await step('drain', () => b.drain(drained), drained, undefined, async () => {
      const f = balancer(kept)
      f.drain(drained)
      await f.strategy.settled!()
      return f
    })

    const added = idOf(n)
    const url = urlOf(added)
    const predicted = b.preview({ add: { id: added, url } })
    await step('add', () => b.add({ id: added, url }), undefined, predicted, async () => {
      const f = balancer([...kept, added])
      f.drain(drained)
      await f.strategy.settled!()
      return f
    })
    if (ring) t.same(new Set(events.at(-1)!.flows.map(f => f.to)), new Set([added]), 'add: keys move only to the upstream added')

    // No preview before it: nothing built ahead (a Maglev table is filled in slices, the previous one serving meanwhile).
    const second = holder([gone, drained])
    await step('remove, unannounced', () => b.remove(second), second, undefined, async () => {
      const f = balancer([...kept, added].filter(id => id !== second))
      f.drain(drained)
      await f.strategy.settled!()
      return f
    })

    // Changes faster than they are applied: each call still takes effect at once for
    // those that left, and each gets its own remap, in order.
    const third = holder([gone, drained, second])
    const fourth = holder([gone, drained, second, third])
    const seen = events.length
    b.remove(third)
    b.remove(fourth)
    t.equal(KEYS.filter(k => [undefined, third, fourth].includes(where(b, k))).length, 0, 'back to back: no key goes to either upstream removed')
    await b.strategy.settled!()
    t.same(events.slice(seen).map(e => e.change.upstream), [third, fourth], 'back to back: one remap each, in order')
    t.ok(events.slice(seen).every(e => e.flows.some(f => f.from === e.change.upstream)), 'back to back: each remap moves the keys of the upstream it removed')
    const f = balancer([...kept, added].filter(id => ![second, third, fourth].includes(id)))
    f.drain(drained)
    await f.strategy.settled!()
    t.equal(KEYS.filter(k => where(b, k) !== where(f, k)).length, 0, 'back to back: settled, every key goes where a balancer built for the new membership sends it')

    // Out and straight back: the table of the membership without it is still being
    // filled (its remap needs it) when the one with it, kept, applies again.
    const members = [...kept, added].filter(id => ![second, third, fourth].includes(id))
    const bounce = holder([gone, drained, second, third, fourth])
    const beforeBounce = new Map(KEYS.map(k => [k, where(b, k)]))
    const seenBounce = events.length
    b.remove(bounce)
    b.add({ id: bounce, url: urlOf(bounce) })
    await b.strategy.settled!()
    t.same(events.slice(seenBounce).map(e => e.change.upstream), [bounce, bounce], 'out and back: one remap each, in order')
    t.equal(KEYS.filter(k => where(b, k) !== beforeBounce.get(k)).length, 0, 'out and back: settled, every key goes where it went before')

    // More changes at once than tables may wait behind the one being filled (4).
    const burst = Array.from({ length: 7 }, (_, i) => idOf(n + 1 + i))
    const seenBurst = events.length
    for (const id of burst) b.add({ id, url: urlOf(id) })
    await b.strategy.settled!()
    t.same(events.slice(seenBurst).map(e => e.change.upstream), burst, 'a burst of adds: one remap each, in order')
    const g = balancer([...members, ...burst])
    g.drain(drained)
    await g.strategy.settled!()
    t.equal(KEYS.filter(k => where(b, k) !== where(g, k)).length, 0, 'a burst of adds: settled, every key goes where a balancer built for the new membership sends it')
  })
}

// Around the Maglev threshold a change is applied in slices or within the call by the
// size it leaves (64 and up: slices). Changes back and forth across it, faster than
// they are applied, must still leave no key on an upstream gone, and settle where a
// balancer built for the final membership puts every key.
t.test('consistentHash maglev across 63 / 64 upstreams: sliced and whole changes in any order', async t => {
  for (const start of [63, 64]) {
    let ids = Array.from({ length: start }, (_, i) => idOf(i))
    const make = (list: readonly string[]): Balancer => fleet(t, list, () => consistentHash({ key: { header: 'x-user' }, algorithm: 'maglev' }))
    const b = make(ids)
    let next = start
    let stray = 0
    for (let round = 0; round < 24; round++) {
      if (round % 2 === 0) {
        const id = idOf(next++)
        b.add({ id, url: urlOf(id) })
        ids = [...ids, id]
      } else {
        const id = ids[(round * 7) % ids.length]!
        b.remove(id)
        ids = ids.filter(x => x !== id)
      }
      stray += KEYS.slice(0, 300).filter(k => { const u = where(b, k); return u === undefined || !ids.includes(u) }).length
      if (round % 5 === 4) await new Promise(resolve => setImmediate(resolve))
    }
    t.equal(stray, 0, `from ${start}: after every change, no key goes to an upstream that left`)
    await b.strategy.settled!()
    const fresh = make(ids)
    await fresh.strategy.settled!()
    t.equal(KEYS.filter(k => where(b, k) !== where(fresh, k)).length, 0, `from ${start}: settled, every key goes where a balancer built for the final membership sends it`)
  }
})
