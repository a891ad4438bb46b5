import { createRequire } from 'node:module'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

/**
 * What the control commands use of @affinity/redis, typed here: @affinity/core does
 * not depend on it (nor on ioredis), so both are loaded only when a control
 * command runs.
 */
export interface ControlLike {
  drain (id: string): Promise<{ version: number }>
  undrain (id: string): Promise<{ version: number }>
  setWeight (id: string, weight: number): Promise<{ version: number }>
  state (): Promise<{ epoch: string | null, version: number, upstreams: Record<string, { version: number, drained?: boolean, weight?: number, url?: string, removed?: boolean }> }>
  instances (): Promise<LiveInstanceLike[]>
}

export interface LiveInstanceLike {
  id: string
  ageMs: number
  online: boolean
  version: number
  upstreams: Array<{ id: string, url: string, weight: number, state: string, inFlight: number, websockets: number, boundUsers: number | null }>
}

interface RedisClientLike {
  status: string
  connect (): Promise<void>
  disconnect (): void
  on (event: 'error', listener: (err: Error) => void): unknown
}

export interface Connected {
  control: ControlLike
  close (): void
}

/** A module that is not installed: the command says what to install (exit 1). */
export class MissingModuleError extends Error {}

/**
 * Imports `name` as the user's project sees it (resolved from `cwd`, where they
 * installed @affinity/redis and ioredis), else from `from` (next to this package,
 * or next to @affinity/redis for its peer ioredis).
 */
export async function loadFrom (name: string, bases: string[]): Promise<{ module: Record<string, unknown>, path: string }> {
  for (const base of bases) {
    let path: string
    try {
      path = createRequire(base).resolve(name)
    } catch {
      continue
    }
    return { module: await import(pathToFileURL(path).href) as Record<string, unknown>, path }
  }
  throw new MissingModuleError(`this command needs @affinity/redis and ioredis: npm install @affinity/redis ioredis (${name} was not found from ${bases[0]})`)
}

export interface ConnectOptions {
  urls: string[]
  cluster: boolean
  name: string
  prefix: string | undefined
  timeoutMs: number
  cwd: string
}

/**
 * Loads @affinity/redis and ioredis, connects (failing fast: one attempt, no
 * offline queue) and returns a control for `name`. Rejects with a message that
 * names the Redis URL, its password masked.
 */
export async function connectControl (opts: ConnectOptions): Promise<Connected> {
  const fromCwd = pathToFileURL(join(opts.cwd, 'package.json')).href
  const redis = await loadFrom('@affinity/redis', [fromCwd, import.meta.url])
  const ioredis = (await loadFrom('ioredis', [pathToFileURL(redis.path).href, fromCwd])).module
  const Redis = (ioredis.Redis ?? ioredis.default) as new (url: string, o: object) => RedisClientLike
  const Cluster = ioredis.Cluster as new (nodes: string[], o: object) => RedisClientLike
  const redisControl = redis.module.redisControl as (o: object) => ControlLike
  const common = { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: opts.timeoutMs }
  const client = opts.cluster
    ? new Cluster(opts.urls, { lazyConnect: true, enableOfflineQueue: false, clusterRetryStrategy: () => null, redisOptions: { connectTimeout: opts.timeoutMs, maxRetriesPerRequest: 1 } })
    : new Redis(opts.urls[0]!, { ...common, retryStrategy: () => null })
  let lastError: Error | undefined
  client.on('error', (err) => { lastError = err })
  try {
    await client.connect()
  } catch (err) {
    client.disconnect()
    const why = (lastError ?? err as Error).message
    throw new Error(`cannot reach Redis at ${opts.urls.map(masked).join(', ')}: ${why}`)
  }
  const control = redisControl({ client, name: opts.name, timeoutMs: opts.timeoutMs, ...(opts.prefix === undefined ? {} : { prefix: opts.prefix }) })
  return { control, close: () => client.disconnect() }
}

/** A Redis URL as it may be printed: its password replaced by ***. */
export function masked (url: string): string {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = '***'
    return u.href.replace(/\/$/, '')
  } catch {
    return url
  }
}
