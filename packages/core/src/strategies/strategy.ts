import type { Choice, PickResult } from '../model/choice.js'
import type { Upstream } from '../model/upstream.js'
import type { Members } from '../model/members.js'
import type { Remap } from '../model/remap.js'
import type { RouteRequest } from '../model/types.js'
import type { StickStoreStats } from '../stick/store.js'

/**
 * The one interface every strategy implements (HAProxy's lb_ops, undici's
 * kGetDispatcher): `update` derives whatever the strategy needs from a membership
 * snapshot, once per change; `pick` chooses for one request and must be cheap.
 * `pick` returns undefined when nothing can take the request, and may return a
 * promise only when it must wait (an external stick store).
 */
export interface Strategy {
  readonly name: string
  update (members: Members): void
  /**
   * `aside`: upstreams the caller sets aside for this pick (a session cap's full
   * ones; HAProxy's `srvtoavoid`). A strategy that places users skips them when it
   * can; the caller checks the answer either way. Upstreams that already failed
   * the request are in `choice.tried` and must never be returned.
   */
  pick (req: RouteRequest, choice: Choice, aside?: ReadonlySet<Upstream>): PickResult
  /**
   * Sticky strategies: users bound to each upstream (id → count) and seen lately,
   * for stats(); a copy of live counters, never called per request. undefined when
   * unknown.
   */
  bound? (): ReadonlyMap<string, number> | undefined
  /** Strategies over a shared stick store: the store's health (stats(), metrics). */
  storeStats? (): StickStoreStats | undefined
  /**
   * Who would move if membership went from `from` (the current snapshot) to `to`
   * (Balancer.preview, and the 'remap' event just before `update(to)`), computed on
   * the side: the live tables are not touched. Absent: the strategy binds nobody.
   */
  preview? (from: Members, to: Members): Remap
  close? (): void | Promise<void>
}

