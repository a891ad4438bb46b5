import type { RouteRequest } from './types.js'
import type { Upstream } from './upstream.js'

/** Why a strategy chose what it chose: for logs, metrics and the decision trace. */
export type PickReason =
  | 'rotation' // round robin
  | 'least-load' // least connections
  | 'sticky' // a valid cookie or stick-table entry named a usable upstream
  | 'assigned' // a new user (no cookie / no entry / an invalid cookie) was placed
  | 'failover' // the bound upstream is down, gone or failed: re-placed
  | 'hash' // the key's own upstream on the ring / table
  | 'successor' // the key's upstream is down or draining: its deterministic successor
  | 'spill' // bounded loads: the key's upstream is full, the next one with room
  | 'capped' // a session cap turned a new or failed-over user away from assign's choice (a full upstream)
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

/** Strategies and stores answer synchronously unless they must wait: this tells which. */
export function isPromise<T> (v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | undefined)?.then === 'function'
}
