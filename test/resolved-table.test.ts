/**
 * Maglev placements resolve each entry's first eligible owner lazily, on first
 * read, resolving every entry a walk passes over (hashing/table.ts ResolvedTable).
 * Whatever the order of the reads and whatever share of the upstreams is eligible
 * (all, half, 1 in 100, one, none), every entry must read what a walk from that
 * entry alone gives: its first eligible owner, marked as a successor when that is
 * not the entry's own, or -1 when nothing is eligible.
 */
import t from 'tap'
import { Maglev, mulberry32, ResolvedTable } from '@affinity/core/internal'

const ids = Array.from({ length: 300 }, (_, i) => `10.0.${i >> 8}.${i & 255}:8080`)
// A small table (prime size), so that the reference can walk from every entry.
const table = new Maglev(ids, ids.map(() => 1), 4099)
const next = mulberry32(7) // uint32s
const random = (): number => next() / 2 ** 32

/** The reference: walk forward from `pos` alone, nothing remembered. */
function walk (owner: Int32Array, eligible: Uint8Array, pos: number): number {
  for (let k = 0, at = pos; k < owner.length; k++, at = (at + 1) % owner.length) {
    const o = owner[at]!
    if (eligible[o] === 1) return o * 2 + (at === pos ? 0 : 1)
  }
  return -1
}

/** Reads every entry, first a quarter of them in random order (walks start anywhere, meet resolved runs, wrap), then all in order. */
function mismatches (owner: Int32Array, eligible: Uint8Array, placement: ResolvedTable<string>): number {
  let bad = 0
  for (let k = 0; k < owner.length >> 2; k++) {
    const pos = Math.floor(random() * owner.length)
    if (placement.resolved(pos) !== walk(owner, eligible, pos)) bad++
  }
  for (let pos = 0; pos < owner.length; pos++) if (placement.resolved(pos) !== walk(owner, eligible, pos)) bad++
  return bad
}

const SHARES: Array<[string, (i: number) => boolean]> = [
  ['all eligible', () => true],
  ['half', () => random() < 0.5],
  ['one in 100', () => random() < 0.01],
  ['one', i => i === 123],
  ['none', () => false],
]

for (const [label, on] of SHARES) {
  t.test(label, t => {
    const eligible = Uint8Array.from(ids, (_, i) => (on(i) ? 1 : 0))
    t.equal(eligible.includes(1), label !== 'none', 'the share is what it says')
    t.equal(mismatches(table.owner, eligible, new ResolvedTable(table, eligible, ids)), 0, 'every entry reads its first eligible owner, successor bit included')
    t.end()
  })
}

t.test('runs that wrap past the end, and an eligible upstream that owns no entry', t => {
  // Owners 0..3 over 10 entries; only owner 2 (entries 1 and 6) eligible, and owner 4 (eligible, no entry).
  const owner = Int32Array.from([0, 2, 1, 3, 0, 1, 2, 3, 1, 0])
  const small = { size: owner.length, owner, slot: (h: number) => h % owner.length }
  const eligible = Uint8Array.from([0, 0, 1, 0, 1])
  const placement = new ResolvedTable(small, eligible, ['a', 'b', 'c', 'd', 'e'])
  t.equal(placement.resolved(8), 2 * 2 + 1, 'entry 8 wraps round to owner 2 at entry 1')
  t.same(Array.from(owner, (_, p) => placement.resolved(p)), Array.from(owner, (_, p) => walk(owner, eligible, p)), 'every entry as the reference gives it')
  const orphan = new ResolvedTable(small, Uint8Array.from([0, 0, 0, 0, 1]), ['a', 'b', 'c', 'd', 'e'])
  t.equal(orphan.resolved(3), -1, 'only an upstream with no entry eligible: no owner, after one walk round the table')
  t.same(Array.from(owner, (_, p) => orphan.resolved(p)), Array(10).fill(-1), 'and no owner for any entry')
  t.end()
})
