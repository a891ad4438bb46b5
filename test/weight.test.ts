/**
 * balancer.setWeight(id, weight): a new snapshot at once, validated like the
 * `weight` of an upstream entry, announced as a 'weight' event.
 */
import t from 'tap'
import { consistentHash, createBalancer, roundRobin, type RouteRequest } from '@affinity/core'

const req = (user?: string): RouteRequest => ({ method: 'GET', url: '/', headers: user === undefined ? {} : { 'x-user': user }, ip: '127.0.0.1', cookies: {} })

function share (b: ReturnType<typeof createBalancer>, n: number): Record<string, number> {
  const out: Record<string, number> = {}
  for (let i = 0; i < n; i++) {
    const c = b.choose(req())
    if (c instanceof Promise) throw new Error('sync strategy')
    out[c.upstream!.id] = (out[c.upstream!.id] ?? 0) + 1
  }
  return out
}

t.test('round robin follows a new weight at once; the event says so', async t => {
  const b = createBalancer({ upstreams: [{ url: 'http://127.0.0.1:1', id: 'a' }, { url: 'http://127.0.0.1:2', id: 'b' }], strategy: roundRobin() })
  t.teardown(() => b.close())
  t.same(share(b, 100), { a: 50, b: 50 })
  const events: string[] = []
  b.on('weight', (u, reason) => events.push(`${u.id} ${u.weight} ${reason}`))
  t.equal(b.setWeight('a', 3).weight, 3)
  t.same(share(b, 100), { a: 75, b: 25 }, '3:1')
  t.same(events, ['a 3 weight 3'])
  b.setWeight('a', 3)
  t.same(events.length, 1, 'the same weight again: no change, no event')
  t.throws(() => b.setWeight('a', 0), { code: 'AFFINITY_ERR_INVALID_WEIGHT' })
  t.throws(() => b.setWeight('a', Number.NaN), { code: 'AFFINITY_ERR_INVALID_WEIGHT' })
  t.throws(() => b.setWeight('zz', 2), { code: 'AFFINITY_ERR_UNKNOWN_UPSTREAM' })
  t.equal(b.list().find(u => u.id === 'a')!.weight, 3, 'list() shows it')
})

t.test('consistent hashing: a heavier upstream only takes keys, a lighter one only gives them up', async t => {
  const b = createBalancer({ upstreams: ['a', 'b', 'c'].map((id, i) => ({ url: `http://127.0.0.1:${i + 1}`, id })), strategy: consistentHash({ key: { header: 'x-user' } }) })
  t.teardown(() => b.close())
  const map = (): string[] => Array.from({ length: 2000 }, (_, i) => {
    const c = b.choose(req(`user-${i}`))
    if (c instanceof Promise) throw new Error('sync strategy')
    return c.upstream!.id
  })
  const before = map()
  b.setWeight('b', 2)
  const heavier = map()
  const moved = before.flatMap((u, i) => (u !== heavier[i] ? [i] : []))
  t.ok(moved.length > 200 && moved.every(i => heavier[i] === 'b'), `only keys onto b moved (${moved.length})`)
  b.setWeight('b', 1)
  t.same(map(), before, 'back to weight 1: every key back')
})
