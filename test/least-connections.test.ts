/**
 * leastConnections: fewest in flight per unit of weight, ties rotated (the properties every strategy shares are in
 * strategies.conformance.test.ts; helpers in test/strategies/conformance.ts).
 */
import t from 'tap'
import { leastConnections } from '@affinity/core'
import { specs, Cluster, User, tally, entry, FOUR } from './strategies/fixtures.js'

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
