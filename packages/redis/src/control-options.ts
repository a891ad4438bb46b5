import { hostname } from 'node:os'
import { AffinityError } from '@affinity/core'
import { knownKeys, milliseconds, optionsObject } from '@affinity/core/adapter'
import type { Cluster, Redis } from 'ioredis'
import type { RedisStoreLogger } from './redis-store.js'

export interface RedisControlOptions {
  /** The application's ioredis client (`Redis` or `Cluster`); the control never quits it. A duplicate is made for pub/sub. */
  client: Redis | Cluster
  /** The control's name: every balancer attached under the same name shares one operator state. */
  name: string
  /** This instance in `affinity status` (default `hostname:pid`; in Kubernetes the hostname is the pod name). */
  id?: string
  /** Prepended to every key and the channel (default 'affinity:control:'). */
  prefix?: string
  /** How often the instance reports its view and checks it missed nothing (default 2000 ms). */
  reportMs?: number
  /** How long a view outlives its last report (default 3 × reportMs): an instance silent that long is gone. */
  viewTtlMs?: number
  /** A Redis command not answered by then counts as an outage; `attach()` waits at most this long for the stored state (default 2000 ms). */
  timeoutMs?: number
  /** Gets one `warn` per outage, one `info` per recovery, a `warn` per lost conflict; without it, process warnings. */
  logger?: RedisStoreLogger
}

export interface ControlConfig {
  client: Redis | Cluster
  name: string
  id: string
  prefix: string
  reportMs: number
  viewTtlMs: number
  timeoutMs: number
  logger: RedisStoreLogger | undefined
}

const KNOWN = ['client', 'name', 'id', 'prefix', 'reportMs', 'viewTtlMs', 'timeoutMs', 'logger'] as const satisfies ReadonlyArray<keyof RedisControlOptions>

/** A name or prefix that would break the `{name}` hash tag (or fill Redis with long keys) is refused. */
function tagSafe (option: string, value: unknown, allowEmpty: boolean): string {
  if (typeof value !== 'string' || (!allowEmpty && value === '') || value.length > 200 || /[{}]/.test(value)) {
    throw new AffinityError('AFFINITY_ERR_INVALID_OPTION', option, `expected a ${allowEmpty ? '' : 'non-empty '}string of at most 200 characters without { or } (the name is the Redis Cluster hash tag)`)
  }
  return value
}

export function controlConfig (opts: RedisControlOptions): ControlConfig {
  const o = optionsObject('redisControl', opts)
  knownKeys('redisControl', o, KNOWN)
  const client = o.client as Partial<Redis> | undefined
  if (client == null || typeof client.evalsha !== 'function' || typeof client.duplicate !== 'function' || typeof client.status !== 'string') {
    throw new AffinityError('AFFINITY_ERR_INVALID_OPTION', 'client', 'expected an ioredis Redis or Cluster instance')
  }
  const name = tagSafe('name', o.name, false)
  const prefix = tagSafe('prefix', o.prefix ?? 'affinity:control:', true)
  const id = o.id ?? `${hostname()}:${process.pid}`
  if (typeof id !== 'string' || id === '' || id.length > 200) throw new AffinityError('AFFINITY_ERR_INVALID_OPTION', 'id', 'expected a non-empty string of at most 200 characters')
  const reportMs = milliseconds('reportMs', o.reportMs, 2000, { positive: true })
  const viewTtlMs = milliseconds('viewTtlMs', o.viewTtlMs, 3 * reportMs, { positive: true })
  if (viewTtlMs <= reportMs) throw new AffinityError('AFFINITY_ERR_INVALID_OPTION', 'viewTtlMs', `expected more than reportMs (${reportMs} ms): a view must outlive the interval between two reports`)
  const timeoutMs = milliseconds('timeoutMs', o.timeoutMs, 2000, { positive: true })
  const logger = o.logger
  if (logger !== undefined && (logger === null || typeof logger.warn !== 'function' || typeof logger.info !== 'function')) {
    throw new AffinityError('AFFINITY_ERR_INVALID_OPTION', 'logger', 'expected a pino-like logger with warn and info')
  }
  return { client: o.client, name, id, prefix, reportMs, viewTtlMs, timeoutMs, logger }
}
