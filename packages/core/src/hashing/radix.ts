/**
 * Stable LSD radix sort of 32-bit points, in place, carrying an optional payload
 * (the owner of each point): four passes of 8 bits, their four histograms counted
 * in one read. Each pass scatters 256 ways, which stays in cache where one
 * 65,536-way counting sort does not (≈ 4× slower at 3 M points), and it beats the
 * built-in typed-array sort by ≈ 5× on 4,096 keys. Equal points keep their input
 * order, which is how the ring orders equal points by id: callers pass them in id
 * order. A pass is a function of its own per shape (with or without a payload), so
 * each loop stays monomorphic: ≈ 2× faster than one loop testing for the payload
 * (85 against 170 µs for 4,096 keys, measured with node on the built module).
 */
/**
 * Buffers reused by every sort of up to SCRATCH entries (a change's points, a
 * remap's keys: several sorts per membership change at fleet scale), so those
 * allocate nothing; larger sorts (a ring built whole) allocate their own rather
 * than keep megabytes alive. Safe to share: a sort calls nothing that sorts.
 */
const SCRATCH = 1 << 16
const scratchPoints = new Uint32Array(SCRATCH)
const scratchPayload = new Int32Array(SCRATCH)
const histogram = new Int32Array(1024)

export function sortByPoint (points: Uint32Array, payload: Int32Array | undefined, n: number): void {
  const start = histogram
  start.fill(0)
  for (let k = 0; k < n; k++) {
    const p = points[k]!
    start[p & 255]!++
    start[256 + ((p >>> 8) & 255)]!++
    start[512 + ((p >>> 16) & 255)]!++
    start[768 + (p >>> 24)]!++
  }
  for (let d = 0; d < 1024; d += 256) {
    for (let j = d, sum = 0; j < d + 256; j++) {
      const c = start[j]!
      start[j] = sum
      sum += c
    }
  }
  // Four passes, an even number: the sorted entries end up back in the arrays given.
  const points2 = n <= SCRATCH ? scratchPoints.subarray(0, n) : new Uint32Array(n)
  if (payload === undefined) {
    scatter(points, points2, start, 0, n)
    scatter(points2, points, start, 8, n)
    scatter(points, points2, start, 16, n)
    scatter(points2, points, start, 24, n)
  } else {
    const payload2 = n <= SCRATCH ? scratchPayload.subarray(0, n) : new Int32Array(n)
    scatterWith(points, points2, payload, payload2, start, 0, n)
    scatterWith(points2, points, payload2, payload, start, 8, n)
    scatterWith(points, points2, payload, payload2, start, 16, n)
    scatterWith(points2, points, payload2, payload, start, 24, n)
  }
}

/** One pass: by the 8 bits at `shift`, whose histogram starts at start[shift × 32]. */
function scatter (from: Uint32Array, to: Uint32Array, start: Int32Array, shift: number, n: number): void {
  const base = shift << 5
  for (let k = 0; k < n; k++) {
    const p = from[k]!
    to[start[base + ((p >>> shift) & 255)]!++] = p
  }
}

function scatterWith (from: Uint32Array, to: Uint32Array, fromPayload: Int32Array, toPayload: Int32Array, start: Int32Array, shift: number, n: number): void {
  const base = shift << 5
  for (let k = 0; k < n; k++) {
    const p = from[k]!
    const at = start[base + ((p >>> shift) & 255)]!++
    to[at] = p
    toPayload[at] = fromPayload[k]!
  }
}
