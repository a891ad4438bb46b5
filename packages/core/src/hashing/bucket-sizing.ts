/** How the ring's point store sizes its directory and its buckets' regions (point-store.ts). */

/** Buckets for `size` points: ⌊log2 size⌋ bits, 1 to 16 (one to two points a bucket, at most ≈ 64 at 2^22 points). */
export function bitsFor (size: number): number {
  return Math.min(16, Math.max(1, Math.floor(Math.log2(Math.max(1, size)))))
}

/**
 * Room for `n` entries and a little more: n + 1 + n/16, rounded up to an even
 * number. E.g. 46 → 50, 4 → 6, 1 → 2, 0 → 2. A bucket that fills up moves to a
 * region one size up (a copy of its few dozen entries, as cheap as the shift an
 * insert does anyway), so little spare is needed: ≈ 12% over the points at 1,000
 * upstreams. Capacities are even so freed regions are reused by buckets of the
 * same size (one free list per capacity / 2).
 */
export function capacityFor (n: number): number {
  return (n + 1 + (n >> 4) + 1) & ~1
}
