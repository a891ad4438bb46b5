/**
 * A deferred remap (strategies/consistent-hash.ts, Maglev) looks its keys up by
 * walking a kept table from each key's slot (hashing/table.ts firstEligible), where
 * picks read a table whose every entry is resolved (resolveEligible). Both must
 * name the same owner for every key, whatever share of the upstreams is eligible:
 * all, most, a few (past the walk's limit it resolves the table itself), one, none.
 */
import t from 'tap'
import { firstEligible, Maglev, mulberry32, resolveEligible } from '@affinity/core/internal'

const ids = Array.from({ length: 300 }, (_, i) => `10.0.${i >> 8}.${i & 255}:8080`)
const table = new Maglev(ids, ids.map(() => 1), 65537)
const next = mulberry32(7) // uint32s
const keys = Array.from({ length: 20_000 }, () => next())
const random = (): number => next() / 2 ** 32

const SHARES: Array<[string, (i: number) => boolean]> = [
  ['all eligible', () => true],
  ['half', () => random() < 0.5],
  ['one in 100 (walks past the limit)', () => random() < 0.01],
  ['one', i => i === 123],
  ['none', () => false],
]

for (const [label, on] of SHARES) {
  t.test(label, t => {
    const eligible = Uint8Array.from(ids, (_, i) => (on(i) ? 1 : 0))
    const resolved = resolveEligible(table, eligible)
    const owner = firstEligible(table, eligible)
    const expected = keys.map(h => { const r = resolved[table.slot(h)]!; return r === -1 ? -1 : r >> 1 })
    const got = keys.map(h => owner(h))
    t.equal(got.filter((o, k) => o !== expected[k]).length, 0, 'every key has the owner the resolved table gives it')
    t.equal(eligible.filter(e => e === 1).length > 0, label !== 'none', 'the share is what it says')
    if (label === 'none') t.ok(got.every(o => o === -1), 'no owner when nothing is eligible')
    else t.ok(got.every(o => o !== -1 && eligible[o] === 1), 'each an eligible upstream')
    t.end()
  })
}
