/**
 * One conformance suite, run against every strategy from one table (Hono's
 * `runTest({ newRouter })`): each entry says what kind of strategy it is (sticky,
 * hashing, stateless…) and how to make a request for "user k"; the suite checks the
 * properties that apply to that kind. Strategy-specific behaviour (cookie format,
 * key rotation, IP folding, bounded loads, option validation) lives in one test
 * file per strategy (test/<strategy>.test.ts), which reuses the helpers here.
 *
 * Pure logic: no server is started and nothing is mocked. Upstreams are real
 * `Upstream` objects whose undici pools are never used (and closed on teardown);
 * health and membership changes are pushed to the strategy as fresh `Members`
 * snapshots, as the Balancer does.
 */
import type { Test } from 'tap'
import { Balancer, createBalancer, type Remap, type RemapEvent } from '@affinity/core'
import { specs, urlOf, Cluster, User, users, chooseOn, tally, FOUR, FIVE, type Entry, type Spec } from './fixtures.js'

export { TABLE } from './fixtures.js'

// ---------------------------------------------------------------------------
// The conformance suite
// ---------------------------------------------------------------------------

export function runConformance (t: Test, e: Entry): void {
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

  t.test('no upstreams at all: nothing picked, then the first one added takes every user', t => {
    const c = cluster(t, [])
    t.same(tally(keys(20).map(u => c.choose(u).upstream?.id)), { undefined: 20 }, 'nothing to pick from an empty membership')
    c.add('a')
    t.same(tally(keys(20).map(u => c.choose(u).upstream?.id)), { a: 20 }, 'the upstream added takes them')
    c.remove('a')
    t.same(tally(keys(20, 100).map(u => c.choose(u).upstream?.id)), { undefined: 20 }, 'and, removed again, nothing')
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

