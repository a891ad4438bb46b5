import { EventEmitter } from 'node:events'
import { AffinityError, memoryStickStore, type StickStore, type StickStoreStats } from '@affinity/core'
import type { Cluster, Redis } from 'ioredis'
import { DEGRADED_WARNING_CODE, RedisStoreError } from './errors.js'
import { px, Refresh } from './refresh.js'

/** A pino-like logger (pino, Fastify's `app.log`, `console`): object first, message second. */
export interface RedisStoreLogger {
  warn (obj: object, msg: string): void
  info (obj: object, msg: string): void
}

export interface RedisStoreOptions {
  /** The application's ioredis client (`Redis` or `Cluster`). The store never quits it. */
  client: Redis | Cluster
  /** Prepended to every key: `prefix + clientAddress`. */
  prefix?: string
  /** A Redis command not answered by then counts as an outage (default 50 ms). */
  timeoutMs?: number
  /** Answers while Redis is unavailable; every `set` is written through to it, so it is warm. */
  fallback?: StickStore
  /** Gets one `warn` per outage and one `info` per recovery; without it, a process warning per outage. */
  logger?: RedisStoreLogger
  /** How often Redis is probed (PING) during an outage (default 1000 ms). */
  probeIntervalMs?: number
}

/** What the store reports (core's StickStoreStats: balancer.stats().store and the metrics read it). */
export type RedisStoreStats = StickStoreStats

export type RedisStoreEvent = 'degraded' | 'recovered'

const noop = (): void => {}

/**
 * A `StickStore` on Redis, so several balancer instances share one stick table:
 * `SET prefix+key upstreamId PX ttl`, `GETEX … PX ttl` (or `GET`), `DEL`, with the TTL
 * kept by Redis. A sticky hit costs one round trip: see refresh.ts for how the `set`
 * stickyIp makes on every hit is folded into the read (GETEX, Redis ≥ 6.2) or, on older
 * servers, written only once past half the TTL.
 *
 * Nothing waits on Redis for long. Every command races a `timeoutMs` timer, and a
 * client whose `status` is not `ready` is not used at all (ioredis would queue the
 * command offline and answer it whenever it reconnects). The first failure switches
 * the store to the in-memory `fallback` for the whole outage: one warning, a
 * 'degraded' event, then a PING every `probeIntervalMs` (and one as soon as the
 * client reports `ready`) until Redis answers, when the store goes back to Redis and
 * emits 'recovered'. Requests during an outage cost no Redis round trip at all,
 * rather than one timeout each.
 */
export class RedisStickStore extends EventEmitter implements StickStore {
  readonly #client: Redis | Cluster
  readonly #prefix: string
  readonly #timeoutMs: number
  readonly #probeMs: number
  readonly #fallback: StickStore
  readonly #logger: RedisStoreLogger | undefined
  readonly #refresh = new Refresh()
  readonly #onReady = (): void => {
    this.#detect()
    void this.#probe()
  }
  #degraded = false
  #since = 0
  #probing = false
  #probeTimer: NodeJS.Timeout | undefined
  #closed = false
  #outages = 0
  #fallbackReads = 0
  #errors = 0
  #timeouts = 0

  constructor (opts: RedisStoreOptions) {
    super()
    const client = opts?.client as Partial<Redis> | undefined
    if (client == null || typeof client.get !== 'function' || typeof client.set !== 'function' || typeof client.status !== 'string') {
      throw new AffinityError('AFFINITY_ERR_INVALID_OPTION', 'client', 'expected an ioredis Redis or Cluster instance')
    }
    this.#client = opts.client
    this.#prefix = opts.prefix ?? 'affinity:stick:'
    if (typeof this.#prefix !== 'string') throw new AffinityError('AFFINITY_ERR_INVALID_OPTION', 'prefix', 'expected a string')
    this.#timeoutMs = positive('timeoutMs', opts.timeoutMs ?? 50)
    this.#probeMs = positive('probeIntervalMs', opts.probeIntervalMs ?? 1000)
    this.#fallback = opts.fallback ?? memoryStickStore()
    this.#logger = opts.logger
    this.#client.on('ready', this.#onReady)
    if (this.#client.status === 'ready') this.#detect()
  }

  get (key: string): string | undefined | Promise<string | undefined> {
    if (!this.#usable()) return this.#fallbackGet(key)
    const name = this.#prefix + key
    const ttl = this.#refresh.readTtl()
    const read = ttl === undefined ? () => this.#client.get(name) : () => this.#client.getex(name, 'PX', ttl)
    return this.#call(read).then(
      id => {
        if (id !== null) {
          this.#refresh.hit(key, id, ttl !== undefined)
          return id
        }
        // Redis wins whenever it has the key. A miss falls back to this instance's own
        // entry: a binding made during an outage, or one that a Redis restart lost,
        // keeps its client where it is (stickyIp then writes it back to Redis) instead
        // of placing the client afresh, possibly on another upstream.
        return this.#fallback.get(key)
      },
      err => {
        if (ttl !== undefined && isRefused(err)) {
          // GETEX detected but refused (an ACL without it, a proxy in front of Redis): plain GETs from now on.
          this.#refresh.getex = false
          return this.get(key)
        }
        this.#fail(err)
        return this.#fallbackGet(key)
      })
  }

  set (key: string, upstreamId: string, ttlMs: number): void | Promise<void> {
    const local = this.#fallback.set(key, upstreamId, ttlMs)
    if (!this.#usable()) return local
    const now = performance.now()
    if (!this.#refresh.mustWrite(key, upstreamId, ttlMs, now)) return local
    this.#refresh.wrote(key, now)
    return Promise.all([local, this.#call(() => this.#client.set(this.#prefix + key, upstreamId, 'PX', px(ttlMs)))])
      .then(noop, err => this.#fail(err))
  }

  delete (key: string): void | Promise<void> {
    this.#refresh.forget(key)
    const local = this.#fallback.delete(key)
    if (!this.#usable()) return local
    return Promise.all([local, this.#call(() => this.#client.del(this.#prefix + key))])
      .then(noop, err => this.#fail(err))
  }

  /** Counters for metrics; `degraded` is the current state. */
  stats (): RedisStoreStats {
    return {
      degraded: this.#degraded,
      outages: this.#outages,
      fallbackReads: this.#fallbackReads,
      errors: this.#errors,
      timeouts: this.#timeouts,
    }
  }

  /** Stops probing and stops using the client (which stays open: it is the caller's). Later calls use the fallback. */
  close (): void {
    this.#closed = true
    if (this.#probeTimer !== undefined) clearInterval(this.#probeTimer)
    this.#probeTimer = undefined
    this.#client.off('ready', this.#onReady)
  }

  override on (event: 'degraded', listener: (err: Error) => void): this
  override on (event: 'recovered', listener: () => void): this
  override on (event: RedisStoreEvent, listener: (...args: any[]) => void): this {
    return super.on(event, listener)
  }

  override once (event: 'degraded', listener: (err: Error) => void): this
  override once (event: 'recovered', listener: () => void): this
  override once (event: RedisStoreEvent, listener: (...args: any[]) => void): this {
    return super.once(event, listener)
  }

  /** Whether a command may go to Redis now; a client that is not ready starts an outage. */
  #usable (): boolean {
    if (this.#degraded || this.#closed) return false
    if (this.#client.status === 'ready') return true
    this.#fail(new RedisStoreError('AFFINITY_REDIS_NOT_READY', `the Redis client is not ready (${this.#client.status})`))
    return false
  }

  /**
   * Whether the server has GETEX (Redis ≥ 6.2, and not renamed away): COMMAND INFO answers
   * nil for a command the server does not have. Asked on every (re)connection, as a
   * failover may land on another server; until it answers, reads are plain GETs.
   */
  #detect (): void {
    const client = this.#client
    if (this.#closed || typeof client.call !== 'function') return
    this.#call(() => client.call('COMMAND', 'INFO', 'GETEX')).then(
      info => { this.#refresh.getex = Array.isArray(info) && info[0] != null },
      () => { this.#refresh.getex = false })
  }

  #fallbackGet (key: string): string | undefined | Promise<string | undefined> {
    this.#fallbackReads++
    return this.#fallback.get(key)
  }

  /**
   * Runs one command, rejecting after `timeoutMs`; a late answer or error is dropped.
   * When the timer fires, the verdict waits for setImmediate: timers run before the
   * event loop polls sockets, so after this process was busy (GC, a CPU-bound burst)
   * an answer already waiting in the socket is read first instead of being counted
   * as a Redis timeout, which would switch every instance's table off for a second.
   */
  #call<T> (run: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false
      const timeout = (): void => {
        if (!settled) reject(new RedisStoreError('AFFINITY_REDIS_TIMEOUT', `Redis did not answer within ${this.#timeoutMs} ms`))
      }
      const timer = setTimeout(() => setImmediate(timeout), this.#timeoutMs)
      timer.unref()
      const settle = (): void => {
        settled = true
        clearTimeout(timer)
      }
      try {
        run().then(v => { settle(); resolve(v) }, (err: unknown) => { settle(); reject(err) })
      } catch (err) {
        settle()
        reject(err)
      }
    })
  }

  #fail (err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err))
    if ((error as RedisStoreError).code === 'AFFINITY_REDIS_TIMEOUT') this.#timeouts++
    else this.#errors++
    if (this.#degraded || this.#closed) return
    this.#degraded = true
    this.#since = Date.now()
    this.#outages++
    const msg = 'Redis stick table unavailable: answering from the in-memory table until Redis returns'
    if (this.#logger !== undefined) this.#logger.warn({ err: error, outage: this.#outages }, msg)
    else process.emitWarning(`${msg} (${error.message})`, { code: DEGRADED_WARNING_CODE })
    this.#probeTimer = setInterval(() => { void this.#probe() }, this.#probeMs)
    this.#probeTimer.unref()
    this.emit('degraded', error)
  }

  async #probe (): Promise<void> {
    if (!this.#degraded || this.#closed || this.#probing) return
    const client = this.#client
    // A lazyConnect client connects on its first command, which the store never sends while it is not ready.
    if (client.status === 'wait') client.connect().catch(noop)
    if (client.status !== 'ready') return
    this.#probing = true
    try {
      await this.#call(() => client.ping())
    } catch {
      return
    } finally {
      this.#probing = false
    }
    this.#recover()
  }

  #recover (): void {
    if (!this.#degraded || this.#closed) return
    this.#degraded = false
    clearInterval(this.#probeTimer)
    this.#probeTimer = undefined
    this.#logger?.info({ outage: this.#outages, downMs: Date.now() - this.#since }, 'Redis stick table recovered')
    this.emit('recovered')
  }
}

/** The server has the command but will not run it for us (ACL: NOPERM), or does not know it. */
function isRefused (err: unknown): boolean {
  return err instanceof Error && /^(NOPERM|ERR unknown command)/i.test(err.message)
}

function positive (name: string, v: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new AffinityError('AFFINITY_ERR_INVALID_OPTION', name, 'expected milliseconds > 0')
  return v
}

/** A Redis stick table for `stickyIp({ store: redisStore({ client }) })`. */
export function redisStore (opts: RedisStoreOptions): RedisStickStore {
  return new RedisStickStore(opts)
}
