import { invalidOption } from '../errors.js'
import { knownKeys, milliseconds, optionsObject } from '../options.js'
import { checkPrefixes, normalizeIp, type IpPrefixOptions } from '../keys/ip.js'
import type { Members } from '../model/members.js'
import { boundRemap, type Remap } from '../model/remap.js'
import { memoryStickStore } from '../stick/memory-store.js'
import type { StickStore, StoreStats } from '../stick/store.js'
import type { RouteRequest } from '../model/types.js'
import type { Upstream } from '../model/upstream.js'
import { Placement } from './placement.js'
import { type Strategy } from './strategy.js'
import { isPromise, type Choice, type PickReason, type PickResult } from '../model/choice.js'

export interface StickyIpOptions extends IpPrefixOptions {
  /** How long an idle client stays bound; every hit refreshes it. */
  ttlMs?: number
  /** Places clients that have no binding, and re-places them on failover. */
  assign?: Strategy
  /** Where bindings live: in memory by default; a shared store lets instances agree. */
  store?: StickStore
  /**
   * Bounded loads on sessions (e.g. 1.25): a new or failed-over client is not placed
   * on an upstream already holding ceil(factor × average) bound clients (weighted);
   * bound clients never move. Needs a store that counts (`boundLive()`, as
   * memoryStickStore does). Off by default.
   */
  sessionBalanceFactor?: number
}

/**
 * Sticky sessions by source address through a stick table (HAProxy `stick on src`,
 * nginx `sticky learn`): the normalised client address (ip-hash.ts) is bound to the
 * upstream `assign` chose, refreshed on every hit, and forgotten after `ttlMs` idle.
 * Draining upstreams keep their bound clients; down or removed ones lose them to a
 * fresh assignment. A request without a usable address is assigned but not bound.
 */
class StickyIp implements Strategy {
  readonly name = 'stickyIp'
  readonly #ttl: number
  readonly #v4: number
  readonly #v6: number
  readonly #placement: Placement
  readonly #store: StickStore
  #members: Members | undefined

  constructor (opts: StickyIpOptions) {
    knownKeys('stickyIp', optionsObject('stickyIp', opts), ['ipv4Prefix', 'ipv6Prefix', 'ttlMs', 'assign', 'store', 'sessionBalanceFactor'])
    const { ipv4Prefix, ipv6Prefix } = checkPrefixes(opts)
    this.#v4 = ipv4Prefix
    this.#v6 = ipv6Prefix
    this.#ttl = milliseconds('ttlMs', opts.ttlMs, 30 * 60_000, { positive: true })
    this.#placement = new Placement(opts.assign, opts.sessionBalanceFactor)
    this.#store = opts.store ?? memoryStickStore()
    const s = this.#store as Partial<StickStore>
    if (typeof s.get !== 'function' || typeof s.set !== 'function' || typeof s.delete !== 'function') {
      throw invalidOption('store', 'expected { get(key), set(key, upstreamId, ttlMs), delete(key) }')
    }
    if (this.#placement.cap !== undefined && typeof s.boundLive !== 'function') {
      throw invalidOption('sessionBalanceFactor', 'needs a store that counts its bindings (`boundLive()`, as memoryStickStore does)')
    }
  }

  update (members: Members): void {
    this.#members = members
    this.#placement.update(members)
  }

  /** `aside` (no capacity there) only steers the placement of clients without a binding: bound ones wait for theirs. */
  pick (req: RouteRequest, choice: Choice, aside?: ReadonlySet<Upstream>): PickResult {
    const key = normalizeIp(req.ip, this.#v4, this.#v6)
    if (key === undefined) return this.#place(undefined, req, choice, 'assigned', aside)
    choice.key = key
    let bound: string | undefined | Promise<string | undefined>
    try {
      bound = this.#store.get(key)
    } catch {
      bound = undefined
    }
    if (isPromise(bound)) {
      // A store that fails is a miss, never an error response.
      return bound.then(id => this.#resolve(key, id, req, choice, aside), () => this.#resolve(key, undefined, req, choice, aside))
    }
    return this.#resolve(key, bound, req, choice, aside)
  }

  /** Clients bound in the table and not expired, per upstream (when the store can count). */
  bound (): ReadonlyMap<string, number> | undefined {
    return this.#store.bound?.()
  }

  /** A shared store's health (degraded, fallback reads…) and an in-memory table's fill and evictions, as the store reports them. */
  storeStats (): StoreStats | undefined {
    const shared = this.#store.stats?.()
    const table = this.#store.table?.()
    if (shared === undefined && table === undefined) return undefined
    return { ...shared, ...table }
  }

  onEvict (listener: (table: 'store') => void): void {
    this.#store.onEvict?.(() => listener('store'))
  }

  /** Clients of an upstream that goes away or down are re-placed at their next request; nobody else moves. */
  preview (from: Members, to: Members): Remap {
    return boundRemap(this.#store.bound?.() ?? this.#store.boundLive?.(), from, to)
  }

  close (): void | Promise<void> {
    return this.#placement.close()
  }

  #resolve (key: string, id: string | undefined, req: RouteRequest, choice: Choice, aside: ReadonlySet<Upstream> | undefined): PickResult {
    let reason: PickReason = choice.tried === undefined ? 'assigned' : 'failover'
    if (typeof id === 'string') {
      const u = this.#members?.get(id)
      if (u !== undefined) {
        if (this.#members!.keeps(u) && !choice.avoids(u)) {
          choice.reason = 'sticky'
          this.#bind(key, u)
          return u
        }
      }
      reason = 'failover'
    }
    return this.#place(key, req, choice, reason, aside)
  }

  #place (key: string | undefined, req: RouteRequest, choice: Choice, reason: PickReason, aside: ReadonlySet<Upstream> | undefined): PickResult {
    return this.#placement.place(req, choice, reason, this.#counts, u => {
      if (u !== undefined && key !== undefined) this.#bind(key, u)
      return u
    }, aside)
  }

  /** Bound clients per upstream, as the session cap reads them (the store counts live). */
  #counts = (): ReadonlyMap<string, number> => this.#store.boundLive!()

  #bind (key: string, u: Upstream): void {
    try {
      const r = this.#store.set(key, u.id, this.#ttl)
      if (isPromise(r)) r.catch(() => {})
    } catch {
      // The binding is an optimisation of the next request; this one is already placed.
    }
  }
}

export function stickyIp (opts: StickyIpOptions = {}): Strategy {
  return new StickyIp(opts)
}
