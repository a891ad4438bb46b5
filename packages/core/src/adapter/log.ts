import type { Choice } from '../model/choice.js'
import type { AffinityLogger } from '../observe/log.js'

/**
 * Whether per-request debug lines are wanted: only when the logger says so through
 * pino's `isLevelEnabled('debug')`. A logger that cannot tell (`console`) gets none:
 * building an object per request for a logger that may print it at any level is
 * the costlier mistake.
 */
export function debugEnabled (logger: Pick<AffinityLogger, 'isLevelEnabled'>): boolean {
  return logger.isLevelEnabled?.('debug') === true
}

/** The decision for one request at debug: `{ upstream, reason, cookie, ...extra }`. */
export function logChoice (logger: Pick<AffinityLogger, 'debug' | 'isLevelEnabled'>, choice: Choice, extra?: Record<string, unknown>): void {
  if (!debugEnabled(logger)) return
  logger.debug({ upstream: choice.upstream?.id, reason: choice.reason, cookie: choice.setCookie !== undefined, ...extra }, 'affinity: upstream chosen')
}
