import type { Choice, PickResult } from '../model/choice.js'
import type { OutcomeKind } from '../model/types.js'
import type { Upstream } from '../model/upstream.js'
import type { QueueWaiter } from './admission.js'
import type { ErrorAnswer } from './error-response.js'

/** How one attempt ended, for passive health: 'neutral' when the client left first. */
export type Outcome = 'ok' | 'failure' | 'neutral'

/** What the forwarders need from the balancer; kept narrow so they stay framework- and state-free. */
export interface ForwardContext {
  readonly retries: number
  readonly timeoutMs: number
  /** Longest silence between two response body chunks (0: none). */
  readonly idleTimeoutMs: number
  /** Pick again for a request whose `choice.tried` lists the upstreams that failed it. */
  repick (choice: Choice): PickResult
  /** True while someone observes outcomes (metrics): only then are attempts timed. */
  readonly timing: boolean
  /**
   * Admission (forward/admission.ts): true when an attempt at `u` may begin now;
   * false when it waits in `u`'s queue (`w.admitted()` follows) or was refused
   * (`w.refused()` has run).
   */
  admit (u: Upstream, w: QueueWaiter): boolean
  /** `w`'s client left while it waited in `u`'s queue. */
  leave (u: Upstream, w: QueueWaiter): void
  /** `upgrade`: a WebSocket handshake (it counts against maxWebSockets until it settles). */
  begin (u: Upstream, upgrade: boolean): void
  /** `startedAt`: performance.now() when the attempt began (0 when not timing). */
  settle (u: Upstream, outcome: Outcome, kind: OutcomeKind, startedAt: number, upgrade: boolean): void
  /** Whether `u` has room for another WebSocket; when it has not, the refusal is counted (`websockets_full`). */
  admitSocket (u: Upstream): boolean
  socketOpened (u: Upstream): void
  socketClosed (u: Upstream): void
  /** Whether the retry budget allows a failover retry now (counted either way); a granted one ends with `retryEnded`. */
  retry (): boolean
  retryEnded (): void
  /** Seconds for Retry-After on a 503 for no upstream available. */
  retryAfter (): number
  /** Seconds for Retry-After on a 503 for an upstream at capacity (queue full or timed out). */
  readonly overloadRetryAfter: number
}

/** RFC 9110 §9.2.2: methods a proxy may replay when the first attempt's fate is unknown. */
export const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])

/** Handed to undici when the client left (its connection closed, its body cut short): the client, not the upstream, stopped the attempt. */
export class ClientGoneError extends Error {
  readonly code = 'AFFINITY_CLIENT_GONE'
}

/** The code of an error raised when an upstream's response head cannot be written to the client. */
export const UNRELAYABLE = 'AFFINITY_UNRELAYABLE_RESPONSE'

/** The code of an error raised when an app's hook (rewriteHeaders) threw: the app's fault, a 500, nobody charged. */
export const HOOK_FAILED = 'AFFINITY_HOOK_FAILED'

/** How a failed attempt is answered and who is blamed (see `blame`). */
export interface Blame {
  kind: OutcomeKind
  outcome: Outcome
  /** What the client gets when nothing was sent yet. */
  answer: ErrorAnswer
  /** Another upstream may be tried (the failover rule decides with the method). */
  retry: boolean
}

/**
 * The blame rule (docs/operations.md, "Health"): an attempt is charged to an upstream only for
 * what that upstream did — a refused or timed-out connection, a reset or close
 * before a complete response head, no head within timeoutMs. Never for what a
 * client can cause: a request undici could not build from what the client sent, a
 * client that left (its body ended early), silence between body chunks (the
 * stream may legitimately idle: SSE), or an interim answer undici cannot relay.
 * An early answer that stopped our body upload is no failure at all: the
 * connector reads it (forward/pool.ts) and it is relayed like any answer.
 */
export function blame (err: unknown, reached: boolean): Blame {
  const e = err as { code?: string, message?: string } | undefined
  const code = e?.code
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return { kind: 'timeout', outcome: 'failure', answer: 'timeout', retry: false }
  if (code === 'UND_ERR_BODY_TIMEOUT') return { kind: 'idle_timeout', outcome: 'neutral', answer: 'timeout', retry: false }
  if (err instanceof ClientGoneError || code === 'UND_ERR_ABORTED' || code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') {
    return { kind: 'aborted', outcome: 'neutral', answer: 'badRequest', retry: false }
  }
  if (code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED' || code === 'ERR_INVALID_CHAR' || code === 'ERR_HTTP_INVALID_HEADER_VALUE') {
    return { kind: 'invalid_request', outcome: 'neutral', answer: 'badRequest', retry: false }
  }
  // undici destroys the connection on any 100 response it did not ask for
  // (client-h1.js onHeadersComplete: "bad response"); while a request runs that is
  // the only way to get this error. RFC 9110 §15.2 lets a server send it unasked.
  if (reached && code === 'UND_ERR_SOCKET' && e?.message === 'bad response') {
    return { kind: 'unrelayable', outcome: 'neutral', answer: 'unexpected100', retry: false }
  }
  if (code === UNRELAYABLE) return { kind: 'unrelayable', outcome: 'neutral', answer: 'badResponse', retry: false }
  if (code === HOOK_FAILED) return { kind: 'unrelayable', outcome: 'neutral', answer: 'misconfigured', retry: false }
  return reached
    ? { kind: 'reset', outcome: 'failure', answer: 'unreachable', retry: true }
    : { kind: 'connect_error', outcome: 'failure', answer: 'unreachable', retry: true }
}

/** The outcome kind of an answered attempt: its status class. */
export function statusKind (statusCode: number): OutcomeKind {
  return statusCode >= 500 ? '5xx' : statusCode >= 400 ? '4xx' : statusCode >= 300 ? '3xx' : '2xx'
}
