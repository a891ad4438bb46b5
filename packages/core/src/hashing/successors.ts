import type { PointStore } from './point-store.js'

/**
 * Each ring entry's resolved code: its first eligible owner walking forward
 * (wrapping), as `owner × 2 + (successor ? 1 : 0)`, or -1 when nothing is eligible.
 * The per-request pick reads it straight off the entry the key lands on, even
 * when that entry's own upstream is down (table.ts ResolvedTable does the same
 * for Maglev, resolving each entry on first read).
 *
 * Kept up to date per change instead of recomputed: entries that are not eligible
 * form runs, and every entry of a run resolves to the same code, that of the first
 * eligible entry after the run. A change of one entry only rewrites the run just
 * before it, walking backward until an eligible owner or an entry that already has
 * the new code (the rest of its run has it too). With every upstream up, the run
 * is empty: O(1) per point. With a fraction f of them eligible, ≈ 1/f per point.
 * Only a change to or from "nothing eligible at all" touches every entry.
 *
 * Contract for every function here: on entry, every resolved code in `store` is
 * right for `eligible` (indexed by owner code), except where the function's own
 * comment says otherwise; on return, all are right.
 */

/**
 * The code an entry hands to the run before it: its owner as their successor when
 * eligible, else its own resolved code marked as a successor. E.g. owner 7 eligible
 * → 15 (7 × 2 + 1); owner 7 down, resolving to 3 → 7 (3 × 2 + 1); nothing → -1.
 */
function handedBack (store: PointStore, eligible: Uint8Array, pos: number): number {
  const o = store.owner(pos)
  if (eligible[o] === 1) return o * 2 + 1
  const r = store.resolved(pos)
  return r === -1 ? -1 : r | 1
}

/**
 * Gives `code` to the entries before `pos` up to the first eligible owner (or the
 * first that has it already), at most one lap. `pos`'s own code is not touched.
 */
function fillBack (store: PointStore, eligible: Uint8Array, pos: number, code: number): void {
  let p = pos
  for (let k = store.size; k > 1; k--) {
    p = store.prev(p)
    if (eligible[store.owner(p)] === 1 || store.resolved(p) === code) return
    store.setResolved(p, code)
  }
}

/**
 * Inserts (point, owner) and resolves it, then the run before it. Returns 1 when
 * the new entry is eligible (the caller counts eligible entries), else 0.
 */
export function insertEntry (store: PointStore, eligible: Uint8Array, point: number, owner: number): number {
  if (eligible[owner] === 1) {
    const pos = store.insert(point, owner, owner * 2)
    fillBack(store, eligible, pos, owner * 2 + 1)
    return 1
  }
  // Not eligible: it passes on what follows it; nothing before it changes.
  const pos = store.insert(point, owner, -1)
  if (store.size > 1) store.setResolved(pos, handedBack(store, eligible, store.next(pos)))
  return 0
}

/**
 * Removes the entry at `pos`. `lastEligible`: it is the only eligible entry left,
 * so every code becomes -1 (one pass over the ring). Returns 1 when the removed
 * entry was eligible, else 0.
 */
export function removeEntry (store: PointStore, eligible: Uint8Array, pos: number, lastEligible: boolean): number {
  const wasEligible = eligible[store.owner(pos)] === 1
  const follow = store.remove(pos)
  if (!wasEligible) return 0
  if (lastEligible) store.fillResolved(-1)
  // The run before it resolved to it: now to whatever its follower hands back.
  else if (follow !== -1) fillBack(store, eligible, follow, handedBack(store, eligible, follow))
  return 1
}

/**
 * Owners became eligible (`eligible` already says so for all of them): their
 * entries, at `positions`, resolve to themselves, and the runs before them to
 * them. Each run is rewritten once: its fill stops at the next eligible entry.
 * On entry only those entries and runs are wrong.
 */
export function becameEligible (store: PointStore, eligible: Uint8Array, positions: ArrayLike<number>): void {
  for (let k = 0; k < positions.length; k++) {
    const pos = positions[k]!
    const owner = store.owner(pos)
    store.setResolved(pos, owner * 2)
    fillBack(store, eligible, pos, owner * 2 + 1)
  }
}

/**
 * Owners are no longer eligible (`eligible` already says so for all of them) while
 * some other entry still is. Each of their entries, at `positions` in ring order,
 * takes what its follower hands back, and so does the run before it. Whatever
 * the order, the last such entry of a run reads a follower that is right (an
 * eligible entry, or one whose chain meets no changed entry) and its fill repairs
 * the whole run, earlier visits included; visiting from the last backwards makes
 * that the first visit, so a run is mostly written once. No walk to the next
 * eligible entry: one step per entry, plus the runs.
 */
export function becameIneligible (store: PointStore, eligible: Uint8Array, positions: ArrayLike<number>): void {
  for (let k = positions.length - 1; k >= 0; k--) {
    const pos = positions[k]!
    const code = handedBack(store, eligible, store.next(pos))
    // Set already by the fill from a later entry of the same run: so is the run before it.
    if (store.resolved(pos) === code) continue
    store.setResolved(pos, code)
    fillBack(store, eligible, pos, code)
  }
}
