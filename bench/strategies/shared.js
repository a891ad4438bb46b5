// Shared by the sections of bench/strategies.js: seeded keys and addresses, the tables
// recomputed for checking, nginx ketama, and table formatting.
import { crc32 } from 'node:zlib'
import { murmur3 } from '@affinity/core'
// White-box pieces, through the declared internal entry (not part of the public API).
import { DEFAULT_MAGLEV_SIZE, DEFAULT_VNODES, hex8, Maglev, mulberry32, Ring } from '@affinity/core/internal'

const TWO32 = 2 ** 32
export const KEY_SEED = 0x5eed0001
export const IP_SEED = 0x5eed0002
export const PICK_SEED = 0x5eed0003
export const MOVE_SEED = 0x5eed0004


/** mulberry32 (the simulator's): a small seeded PRNG, so every run draws the same keys. */
export const prng = mulberry32
/**
 * A flat (sequential) copy of a string, as Node's HTTP parser and socket hand them
 * over: concatenation makes rope (cons) strings, which make charCodeAt-heavy code
 * such as murmur3 look slower than it is on real requests.
 */
export const flat = (s) => Buffer.from(s, 'latin1').toString('latin1')
export const randomKey = (r) => flat(hex8(r()) + hex8(r())) // 16 hex chars
export const randomIpv4 = (r) => { const v = r(); return flat(`${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`) }
export const randomIpv6 = (r) => {
  const w = [0x2a02]
  for (let i = 1; i < 8; i++) w.push(r() & 0xffff)
  return flat(w.map(x => x.toString(16)).join(':'))
}

/** Upstream ids of id set `s`, sorted as Members sorts them (the order tables are built in). */
export function upstreamIds (s, n, first = 1) {
  const ids = []
  for (let i = first; i < first + n; i++) ids.push(`http://10.0.${s}.${i}:8080`)
  return ids.sort(byId)
}
export const byId = (a, b) => (a < b ? -1 : a > b ? 1 : 0)
export const ones = (n) => new Array(n).fill(1)

export const maxOf = (xs) => xs.reduce((m, x) => (x > m ? x : m), -Infinity)
export const minOf = (xs) => xs.reduce((m, x) => (x < m ? x : m), Infinity)
export const maxOverMean = (counts) => { let s = 0; for (const c of counts) s += c; return maxOf(counts) / (s / counts.length) }
export const nowNs = () => process.hrtime.bigint()
export const msSince = (t0) => Number(process.hrtime.bigint() - t0) / 1e6

export const progress = (msg) => process.stderr.write(`  … ${msg}\n`)

/** Lower bound over sorted points, wrapping: the lookup ring.ts and nginx's chash both do. */
export function lowerBound (points, h) {
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
export function ringShares (points, owner, n) {
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
export function ringTable (ids, weights = ones(ids.length)) {
  const ring = new Ring(DEFAULT_VNODES)
  ring.sync(ids.map((id, i) => ({ id, weight: weights[i], index: i })), new Uint8Array(ids.length).fill(1))
  return { ring, size: ring.size, bytes: ring.bytes, ownerOf: (h) => ring.owners[ring.resolved(ring.slot(h)) >> 1].index }
}
export function maglevTable (ids, weights = ones(ids.length)) {
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
export function ringPoints (ids, vnodes, t) {
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
export function ketama (ids) {
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


export function table (title, cols, rows, notes = []) {
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
export const f3 = (x) => (x === undefined ? undefined : x.toFixed(3))
export const f1 = (x) => (x === undefined ? undefined : x.toFixed(1))
export const pct = (x, d = 2) => (x === undefined ? undefined : `${(x * 100).toFixed(d)}%`)
