/**
 * roundRobin: smooth weighted rotation (the properties every strategy shares are in
 * strategies.conformance.test.ts; helpers in test/strategies/conformance.ts).
 */
import t from 'tap'
import { roundRobin } from '@affinity/core'
import { specs, Cluster, User, entry, FOUR } from './strategies/fixtures.js'

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
