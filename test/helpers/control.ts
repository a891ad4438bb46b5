import type { EventEmitter } from 'node:events'
import type { Test } from 'tap'
import type { Redis, RedisOptions } from 'ioredis'
import { createBalancer, roundRobin, type Balancer, type UpstreamInfo, type UpstreamInput, type UpstreamSource } from '@affinity/core'
import { redisControl, type RedisControl, type RedisControlOptions } from '@affinity/redis'
import { redisClient } from './redis.js'

/** One balancer attached to a control, in this process; detached and closed at the end of `t`. */
export interface Attached {
  balancer: Balancer
  control: RedisControl
  client: Redis
  /** What the balancer says of upstream `id` now. */
  info (id: string): UpstreamInfo | undefined
}

export async function attached (t: Test, redisPort: number, opts: {
  name: string
  upstreams: Array<{ id: string, url: string, weight?: number }>
  control?: Partial<Omit<RedisControlOptions, 'client' | 'name'>>
  redis?: RedisOptions
}): Promise<Attached> {
  const client = redisClient(t, redisPort, opts.redis)
  const balancer = createBalancer({ upstreams: opts.upstreams, strategy: roundRobin() })
  const control = redisControl({ client, name: opts.name, reportMs: 200, timeoutMs: 2000, ...opts.control })
  t.teardown(async () => {
    await control.close()
    await balancer.close()
  })
  await control.attach(balancer)
  return { balancer, control, client, info: (id) => balancer.list().find(u => u.id === id) }
}

/**
 * Resolves with the arguments of the first `event` for which `match` holds. The
 * timer only turns a missing event into a failure (never a synchronisation).
 */
export function nextEvent<A extends unknown[]> (emitter: EventEmitter, event: string, match: (...args: A) => boolean = () => true, guardMs = 15_000): Promise<A> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { emitter.off(event, listener); reject(new Error(`no '${event}' event within ${guardMs} ms`)) }, guardMs)
    const listener = (...args: unknown[]): void => {
      if (!match(...(args as A))) return
      clearTimeout(timer)
      emitter.off(event, listener)
      resolve(args as A)
    }
    emitter.on(event, listener)
  })
}

/** The next balancer event of `event` for upstream `id`. */
export function upstreamEvent (balancer: Balancer, event: string, id: string): Promise<[UpstreamInfo, string]> {
  return nextEvent<[UpstreamInfo, string]>(balancer, event, (info) => info.id === id)
}

/** A membership source fed by hand (docs/operations.md's), for balancers that follow a source. */
export function manualSource (): UpstreamSource & { set (list: UpstreamInput[]): void } {
  const subscribers = new Set<(list: UpstreamInput[]) => void>()
  let last: UpstreamInput[] | undefined
  return {
    set (list) { last = list; for (const update of subscribers) update(list) },
    subscribe (update) {
      subscribers.add(update)
      if (last !== undefined) queueMicrotask(() => { if (subscribers.has(update)) update(last!) })
      return () => { subscribers.delete(update) }
    },
  }
}
