import { EventEmitter } from 'node:events'
import { randomUUID } from 'node:crypto'
import { AffinityError, isBalancer, type Balancer, type UpstreamInfo } from '@affinity/core'
import {
  applyPatch, converge, fieldsOf, operationOf, parseEntry, patchOf, publicEntry,
  type ControlEntry, type Operation, type WireEntry,
} from './control-entry.js'
import { controlConfig, type ControlConfig, type RedisControlOptions } from './control-options.js'
import { controlKeys, isReady, OPERATE, REPORT, runScript, withTimeout, type Client, type ControlKeys } from './control-redis.js'
import { buildView, readInstances, type LiveInstance } from './control-view.js'

/** The balancer events that are operations (the balancer emits each as it applies it, synchronously). */
const EVENTS = ['draining', 'undrained', 'weight', 'added', 'removed'] as const

/** Membership changes a source made (DNS): each instance follows its source itself, so they are not published. */
const fromSource = (reason: string): boolean => reason === 'discovery' || reason.startsWith('discovery ')

/** The stored state: `control.state()`. */
export interface ControlState {
  /** Changes when Redis loses its data (a restart without persistence): versions count within one epoch. */
  epoch: string | null
  /** The version of the last operation (a counter per name, HINCRBY). */
  version: number
  upstreams: Record<string, ControlEntry>
}

/** What the script answered. */
interface Written { epoch: string, won: boolean, entry: WireEntry | undefined, version: number }

/** A change made while this instance could not write it: offered to Redis at the next sync, based on what it changed. */
interface Dirty { epoch: string | undefined, base: number, local: boolean }

const noop = (): void => {}

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
export class RedisControl extends EventEmitter {
  readonly name: string
  /** This instance's id in the views. */
  readonly id: string
  readonly #config: ControlConfig
  readonly #client: Client
  readonly #keys: ControlKeys
  readonly #mirror = new Map<string, WireEntry>()
  readonly #seen = new Map<string, number>()
  readonly #dirty = new Map<string, Dirty>()
  #balancer: Balancer | undefined
  #unlisten: Array<() => void> = []
  #sub: Client | undefined
  #timer: NodeJS.Timeout | undefined
  #epoch: string | undefined
  #highest = 0
  #online = false
  #applying = false
  #syncing: Promise<void> | undefined
  #again = false
  #synced: (() => void) | undefined
  #outages = 0
  #since = 0
  #closed = false

  constructor (opts: RedisControlOptions) {
    super()
    this.#config = controlConfig(opts)
    this.#client = this.#config.client
    this.name = this.#config.name
    this.id = this.#config.id
    this.#keys = controlKeys(this.#config.prefix, this.name)
  }

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
    if (this.#closed) throw new AffinityError('AFFINITY_ERR_CLOSED')
    if (!isBalancer(balancer)) throw new AffinityError('AFFINITY_ERR_INVALID_OPTION', 'balancer', 'expected a balancer from createBalancer()')
    if (this.#balancer !== undefined) throw new AffinityError('AFFINITY_ERR_INVALID_OPTION', 'balancer', 'this control is already attached: create one control per balancer')
    this.#balancer = balancer
    for (const event of EVENTS) {
      const listener = (info: UpstreamInfo, reason: string): void => this.#local(event, info, reason)
      balancer.on(event, listener)
      this.#unlisten.push(() => balancer.off(event, listener))
    }
    const sub = this.#client.duplicate()
    this.#sub = sub
    sub.on('error', noop) // the outage shows through 'close' and failed commands
    sub.on('message', this.#onMessage)
    for (const c of [this.#client, sub]) {
      c.on('ready', this.#onReady)
      c.on('close', this.#onClose)
      this.#unlisten.push(() => { c.off('ready', this.#onReady); c.off('close', this.#onClose) })
    }
    if (this.#client.status === 'wait') this.#client.connect().catch(noop)
    if (sub.status === 'wait') sub.connect().catch(noop)
    this.#timer = setInterval(() => { void this.#tick() }, this.#config.reportMs)
    this.#timer.unref()
    const first = new Promise<void>(resolve => { this.#synced = resolve })
    void this.#sync()
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>(resolve => { timer = setTimeout(resolve, this.#config.timeoutMs, 'late') })
    const outcome = await Promise.race([first, late])
    clearTimeout(timer)
    if (outcome === 'late') this.#warn({ name: this.name }, 'Redis control: the stored state could not be read in time; this instance starts from its own configuration and applies the stored state when Redis answers')
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
    this.#mirror.clear()
    this.#seen.clear()
    this.#dirty.clear()
    this.#epoch = undefined
    this.#highest = 0
    sub?.disconnect()
    if (isReady(this.#client)) {
      await this.#call(() => this.#client.pipeline().del(this.#keys.viewPrefix + this.id).zrem(this.#keys.views, this.id).exec()).catch(noop)
    }
  }

  /** Detaches; the control cannot be used afterwards. The client stays open: it is the caller's. */
  async close (): Promise<void> {
    await this.detach()
    this.#closed = true
  }

  /**
   * Operations sent to every instance under this name, from code that has no
   * balancer of its own (the CLI's `affinity drain`). Each resolves with the stored
   * entry once written; every attached balancer, this control's own included,
   * applies it from the channel. Redis unreachable: rejects.
   */
  drain (id: string): Promise<ControlEntry> { return this.#command(id, { op: 'drain' }) }
  undrain (id: string): Promise<ControlEntry> { return this.#command(id, { op: 'undrain' }) }
  setWeight (id: string, weight: number): Promise<ControlEntry> {
    if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) return Promise.reject(new AffinityError('AFFINITY_ERR_INVALID_WEIGHT', id, String(weight)))
    return this.#command(id, { op: 'weight', weight })
  }

  add (upstream: { url: string, id?: string, weight?: number }): Promise<ControlEntry> {
    const url = upstream?.url
    const weight = upstream?.weight ?? 1
    if (typeof url !== 'string' || !/^(https?|wss?):\/\/[^/]/i.test(url) || !URL.canParse(url)) return Promise.reject(new AffinityError('AFFINITY_ERR_INVALID_URL', JSON.stringify(url)))
    if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) return Promise.reject(new AffinityError('AFFINITY_ERR_INVALID_WEIGHT', upstream.id ?? url, String(weight)))
    return this.#command(upstream.id ?? url, { op: 'add', url, weight })
  }

  remove (id: string): Promise<ControlEntry> { return this.#command(id, { op: 'remove' }) }

  /** The stored operator state. */
  async state (): Promise<ControlState> {
    await this.#connected()
    const s = await this.#readState()
    const upstreams: Record<string, ControlEntry> = {}
    for (const [id, e] of s.entries) upstreams[id] = publicEntry(e)
    return { epoch: s.epoch ?? null, version: s.version, upstreams }
  }

  /** The instances that reported within their view's TTL, by id. */
  async instances (): Promise<LiveInstance[]> {
    await this.#connected()
    return await this.#call(() => readInstances(this.#client, this.#keys))
  }

  async #command (id: string, o: Operation): Promise<ControlEntry> {
    if (this.#closed) throw new AffinityError('AFFINITY_ERR_CLOSED')
    if (typeof id !== 'string' || id === '') throw new AffinityError('AFFINITY_ERR_UNKNOWN_UPSTREAM', JSON.stringify(id))
    const { mode, fields } = patchOf(o)
    await this.#connected()
    const w = await this.#write(mode, id, JSON.stringify(fields), '', 0)
    return publicEntry(w.entry!)
  }

  /** For the calls made from code (the CLI): a client still connecting is waited for, up to timeoutMs. */
  async #connected (): Promise<void> {
    const client = this.#client
    if (isReady(client)) return
    if (client.status === 'wait') client.connect().catch(noop)
    await new Promise<void>(resolve => {
      const done = (): void => { clearTimeout(timer); client.off('ready', done); resolve() }
      const timer = setTimeout(done, this.#config.timeoutMs)
      client.once('ready', done)
    })
  }

  /** A balancer event: an operator's operation is published (or, offline, kept for the next sync). */
  #local (event: typeof EVENTS[number], info: UpstreamInfo, reason: string): void {
    if (this.#applying || this.#balancer === undefined) return
    const id = info.id
    if (fromSource(reason)) {
      if (event === 'added') this.#applyKnown(info)
      else if (event === 'removed') this.#forget(id)
      return
    }
    const o = operationOf(event, info)
    if (o === undefined) return
    const before = this.#mirror.get(id)
    if (!this.#online || this.#dirty.has(id)) {
      this.#keep(id, o, before)
      return
    }
    const { mode, fields } = patchOf(o)
    this.#write(mode, id, JSON.stringify(fields), '', 0).then(w => this.#written(id, w), (err: unknown) => {
      // Whether Redis applied it is unknown: kept like an operation made offline, the next sync settles it.
      this.#keep(id, o, before)
      this.#offline(err)
    })
  }

  /** An operation made while Redis is unreachable: applied here already; offered at the next sync. */
  #keep (id: string, o: Operation, before: WireEntry | undefined): void {
    this.#mirror.set(id, applyPatch(before, o))
    if (!this.#dirty.has(id)) this.#dirty.set(id, { epoch: this.#epoch, base: before?.v ?? 0, local: true })
    if (this.#syncing !== undefined) this.#again = true
  }

  /** A member a source added: what operators set for it before (drained, weight) applies to it here too. */
  #applyKnown (info: UpstreamInfo): void {
    const e = this.#mirror.get(info.id)
    if (e !== undefined) this.#apply(info.id, e, info, false)
  }

  /**
   * A member its source removed is gone: its operator state is forgotten (if nobody
   * changed it since), so an address reused later by another server starts afresh.
   */
  #forget (id: string): void {
    const e = this.#mirror.get(id)
    if (e === undefined) return
    if (!this.#online || this.#dirty.has(id)) {
      this.#mirror.delete(id)
      if (!this.#dirty.has(id)) this.#dirty.set(id, { epoch: this.#epoch, base: e.v, local: false })
      return
    }
    this.#write('forget', id, '{}', this.#epoch ?? '', e.v).then(w => {
      if (w.won) {
        this.#mirror.delete(id)
        this.#seen.set(id, w.version)
        this.emit('forgotten', id)
      }
      this.#highest = Math.max(this.#highest, w.version)
    }, (err: unknown) => this.#offline(err))
  }

  /** The stored entry after this instance's own write. */
  #written (id: string, w: Written): void {
    if (this.#epoch !== undefined && w.epoch !== this.#epoch) {
      void this.#sync() // Redis lost its state meanwhile: the sync re-offers what this instance knows
      return
    }
    this.#epoch = w.epoch
    this.#highest = Math.max(this.#highest, w.version)
    if (w.entry !== undefined) this.#received(id, w.entry)
  }

  #onMessage = (channel: string, text: string): void => {
    if (channel !== this.#keys.channel || this.#balancer === undefined) return
    let m: { e?: unknown, id?: unknown, entry?: WireEntry, forget?: unknown }
    try { m = JSON.parse(text) } catch { return }
    if (typeof m?.e !== 'string' || typeof m.id !== 'string') return
    if (this.#epoch !== undefined && m.e !== this.#epoch) {
      void this.#sync()
      return
    }
    this.#epoch = m.e
    // A change kept during an outage is settled by the sync's compare-and-set, not here.
    if (this.#dirty.has(m.id)) return
    if (typeof m.forget === 'number') {
      this.#highest = Math.max(this.#highest, m.forget)
      if (m.forget > (this.#seen.get(m.id) ?? 0)) {
        this.#seen.set(m.id, m.forget)
        this.#mirror.delete(m.id)
      }
      return
    }
    const e = m.entry
    if (e === undefined || typeof e.v !== 'number') return
    this.#highest = Math.max(this.#highest, e.v)
    this.#received(m.id, e)
  }

  /** An entry from Redis: applied when newer than what this instance holds for that upstream. */
  #received (id: string, e: WireEntry, force = false): void {
    if (!force && e.v <= (this.#seen.get(id) ?? 0)) return
    this.#seen.set(id, e.v)
    this.#mirror.set(id, e)
    const present = this.#balancer?.list().find(u => u.id === id)
    this.#apply(id, e, present, true)
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
    if (err !== undefined) this.#warn({ err, upstream: id }, `Redis control: the stored state of ${JSON.stringify(id)} could not be applied`)
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
    if (this.#balancer === undefined || sub === undefined || !isReady(this.#client) || !isReady(sub)) return
    try {
      await this.#call(() => sub.subscribe(this.#keys.channel))
      const before = await this.#readState()
      if (this.#epoch !== undefined && before.epoch !== this.#epoch) this.#reoffer()
      const contested = new Set(this.#dirty.keys())
      for (const [id, d] of [...this.#dirty]) {
        const mine = this.#mirror.get(id)
        const w = await this.#write(mine === undefined ? 'forget' : 'cas', id, mine === undefined ? '{}' : fieldsOf(mine), d.epoch ?? '', d.base)
        this.#dirty.delete(id)
        if (!w.won && d.local) this.#conflict(id, mine, w.entry)
      }
      const state = await this.#readState()
      this.#epoch = state.epoch
      this.#highest = Math.max(state.version, this.#highest)
      for (const [id, e] of state.entries) this.#received(id, e, contested.has(id))
      for (const id of [...this.#mirror.keys()]) if (!state.entries.has(id) && !this.#dirty.has(id)) this.#mirror.delete(id)
      this.#online = this.#dirty.size === 0
      if (!this.#online) return // changed again meanwhile: #again brings another round
      if (this.#outages > 0 && this.#since !== 0) this.#config.logger?.info({ name: this.name, downMs: Date.now() - this.#since }, 'Redis control: back in step with Redis')
      this.#since = 0
      this.emit('synced', { epoch: state.epoch ?? null, version: state.version })
      this.#synced?.()
      this.#synced = undefined
    } catch (err) {
      this.#offline(err)
    }
  }

  /** Redis came back without the state (a new epoch): everything this instance knows is offered again, kept only where nobody wrote first. */
  #reoffer (): void {
    for (const [id, e] of this.#mirror) if (!this.#dirty.has(id)) this.#dirty.set(id, { epoch: this.#epoch, base: e.v, local: false })
    this.#seen.clear()
    this.#highest = 0
  }

  #conflict (id: string, local: WireEntry | undefined, stored: WireEntry | undefined): void {
    const detail = { upstream: id, local: local && publicEntry(local), stored: stored && publicEntry(stored) }
    this.#warn(detail, `Redis control: what this instance did to ${JSON.stringify(id)} while Redis was unreachable lost to a later operation stored in Redis, which now applies`)
    this.emit('conflict', detail)
  }

  /** Reports this instance's view; the answer tells whether it missed an operation. */
  async #tick (): Promise<void> {
    const balancer = this.#balancer
    const sub = this.#sub
    if (balancer === undefined || sub === undefined) return
    if ((!this.#online || this.#dirty.size > 0) && isReady(sub)) void this.#sync()
    if (!isReady(this.#client)) return
    const now = Date.now()
    const view = buildView(balancer, {
      id: this.id, at: now, reportMs: this.#config.reportMs, viewTtlMs: this.#config.viewTtlMs,
      online: this.#online, epoch: this.#epoch ?? null, version: this.#highest,
    })
    try {
      const [epoch, version] = await this.#call(() => runScript(this.#client,
        REPORT, [this.#keys.viewPrefix + this.id, this.#keys.views, this.#keys.state],
        [JSON.stringify(view), Math.round(this.#config.viewTtlMs), this.id, now, now - 86_400_000])) as [string | null, string | null]
      this.emit('reported', view)
      if (this.#online && ((epoch ?? undefined) !== this.#epoch || Number(version ?? 0) > this.#highest)) void this.#sync()
    } catch (err) {
      this.#offline(err)
    }
  }

  async #write (mode: string, id: string, json: string, baseEpoch: string, base: number): Promise<Written> {
    const r = await this.#call(() => runScript(this.#client, OPERATE, [this.#keys.state], [mode, id, json, baseEpoch, base, randomUUID(), this.#keys.channel])) as [string, number, string, number]
    return { epoch: r[0], won: r[1] === 1, entry: parseEntry(r[2]), version: Number(r[3]) }
  }

  async #readState (): Promise<{ epoch: string | undefined, version: number, entries: Map<string, WireEntry> }> {
    const all = await this.#call(() => this.#client.hgetall(this.#keys.state))
    const entries = new Map<string, WireEntry>()
    for (const [field, value] of Object.entries(all)) {
      if (!field.startsWith('u:')) continue
      const e = parseEntry(value)
      if (e !== undefined) entries.set(field.slice(2), e)
    }
    return { epoch: all['#epoch'], version: Number(all['#version'] ?? 0), entries }
  }

  #call<T> (run: () => Promise<T>): Promise<T> {
    if (!isReady(this.#client)) return Promise.reject(new Error(`the Redis client is not ready (${this.#client.status})`))
    return withTimeout(this.#config.timeoutMs, run)
  }

  #offline (err: unknown): void {
    if (!this.#online) return
    this.#online = false
    this.#outages++
    this.#since = Date.now()
    const error = err instanceof Error ? err : new Error(String(err))
    this.#warn({ err: error, name: this.name, outage: this.#outages }, 'Redis control unreachable: operations apply on this instance only until Redis is back, then the stored state wins where it is newer')
    this.emit('offline', error)
  }

  #warn (obj: object, msg: string): void {
    if (this.#config.logger !== undefined) this.#config.logger.warn(obj, msg)
    else process.emitWarning(msg, { code: 'AFFINITY_REDIS_CONTROL' })
  }
}

/** A control shared through Redis by every balancer attached under `name`: `await redisControl({ client, name }).attach(balancer)`. */
export function redisControl (opts: RedisControlOptions): RedisControl {
  return new RedisControl(opts)
}
