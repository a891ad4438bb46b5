import type { Members } from '../model/members.js'
import type { StickStoreStats } from '../stick/memory-store.js'
import type { Remap } from '../model/remap.js'
import type { RouteRequest } from '../model/types.js'
import type { Upstream } from '../model/upstream.js'

/** Why a strategy chose what it chose: for logs, metrics and the decision trace. */
export type PickReason =
  | 'rotation' // round robin
  | 'least-load' // least connections
  | 'sticky' // a valid cookie or stick-table entry named a usable upstream
  | 'assigned' // a new user (no cookie / no entry / an invalid cookie) was placed
  | 'failover' // the bound upstream is down, gone or failed: re-placed
  | 'hash' // the key's own upstream on the ring / table
  | 'successor' // the key's upstream is down or draining: its deterministic successor
  | 'spill' // bounded loads: the key's upstream is full, the next one with room; a session cap turned a new user away from assign's choice
  | 'fallback' // no key in the request: the fallback strategy chose

/**
 * The per-request decision: filled by `Balancer.choose`, read by the forwarder.
 * One small object per request; strategies write `reason` and `setCookie` into it
 * instead of returning a new result object.
 */
export class Choice {
  readonly request: RouteRequest
  upstream: Upstream | undefined = undefined
  reason: PickReason = 'rotation'
  /** A Set-Cookie header value to send with the response (sticky cookie issued or renewed). */
  setCookie: string | undefined = undefined
  /**
   * What the strategy keyed on (cookie value, client address, key hash), kept only
   * so the decision trace can publish a keyed digest of it: never logged or sent.
   */
  key: string | number | undefined = undefined
  /** Upstreams that already failed this request; a re-pick must not return them. */
  tried: Upstream[] | undefined = undefined

  constructor (request: RouteRequest) {
    this.request = request
  }

  avoids (u: Upstream): boolean {
    return this.tried !== undefined && this.tried.includes(u)
  }
}

export type PickResult = Upstream | undefined | Promise<Upstream | undefined>

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
  pick (req: RouteRequest, choice: Choice): PickResult
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

export function isPromise<T> (v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | undefined)?.then === 'function'
}
