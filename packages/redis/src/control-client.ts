import { EventEmitter } from 'node:events'
import { randomUUID } from 'node:crypto'
import { AffinityError } from '@affinity/core'
import { parseEntry, patchOf, publicEntry, type ControlEntry, type Operation, type WireEntry } from './control-entry.js'
import { controlConfig, type ControlConfig, type RedisControlOptions } from './control-options.js'
import { controlKeys, isReady, OPERATE, runScript, withTimeout, type Client, type ControlKeys } from './control-redis.js'
import { readInstances, type LiveInstance } from './control-view.js'

/** The stored state: `control.state()`. */
export interface ControlState {
  /** Changes when Redis loses its data (a restart without persistence): versions count within one epoch. */
  epoch: string | null
  /** The version of the last operation (a counter per name, HINCRBY). */
  version: number
  upstreams: Record<string, ControlEntry>
}

/** What the operate script answered. */
export interface Written { epoch: string, won: boolean, entry: WireEntry | undefined, version: number }

/** The whole stored state, parsed. */
export interface StoredState { epoch: string | undefined, version: number, entries: Map<string, WireEntry> }

export const noop = (): void => {}

/**
 * The Redis side of a control: its keys, the operate script, reading the state and
 * the views, and the operations code can send without a balancer of its own (what
 * the CLI uses). RedisControl adds a balancer to follow.
 */
export class ControlClient extends EventEmitter {
  readonly name: string
  /** This instance's id in the views. */
  readonly id: string
  protected readonly config: ControlConfig
  protected readonly client: Client
  protected readonly keys: ControlKeys
  protected closed = false

  constructor (opts: RedisControlOptions) {
    super()
    this.config = controlConfig(opts)
    this.client = this.config.client
    this.name = this.config.name
    this.id = this.config.id
    this.keys = controlKeys(this.config.prefix, this.name)
  }

  /**
   * Operations sent to every instance under this name, from code that has no
   * balancer of its own (the CLI's `affinity drain`). Each resolves with the stored
   * entry once written; every attached balancer (this control's own included)
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
    const s = await this.readState()
    const upstreams: Record<string, ControlEntry> = {}
    for (const [id, e] of s.entries) upstreams[id] = publicEntry(e)
    return { epoch: s.epoch ?? null, version: s.version, upstreams }
  }

  /** The instances that reported within their view's TTL, by id. */
  async instances (): Promise<LiveInstance[]> {
    await this.#connected()
    return await this.call(() => readInstances(this.client, this.keys))
  }

  /** One run of the operate script (control-redis.ts): mode, upstream, entry fields, and the base of a compare-and-set. */
  protected async write (mode: string, id: string, json: string, baseEpoch: string, base: number): Promise<Written> {
    const r = await this.call(() => runScript(this.client, OPERATE, [this.keys.state], [mode, id, json, baseEpoch, base, randomUUID(), this.keys.channel])) as [string, number, string, number]
    return { epoch: r[0], won: r[1] === 1, entry: parseEntry(r[2]), version: Number(r[3]) }
  }

  protected async readState (): Promise<StoredState> {
    const all = await this.call(() => this.client.hgetall(this.keys.state))
    const entries = new Map<string, WireEntry>()
    for (const [field, value] of Object.entries(all)) {
      if (!field.startsWith('u:')) continue
      const e = parseEntry(value)
      if (e !== undefined) entries.set(field.slice(2), e)
    }
    return { epoch: all['#epoch'], version: Number(all['#version'] ?? 0), entries }
  }

  /** A command, only on a ready client (ioredis would otherwise queue it for whenever it reconnects), within timeoutMs. */
  protected call<T> (run: () => Promise<T>): Promise<T> {
    if (!isReady(this.client)) return Promise.reject(new Error(`the Redis client is not ready (${this.client.status})`))
    return withTimeout(this.config.timeoutMs, run)
  }

  protected warn (obj: object, msg: string): void {
    if (this.config.logger !== undefined) this.config.logger.warn(obj, msg)
    else process.emitWarning(msg, { code: 'AFFINITY_REDIS_CONTROL' })
  }

  async #command (id: string, o: Operation): Promise<ControlEntry> {
    if (this.closed) throw new AffinityError('AFFINITY_ERR_CLOSED')
    if (typeof id !== 'string' || id === '') throw new AffinityError('AFFINITY_ERR_UNKNOWN_UPSTREAM', JSON.stringify(id))
    const { mode, fields } = patchOf(o)
    await this.#connected()
    const w = await this.write(mode, id, JSON.stringify(fields), '', 0)
    return publicEntry(w.entry!)
  }

  /** For calls made from code (the CLI): a client still connecting is waited for, up to timeoutMs. */
  async #connected (): Promise<void> {
    const client = this.client
    if (isReady(client)) return
    if (client.status === 'wait') client.connect().catch(noop)
    await new Promise<void>(resolve => {
      const done = (): void => { clearTimeout(timer); client.off('ready', done); resolve() }
      const timer = setTimeout(done, this.config.timeoutMs)
      client.once('ready', done)
    })
  }
}
