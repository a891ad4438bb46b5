// Strategy benchmark for @affinity/core (the BUILT package: run `tsc -b` first, or
// `npm run bench:strategies`). Measures, on this machine:
//   1. quality   busiest upstream's share ÷ mean: exact key-space share and a 1M-key sample
//                (ring, maglev; nginx ketama measured alongside for comparison)
//   2. movement  keys that change upstream when one upstream is removed / added
//                (ring, maglev: the hash tables directly; ipHash: through a real Balancer)
//   3. pick      ns per balancer.choose(req) at N = 100, each case in its own process
//   4. build     ring / maglev construction time, one membership change, and memory
// Usage: node bench/strategies.js [--json] [--only quality,movement,pick,build]
//          [--case ring,maglev,...] [--keys 1000000] [--sets 10] [--no-isolate]
//   --json        print the results as JSON on stdout (progress goes to stderr)
//   --case        pick cases to run (see PICK_CASES), e.g. --only pick --case ring,ipHash-v4
//   --no-isolate  run the pick cases in this process instead of one child process each
// Profiling: node --cpu-prof --cpu-prof-dir=/tmp/prof bench/strategies.js --only pick --case ring
//   (children inherit execArgv, so each pick case writes its own .cpuprofile).
// Figures are printed, never asserted: a missed target is reported, the exit code stays 0.
import { fork } from 'node:child_process'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { crc32 } from 'node:zlib'
import {
  consistentHash, createBalancer, ipHash, leastConnections, Members, murmur3,
  roundRobin, stickyCookie, stickyIp,
} from '@affinity/core'
// White-box pieces, through the declared internal entry (not part of the public API).
import { DEFAULT_MAGLEV_SIZE, DEFAULT_VNODES, hex8, Maglev, mulberry32, resolveEligible, Ring } from '@affinity/core/internal'
import { median, round } from './numbers.js'
import { die as dieWith, list, parseArgs as parseWith } from './args.js'
import { machine as describeMachine, machineLines } from './machine.js'

const SELF = fileURLToPath(import.meta.url)
const SECTIONS = ['quality', 'movement', 'pick', 'build']
const TWO32 = 2 ** 32
const KEY_SEED = 0x5eed0001
const IP_SEED = 0x5eed0002
const PICK_SEED = 0x5eed0003
const MOVE_SEED = 0x5eed0004

// ───────────────────────────── arguments ─────────────────────────────

function parseArgs (argv) {
  const o = parseWith(argv, {
    script: 'bench/strategies.js',
    defaults: { json: false, only: SECTIONS, cases: undefined, keys: 1_000_000, sets: 10, isolate: true, worker: undefined },
    flags: { '--json': o => { o.json = true }, '--no-isolate': o => { o.isolate = false } },
    values: {
      '--only': (o, v) => { o.only = list(v) },
      '--case': (o, v) => { o.cases = list(v) },
      '--keys': (o, v) => { o.keys = Number(v) },
      '--sets': (o, v) => { o.sets = Number(v) },
      '--pick-worker': (o, v) => { o.worker = v },
    },
    help: 'node bench/strategies.js [--json] [--only quality,movement,pick,build] [--case <pick cases>] [--keys N] [--sets N] [--no-isolate]',
  })
  for (const s of o.only) if (!SECTIONS.includes(s)) die(`--only: unknown section ${s} (${SECTIONS.join(', ')})`)
  for (const n of o.cases ?? []) if (!PICK_CASES.some(c => c.name === n)) die(`--case: unknown case ${n} (${PICK_CASES.map(c => c.name).join(', ')})`)
  if (!Number.isInteger(o.keys) || o.keys < 1000) die('--keys: expected an integer ≥ 1000')
  if (!Number.isInteger(o.sets) || o.sets < 1) die('--sets: expected an integer ≥ 1')
  return o
}

const die = (msg) => dieWith('bench/strategies.js', msg)

// ───────────────────────────── helpers ─────────────────────────────

/** mulberry32 (the simulator's): a small seeded PRNG, so every run draws the same keys. */
const prng = mulberry32
/**
 * A flat (sequential) copy of a string, as Node's HTTP parser and socket hand them
 * over: concatenation makes rope (cons) strings, which make charCodeAt-heavy code
 * such as murmur3 look slower than it is on real requests.
 */
const flat = (s) => Buffer.from(s, 'latin1').toString('latin1')
const randomKey = (r) => flat(hex8(r()) + hex8(r())) // 16 hex chars
const randomIpv4 = (r) => { const v = r(); return flat(`${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`) }
const randomIpv6 = (r) => {
  const w = [0x2a02]
  for (let i = 1; i < 8; i++) w.push(r() & 0xffff)
  return flat(w.map(x => x.toString(16)).join(':'))
}

/** Upstream ids of id set `s`, sorted as Members sorts them (the order tables are built in). */
function upstreamIds (s, n, first = 1) {
  const ids = []
  for (let i = first; i < first + n; i++) ids.push(`http://10.0.${s}.${i}:8080`)
  return ids.sort(byId)
}
const byId = (a, b) => (a < b ? -1 : a > b ? 1 : 0)
const ones = (n) => new Array(n).fill(1)

const maxOf = (xs) => xs.reduce((m, x) => (x > m ? x : m), -Infinity)
const minOf = (xs) => xs.reduce((m, x) => (x < m ? x : m), Infinity)
const maxOverMean = (counts) => { let s = 0; for (const c of counts) s += c; return maxOf(counts) / (s / counts.length) }
const nowNs = () => process.hrtime.bigint()
const msSince = (t0) => Number(process.hrtime.bigint() - t0) / 1e6

const progress = (msg) => process.stderr.write(`  … ${msg}\n`)

/** Lower bound over sorted points, wrapping: the lookup ring.ts and nginx's chash both do. */
function lowerBound (points, h) {
  let lo = 0
  let hi = points.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (points[mid] < h) lo = mid + 1
    else hi = mid
  }
  return lo === points.length ? 0 : lo
}

/**
 * Exact key-space share per owner of a sorted ring: position k owns the hashes in
 * (points[k-1], points[k]]; position 0 also owns everything past the last point.
 */
function ringShares (points, owner, n) {
  const share = new Float64Array(n)
  const last = points.length - 1
  share[owner[0]] += points[0] + 1 + (TWO32 - 1 - points[last])
  for (let k = 1; k <= last; k++) share[owner[k]] += points[k] - points[k - 1]
  return share
}

/**
 * What the sections read of a table: `ownerOf(hash)`, an index into `ids` (sorted, all
 * eligible). The Ring is kept up to date by sync() (as ConsistentHash does); a Maglev
 * table is built whole.
 */
function ringTable (ids, weights = ones(ids.length)) {
  const ring = new Ring(DEFAULT_VNODES)
  ring.sync(ids.map((id, i) => ({ id, weight: weights[i], index: i })), new Uint8Array(ids.length).fill(1))
  return { ring, size: ring.size, bytes: ring.bytes, ownerOf: (h) => ring.owners[ring.resolved(ring.slot(h)) >> 1].index }
}
function maglevTable (ids, weights = ones(ids.length)) {
  const mag = new Maglev(ids, weights, DEFAULT_MAGLEV_SIZE)
  return { mag, size: mag.size, owner: mag.owner, ownerOf: (h) => mag.owner[mag.slot(h)] }
}

/**
 * The ring's points, recomputed from the documented rule (murmur3(id, seed = j),
 * ties broken by id order), then checked against the real Ring: the same points and
 * owners in ring order (Ring.snapshot), and ring.slot(point) lands on that point and
 * its owner. The Ring keeps its points private, so this is how the bench gets the arc
 * lengths.
 */
function ringPoints (ids, vnodes, t) {
  const packed = new Float64Array(ids.length * vnodes)
  let m = 0
  for (let i = 0; i < ids.length; i++) for (let j = 0; j < vnodes; j++) packed[m++] = murmur3(ids[i], j) * 1048576 + i
  packed.sort()
  const points = new Uint32Array(m)
  const owner = new Int32Array(m)
  for (let k = 0; k < m; k++) { const p = Math.floor(packed[k] / 1048576); points[k] = p; owner[k] = packed[k] - p * 1048576 }
  let mismatches = 0
  const { ring } = t
  const snap = ring.snapshot()
  if (snap.points.length !== m) mismatches++
  for (let k = 0; k < m; k++) {
    if (snap.points[k] !== points[k] || snap.owners[k] !== ids[owner[k]]) mismatches++
    if (k === 0 || points[k] !== points[k - 1]) {
      const pos = ring.slot(points[k])
      if (ring.point(pos) !== points[k] || ring.idOf(ring.owner(pos)) !== ids[owner[k]]) mismatches++
    }
  }
  return { points, owner, mismatches }
}

/** nginx `hash … consistent` (ketama): 160 points per unit of weight, crc32, duplicates dropped. */
function ketama (ids) {
  const pts = []
  const prev = Buffer.alloc(4)
  for (let i = 0; i < ids.length; i++) {
    const u = new URL(ids[i])
    const base = crc32(Buffer.concat([Buffer.from(u.hostname), Buffer.from([0]), Buffer.from(u.port)]))
    let p = 0
    for (let j = 0; j < 160; j++) {
      prev.writeUInt32LE(p, 0)
      p = crc32(prev, base) // crc32(host ‖ '\0' ‖ port ‖ prev_hash_LE)
      pts.push([p, i])
    }
  }
  pts.sort((a, b) => a[0] - b[0] || a[1] - b[1])
  const uniq = pts.filter((x, k) => k === 0 || x[0] !== pts[k - 1][0])
  return { points: Uint32Array.from(uniq, x => x[0]), owner: Int32Array.from(uniq, x => x[1]) }
}

// ───────────────────────────── formatting ─────────────────────────────

function table (title, cols, rows, notes = []) {
  const cells = rows.map(r => cols.map(c => {
    const v = typeof c.get === 'function' ? c.get(r) : r[c.key]
    return v === undefined || v === null ? '—' : String(v)
  }))
  const widths = cols.map((c, i) => Math.max(c.label.length, ...cells.map(r => r[i].length)))
  const line = (vals) => vals.map((v, i) => (cols[i].left ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ').trimEnd()
  const out = [title, '', line(cols.map(c => c.label)), widths.map(w => '─'.repeat(w)).join('  ')]
  for (const r of cells) out.push(line(r))
  for (const n of notes) out.push(n)
  return out.join('\n') + '\n'
}
const f3 = (x) => (x === undefined ? undefined : x.toFixed(3))
const f1 = (x) => (x === undefined ? undefined : x.toFixed(1))
const pct = (x, d = 2) => (x === undefined ? undefined : `${(x * 100).toFixed(d)}%`)

// ───────────────────────────── 1. quality ─────────────────────────────

const QUALITY_NS = [3, 10, 20, 50, 100]
const QUALITY_TARGETS = { ring: { 10: 1.05, 100: 1.10 }, maglev: { 3: 1.02, 10: 1.02, 20: 1.02, 50: 1.02, 100: 1.02 } }

function makeKeys (count) {
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

function quality (opts, keys) {
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

function printQuality (q) {
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

// ───────────────────────────── 2. movement ─────────────────────────────

const MOVE_NS = [10, 100]
const MOVE_SETS = 5
const IPHASH_SETS = 3

/** Owner (an index into `universe`) of every key under a table built from `ids`. */
function ownersOf (table, ids, universe, hashes) {
  const map = Int32Array.from(ids, id => universe.indexOf(id))
  const out = new Int32Array(hashes.length)
  for (let k = 0; k < hashes.length; k++) out[k] = map[table.ownerOf(hashes[k])]
  return out
}

function compare (before, after, removed, added) {
  let moved = 0
  let unnecessary = 0
  let onRemoved = 0
  for (let k = 0; k < before.length; k++) {
    const b = before[k]
    const a = after[k]
    if (b === removed) onRemoved++
    if (a === b) continue
    moved++
    // A necessary move: off the removed upstream, or onto the added one.
    if (b !== removed && a !== added) unnecessary++
  }
  return { moved, unnecessary, onRemoved }
}

function movementRow (algo, n, op, K, results) {
  const ideal = op === 'remove' ? 1 / n : 1 / (n + 1)
  const fr = results.map(r => r.moved / K)
  const ratios = fr.map(f => f / ideal)
  const mean = fr.reduce((s, x) => s + x, 0) / fr.length
  const ratio = mean / ideal
  const target = algo === 'maglev' ? undefined : [0.95, 1.05]
  const unnecessary = results.reduce((s, r) => s + r.unnecessary, 0)
  return {
    algorithm: algo,
    n,
    change: op === 'remove' ? `${n} → ${n - 1}` : `${n} → ${n + 1}`,
    sets: results.length,
    moved: round(mean, 5),
    ideal: round(ideal, 5),
    ratio: round(ratio, 4),
    ratioMin: round(minOf(ratios), 4),
    ratioMax: round(maxOf(ratios), 4),
    unnecessary,
    unnecessaryShare: round(unnecessary / (K * results.length), 5),
    target,
    verdict: target === undefined
      ? 'report only'
      : (ratio >= target[0] && ratio <= target[1] ? 'PASS' : 'FAIL') + (unnecessary === 0 ? '' : ', unnecessary moves'),
  }
}

function movementTables (keys) {
  const K = keys.count
  const rows = []
  const pickRemoved = prng(MOVE_SEED)
  for (const algo of ['ring', 'maglev']) {
    const build = algo === 'ring' ? ringTable : maglevTable
    for (const n of MOVE_NS) {
      const rem = []
      const add = []
      for (let s = 0; s < MOVE_SETS; s++) {
        const ids = upstreamIds(s, n)
        const extra = `http://10.0.${s}.${n + 1}:8080`
        const universe = [...ids, extra]
        const before = ownersOf(build(ids), ids, universe, keys.murmur)
        const gone = ids[pickRemoved() % n]
        const less = ids.filter(id => id !== gone)
        rem.push(compare(before, ownersOf(build(less), less, universe, keys.murmur), universe.indexOf(gone), -1))
        const more = [...ids, extra].sort(byId)
        add.push(compare(before, ownersOf(build(more), more, universe, keys.murmur), -1, universe.indexOf(extra)))
      }
      rows.push(movementRow(algo, n, 'remove', K, rem), movementRow(algo, n, 'add', K, add))
      progress(`movement ${algo} N=${n} done`)
    }
  }
  return rows
}

/** ipHash through a real Balancer: choose() for every key, then remove / add an upstream. */
async function movementIpHash (K) {
  const r = prng(IP_SEED)
  const ips = new Array(K)
  for (let k = 0; k < K; k++) ips[k] = randomIpv4(r)
  const pickRemoved = prng(MOVE_SEED + 1)
  const req = { method: 'GET', url: '/', headers: {}, ip: '', cookies: {} }
  const rows = []
  for (const n of MOVE_NS) {
    const rem = []
    const add = []
    for (let s = 0; s < IPHASH_SETS; s++) {
      const ids = upstreamIds(s, n)
      const extra = `http://10.0.${s}.${n + 1}:8080`
      const universe = new Map([...ids, extra].map((id, i) => [id, i]))
      const balancer = createBalancer({ upstreams: ids, strategy: ipHash() })
      const assign = () => {
        const out = new Int32Array(K)
        for (let k = 0; k < K; k++) {
          req.ip = ips[k]
          const u = balancer.choose(req).upstream
          out[k] = u === undefined ? -1 : universe.get(u.id)
        }
        return out
      }
      const before = assign()
      const gone = ids[pickRemoved() % n]
      balancer.remove(gone)
      rem.push(compare(before, assign(), universe.get(gone), -1))
      balancer.add(gone)
      balancer.add(extra)
      add.push(compare(before, assign(), -1, universe.get(extra)))
      await balancer.close()
    }
    rows.push(movementRow('ipHash', n, 'remove', K, rem), movementRow('ipHash', n, 'add', K, add))
    progress(`movement ipHash N=${n} done`)
  }
  return rows
}

/** The strategy (consistentHash through a Balancer) must agree with the table the bench measures. */
async function agreement () {
  let checked = 0
  let mismatches = 0
  for (const algorithm of ['ring', 'maglev']) {
    const ids = upstreamIds(0, 100)
    const table = algorithm === 'ring' ? ringTable(ids) : maglevTable(ids)
    const balancer = createBalancer({ upstreams: ids, strategy: consistentHash({ key: { header: 'x-key' }, algorithm }) })
    const r = prng(KEY_SEED)
    for (let k = 0; k < 20_000; k++) {
      const key = randomKey(r)
      const want = ids[table.ownerOf(murmur3(key))]
      const got = balancer.choose({ method: 'GET', url: '/', headers: { 'x-key': key }, ip: undefined, cookies: {} }).upstream?.id
      checked++
      if (got !== want) mismatches++
    }
    await balancer.close()
  }
  return { checked, mismatches }
}

async function movement (keys) {
  const rows = movementTables(keys)
  rows.push(...await movementIpHash(keys.count))
  return { keys: keys.count, agreement: await agreement(), rows }
}

function printMovement (m) {
  return table(
    '2. Movement — share of keys that change upstream when one upstream is removed / added',
    [
      { label: 'algorithm', key: 'algorithm', left: true },
      { label: 'change', key: 'change' },
      { label: 'sets', key: 'sets' },
      { label: 'moved', get: r => pct(r.moved, 3) },
      { label: 'ideal', get: r => pct(r.ideal, 3) },
      { label: 'ratio', get: r => f3(r.ratio) },
      { label: 'ratio range', get: r => `${f3(r.ratioMin)}–${f3(r.ratioMax)}` },
      { label: 'unnecessary', get: r => `${r.unnecessary} (${pct(r.unnecessaryShare, 2)})` },
      { label: 'target', get: r => (r.target ? `${r.target[0].toFixed(2)}–${r.target[1].toFixed(2)}` : undefined) },
      { label: 'verdict', key: 'verdict', left: true },
    ],
    m.rows,
    [
      '',
      `keys: ${m.keys.toLocaleString('en-US')} random 16-hex keys (ring, maglev: Ring/Maglev tables directly) or random IPv4 (ipHash: createBalancer + ipHash(),`,
      `      balancer.remove() / balancer.add(), every key through balancer.choose()). ideal = 1/N on removal, 1/(N+1) on addition.`,
      `ratio = mean moved ÷ ideal over the sets (range = per set; a single set also carries the removed/added node's own share deviation).`,
      `unnecessary = keys that moved although they were not on the removed upstream and did not go to the added one (summed over sets).`,
      `strategy vs table check: consistentHash via balancer.choose() agrees with the Ring/Maglev table on ${m.agreement.checked - m.agreement.mismatches}/${m.agreement.checked} keys.`,
    ],
  )
}

// ───────────────────────────── 3. pick cost ─────────────────────────────

const PICK_N = 100
const POOL = 10_000
const ROUNDS = 5
const ROUND_NS = 300e6 // aim for ≈ 0.3 s per round
const MAX_ITERS = 2_000_000
const MIN_ITERS = 20_000
const SECRET = 'bench-secret-0123456789abcdef-0123456789abcdef'
const WARM_COOKIES = 4_000

const PICK_CASES = [
  { name: 'ring', label: 'consistentHash ring (header)', target: 150, strategy: () => consistentHash({ key: { header: 'x-user-id' } }), req: r => ({ headers: { 'x-user-id': randomKey(r) } }) },
  { name: 'maglev', label: 'consistentHash maglev (header)', target: 150, strategy: () => consistentHash({ key: { header: 'x-user-id' }, algorithm: 'maglev' }), req: r => ({ headers: { 'x-user-id': randomKey(r) } }) },
  { name: 'ipHash-v4', label: 'ipHash IPv4', target: 150, strategy: () => ipHash(), req: r => ({ ip: randomIpv4(r) }) },
  { name: 'ipHash-v6', label: 'ipHash IPv6 (/64)', target: 150, strategy: () => ipHash(), req: r => ({ ip: randomIpv6(r) }) },
  { name: 'roundRobin', label: 'roundRobin', strategy: () => roundRobin(), req: r => ({ ip: randomIpv4(r) }) },
  { name: 'leastConnections', label: "leastConnections full scan (choices: 'all', all idle)", strategy: () => leastConnections({ choices: 'all' }), req: r => ({ ip: randomIpv4(r) }) },
  { name: 'leastConnections-p2c', label: 'leastConnections two choices (choices: 2, all idle)', target: 100, strategy: () => leastConnections({ choices: 2, seed: PICK_SEED }), req: r => ({ ip: randomIpv4(r) }) },
  { name: 'stickyIp', label: 'stickyIp, memory store, hits', strategy: () => stickyIp(), req: r => ({ ip: randomIpv4(r) }) },
  { name: 'cookie-warm', label: `stickyCookie verify, warm (cached)`, target: 2000, cookie: 'valid', strategy: () => stickyCookie({ secret: SECRET, maxAge: 86400 }) },
  { name: 'cookie-cold', label: 'stickyCookie verify, cold (cacheSize 0)', target: 2000, cookie: 'valid', strategy: () => stickyCookie({ secret: SECRET, maxAge: 86400, cacheSize: 0 }) },
  { name: 'cookie-issue', label: 'stickyCookie issue (new user)', cookie: 'none', strategy: () => stickyCookie({ secret: SECRET, maxAge: 86400 }) },
  // Extra rows (no target): how two costs above scale.
  { name: 'ring-N10', extra: true, n: 10, label: 'extra: consistentHash ring, N = 10', strategy: () => consistentHash({ key: { header: 'x-user-id' } }), req: r => ({ headers: { 'x-user-id': randomKey(r) } }) },
  { name: 'stickyIp-1k', extra: true, pool: 1_000, label: 'extra: stickyIp hits, 1,000 clients', strategy: () => stickyIp(), req: r => ({ ip: randomIpv4(r) }) },
]

function baseRequest (extra) {
  return { method: 'GET', url: '/', headers: {}, ip: undefined, cookies: {}, ...extra }
}

/** The timed loop: pre-built requests cycled through, nothing built per pick. */
function pickLoop (balancer, reqs, iterations) {
  let misses = 0
  let j = 0
  const m = reqs.length
  for (let i = 0; i < iterations; i++) {
    const choice = balancer.choose(reqs[j])
    if (choice.upstream === undefined) misses++
    if (++j === m) j = 0
  }
  return misses
}

async function runPickCase (name) {
  const c = PICK_CASES.find(x => x.name === name)
  if (c === undefined) throw new Error(`unknown pick case ${name}`)
  const r = prng(PICK_SEED)
  const n = c.n ?? PICK_N
  const pool = c.pool ?? POOL
  const balancer = createBalancer({ upstreams: upstreamIds(0, n), strategy: c.strategy() })
  let reqs
  if (c.cookie === undefined) {
    reqs = Array.from({ length: pool }, () => baseRequest(c.req(r)))
  } else if (c.cookie === 'none') {
    reqs = Array.from({ length: pool }, () => baseRequest({ ip: randomIpv4(r) }))
  } else {
    // Valid cookies, issued by this balancer to new users, then replayed.
    const tokens = []
    for (let i = 0; i < WARM_COOKIES; i++) {
      const set = balancer.choose(baseRequest({ ip: randomIpv4(r) })).setCookie
      tokens.push(flat(set.slice(set.indexOf('=') + 1, set.indexOf(';'))))
    }
    reqs = Array.from({ length: pool }, (_, i) => baseRequest({ ip: randomIpv4(r), cookies: { affinity: tokens[i % WARM_COOKIES] } }))
  }
  // Warm-up: at least two passes over the pool (binds stick entries, fills the cookie
  // cache) and ≈ 0.3 s of picks so the loop is optimised before it is timed.
  let t0 = nowNs()
  let warm = 0
  while (warm < 2 * pool || msSince(t0) < 300) { pickLoop(balancer, reqs, pool); warm += pool }
  const perOp = Number(nowNs() - t0) / warm
  const iterations = Math.max(MIN_ITERS, Math.min(MAX_ITERS, Math.round(ROUND_NS / perOp / pool) * pool || pool))
  const samples = []
  let misses = 0
  for (let k = 0; k < ROUNDS; k++) {
    t0 = nowNs()
    misses += pickLoop(balancer, reqs, iterations)
    samples.push(Number(nowNs() - t0) / iterations)
  }
  // What the timed picks did, from one more pass over the pool.
  const reasons = {}
  let setCookies = 0
  for (const req of reqs) {
    const ch = balancer.choose(req)
    reasons[ch.reason] = (reasons[ch.reason] ?? 0) + 1
    if (ch.setCookie !== undefined) setCookies++
  }
  await balancer.close()
  const med = median(samples)
  return {
    case: c.name,
    label: c.label,
    n,
    pool,
    iterations,
    rounds: ROUNDS,
    nsMedian: round(med, 1),
    nsMin: round(minOf(samples), 1),
    nsMax: round(maxOf(samples), 1),
    target: c.target,
    verdict: c.target === undefined ? undefined : med <= c.target ? 'PASS' : 'FAIL',
    misses,
    reasons,
    setCookieShare: round(setCookies / reqs.length, 4),
  }
}

const PROCESSES = 3

function runIsolated (name) {
  return new Promise((resolve, reject) => {
    // execArgv is inherited, so `node --cpu-prof bench/strategies.js --only pick` profiles each case.
    const child = fork(SELF, ['--pick-worker', name], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
    let result
    child.on('message', (m) => { result = m })
    child.on('error', reject)
    child.on('exit', (code) => (result?.error ? reject(new Error(result.error)) : result && code === 0 ? resolve(result) : reject(new Error(`pick worker ${name} exited with ${code}`))))
  })
}

async function pick (opts) {
  const cases = PICK_CASES.filter(c => opts.cases === undefined || opts.cases.includes(c.name))
  const rows = []
  // On a shared VM one process can land on a slow core or a cold cache for its whole
  // life, so each case runs in PROCESSES fresh processes and the median process counts.
  for (const c of cases) {
    const runs = []
    for (let i = 0; i < (opts.isolate ? PROCESSES : 1); i++) runs.push(opts.isolate ? await runIsolated(c.name) : await runPickCase(c.name))
    runs.sort((a, b) => a.nsMedian - b.nsMedian)
    const mid = runs[runs.length >> 1]
    rows.push({ ...mid, nsProcesses: runs.map(r => r.nsMedian) })
    progress(`pick ${c.name}: ${mid.nsMedian} ns (processes: ${runs.map(r => r.nsMedian).join(', ')})`)
  }
  return { n: PICK_N, pool: POOL, rounds: ROUNDS, processes: opts.isolate ? PROCESSES : 1, isolated: opts.isolate, rows }
}

function printPick (p) {
  const reasons = (r) => Object.entries(r.reasons).map(([k, v]) => `${k} ${Math.round((v / r.pool) * 100)}%`).join(', ') +
    (r.setCookieShare > 0 ? `; Set-Cookie ${Math.round(r.setCookieShare * 100)}%` : '') + (r.misses > 0 ? `; ${r.misses} undefined!` : '')
  return table(
    `3. Pick cost — ns per balancer.choose(req), median of ${p.rounds} rounds, median of ${p.processes} processes`,
    [
      { label: 'case', key: 'label', left: true },
      { label: 'N', key: 'n' },
      { label: 'requests', get: r => r.pool.toLocaleString('en-US') },
      { label: 'picks/round', get: r => r.iterations.toLocaleString('en-US') },
      { label: 'ns/pick', get: r => f1(r.nsMedian) },
      { label: 'per process', get: r => (r.nsProcesses ?? [r.nsMedian]).map(f1).join(' · ') },
      { label: 'target', get: r => (r.target === undefined ? undefined : `≤ ${r.target} ns`) },
      { label: 'verdict', key: 'verdict', left: true },
      { label: 'what the picks did', get: reasons, left: true },
    ],
    p.rows,
    [
      '',
      `requests = distinct pre-built RouteRequests cycled through (flat strings, as from the HTTP parser); the cost includes Choice allocation,`,
      `key extraction and hashing. Targets apply at N = ${p.n}.`,
      `Warm-up ≥ 2 passes and ≥ 0.3 s first; rounds sized to ≈ 0.3 s (≤ ${MAX_ITERS.toLocaleString('en-US')} picks). ` +
        (p.isolated ? 'Each case runs in its own process (monomorphic call sites, as in an app with one strategy).' : 'All cases ran in one process (--no-isolate).'),
      `stickyCookie: maxAge 86400; ${WARM_COOKIES.toLocaleString('en-US')} valid cookies replayed: warm = verified-token cache hits (the same string objects`,
      `replayed, so their Map hash is cached: real requests bring fresh strings and pay ≈ one string hash more); cold = cacheSize 0, an HMAC per pick.`,
    ],
  )
}

// ───────────────────────────── 4. build cost ─────────────────────────────

function timeMs (fn, runs) {
  fn() // warm-up
  const xs = []
  for (let i = 0; i < runs; i++) { const t0 = nowNs(); fn(); xs.push(msSince(t0)) }
  return median(xs)
}

function build () {
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
      resolveMs: round(timeMs(() => resolveEligible(mag, mask), runs), 3),
      updateMs: round(timeMs(update('maglev'), runs), 3),
      changeMs: round(timeMs(change('maglev'), 15), 3),
      bytes: mag.size * 8,
      memoryNote: 'entries × 8 B (owner + successor)',
    })
    progress(`build N=${n} done`)
  }
  return { rows }
}

function printBuild (b) {
  const kib = (x) => (x >= 1024 * 1024 ? `${(x / 2 ** 20).toFixed(2)} MiB` : `${(x / 1024).toFixed(0)} KiB`)
  return table(
    '4. Build cost — first membership, and one change after it (median of runs after a warm-up)',
    [
      { label: 'algorithm', key: 'algorithm', left: true },
      { label: 'N', key: 'n' },
      { label: 'entries', get: r => r.entries.toLocaleString('en-US') },
      { label: 'build ms', get: r => r.buildMs.toFixed(2) },
      { label: 'successors ms', get: r => r.resolveMs?.toFixed(2) },
      { label: 'strategy.update ms', get: r => r.updateMs.toFixed(2) },
      { label: 'one change ms', get: r => r.changeMs.toFixed(2) },
      { label: 'memory', get: r => kib(r.bytes) },
      { label: 'memory model', key: 'memoryNote', left: true },
    ],
    b.rows,
    [
      '',
      'build = a Ring synced to N upstreams from empty (successors included) / new Maglev; successors = resolveEligible() (Maglev);',
      'strategy.update = consistentHash(...).update(new Members(...)) on a new strategy; one change = update() of a strategy already',
      'holding N upstreams to N + 1 and back, alternately (ring: the difference applied; maglev: table rebuilt, successors resolved).',
    ],
  )
}

// ───────────────────────────── summary ─────────────────────────────

function summarize (res) {
  const out = []
  for (const r of res.quality?.rows ?? []) if (r.verdict) out.push({ check: `quality ${r.algorithm} N=${r.n} exact max/mean ≤ ${r.target.toFixed(2)}`, value: `median ${f3(r.exactMedian)}, worst ${f3(r.exactWorst)}`, verdict: r.verdict })
  for (const r of res.movement?.rows ?? []) {
    if (r.target) out.push({ check: `movement ${r.algorithm} ${r.change} ratio ${r.target.join('–')}`, value: `${f3(r.ratio)} (sets ${f3(r.ratioMin)}–${f3(r.ratioMax)}), unnecessary ${r.unnecessary}`, verdict: r.verdict })
  }
  if (res.movement) out.push({ check: 'consistentHash strategy agrees with its table', value: `${res.movement.agreement.mismatches} mismatches`, verdict: res.movement.agreement.mismatches === 0 ? 'PASS' : 'FAIL' })
  if (res.quality) out.push({ check: 'ring points recomputed = built Ring', value: `${res.quality.ringModelMismatches} mismatches`, verdict: res.quality.ringModelMismatches === 0 ? 'PASS' : 'FAIL' })
  for (const r of res.pick?.rows ?? []) if (r.verdict) out.push({ check: `pick ${r.label} ≤ ${r.target} ns`, value: `${f1(r.nsMedian)} ns`, verdict: r.verdict })
  return out
}

// ───────────────────────────── main ─────────────────────────────

async function main () {
  const opts = parseArgs(process.argv.slice(2))
  if (opts.worker !== undefined) {
    try {
      process.send(await runPickCase(opts.worker))
    } catch (err) {
      process.send({ error: String(err?.stack ?? err) })
    }
    return
  }
  const args = process.argv.slice(2).join(' ')
  const command = process.env.npm_lifecycle_event === 'bench:strategies'
    ? `npm run bench:strategies${args ? ` -- ${args}` : ''}  (node bench/strategies.js${args ? ` ${args}` : ''})`
    : `node ${[...process.execArgv, 'bench/strategies.js'].join(' ')}${args ? ` ${args}` : ''}`
  const machine = { ...describeMachine(), loadStart: os.loadavg().map(x => round(x, 2)) }
  const header = [
    'Affinity strategy benchmark (@affinity/core, built dist)',
    ...machineLines(machine, command, 9),
    `load:    ${os.loadavg().map(x => x.toFixed(2)).join(' ')} (1/5/15-min load average at start; timings assume an otherwise idle machine)`,
    `params:  ring vnodes ${DEFAULT_VNODES} (DEFAULT_VNODES), maglev table ${DEFAULT_MAGLEV_SIZE} (DEFAULT_MAGLEV_SIZE), ${opts.keys.toLocaleString('en-US')} keys, ${opts.sets} id sets`,
    '',
  ].join('\n')
  const emit = (text) => { if (!opts.json) process.stdout.write(text + '\n') }
  emit(header)

  const t0 = nowNs()
  const res = { machine, command, date: new Date().toISOString(), params: { vnodes: DEFAULT_VNODES, maglevSize: DEFAULT_MAGLEV_SIZE, keys: opts.keys, sets: opts.sets, keySeed: KEY_SEED } }
  const need = (s) => opts.only.includes(s)
  let keys
  if (need('quality') || need('movement')) {
    progress(`hashing ${opts.keys.toLocaleString('en-US')} keys`)
    keys = makeKeys(opts.keys)
  }
  res.seconds = {}
  const section = async (name, run, print) => {
    const ts = nowNs()
    res[name] = await run()
    res.seconds[name] = round(msSince(ts) / 1000, 1)
    emit(print(res[name]) + `(${name}: ${res.seconds[name]} s)\n`)
  }
  if (need('quality')) await section('quality', () => quality(opts, keys), printQuality)
  if (need('movement')) await section('movement', () => movement(keys), printMovement)
  if (need('pick')) await section('pick', () => pick(opts), printPick)
  if (need('build')) await section('build', () => build(), printBuild)
  res.summary = summarize(res)
  res.totalSeconds = round(msSince(t0) / 1000, 1)
  if (res.summary.length > 0) {
    emit(table('Summary of targets', [
      { label: 'check', key: 'check', left: true },
      { label: 'measured', key: 'value', left: true },
      { label: 'verdict', key: 'verdict', left: true },
    ], res.summary))
  }
  res.loadAverage = { start: machine.loadStart, end: os.loadavg().map(x => round(x, 2)) }
  emit(`total: ${res.totalSeconds} s; load average at end ${res.loadAverage.end.join(' ')}`)
  if (opts.json) process.stdout.write(JSON.stringify(res, null, 2) + '\n')
}

main().catch((err) => {
  process.stderr.write(`${err?.stack ?? err}\n`)
  process.exit(1)
})
