import type { Upstream } from './upstream.js'

/**
 * An immutable snapshot of membership and health, rebuilt whenever an upstream is
 * added, removed, goes down or up, or starts draining. Strategies derive their
 * tables from it once (`Strategy.update`) so the per-request pick only reads.
 * `all` is sorted by id: the order every instance agrees on, whatever the order of
 * the `upstreams` option.
 */
export class Members {
  readonly all: readonly Upstream[]
  /** Upstreams that take new users: state 'up'. */
  readonly eligible: readonly Upstream[]
  /** 1 where `all[i]` takes new users, else 0: a dense flag array for hash tables. */
  readonly eligibleMask: Uint8Array
  /** id → position in `all`. */
  readonly index: ReadonlyMap<string, number>
  /** Bumped on every rebuild: lets caches keyed on a snapshot notice a new one. */
  readonly version: number
  /** Live totals kept by the balancer (shared, mutable): bounded loads read `load`. */
  readonly totals: { load: number }

  constructor (upstreams: Iterable<Upstream>, version: number, totals: { load: number } = { load: 0 }) {
    this.totals = totals
    this.all = [...upstreams].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    this.eligible = this.all.filter(u => u.state === 'up')
    this.eligibleMask = Uint8Array.from(this.all, u => (u.state === 'up' ? 1 : 0))
    this.index = new Map(this.all.map((u, i) => [u.id, i]))
    this.version = version
  }

  get (id: string): Upstream | undefined {
    const i = this.index.get(id)
    return i === undefined ? undefined : this.all[i]
  }
}
