import type { Choice, PickResult } from '../strategies/strategy.js'
import type { OutcomeKind } from '../types.js'
import type { Upstream } from '../upstream.js'

/** How one attempt ended, for passive health: 'neutral' when the client left first. */
export type Outcome = 'ok' | 'failure' | 'neutral'

/** What the forwarders need from the balancer; kept narrow so they stay framework- and state-free. */
export interface ForwardContext {
  readonly retries: number
  readonly timeoutMs: number
  /** Pick again for a request whose `choice.tried` lists the upstreams that failed it. */
  repick (choice: Choice): PickResult
  /** True while someone observes outcomes (metrics): only then are attempts timed. */
  readonly timing: boolean
  begin (u: Upstream): void
  /** `startedAt`: performance.now() when the attempt began (0 when not timing). */
  settle (u: Upstream, outcome: Outcome, kind: OutcomeKind, startedAt: number): void
  socketOpened (u: Upstream): void
  socketClosed (u: Upstream): void
  /** Seconds for Retry-After on a 503. */
  retryAfter (): number
}

/** RFC 9110 §9.2.2: methods a proxy may replay when the first attempt's fate is unknown. */
export const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])

export function isTimeout (err: unknown): boolean {
  const code = (err as { code?: string } | undefined)?.code
  return code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT'
}

/** The outcome kind of a failed attempt (see OutcomeKind). */
export function failureKind (err: unknown, reached: boolean): OutcomeKind {
  if (isTimeout(err)) return 'timeout'
  return reached ? 'reset' : 'connect_error'
}

/** The outcome kind of an answered attempt: its status class. */
export function statusKind (statusCode: number): OutcomeKind {
  return statusCode >= 500 ? '5xx' : statusCode >= 400 ? '4xx' : statusCode >= 300 ? '3xx' : '2xx'
}
