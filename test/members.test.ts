// Members snapshots: one per change, each answering for its own membership; a
// change that keeps the same upstreams (a drain, a health or weight change) shares the
// previous snapshot's order and id → position map instead of allocating them again.
import t from 'tap'
import { createBalancer, roundRobin } from '@affinity/core'

const fleet = (n: number) => Array.from({ length: n }, (_, i) => ({ url: `http://127.0.0.1:${9000 + i}`, id: `u${String(i).padStart(3, '0')}` }))

t.test('a drain or weight change shares all and index; an add or remove gets its own', async (t) => {
  const b = createBalancer({ upstreams: fleet(5), strategy: roundRobin() })
  t.teardown(() => b.close())
  const first = b.members
  b.drain('u002')
  const drained = b.members
  t.not(drained, first, 'a new snapshot')
  t.equal(drained.all, first.all, 'same upstreams, same order: shared')
  t.equal(drained.index, first.index)
  t.same(drained.eligible.map(u => u.id), ['u000', 'u001', 'u003', 'u004'], 'but its own eligibility')
  t.same(first.eligible.map(u => u.id), ['u000', 'u001', 'u002', 'u003', 'u004'], 'and the old snapshot keeps its own')
  b.setWeight('u001', 3)
  t.equal(b.members.index, first.index, 'a weight change shares them too')
  t.equal(b.members.weights[1], 3)

  b.add({ url: 'http://127.0.0.1:9100', id: 'u001a' })
  const added = b.members
  t.not(added.all, first.all, 'an add: a new order')
  t.same(added.all.map(u => u.id), ['u000', 'u001', 'u001a', 'u002', 'u003', 'u004'])
  for (const [id, i] of added.index) t.equal(added.all[i]!.id, id, `index of ${id} in its own snapshot`)
  for (const [id, i] of first.index) t.equal(first.all[i]!.id, id, `the old snapshot's index of ${id} unchanged`)
  t.equal(first.get('u001a'), undefined)

  b.remove('u000')
  t.not(b.members.index, added.index, 'a remove: a new map')
  t.equal(b.members.get('u000'), undefined)
  t.equal(b.members.get('u004')?.id, 'u004')
})
