// Section 1 of bench/strategies.js: how evenly ring and maglev share the key space (nginx ketama alongside).
import { crc32 } from 'node:zlib'
import { murmur3 } from '@affinity/core'
// White-box pieces, through the declared internal entry (not part of the public API).
import { DEFAULT_MAGLEV_SIZE, DEFAULT_VNODES, Maglev, Ring } from '@affinity/core/internal'
import { median, round } from '../numbers.js'
import { KEY_SEED, prng, randomKey, upstreamIds, ones, maxOf, maxOverMean, progress, lowerBound, ringShares, ringTable, ringPoints, ketama, table, f3 } from './shared.js'


const QUALITY_NS = [3, 10, 20, 50, 100]
const QUALITY_TARGETS = { ring: { 10: 1.05, 100: 1.10 }, maglev: { 3: 1.02, 10: 1.02, 20: 1.02, 50: 1.02, 100: 1.02 } }

export function makeKeys (count) {
  const r = prng(KEY_SEED)
  const murmur = new Uint32Array(count)
  const crc = new Uint32Array(count)
  for (let k = 0; k < count; k++) {
    const key = randomKey(r)
    murmur[k] = murmur3(key) // what consistentHash hashes: murmur3(key), seed 0
    crc[k] = crc32(key) // what nginx hashes
  }
  return { murmur, crc, count }
}

function verdict (median, worst, target) {
  if (target === undefined) return undefined
  if (worst <= target) return 'PASS'
  if (median <= target) return 'PASS (median; worst over)'
  return 'FAIL'
}

export function quality (opts, keys) {
  const K = keys.count
  const rows = []
  let ringMismatches = 0
  for (const n of QUALITY_NS) {
    // A perfect split of the same keys (hash mod N): the sampling noise floor, ≈ 1 + √(2 ln N · N/K).
    const mod = new Float64Array(n)
    for (let k = 0; k < K; k++) mod[keys.murmur[k] % n]++
    const floor = maxOverMean(mod)
    const per = { ring: { exact: [], sampled: [] }, maglev: { exact: [], sampled: [] }, ketama: { exact: [], sampled: [] } }
    for (let s = 0; s < opts.sets; s++) {
      const ids = upstreamIds(s, n)
      // ring
      const ring = ringTable(ids)
      const rp = ringPoints(ids, DEFAULT_VNODES, ring)
      ringMismatches += rp.mismatches
      per.ring.exact.push(maxOverMean(ringShares(rp.points, rp.owner, n)))
      const rc = new Float64Array(n)
      for (let k = 0; k < K; k++) rc[ring.ownerOf(keys.murmur[k])]++
      per.ring.sampled.push(maxOverMean(rc))
      // maglev
      const mag = new Maglev(ids, ones(n), DEFAULT_MAGLEV_SIZE)
      const me = new Float64Array(n)
      for (let p = 0; p < mag.size; p++) me[mag.owner[p]]++
      per.maglev.exact.push(maxOverMean(me))
      const mc = new Float64Array(n)
      for (let k = 0; k < K; k++) mc[mag.owner[mag.slot(keys.murmur[k])]]++
      per.maglev.sampled.push(maxOverMean(mc))
      // nginx ketama, for comparison
      const kt = ketama(ids)
      per.ketama.exact.push(maxOverMean(ringShares(kt.points, kt.owner, n)))
      const kc = new Float64Array(n)
      for (let k = 0; k < K; k++) kc[kt.owner[lowerBound(kt.points, keys.crc[k])]]++
      per.ketama.sampled.push(maxOverMean(kc))
    }
    for (const algo of ['ring', 'maglev', 'ketama']) {
      const e = per[algo].exact
      const sm = per[algo].sampled
      const target = QUALITY_TARGETS[algo]?.[n]
      rows.push({
        algorithm: algo === 'ketama' ? 'nginx ketama' : algo,
        n,
        params: algo === 'ring' ? `${DEFAULT_VNODES} vnodes` : algo === 'maglev' ? `M=${DEFAULT_MAGLEV_SIZE}` : '160 pts, crc32',
        exactMedian: round(median(e), 4),
        exactWorst: round(maxOf(e), 4),
        sampledMedian: round(median(sm), 4),
        sampledWorst: round(maxOf(sm), 4),
        noiseFloor: round(floor, 4),
        target,
        verdict: verdict(median(e), maxOf(e), target),
      })
    }
    progress(`quality N=${n} done`)
  }
  return { keys: K, sets: opts.sets, ringModelMismatches: ringMismatches, rows }
}

export function printQuality (q) {
  return table(
    `1. Hashing quality — busiest upstream's share ÷ mean (1.000 = perfect); median and worst over ${q.sets} id sets`,
    [
      { label: 'algorithm', key: 'algorithm', left: true },
      { label: 'N', key: 'n' },
      { label: 'params', key: 'params', left: true },
      { label: 'exact med', get: r => f3(r.exactMedian) },
      { label: 'exact worst', get: r => f3(r.exactWorst) },
      { label: `sampled med`, get: r => f3(r.sampledMedian) },
      { label: 'sampled worst', get: r => f3(r.sampledWorst) },
      { label: 'noise floor', get: r => f3(r.noiseFloor) },
      { label: 'target', get: r => (r.target === undefined ? undefined : `≤ ${r.target.toFixed(2)}`) },
      { label: 'verdict (exact)', key: 'verdict', left: true },
    ],
    q.rows,
    [
      '',
      `exact   = key-space share: ring arcs ÷ 2^32, maglev entries ÷ table size (ketama: its own arcs).`,
      `sampled = count over ${q.keys.toLocaleString('en-US')} random 16-hex keys (seed 0x${KEY_SEED.toString(16)}); its relative σ ≈ √(N/K), so`,
      `          even a perfect split reads above 1: "noise floor" = hash mod N over the same keys.`,
      `ids     = http://10.0.<s>.<i>:8080, s = 0…${q.sets - 1}, i = 1…N. Verdicts use the exact share (worst over sets).`,
      `reference: nginx ketama ≈1.13–1.26 (shared/research, Python simulation); measured here in the "nginx ketama" rows.`,
      `ring model check: recomputed points vs the built Ring — ${q.ringModelMismatches} mismatches.`,
    ],
  )
}
