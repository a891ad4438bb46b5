import { AffinityError, isBalancer, type Balancer, type UpstreamInfo } from '@affinity/core'
import { ControlClient, noop, type Written } from './control-client.js'
import { converge, operationOf, patchOf, publicEntry, type Operation, type WireEntry } from './control-entry.js'
import type { RedisControlOptions } from './control-options.js'
import { Replica } from './control-replica.js'
import { isReady, REPORT, runScript, type Client } from './control-redis.js'
import { buildView } from './control-view.js'

export type { ControlState } from './control-client.js'

/** The balancer events that are operations (the balancer emits each as it applies it, synchronously). */
const EVENTS = ['draining', 'undrained', 'weight', 'added', 'removed'] as const

/** Membership changes a source made (DNS): each instance follows its source itself, so they are not published. */
const fromSource = (reason: string): boolean => reason === 'discovery' || reason.startsWith('discovery ')

/**
 * Operator state shared through Redis by every balancer attached under one name.
 * See packages/redis/README.md ("Control across instances") for the model; in short:
 * - Each operation (drain, undrain, setWeight, add, remove on an attached balancer,
 *   or sent by the CLI) is one script run: the upstream's entry in the state hash is
 *   updated with the next version of a per-name counter and published on the
 *   channel, in version order. Every attached instance applies entries newer than
 *   the version it holds for that upstream, so duplicates and reordering are harmless.
 * - Attaching (and every reconnection) subscribes first, then reads the whole state
 *   and applies what is newer: an instance that starts or restarts begins from it.
 * - While Redis is unreachable, operations apply locally and are remembered with the
 *   version they were based on. At the next sync each is offered as a compare-and-set:
 *   written (and published) if the stored entry is still that version, else the
 *   stored entry, a later write, wins and is applied here ('conflict').
 */
export class RedisControl extends ControlClient {
  readonly #replica = new Replica()
  #balancer: Balancer | undefined
  /** Whether the balancer follows a membership source: its membership is the source's, never an operator's. */
  #sourced = false
  /** Upstreams a source removed in the batch being announced. */
  readonly #leaving = new Set<string>()
  #unlisten: Array<() => void> = []
  #sub: Client | undefined
  #timer: NodeJS.Timeout | undefined
  #online = false
  #applying = false
  #syncing: Promise<void> | undefined
  #again = false
  #synced: (() => void) | undefined
  #outages = 0
  #since = 0

  /** Whether the instance is in step with Redis (attached, subscribed, state read). */
  get online (): boolean {
    return this.#online
  }

  /**
   * Follows and publishes `balancer`'s operations. Resolves once the stored state is
   * applied, or after `timeoutMs` without Redis: the instance then starts from its
   * own configuration and catches up when Redis answers. Await it before serving.
   */
  async attach (balancer: Balancer): Promise<void> {
    if (this.closed) throw new AffinityError('AFFINITY_ERR_CLOSED')
    if (!isBalancer(balancer)) throw new AffinityError('AFFINITY_ERR_INVALID_OPTION', 'balancer', 'expected a balancer from createBalancer()')
    if (this.#balancer !== undefined) throw new AffinityError('AFFINITY_ERR_INVALID_OPTION', 'balancer', 'this control is already attached: create one control per balancer')
    this.#balancer = balancer
    this.#sourced = balancer.stats().discovery !== undefined
    for (const event of EVENTS) {
      const listener = (info: UpstreamInfo, reason: string): void => this.#local(event, info, reason)
      balancer.on(event, listener)
      this.#unlisten.push(() => balancer.off(event, listener))
    }
    const sub = this.client.duplicate()
    this.#sub = sub
    sub.on('error', noop) // the outage shows through 'close' and failed commands
    sub.on('message', this.#onMessage)
    for (const c of [this.client, sub]) {
      c.on('ready', this.#onReady)
      c.on('close', this.#onClose)
      this.#unlisten.push(() => { c.off('ready', this.#onReady); c.off('close', this.#onClose) })
    }
    if (this.client.status === 'wait') this.client.connect().catch(noop)
    if (sub.status === 'wait') sub.connect().catch(noop)
    this.#timer = setInterval(() => { void this.#tick() }, this.config.reportMs)
    this.#timer.unref()
    const first = new Promise<void>(resolve => { this.#synced = resolve })
    void this.#sync()
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>(resolve => { timer = setTimeout(resolve, this.config.timeoutMs, 'late') })
    const outcome = await Promise.race([first, late])
    clearTimeout(timer)
    if (outcome === 'late') this.warn({ name: this.name }, 'Redis control: the stored state could not be read in time; this instance starts from its own configuration and applies the stored state when Redis answers')
  }

  /** Stops following the balancer: no more reports (its view is deleted), no subscription. Operations not yet written are dropped. */
  async detach (): Promise<void> {
    if (this.#balancer === undefined) return
    for (const off of this.#unlisten) off()
    this.#unlisten = []
    clearInterval(this.#timer)
    this.#timer = undefined
    const sub = this.#sub
    this.#sub = undefined
    this.#balancer = undefined
    this.#online = false
    this.#synced = undefined
    this.#replica.clear()
    sub?.disconnect()
    if (isReady(this.client)) {
      await this.call(() => this.client.pipeline().del(this.keys.viewPrefix + this.id).zrem(this.keys.views, this.id).exec()).catch(noop)
    }
  }

  /** Detaches; the control cannot be used afterwards. The client stays open: it is the caller's. */
  async close (): Promise<void> {
    await this.detach()
    this.closed = true
  }

  /** A balancer event: an operator's operation is published (or, offline, kept for the next sync). */
  #local (event: typeof EVENTS[number], info: UpstreamInfo, reason: string): void {
    if (this.#applying || this.#balancer === undefined) return
    const id = info.id
    if (fromSource(reason)) {
      if (event === 'added') {
        this.#leaving.delete(id) // replaced under the same id (a new address): not gone
        this.#applyKnown(info)
      } else if (event === 'removed') {
        // A source replaces an upstream whose address changed by a removal and an addition
        // in one batch, announced together: forget only once the batch is over.
        this.#leaving.add(id)
        queueMicrotask(() => { if (this.#leaving.delete(id)) this.#forget(id) })
      }
      return
    }
    const o = operationOf(event, info)
    if (o === undefined) return
    if (!this.#online || this.#replica.isDirty(id)) {
      this.#keep(id, o)
      return
    }
    const { mode, fields } = patchOf(o)
    this.write(mode, id, JSON.stringify(fields), '', 0).then(w => this.#written(id, w), (err: unknown) => {
      // Whether Redis applied it is unknown: kept like an operation made offline, the next sync settles it.
      this.#keep(id, o)
      this.#offline(err)
    })
  }

  #keep (id: string, o: Operation): void {
    this.#replica.keep(id, o)
    if (this.#syncing !== undefined) this.#again = true
  }

  /** A member a source added: what operators set for it before (drained, weight) applies to it here too. */
  #applyKnown (info: UpstreamInfo): void {
    const e = this.#replica.get(info.id)
    if (e !== undefined) this.#apply(info.id, e, info, false)
  }

  /**
   * A member its source removed is gone: its operator state is forgotten (if nobody
   * changed it since), so an address reused later by another server starts afresh.
   */
  #forget (id: string): void {
    const e = this.#replica.get(id)
    if (e === undefined) return
    if (!this.#online || this.#replica.isDirty(id)) {
      this.#replica.forgetLater(id)
      return
    }
    this.write('forget', id, '{}', this.#replica.epoch ?? '', e.v).then(w => {
      if (!w.won) return
      this.#replica.forgotten(id, w.version)
      this.emit('forgotten', id)
    }, (err: unknown) => this.#offline(err))
  }

  /** The stored entry after this instance's own write. */
  #written (id: string, w: Written): void {
    const r = this.#replica
    if (r.epoch !== undefined && w.epoch !== r.epoch) {
      void this.#sync() // Redis lost its state meanwhile: the sync re-offers what this instance knows
      return
    }
    r.epoch = w.epoch
    if (w.entry !== undefined) this.#received(id, w.entry)
  }

  #onMessage = (channel: string, text: string): void => {
    if (channel !== this.keys.channel || this.#balancer === undefined) return
    let m: { e?: unknown, id?: unknown, entry?: WireEntry, forget?: unknown }
    try { m = JSON.parse(text) } catch { return }
    if (typeof m?.e !== 'string' || typeof m.id !== 'string') return
    const r = this.#replica
    if (r.epoch !== undefined && m.e !== r.epoch) {
      void this.#sync()
      return
    }
    r.epoch = m.e
    // A change kept during an outage is settled by the sync's compare-and-set, not here.
    if (r.isDirty(m.id)) return
    if (typeof m.forget === 'number') r.forgotten(m.id, m.forget)
    else if (typeof m.entry?.v === 'number') this.#received(m.id, m.entry)
  }

  /** An entry from Redis: applied when newer than what this instance holds for that upstream. */
  #received (id: string, e: WireEntry, force = false): void {
    if (!this.#replica.accept(id, e, force)) return
    this.#apply(id, e, this.#balancer?.list().find(u => u.id === id), !this.#sourced)
  }

  /** Applies an entry to the balancer; the events it fires are not published again (they fire synchronously, inside the flag). */
  #apply (id: string, e: WireEntry, present: UpstreamInfo | undefined, membership: boolean): void {
    const balancer = this.#balancer
    if (balancer === undefined) return
    this.#applying = true
    let err: Error | undefined
    try {
      err = converge(balancer, id, e, present, membership)
    } finally {
      this.#applying = false
    }
    if (err !== undefined) this.warn({ err, upstream: id }, `Redis control: the stored state of ${JSON.stringify(id)} could not be applied`)
    else this.emit('applied', id, publicEntry(e))
  }

  #onReady = (): void => { void this.#sync() }
  #onClose = (): void => { this.#offline(new Error('the connection to Redis closed')) }

  #sync (): Promise<void> {
    if (this.#syncing !== undefined) {
      this.#again = true
      return this.#syncing
    }
    this.#syncing = this.#syncOnce().finally(() => {
      this.#syncing = undefined
      if (this.#again) {
        this.#again = false
        void this.#sync()
      }
    })
    return this.#syncing
  }

  /**
   * Subscribe, then read: nothing published after the read can be missed. Changes
   * kept during an outage are offered as compare-and-sets; then the stored state,
   * read again, is applied where it is newer than what this instance holds, and
   * wherever this instance's own offer lost.
   */
  async #syncOnce (): Promise<void> {
    const sub = this.#sub
    const r = this.#replica
    if (this.#balancer === undefined || sub === undefined || !isReady(this.client) || !isReady(sub)) return
    try {
      await this.call(() => sub.subscribe(this.keys.channel))
      const before = await this.readState()
      if (r.epoch !== undefined && before.epoch !== r.epoch) r.reoffer()
      const contested = new Set<string>()
      for (const offer of r.offers()) {
        const w = await this.write(offer.fields === undefined ? 'forget' : 'cas', offer.id, offer.fields ?? '{}', offer.epoch ?? '', offer.base)
        r.settled(offer.id)
        contested.add(offer.id)
        if (!w.won && offer.local) this.#conflict(offer.id, r.get(offer.id), w.entry)
      }
      const state = await this.readState()
      if (this.#sub !== sub) return // detached meanwhile
      r.epoch = state.epoch
      r.highest = Math.max(r.highest, state.version)
      for (const [id, e] of state.entries) this.#received(id, e, contested.has(id))
      r.prune(state.entries)
      this.#online = r.pending === 0
      if (!this.#online) return // changed again meanwhile: #again brings another round
      if (this.#since !== 0) this.config.logger?.info({ name: this.name, downMs: Date.now() - this.#since }, 'Redis control: back in step with Redis')
      this.#since = 0
      this.emit('synced', { epoch: state.epoch ?? null, version: state.version })
      this.#synced?.()
      this.#synced = undefined
    } catch (err) {
      this.#offline(err)
    }
  }

  #conflict (id: string, local: WireEntry | undefined, stored: WireEntry | undefined): void {
    const detail = { upstream: id, local: local && publicEntry(local), stored: stored && publicEntry(stored) }
    this.warn(detail, `Redis control: what this instance did to ${JSON.stringify(id)} while Redis was unreachable lost to a later operation stored in Redis, which now applies`)
    this.emit('conflict', detail)
  }

  /** Reports this instance's view; the answer tells whether it missed an operation. */
  async #tick (): Promise<void> {
    const balancer = this.#balancer
    const sub = this.#sub
    if (balancer === undefined || sub === undefined) return
    if ((!this.#online || this.#replica.pending > 0) && isReady(sub)) void this.#sync()
    if (!isReady(this.client)) return
    const now = Date.now()
    const view = buildView(balancer, {
      id: this.id, at: now, reportMs: this.config.reportMs, viewTtlMs: this.config.viewTtlMs,
      online: this.#online, epoch: this.#replica.epoch ?? null, version: this.#replica.highest,
    })
    try {
      const [epoch, version] = await this.call(() => runScript(this.client,
        REPORT, [this.keys.viewPrefix + this.id, this.keys.views, this.keys.state],
        [JSON.stringify(view), Math.round(this.config.viewTtlMs), this.id, now, now - 86_400_000])) as [string | null, string | null]
      this.emit('reported', view)
      if (this.#online && ((epoch ?? undefined) !== this.#replica.epoch || Number(version ?? 0) > this.#replica.highest)) void this.#sync()
    } catch (err) {
      this.#offline(err)
    }
  }

  #offline (err: unknown): void {
    if (!this.#online) return
    this.#online = false
    this.#outages++
    this.#since = Date.now()
    const error = err instanceof Error ? err : new Error(String(err))
    this.warn({ err: error, name: this.name, outage: this.#outages }, 'Redis control unreachable: operations apply on this instance only until Redis is back, then the stored state wins where it is newer')
    this.emit('offline', error)
  }

}

/** A control shared through Redis by every balancer attached under `name`: `await redisControl({ client, name }).attach(balancer)`. */
export function redisControl (opts: RedisControlOptions): RedisControl {
  return new RedisControl(opts)
}
