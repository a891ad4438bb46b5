import { invalidOption } from '../errors.js'
import { finiteNumber, knownKeys, oneOf, wholeNumber } from '../options.js'
import { boundedWalk } from '../hashing/bounded-loads.js'
import { NEVER, within, type Deadline } from '../hashing/deadline.js'
import { DEFAULT_MAGLEV_SIZE, isPrime } from '../hashing/maglev.js'
import { MAGLEV_SLICE_FROM, MaglevTables } from '../hashing/maglev-tables.js'
import { murmur3 } from '../hashing/murmur3.js'
import { Ring, SLICE_FROM } from '../hashing/ring.js'
import { DEFAULT_VNODES } from '../hashing/ring-points.js'
import { sortByPoint } from '../hashing/radix.js'
import { lookupIf } from '../hashing/ring-what-if.js'
import type { Placement } from '../hashing/table.js'
import { compileKey, type KeySpec } from '../keys/key-source.js'
import type { Members } from '../model/members.js'
import { FlowTally, type Remap } from '../model/remap.js'
import type { RouteRequest } from '../model/types.js'
import type { Upstream } from '../model/upstream.js'
import { pickWithRoom } from './pick-with-room.js'
import { roundRobin } from './round-robin.js'
import { type Strategy } from './strategy.js'
import { warmUp, type SliceFrom } from './hash-warm-up.js'
import { isPromise, type Choice, type PickResult } from '../model/choice.js'

export interface ConsistentHashOptions {
  key: KeySpec
  algorithm?: 'ring' | 'maglev'
  /** Ring points per unit of weight (ring only). */
  vnodes?: number
  /** Maglev table size, a prime well above 100 × upstreams (maglev only). */
  tableSize?: number
  /** Bounded loads: no upstream takes more than ceil(factor × average) in-flight requests. */
  balanceFactor?: number
  /** Strategy for requests that carry no key. */
  fallback?: Strategy
}

/**
 * Key hashes of the last picks kept for previews (a power of two): 16 KiB, one
 * store per pick (bench/strategies.js measures it), enough to estimate the share
 * a change moves within ±1.5 points.
 */
export const KEY_SAMPLE = 4096

/**
 * How long (ms) a slice of a fleet-scale change runs before it yields to the event
 * loop, plus at most one step (64 ring points, 64 Maglev slots, one
 * upstream's eligibility): a change at 1,000 upstreams (≈ 3 ms of ring point moves,
 * a 3–4 ms Maglev fill) takes one or two slices, with requests served between them
 * (`npm run bench:membership`, its `slices` column).
 */
const SLICE_MS = 3

/** Remaps owed for changes still being applied, at most (see update()). */
const REMAPS_OWED = 8

/**
 * Consistent hashing on a key taken from the request (cookie, header, query or a
 * function), with a ring (Karger 1997) or a Maglev table (NSDI 2016), and optional
 * bounded loads (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with Bounded
 * Loads", SODA 2018). Key extraction and key→upstream mapping are separate, as in
 * Envoy's hash_policy / load balancer split.
 *
 * At fleet scale a change is applied in slices of SLICE_MS on later turns of the
 * event loop (the ring's point moves, a new Maglev table), so that no change blocks
 * it for long; picks stay correct meanwhile (ring.ts, maglev-tables.ts), and a
 * 'remap' event asked for such a change is computed once it is applied.
 */
export class ConsistentHash implements Strategy {
  readonly name: string
  readonly #hashOf: (req: RouteRequest) => number
  readonly #vnodes: number
  readonly #factor: number
  readonly #fallback: Strategy
  /** ring: kept up to date by update(), change by change (hashing/ring.ts). */
  readonly #ring: Ring<Upstream> | undefined
  /** maglev: the tables (hashing/maglev-tables.ts). */
  readonly #maglev: MaglevTables | undefined
  /** What picks read: the ring itself, or a Maglev table resolved for the current health. */
  #placement: Placement<Upstream> | undefined
  readonly #sample = new Uint32Array(KEY_SAMPLE)
  /** preview()'s sorted copy of the sample, reused. */
  readonly #keys = new Uint32Array(KEY_SAMPLE)
  #sampleAt = 0
  /** Every entry of #sample written at least once (until then: those before #sampleAt). */
  #sampleFull = false
  #eligibleWeight = 0
  #members: Members | undefined
  /** Remaps asked of changes still being applied, in order; the next slice; who waits for the end. */
  #remaps: Array<{ from: Members, to: Members, resolve: (r: Remap) => void }> = []
  readonly #sliceFrom: SliceFrom
  readonly #config: HashConfig
  #slice: NodeJS.Immediate | undefined
  #settled: Array<() => void> = []

  /**
   * `hashOf` maps a request to its key's 32-bit hash, or -1 when it has no key:
   * consistentHash() extracts a key and murmur3-hashes it, ipHash() hashes the
   * client address's bytes (keys/ip.ts). Mapping code sees only that integer.
   */
  constructor (name: string, config: HashConfig, hashOf: KeyHasher, sliceFrom: SliceFrom = { ring: SLICE_FROM, maglev: MAGLEV_SLICE_FROM }) {
    this.name = name
    this.#hashOf = hashOf
    this.#config = config
    this.#sliceFrom = sliceFrom
    this.#vnodes = config.vnodes
    this.#factor = config.balanceFactor
    this.#fallback = config.fallback
    this.#ring = config.algorithm === 'ring' ? new Ring(this.#vnodes, sliceFrom.ring) : undefined
    this.#maglev = config.algorithm === 'maglev' ? new MaglevTables(config.tableSize) : undefined
  }

  /**
   * On every membership or health change. The ring applies the difference from the
   * previous snapshot (O(points that come or go)); a Maglev table depends only on
   * ids and weights, so it is rebuilt on membership changes (≈ 3.5 ms) and only its
   * successors are re-resolved on health changes. At fleet scale both take the
   * change in here and apply it in slices (`npm run bench:membership`).
   */
  update (members: Members): void {
    // Remaps still owed are computed in later slices, whatever changed since (each
    // compares two snapshots of its own); past REMAPS_OWED the oldest is done here,
    // so changes that come faster than slices run hold a bounded number of snapshots.
    while (this.#remaps.length > REMAPS_OWED) {
      const job = this.#remaps.shift()!
      job.resolve(this.preview(job.from, job.to))
    }
    this.#fallback.update(members)
    this.#members = members
    if (this.#ring !== undefined) {
      this.#ring.sync(members.all, members.eligibleMask, true)
      this.#placement = this.#ring
    } else {
      this.#placement = this.#maglev!.update(members, this.#slices(members))
    }
    if (this.#pendingWork()) this.#continue()
    // Bounded loads share capacity by effective weight (slow start), while the
    // ring and the table keep the configured one: a ramp moves no key.
    let total = 0
    for (const w of members.eligibleWeights) total += w
    this.#eligibleWeight = total
    if (this.#slices(members)) warmUp(this.#config, (config, sliceFrom) => new ConsistentHash(this.name, config, this.#hashOf, sliceFrom))
  }

  /** Applies what is left of the changes and computes the remaps owed, now (hash-warm-up.ts drives a scratch fleet so). */
  finish (): void {
    while (this.#step(NEVER));
  }

  /** Keeps a key hash for previews (pick, and hash-warm-up.ts). */
  remember (hash: number): void {
    const next = (this.#sampleAt + 1) & (KEY_SAMPLE - 1)
    this.#sample[this.#sampleAt] = hash
    this.#sampleAt = next
    if (next === 0) this.#sampleFull = true
  }

  /**
   * The 'remap' event of a change about to be applied (`from` → `to`), when it is
   * applied in slices: computed after them, in a slice of its own. Undefined when the
   * change is applied within the call: the balancer asks preview() right away.
   */
  remapLater (from: Members, to: Members): Promise<Remap> | undefined {
    if (!this.#slices(to)) return undefined
    return new Promise(resolve => this.#remaps.push({ from, to, resolve }))
  }

  /** Resolves once every change so far is applied and its remap computed (the simulator and tests compare settled placements). */
  settled (): Promise<void> {
    if (!this.#pendingWork()) return Promise.resolve()
    return new Promise(resolve => { this.#settled.push(resolve); this.#continue() })
  }

  /** Whether a change to `members` is applied in slices: a ring of SLICE_FROM points, a table over MAGLEV_SLICE_FROM upstreams. */
  #slices (members: Members): boolean {
    return this.#ring !== undefined ? this.#ring.size >= this.#sliceFrom.ring : members.all.length >= this.#sliceFrom.maglev
  }

  #pendingWork (): boolean {
    return this.#ring?.busy === true || this.#maglev?.busy === true || this.#remaps.length > 0
  }

  /**
   * One slice of work, until `deadline`: the change first, then one remap. Returns
   * whether work remains. A remap (≈ 1–5 ms at 1,000 upstreams: sorting and looking
   * up the sampled keys twice, not interruptible) runs in a slice of its own: after
   * a slice's share of the change it would double that slice (ring with bounded
   * loads: 7.4 ms slices, of which 5.1 the remap; bench/membership.js).
   */
  #step (deadline: Deadline): boolean {
    let worked = false
    if (this.#ring?.busy === true) {
      if (this.#ring.work(deadline)) return true
      worked = true
    }
    const maglev = this.#maglev
    if (maglev?.busy === true) {
      worked = true
      const placement = maglev.step(this.#members!, deadline)
      if (placement !== undefined) this.#placement = placement
    }
    // A remap waits for its tables (Maglev fills them in the order of changes), not for the newest.
    const job = this.#remaps[0]
    if (job === undefined) return maglev?.busy === true
    if (worked || deadline() || (maglev?.busy === true && !(maglev.has(job.from) && maglev.has(job.to)))) return true
    this.#remaps.shift()
    job.resolve(this.preview(job.from, job.to))
    return this.#remaps.length > 0 || maglev?.busy === true
  }

  /**
   * The next slice, on the loop's next turn. Not unref'd: an unref'd immediate
   * lets an idle loop sleep in poll until some other event (a 10 ms timer held
   * every slice back to it), and the work left is a few ms at most.
   */
  #continue (): void {
    if (this.#slice !== undefined) return
    this.#slice = setImmediate(this.#onSlice)
  }

  /** A named function, so that bench/membership.js can tell these slices from other setImmediate callbacks. */
  readonly #onSlice = (): void => {
    this.#slice = undefined
    if (this.#step(within(SLICE_MS))) this.#continue()
    else this.#done()
  }

  /** Wakes who awaits settled(), on the next turn: after the 'remap' events the last slice resolved. */
  #done (): void {
    if (this.#settled.length === 0) return
    const waiting = this.#settled
    this.#settled = []
    setImmediate(() => { for (const resolve of waiting) resolve() })
  }

  /** `aside` (no capacity there) only steers requests without a key, through the fallback: a key waits for its own upstream. */
  pick (req: RouteRequest, choice: Choice, aside?: ReadonlySet<Upstream>): PickResult {
    const hash = this.#hashOf(req)
    if (hash === -1) {
      const r = pickWithRoom(this.#fallback, req, choice, aside)
      if (isPromise(r)) return r.then(u => { choice.reason = 'fallback'; return u })
      choice.reason = 'fallback'
      return r
    }
    choice.key = hash | 0 // int32: a Smi, so storing it never boxes a heap number
    this.remember(hash)
    return this.pickHash(hash, choice)
  }

  /**
   * The recently seen keys, each mapped under `from` and under `to`: a key moves
   * when its first eligible owner changes (removed, down, draining, or an added
   * upstream taking it over). The ring answers for a membership it does not hold
   * by walking its own points plus and minus the difference (ring-what-if.ts, no
   * second ring); a Maglev table `to` needs is built here and kept for the
   * update() that follows. Both read the current change as applied: what is left
   * of it is finished first.
   */
  preview (from: Members, to: Members): Remap {
    this.#ring?.work()
    const tally = new FlowTally()
    // In ascending order, each distinct key once: duplicates sit side by side.
    const n = this.#sampleFull ? KEY_SAMPLE : this.#sampleAt
    const keys = this.#keys.subarray(0, n)
    keys.set(this.#sample.subarray(0, n))
    sortByPoint(keys, undefined, keys.length)
    let distinct = 0
    const moves = (before: Upstream | undefined, after: Upstream | undefined): void => {
      if (before !== undefined && after?.id !== before.id) tally.add(before.id, after?.id ?? null)
    }
    const ring = this.#ring
    if (ring !== undefined) {
      // One ring lookup per key serves both sides: the live answer, or a walk from there.
      const before = from === this.#members ? undefined : lookupIf(ring, from.all, from.eligibleMask, this.#vnodes)
      const after = to === this.#members ? undefined : lookupIf(ring, to.all, to.eligibleMask, this.#vnodes)
      const owners = ring.owners
      const live = (pos: number): Upstream | undefined => {
        const r = pos === -1 ? -1 : ring.resolved(pos)
        return r === -1 ? undefined : owners[r >> 1]
      }
      for (let i = 0; i < keys.length; i++) {
        const hash = keys[i]!
        if (i > 0 && hash === keys[i - 1]) continue
        distinct++
        const pos = ring.size > 0 ? ring.slot(hash) : -1
        moves(before === undefined ? live(pos) : from.all[before(hash, pos)], after === undefined ? live(pos) : to.all[after(hash, pos)])
      }
    } else {
      const before = this.#ownerUnder(from)
      const after = this.#ownerUnder(to)
      for (let i = 0; i < keys.length; i++) {
        const hash = keys[i]!
        if (i > 0 && hash === keys[i - 1]) continue
        distinct++
        moves(before(hash), after(hash))
      }
    }
    return tally.result('sampled', distinct)
  }

  /**
   * A key hash → its first eligible owner under `members`, for preview (Maglev): the
   * live placement once its table is whole (while one fills, picks read an interim),
   * or one from a table kept or built (whatIf), resolved only where the keys land.
   */
  #ownerUnder (members: Members): (hash: number) => Upstream | undefined {
    const maglev = this.#maglev!
    const placement = members === this.#members && !maglev.busy ? this.#placement! : maglev.whatIf(members)
    return hash => ownerOf(placement, hash)
  }

  /** The upstream for a key hash: its owner, else its first eligible successor. */
  pickHash (hash: number, choice: Choice): Upstream | undefined {
    const table = this.#placement
    if (table === undefined || table.size === 0) return undefined
    const pos = table.slot(hash)
    const r = table.resolved(pos)
    if (r === -1) return undefined
    const first = r >> 1
    const owners = table.owners
    if (this.#factor === 0 && choice.tried === undefined) {
      choice.reason = (r & 1) === 0 ? 'hash' : 'successor'
      return owners[first]
    }
    const members = this.#members!
    const o = boundedWalk(table, pos, this.#factor, members.totals.load, this.#eligibleWeight, choice, members)
    if (o === -1) return undefined
    choice.reason = o !== first ? (choice.tried === undefined ? 'spill' : 'successor') : ((r & 1) === 0 ? 'hash' : 'successor')
    return owners[o]
  }
}

/** A key's first eligible owner in a placement (bounded loads aside). */
function ownerOf (p: Placement<Upstream>, hash: number): Upstream | undefined {
  if (p.size === 0) return undefined
  const r = p.resolved(p.slot(hash))
  return r === -1 ? undefined : p.owners[r >> 1]
}

/** A request → its key's 32-bit hash, or -1 when it carries no key. */
export type KeyHasher = (req: RouteRequest) => number

/** ConsistentHashOptions without the key, checked, with their defaults. */
export interface HashConfig {
  algorithm: 'ring' | 'maglev'
  vnodes: number
  tableSize: number
  /** 0: no bounded loads. */
  balanceFactor: number
  fallback: Strategy
}

/** Checks the table options shared by consistentHash and ipHash. */
export function hashConfig (opts: Omit<ConsistentHashOptions, 'key'>): HashConfig {
  const tableSize = wholeNumber('tableSize', opts.tableSize, DEFAULT_MAGLEV_SIZE, 3, 5_000_011)
  if (!isPrime(tableSize)) throw invalidOption('tableSize', 'expected a prime from 3 to 5000011 (65537 by default)')
  return {
    algorithm: oneOf('algorithm', opts.algorithm, 'ring', ['ring', 'maglev']),
    vnodes: wholeNumber('vnodes', opts.vnodes, DEFAULT_VNODES, 1, 100_000),
    tableSize,
    balanceFactor: opts.balanceFactor === undefined ? 0 : finiteNumber('balanceFactor', opts.balanceFactor, 0, { above: 1 }, 'expected a number > 1, e.g. 1.25 (HAProxy and Envoy suggest 1.25–2)'),
    fallback: opts.fallback ?? roundRobin(),
  }
}

export function consistentHash (opts: ConsistentHashOptions): Strategy {
  if (opts === null || typeof opts !== 'object') throw invalidOption('consistentHash', 'expected an options object with `key`')
  knownKeys('consistentHash', opts, ['key', 'algorithm', 'vnodes', 'tableSize', 'balanceFactor', 'fallback'])
  const key = compileKey(opts.key)
  return new ConsistentHash('consistentHash', hashConfig(opts), (req) => {
    const k = key(req)
    return k === undefined ? -1 : murmur3(k)
  })
}
