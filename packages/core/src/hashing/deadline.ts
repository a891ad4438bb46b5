/**
 * How long a piece of work may run before it yields to the event loop. Fleet-scale
 * membership changes (a ring of millions of points, a Maglev table over hundreds of
 * upstreams) are applied in slices on later turns of the loop, so none blocks it
 * for long (the ≤ 10 ms per change target; `npm run bench:membership`).
 */

/** Whether a slice of work should stop now. */
export type Deadline = () => boolean

/** No deadline: the work finishes within the call. */
export const NEVER: Deadline = () => false

/** A deadline already past: the call only takes the work in, later slices do it. */
export const NOW: Deadline = () => true

/** A deadline `ms` from now (performance.now(): monotonic, sub-millisecond). */
export function within (ms: number): Deadline {
  const end = performance.now() + ms
  return () => performance.now() >= end
}
