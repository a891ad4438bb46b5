/**
 * The first time a process reaches fleet scale with a hash strategy, the slicing
 * code is warmed up on a scratch fleet (strategies/hash-warm-up.ts): once per process
 * and kind of table, so this file runs in a process of its own (tap: one per file)
 * and builds each kind first here. Nothing of the scratch fleet may show.
 */
import t from 'tap'
import { consistentHash, createBalancer, ipHash, type Choice, type Strategy } from '@affinity/core'
import { urlOf } from './strategies/fixtures.js'

const idOf = (i: number): string => `10.0.${i >> 8}.${i & 255}:8080`

const CASES: Array<{ name: string, n: number, make: () => Strategy }> = [
  { name: 'consistentHash ring', n: 360, make: () => consistentHash({ key: { header: 'x-user' } }) },
  { name: 'consistentHash ring, bounded loads', n: 360, make: () => consistentHash({ key: { header: 'x-user' }, balanceFactor: 1.25 }) },
  { name: 'consistentHash maglev', n: 260, make: () => consistentHash({ key: { header: 'x-user' }, algorithm: 'maglev' }) },
  { name: 'ipHash', n: 360, make: () => ipHash() },
]

t.test('the warm-up leaves no trace: requests without a key reach every member and only them; stats list only them', async t => {
  for (const { name, n, make } of CASES) {
    const ids = Array.from({ length: n }, (_, i) => idOf(i))
    const b = createBalancer({ upstreams: ids.map(id => ({ id, url: urlOf(id) })), strategy: make(), passive: false })
    t.teardown(() => b.close())
    const seen = new Set<string>()
    let strays = 0
    for (let i = 0; i < 2 * n; i++) {
      const id = (b.choose({ method: 'GET', url: '/', headers: {}, ip: undefined, cookies: {} }) as Choice).upstream?.id
      if (id === undefined || !ids.includes(id)) strays++
      else seen.add(id)
    }
    t.equal(strays, 0, `${name}: no request without a key went elsewhere`)
    t.equal(seen.size, n, `${name}: the fallback rotates over every member`)
    t.same(b.stats().upstreams.map(u => u.id).sort(), [...ids].sort(), `${name}: stats list the members only`)
    const keyed = (b.choose({ method: 'GET', url: '/', headers: { 'x-user': 'someone' }, ip: '10.1.2.3', cookies: {} }) as Choice).upstream?.id
    t.ok(keyed !== undefined && ids.includes(keyed), `${name}: a keyed request goes to a member`)
  }
})
