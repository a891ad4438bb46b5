import type { Balancer } from '../balancer/balancer.js'
import type { BalancerEvent, BalancerListener, DiscoveryErrorListener, PanicListener, PressureListener } from '../balancer/events.js'

/**
 * What Affinity writes its log lines to: pino's `(obj, msg)` methods, so Fastify's
 * `fastify.log`, a pino logger or anything shaped like one fits.
 */
export interface AffinityLogger {
  debug (obj: object, msg: string): void
  info (obj: object, msg: string): void
  warn (obj: object, msg: string): void
  /** pino's: per-request objects are built only when it says debug is on. */
  isLevelEnabled? (level: string): boolean
}

/** What to do about a full table, per table: the warning says it. */
const PRESSURE_ADVICE = {
  store: 'the stick table is full: clients lose their binding before ttlMs; raise memoryStickStore({ maxEntries }) or share a Redis store',
  tokenCache: 'the cookie token cache is full: users beyond cacheSize cost an HMAC per request and stop counting as bound; raise cacheSize',
} as const

/**
 * Logs an upstream's state changes: `down`, panic mode, a failed membership source
 * and stick-table pressure at warn (the balancer emits 'pressure' at most once a minute
 * per table); `up`, `added`, `removed`, `drained` and the end of panic mode at info
 * (with the reason: 'discovery' for a source's changes). Returns the function that
 * stops logging (an app that closes before a balancer it does not own).
 */
export function logStateChanges (balancer: Balancer, logger: AffinityLogger): () => void {
  const listeners: Array<[BalancerEvent, BalancerListener]> = [
    ['down', (u, reason) => logger.warn({ upstream: u.id, reason }, 'affinity: upstream down')],
    ['up', (u, reason) => logger.info({ upstream: u.id, reason }, 'affinity: upstream up')],
    ['added', (u, reason) => logger.info({ upstream: u.id, reason }, 'affinity: upstream added')],
    ['removed', (u, reason) => logger.info({ upstream: u.id, reason }, 'affinity: upstream removed')],
    ['drained', (u) => logger.info({ upstream: u.id }, 'affinity: upstream drained')],
  ]
  const panic: PanicListener = (p) => logger.warn(p, 'affinity: panic mode, health ignored')
  const calm: PanicListener = (p) => logger.info(p, 'affinity: panic mode over')
  const source: DiscoveryErrorListener = (err) => logger.warn({ code: (err as { code?: string }).code, err: err.message }, 'affinity: membership source failed, membership unchanged')
  const pressure: PressureListener = (p) => logger.warn({ table: p.table, evicted: p.evicted, windowMs: p.windowMs }, `affinity: entries evicted before their time: ${PRESSURE_ADVICE[p.table]}`)
  for (const [event, fn] of listeners) balancer.on(event, fn)
  balancer.on('panic', panic).on('calm', calm).on('discovery-error', source).on('pressure', pressure)
  return () => {
    for (const [event, fn] of listeners) balancer.off(event, fn)
    balancer.off('panic', panic).off('calm', calm).off('discovery-error', source).off('pressure', pressure)
  }
}
