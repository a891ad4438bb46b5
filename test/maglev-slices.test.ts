/**
 * A Maglev table filled in slices (hashing/maglev.ts fill, stopped at a deadline and
 * resumed, mid-turn included) must be the table filled at once: every instance, and
 * every change applied in slices or within its call, places each key alike.
 */
import t from 'tap'
import { Maglev } from '@affinity/core/internal'

const ids = Array.from({ length: 1000 }, (_, i) => `10.0.${i >> 8}.${i & 255}:8080`)

/** A deadline that passes at every `every`-th look at the clock. */
function passingEvery (every: number): () => boolean {
  let looks = 0
  return () => ++looks % every === 0
}

for (const [label, weights] of [
  ['equal weights', ids.map(() => 1)],
  ['weights 1 to 5', ids.map((_, i) => 1 + (i % 5))],
] as const) {
  t.test(label, t => {
    const whole = new Maglev(ids, weights, 65537)
    for (const every of [1, 3]) {
      const deadline = passingEvery(every)
      const sliced = new Maglev(ids, weights, 65537, deadline)
      let slices = 1
      while (!sliced.fill(deadline)) slices++
      t.ok(slices > 50, `filled in ${slices} slices (a deadline passing at every ${every === 1 ? '' : `${every}rd `}look)`)
      t.same(sliced.owner, whole.owner, 'the same owner at every entry as the table filled at once')
    }
    t.end()
  })
}
