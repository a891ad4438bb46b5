// Section 4 of bench/strategies.js: table construction time, one membership change, and memory.
import { consistentHash, Members } from '@affinity/core'
// White-box pieces, through the declared internal entry (not part of the public API).
import { DEFAULT_MAGLEV_SIZE, Maglev, ResolvedTable } from '@affinity/core/internal'
import { median, round } from '../numbers.js'
import { upstreamIds, ones, nowNs, msSince, progress, ringTable, table } from './shared.js'


function timeMs (fn, runs) {
  fn() // warm-up
  const xs = []
  for (let i = 0; i < runs; i++) { const t0 = nowNs(); fn(); xs.push(msSince(t0)) }
  return median(xs)
}

/**
 * A Maglev table filled as in slices, with a deadline that records how long the work
 * ran between two looks at the clock and never stops it: the most a slice can run past
 * its deadline. The stretch before the first look (the constructor's share, within a
 * change's call) apart. Max over `runs` tables of new ids.
 */
function fillOverrun (n, runs) {
  let first = 0
  let between = 0
  for (let r = 0; r < runs; r++) {
    const ids = upstreamIds((r + 1) * n, n)
    const t0 = nowNs()
    let last = t0
    let looks = 0
    new Maglev(ids, ones(n), DEFAULT_MAGLEV_SIZE, () => {
      const t = nowNs()
      const ms = Number(t - last) / 1e6
      last = t
      if (looks++ === 0) first = Math.max(first, ms)
      else between = Math.max(between, ms)
      return false
    })
  }
  return { first: round(first, 3), between: round(between, 3) }
}

export function build () {
  const rows = []
  for (const n of [10, 100, 1000]) {
    const ids = upstreamIds(0, n)
    const w = ones(n)
    const upstreams = ids.map(id => ({ id, weight: 1, state: 'up' }))
    const mask = new Uint8Array(n).fill(1)
    const ring = ringTable(ids)
    const mag = new Maglev(ids, w, DEFAULT_MAGLEV_SIZE)
    const runs = n === 1000 ? 3 : n === 100 ? 7 : 15
    // Full membership cost as the strategy pays it on its first snapshot, and for one
    // change after it: an upstream added, then removed again (the ring applies the
    // difference; a Maglev table is rebuilt).
    const update = (algorithm) => () => consistentHash({ key: { header: 'x' }, algorithm }).update(new Members(upstreams, 0))
    const change = (algorithm) => {
      const s = consistentHash({ key: { header: 'x' }, algorithm })
      const base = new Members(upstreams, 0)
      const more = new Members([...upstreams, { id: 'http://10.9.9.9:8080', weight: 1, state: 'up' }], 1)
      s.update(base)
      let flip = false
      return () => { flip = !flip; s.update(flip ? more : base) }
    }
    rows.push({
      algorithm: 'ring',
      n,
      entries: ring.size,
      buildMs: round(timeMs(() => ringTable(ids), runs), 3),
      resolveMs: undefined,
      updateMs: round(timeMs(update('ring'), runs), 3),
      changeMs: round(timeMs(change('ring'), 15), 3),
      bytes: ring.bytes,
      memoryNote: 'chunks of 65,536 × 12 B (point + owner + successor), bucket regions with room to grow; 16 B per bucket',
    })
    rows.push({
      algorithm: 'maglev',
      n,
      entries: mag.size,
      buildMs: round(timeMs(() => new Maglev(ids, w, DEFAULT_MAGLEV_SIZE), runs), 3),
      // Every entry resolved, on a fresh placement: what picks and remaps resolve lazily, spread over their reads.
      resolveMs: round(timeMs(() => { const p = new ResolvedTable(mag, mask, ids); for (let i = 0; i < p.size; i++) p.resolved(i) }, runs), 3),
      overrun: fillOverrun(n, 10),
      updateMs: round(timeMs(update('maglev'), runs), 3),
      changeMs: round(timeMs(change('maglev'), 15), 3),
      bytes: mag.size * 8,
      memoryNote: 'entries × 8 B (owner + successor)',
    })
    progress(`build N=${n} done`)
  }
  return { rows }
}

export function printBuild (b) {
  const kib = (x) => (x >= 1024 * 1024 ? `${(x / 2 ** 20).toFixed(2)} MiB` : `${(x / 1024).toFixed(0)} KiB`)
  return table(
    '4. Build cost — first membership, and one change after it (median of runs after a warm-up)',
    [
      { label: 'algorithm', key: 'algorithm', left: true },
      { label: 'N', key: 'n' },
      { label: 'entries', get: r => r.entries.toLocaleString('en-US') },
      { label: 'build ms', get: r => r.buildMs.toFixed(2) },
      { label: 'successors ms', get: r => r.resolveMs?.toFixed(2) },
      { label: 'fill overrun ms: first / then', get: r => (r.overrun === undefined ? undefined : `${r.overrun.first.toFixed(2)} / ${r.overrun.between.toFixed(2)}`) },
      { label: 'strategy.update ms', get: r => r.updateMs.toFixed(2) },
      { label: 'one change ms', get: r => r.changeMs.toFixed(2) },
      { label: 'memory', get: r => kib(r.bytes) },
      { label: 'memory model', key: 'memoryNote', left: true },
    ],
    b.rows,
    [
      '',
      'build = a Ring synced to N upstreams from empty (successors included) / new Maglev; successors = every entry of a new Maglev',
      'placement resolved (picks resolve them lazily); fill overrun = a Maglev table filled as in slices (10 of them, new ids): the',
      "longest stretch of work before the first look at the clock (the constructor's share, in a change's call) / between two looks",
      '(the most a slice runs past its deadline);',
      'strategy.update = consistentHash(...).update(new Members(...)) on a new strategy; one change = update() of a strategy already',
      'holding N upstreams to N + 1 and back, alternately (ring: the difference applied; maglev: table rebuilt, successors resolved).',
    ],
  )
}
