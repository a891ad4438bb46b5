import { applyPatch, fieldsOf, type Operation, type WireEntry } from './control-entry.js'

/** A change this instance made without Redis, offered at the next sync as a compare-and-set on `base`. */
export interface Offer {
  id: string
  /** The entry to write (fields only), or undefined to forget it. */
  fields: string | undefined
  /** The epoch and version of the stored entry the change was based on (version 0: none). */
  epoch: string | undefined
  base: number
  /** Made by an operator here (a conflict is reported), or only re-offered after Redis lost its data. */
  local: boolean
}

/**
 * What one instance knows of the stored operator state, and what it changed on its
 * own. Versions count per name within an epoch; `seen` holds, per upstream, the
 * version last applied here, so an entry arriving twice or late (a message after a
 * full read, our own write's echo) is applied once. No I/O here: control.ts feeds it.
 */
export class Replica {
  /** The state's epoch as last seen (undefined: nothing read or written yet). */
  epoch: string | undefined
  /** The highest version seen in this epoch: a report finding a higher one in Redis means a message was missed. */
  highest = 0
  readonly #mirror = new Map<string, WireEntry>()
  readonly #seen = new Map<string, number>()
  readonly #dirty = new Map<string, Omit<Offer, 'id' | 'fields'>>()

  get (id: string): WireEntry | undefined {
    return this.#mirror.get(id)
  }

  isDirty (id: string): boolean {
    return this.#dirty.has(id)
  }

  get pending (): number {
    return this.#dirty.size
  }

  /** An operation applied here while it could not be written: remembered with the version it was based on. */
  keep (id: string, o: Operation): void {
    const before = this.#mirror.get(id)
    this.#mirror.set(id, applyPatch(before, o))
    if (!this.#dirty.has(id)) this.#dirty.set(id, { epoch: this.epoch, base: before?.v ?? 0, local: true })
  }

  /** A member its source removed while Redis was unreachable: forgotten here, and in Redis at the next sync. */
  forgetLater (id: string): void {
    const e = this.#mirror.get(id)
    if (e === undefined) return
    this.#mirror.delete(id)
    if (!this.#dirty.has(id)) this.#dirty.set(id, { epoch: this.epoch, base: e.v, local: false })
  }

  /** An entry from Redis: recorded, and true when it is newer than what was applied here (or `force`). */
  accept (id: string, e: WireEntry, force = false): boolean {
    this.highest = Math.max(this.highest, e.v)
    if (!force && e.v <= (this.#seen.get(id) ?? 0)) return false
    this.#seen.set(id, e.v)
    this.#mirror.set(id, e)
    return true
  }

  /** A forget from Redis (version `v`). */
  forgotten (id: string, v: number): void {
    this.highest = Math.max(this.highest, v)
    if (v <= (this.#seen.get(id) ?? 0)) return
    this.#seen.set(id, v)
    this.#mirror.delete(id)
  }

  /**
   * Redis came back without the state (a new epoch): versions of the old one mean
   * nothing now. Everything known here is offered again, as a compare-and-set that
   * only fills what nobody has written yet in the new epoch.
   */
  reoffer (): void {
    for (const [id, e] of this.#mirror) if (!this.#dirty.has(id)) this.#dirty.set(id, { epoch: this.epoch, base: e.v, local: false })
    this.#seen.clear()
    this.highest = 0
  }

  offers (): Offer[] {
    return [...this.#dirty].map(([id, d]) => {
      const e = this.#mirror.get(id)
      return { id, fields: e === undefined ? undefined : fieldsOf(e), ...d }
    })
  }

  settled (id: string): void {
    this.#dirty.delete(id)
  }

  /** After a full read: entries gone from Redis (forgotten elsewhere) are dropped, unless changed here since. */
  prune (stored: ReadonlyMap<string, WireEntry>): void {
    for (const id of [...this.#mirror.keys()]) if (!stored.has(id) && !this.#dirty.has(id)) this.#mirror.delete(id)
  }

  clear (): void {
    this.epoch = undefined
    this.highest = 0
    this.#mirror.clear()
    this.#seen.clear()
    this.#dirty.clear()
  }
}
