import { invalidOption } from '../errors.js'
import { finiteNumber, knownKeys, oneOf, wholeNumber } from '../options.js'
import { boundedWalk } from '../hashing/bounded-loads.js'
import { DEFAULT_MAGLEV_SIZE, isPrime, Maglev, nextPrime } from '../hashing/maglev.js'
import { murmur3 } from '../hashing/murmur3.js'
import { DEFAULT_VNODES, Ring } from '../hashing/ring.js'
import { sortByPoint } from '../hashing/radix.js'
import { lookupIf } from '../hashing/ring-what-if.js'
import { ResolvedTable, type Placement } from '../hashing/table.js'
import { compileKey, type KeySpec } from '../keys/key-source.js'
import type { Members } from '../model/members.js'
import { FlowTally, type Remap } from '../model/remap.js'
import type { RouteRequest } from '../model/types.js'
import type { Upstream } from '../model/upstream.js'
import { pickWithRoom } from './pick-with-room.js'
import { roundRobin } from './round-robin.js'
import { type Strategy } from './strategy.js'
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
 * Consistent hashing on a key taken from the request (cookie, header, query or a
 * function), with a ring (Karger 1997) or a Maglev table (NSDI 2016), and optional
 * bounded loads (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with Bounded
 * Loads", SODA 2018). Key extraction and key→upstream mapping are separate, as in
 * Envoy's hash_policy / load balancer split.
 */
export class ConsistentHash implements Strategy {
  readonly name: string
  readonly #hashOf: (req: RouteRequest) => number
  readonly #algorithm: 'ring' | 'maglev'
  readonly #vnodes: number
  readonly #tableSize: number
  readonly #factor: number
  readonly #fallback: Strategy
  /** ring: kept up to date by update(), change by change (hashing/ring.ts). */
  readonly #ring: Ring<Upstream> | undefined
  /** maglev: the table for the current ids and weights, and what it depends on. */
  #signature = ''
  #maglev: Maglev | undefined
  /**
   * What preview() built for a membership not yet applied (the Maglev table, and
   * the snapshot it resolved it for): update() takes it over instead of redoing it.
   */
  #pending: { signature: string, table: Maglev, members?: Members, placement?: Placement<Upstream> } | undefined
  /** What picks read: the ring itself, or the Maglev table resolved for the current health. */
  #placement: Placement<Upstream> | undefined
  readonly #sample = new Uint32Array(KEY_SAMPLE)
  #sampleAt = 0
  /** Every entry of #sample written at least once (until then: those before #sampleAt). */
  #sampleFull = false
  #eligibleWeight = 0
  #members: Members | undefined

  /**
   * `hashOf` maps a request to its key's 32-bit hash, or -1 when it has no key:
   * consistentHash() extracts a key and murmur3-hashes it, ipHash() hashes the
   * client address's bytes (keys/ip.ts). Mapping code sees only that integer.
   */
  constructor (name: string, config: HashConfig, hashOf: KeyHasher) {
    this.name = name
    this.#hashOf = hashOf
    this.#algorithm = config.algorithm
    this.#vnodes = config.vnodes
    this.#tableSize = config.tableSize
    this.#factor = config.balanceFactor
    this.#fallback = config.fallback
    this.#ring = this.#algorithm === 'ring' ? new Ring(this.#vnodes) : undefined
  }

  /**
   * On every membership or health change. The ring applies the difference from the
   * previous snapshot (O(points that come or go), ≤ 10 ms at 1,000 upstreams:
   * `npm run bench:membership`); a Maglev table depends only on ids and weights, so
   * it is rebuilt on membership changes (≈ 3 ms at 1,000 upstreams) and only its
   * successors are re-resolved on health changes.
   */
  update (members: Members): void {
    this.#fallback.update(members)
    this.#members = members
    if (this.#ring !== undefined) {
      this.#ring.sync(members.all, members.eligibleMask)
      this.#placement = this.#ring
    } else {
      const signature = this.#pending?.members === members ? this.#pending.signature : signatureOf(members)
      if (signature !== this.#signature || this.#maglev === undefined) {
        this.#maglev = this.#maglevFor(signature, members)
        this.#signature = signature
      }
      this.#placement = this.#pending?.members === members && this.#pending.table === this.#maglev
        ? this.#pending.placement!
        : new ResolvedTable(this.#maglev, members.eligibleMask, members.all)
    }
    this.#pending = undefined
    // Bounded loads share capacity by effective weight (slow start), while the
    // ring and the table keep the configured one: a ramp moves no key.
    this.#eligibleWeight = members.eligibleWeights.reduce((s, w) => s + w, 0)
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
    const next = (this.#sampleAt + 1) & (KEY_SAMPLE - 1)
    this.#sample[this.#sampleAt] = hash
    this.#sampleAt = next
    if (next === 0) this.#sampleFull = true
    return this.pickHash(hash, choice)
  }

  /**
   * The recently seen keys, each mapped under `from` and under `to`: a key moves
   * when its first eligible owner changes (removed, down, draining, or an added
   * upstream taking it over). The ring answers for a membership it does not hold
   * by walking its own points plus and minus the difference (ring-what-if.ts, no
   * second ring); a Maglev table `to` needs is built here and kept for the
   * update() that follows.
   */
  preview (from: Members, to: Members): Remap {
    const tally = new FlowTally()
    // In ascending order, each distinct key once: duplicates sit side by side.
    const keys = this.#sample.slice(0, this.#sampleFull ? KEY_SAMPLE : this.#sampleAt)
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
      const before = this.#maglevPlacement(from)
      const after = this.#maglevPlacement(to)
      for (let i = 0; i < keys.length; i++) {
        const hash = keys[i]!
        if (i > 0 && hash === keys[i - 1]) continue
        distinct++
        moves(ownerOf(before, hash), ownerOf(after, hash))
      }
    }
    return tally.result('sampled', distinct)
  }

  /** The Maglev table for `members`, resolved: the live one, or one built (and kept for update()). */
  #maglevPlacement (members: Members): Placement<Upstream> {
    if (members === this.#members && this.#placement !== undefined) return this.#placement
    const signature = signatureOf(members)
    const table = signature === this.#signature && this.#maglev !== undefined ? this.#maglev : this.#maglevFor(signature, members)
    const placement = new ResolvedTable(table, members.eligibleMask, members.all)
    // The 'remap' event previews the snapshot the balancer then applies: keep its successors too.
    if (this.#pending?.table === table) Object.assign(this.#pending, { members, placement })
    else this.#pending = { signature, table, members, placement }
    return placement
  }

  #maglevFor (signature: string, members: Members): Maglev {
    if (this.#pending?.signature === signature) return this.#pending.table
    const ids = members.all.map(u => u.id)
    const weights = members.all.map(u => u.weight)
    const table = new Maglev(ids, weights, Math.max(this.#tableSize, nextPrime(ids.length)))
    this.#pending = { signature, table }
    return table
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

/** What a Maglev table depends on: ids and weights, in Members order. */
function signatureOf (members: Members): string {
  return members.all.map(u => `${u.id}\u0000${u.weight}`).join('\u0001')
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
