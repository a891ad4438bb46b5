/**
 * mulberry32 (Tommy Ettinger, public domain): a small seeded PRNG, so every run of
 * the simulator with the same `--seed` draws the same keys and client addresses.
 * Returns uint32 values.
 */
export function mulberry32 (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }
}

export const hex8 = (x: number): string => x.toString(16).padStart(8, '0')
