/**
 * Stable LSD radix sort of 32-bit points, in place, carrying an optional payload
 * (the owner of each point): four passes of 8 bits. Each pass scatters 256 ways,
 * which stays in cache where one 65,536-way counting sort does not (≈ 4× slower
 * at 3 M points), and it beats the built-in typed-array sort by ≈ 5× on 4,096
 * keys. Equal points keep their input order, which is how the ring orders equal
 * points by id: callers pass them in id order.
 */
export function sortByPoint (points: Uint32Array, payload: Int32Array | undefined, n: number): void {
  let fromPoints: Uint32Array = points
  let toPoints: Uint32Array = new Uint32Array(n)
  let fromPayload: Int32Array | undefined = payload
  let toPayload: Int32Array | undefined = payload === undefined ? undefined : new Int32Array(n)
  const start = new Int32Array(256)
  for (let shift = 0; shift < 32; shift += 8) {
    start.fill(0)
    for (let k = 0; k < n; k++) start[(fromPoints[k]! >>> shift) & 255]!++
    for (let d = 0, sum = 0; d < 256; d++) {
      const c = start[d]!
      start[d] = sum
      sum += c
    }
    for (let k = 0; k < n; k++) {
      const p = fromPoints[k]!
      const at = start[(p >>> shift) & 255]!++
      toPoints[at] = p
      if (toPayload !== undefined) toPayload[at] = fromPayload![k]!
    }
    ;[fromPoints, toPoints] = [toPoints, fromPoints]
    ;[fromPayload, toPayload] = [toPayload, fromPayload]
  }
  // Four passes, an even number: the sorted entries are back in the arrays given.
}
