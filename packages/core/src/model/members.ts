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
  /** Upstreams that take new users: state 'up' (in panic mode: every one not draining). */
  readonly eligible: readonly Upstream[]
  /** 1 where `all[i]` takes new users, else 0: a dense flag array for hash tables. */
  readonly eligibleMask: Uint8Array
  /**
   * 1 where `all[i]` keeps its bound users (`keeps`), as of this snapshot: what a
   * remap compares, since `keeps` reads the live state.
   */
  readonly keptMask: Uint8Array
  /** id → position in `all`. */
  readonly index: ReadonlyMap<string, number>
  /** Bumped on every rebuild: lets caches keyed on a snapshot notice a new one. */
  readonly version: number
  /** Live totals kept by the balancer (shared, mutable): bounded loads read `load`. */
  readonly totals: { load: number }
  /**
   * Panic mode (Envoy's healthy_panic_threshold): fewer than `panicThreshold` percent
   * of the upstreams not draining are up, so health is ignored and every one of
   * them takes traffic — with so many "down", the checks are more likely wrong than
   * the servers, and a request that fails to connect still fails over.
   */
  readonly panic: boolean
  /**
   * Effective weights, aligned with `all` and with `eligible`: the configured weight
   * (`Upstream.weight`), times the slow-start factor while one ramps (slow-start.ts).
   * What roundRobin, leastConnections, sticky placement and bounded-load caps share
   * out by; hash tables keep the configured weight, so a ramp moves no key.
   */
  readonly weights: Float64Array
  readonly eligibleWeights: Float64Array
  /** Whether any upstream's effective weight is below its configured one (a slow start is under way). */
  readonly ramping: boolean
  /** Effective weights of the ramping upstreams only (undefined when none ramps). */
  readonly #ramped: ReadonlyMap<Upstream, number> | undefined

  /**
   * Called on every membership or health change (Balancer): one sort by id (already
   * in order but for the changed upstream, so ≈ one comparison per upstream) and one
   * pass, ≈ 0.4 ms at 1,000 upstreams (`npm run bench:membership`). `ramp` holds the
   * slow-start factors (0.1 to 1) of the upstreams that ramp; the others weigh in full.
   * When `previous` lists the same upstreams (a drain, a health or weight change), its
   * `all` and `index` are shared: at fleet scale the id → position map is most of what
   * a snapshot allocates (≈ 58 KB of 215 KB per change at 1,000 upstreams, measured
   * with the sampling heap profiler), and allocation there is what the changes add to
   * the scavenges of a busy process.
   */
  constructor (upstreams: Iterable<Upstream>, version: number, totals: { load: number } = { load: 0 }, panicThreshold = 0, ramp?: ReadonlyMap<Upstream, number>, previous?: Members) {
    this.totals = totals
    const sorted = [...upstreams].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    const same = previous !== undefined && sameUpstreams(previous.all, sorted)
    const all = same ? previous.all : sorted
    this.all = all
    const n = all.length
    const states = scratchStates(n)
    let candidates = 0
    let up = 0
    for (let i = 0; i < n; i++) {
      const state = all[i]!.state
      states[i] = state
      if (!all[i]!.draining) {
        candidates++
        if (state === 'up') up++
      }
    }
    const panic = panicThreshold > 0 && candidates > 0 && up * 100 < panicThreshold * candidates
    this.panic = panic
    const eligible: Upstream[] = []
    const eligibleWeights: number[] = []
    this.weights = new Float64Array(n)
    let ramped: Map<Upstream, number> | undefined
    this.eligibleMask = new Uint8Array(n)
    this.keptMask = new Uint8Array(n)
    const index = same ? undefined : new Map<string, number>()
    for (let i = 0; i < n; i++) {
      const u = all[i]!
      const factor = ramp?.get(u)
      let w = u.weight
      if (factor !== undefined && factor < 1) {
        w *= factor
        ;(ramped ??= new Map()).set(u, w)
      }
      this.weights[i] = w
      // Panic: every one not draining; else those up (which are never draining).
      if (panic ? !u.draining : states[i] === 'up') {
        eligible.push(u)
        eligibleWeights.push(w)
        this.eligibleMask[i] = 1
      }
      if (states[i] !== 'down' || panic) this.keptMask[i] = 1
      index?.set(u.id, i)
    }
    states.fill(undefined, 0, n) // holds no upstream's state past the call
    this.eligible = eligible
    this.eligibleWeights = Float64Array.from(eligibleWeights)
    this.ramping = ramped !== undefined
    this.#ramped = ramped
    this.index = index ?? previous!.index
    this.version = version
  }

  get (id: string): Upstream | undefined {
    const i = this.index.get(id)
    return i === undefined ? undefined : this.all[i]
  }

  /** `u`'s effective weight in this snapshot (its configured weight unless it ramps): a Map lookup only during a slow start. */
  weightOf (u: Upstream): number {
    return this.#ramped === undefined ? u.weight : (this.#ramped.get(u) ?? u.weight)
  }

  /** Whether users already bound to `u` stay there: it is up or draining (or down, in panic mode). */
  keeps (u: Upstream): boolean {
    const state = u.state
    return state !== 'down' || this.panic
  }
}

function sameUpstreams (a: readonly Upstream[], b: readonly Upstream[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Each upstream's state, read once per snapshot (a getter): one array reused, not one per change. */
let states: (string | undefined)[] = []
function scratchStates (n: number): (string | undefined)[] {
  if (states.length < n) states = new Array<string | undefined>(n)
  return states
}
