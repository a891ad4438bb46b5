import type { Choice, PickResult } from '../model/choice.js'
import type { Upstream } from '../model/upstream.js'
import type { Members } from '../model/members.js'
import type { Remap } from '../model/remap.js'
import type { RouteRequest, TokenCacheStats } from '../model/types.js'
import type { StoreStats } from '../stick/store.js'

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
   * `aside`: upstreams the caller sets aside for this pick (HAProxy's `srvtoavoid`):
   * a session cap's full ones, or those where a request would wait for capacity
   * (maxInFlight, maxWebSockets: forward/admission.ts). Stateless strategies and
   * the placement of new users skip them when they can (and may answer undefined
   * when every candidate is aside: see pickWithRoom); a user bound to an upstream,
   * by a cookie, a stick-table entry or a hash, is never moved for them. Upstreams
   * that already failed the request are in `choice.tried` and must never be returned.
   */
  pick (req: RouteRequest, choice: Choice, aside?: ReadonlySet<Upstream>): PickResult
  /**
   * Sticky strategies: users bound to each upstream (id → count) and seen lately,
   * for stats(); a copy of live counters, never called per request. undefined when
   * unknown.
   */
  bound? (): ReadonlyMap<string, number> | undefined
  /** Strategies over a stick store: a shared store's health, an in-memory table's fill and evictions (stats(), metrics). */
  storeStats? (): StoreStats | undefined
  /** stickyCookie: its verified-token cache's fill and evictions. */
  tokenCacheStats? (): TokenCacheStats | undefined
  /**
   * Calls `listener` whenever one of the strategy's bounded tables evicts an entry
   * before its time (a user silently loses their binding): the balancer's
   * 'pressure' event. Called once, when the strategy is bound to a balancer.
   */
  onEvict? (listener: (table: 'store' | 'tokenCache') => void): void
  /**
   * Who would move if membership went from `from` (the current snapshot) to `to`
   * (Balancer.preview, and the 'remap' event just before `update(to)`), computed on
   * the side: the live tables are not touched. Absent: the strategy binds nobody.
   */
  preview? (from: Members, to: Members): Remap
  /**
   * Hash strategies at fleet scale apply a change in slices on later turns of the
   * event loop (consistent-hash.ts): the 'remap' of such a change, asked just
   * before `update(to)`, is then computed after it and delivered by this promise.
   * Undefined: the change is applied within the call, and `preview` answers now.
   */
  remapLater? (from: Members, to: Members): Promise<Remap> | undefined
  /** Resolves once every change so far is fully applied (the simulator compares settled placements). */
  settled? (): Promise<void>
  close? (): void | Promise<void>
}

