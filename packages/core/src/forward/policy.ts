import { invalidOption } from '../errors.js'
import { isPromise } from '../model/choice.js'
import { bool } from '../options.js'
import { isClosed, ProxyError, sendError, type ClientResponse, type ErrorAnswer } from './error-response.js'

/**
 * Header fields as the rewrite hooks see and return them: lower-case names, a list
 * for a field sent several times. A hook may return numbers (`content-length: 42`);
 * `undefined` leaves a field out.
 */
export type HeaderFields = Record<string, string | string[] | number | undefined>

/**
 * What an app can change about forwarding, under @fastify/http-proxy's names (its
 * `replyOptions` hooks, lifted to the top level) on both adapters. `Req` and `Res`
 * are the framework's own request and reply (Fastify's request and reply, Express's
 * req and res): the hooks get what the app's other handlers get.
 */
export interface ProxyOptions<Req = unknown, Res = unknown> {
  /**
   * The request headers to send upstream, from the ones the proxy would send: the
   * client's end-to-end headers and X-Forwarded-*; `host` only with `preserveHost`
   * (otherwise each attempt gets its upstream's own; set one here to override it).
   * Called once per request, before the first attempt. Hop-by-hop fields returned
   * are dropped.
   */
  rewriteRequestHeaders?: (req: Req, headers: HeaderFields) => HeaderFields
  /**
   * The response headers to send down, from the upstream's (after the Location
   * rewrite); hop-by-hop fields are dropped afterwards, and the app's own headers and
   * the balancer's cookie added.
   */
  rewriteHeaders?: (headers: HeaderFields, req: Req) => HeaderFields
  /**
   * Answers the client instead of the balancer's JSON error (502/503/504/400/500):
   * `err.statusCode`, a stable `err.code`, `err.retryAfter` for a 503, `err.cause`.
   * It must answer; if it throws (or its promise rejects), the JSON answer is sent.
   */
  // What it returns is ignored (a promise is awaited): `reply.code(502).send(…)` returns the reply.
  onError?: (req: Req, res: Res, err: ProxyError) => unknown
  /** Send the client's `Host` (an HTTP/2 client's `:authority`) upstream instead of the upstream's own. Default false. */
  preserveHost?: boolean
  /**
   * Rewrite `Location` and `Content-Location` from the upstream's paths to the
   * client's (a redirect to `/login` under the mount `/api` becomes `/api/login`).
   * Default true, as @fastify/http-proxy.
   */
  internalRewriteLocationHeader?: boolean
}

/** The ProxyOptions keys, for the adapters' known-option lists. */
export const PROXY_OPTIONS = [
  'rewriteRequestHeaders', 'rewriteHeaders', 'onError', 'preserveHost', 'internalRewriteLocationHeader',
] as const satisfies ReadonlyArray<keyof ProxyOptions>

/** What only the adapter knows: how it takes over a response, and where its mount is. */
export interface PolicyWiring {
  /**
   * Called right before the first byte of an answer is written, with the framework's
   * reply (ForwardOptions.reply). Fastify hijacks the reply here: until then an
   * `onError` hook can still answer through Fastify (`reply.code(502).send(…)`).
   */
  claim?: (reply: unknown) => void
  /** The request's mount path as the client sees it ('/api'), for the Location rewrite. Default ''. */
  clientPrefix?: (req: unknown) => string
  /** What the upstream sees in place of the mount (Fastify's rewritePrefix), below the upstream's base path. Default ''. */
  upstreamPrefix?: (req: unknown) => string
}

/**
 * The forwarding policy of one mount: its options checked and fixed once, at
 * registration. The forwarder reads it per request and, where an option is unset,
 * does exactly what it does without a policy: no call, no allocation.
 */
export interface ForwardPolicy {
  readonly rewriteRequestHeaders: ((req: unknown, headers: HeaderFields) => HeaderFields) | undefined
  readonly rewriteHeaders: ((headers: HeaderFields, req: unknown) => HeaderFields) | undefined
  readonly onError: ((req: unknown, res: unknown, err: ProxyError) => unknown) | undefined
  readonly preserveHost: boolean
  readonly rewriteLocation: boolean
  readonly claim: ((reply: unknown) => void) | undefined
  readonly clientPrefix: (req: unknown) => string
  readonly upstreamPrefix: (req: unknown) => string
}

const none = (): string => ''

function hook<F> (name: string, value: unknown): F | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'function') throw invalidOption(name, 'expected a function')
  return value as F
}

/** Checks the proxy options and builds the mount's policy (once per registration). */
export function forwardPolicy (opts: ProxyOptions<any, any>, wiring: PolicyWiring = {}): ForwardPolicy {
  return Object.freeze({
    rewriteRequestHeaders: hook<ForwardPolicy['rewriteRequestHeaders']>('rewriteRequestHeaders', opts.rewriteRequestHeaders),
    rewriteHeaders: hook<ForwardPolicy['rewriteHeaders']>('rewriteHeaders', opts.rewriteHeaders),
    onError: hook<ForwardPolicy['onError']>('onError', opts.onError),
    preserveHost: bool('preserveHost', opts.preserveHost, false),
    rewriteLocation: bool('internalRewriteLocationHeader', opts.internalRewriteLocationHeader, true),
    claim: wiring.claim,
    clientPrefix: wiring.clientPrefix ?? none,
    upstreamPrefix: wiring.upstreamPrefix ?? none,
  })
}

/** Where an answer goes and who the hooks are told about. */
export interface AnswerTarget {
  readonly res: ClientResponse
  readonly policy: ForwardPolicy | undefined
  /** The framework's request and reply the hooks get (default: the raw ones). */
  readonly view: unknown
  readonly reply: unknown
  /** Headers the app set before the proxy ran (ForwardOptions.responseHeaders). */
  readonly extra: Record<string, string | string[] | number | undefined> | undefined
}

/**
 * Answers with one of the balancer's own errors: through the mount's `onError` when
 * there is one and nothing has been sent, else as the JSON answer (taking the reply
 * over first, see PolicyWiring.claim).
 */
export function answerError (to: AnswerTarget, answer: ErrorAnswer, retryAfter?: number, cause?: unknown): void {
  const { res, policy } = to
  if (policy === undefined) {
    sendError(res, answer, retryAfter, to.extra)
    return
  }
  if (policy.onError !== undefined && !res.headersSent && !isClosed(res)) {
    const fallback = (err: unknown): void => {
      process.emitWarning(`onError failed (${(err as Error | undefined)?.message ?? String(err)}): the JSON answer was sent instead`, { type: 'AffinityWarning', code: 'AFFINITY_ON_ERROR_FAILED' })
      if (res.headersSent || isClosed(res)) return
      policy.claim?.(to.reply)
      sendError(res, answer, retryAfter, to.extra)
    }
    try {
      const done = policy.onError(to.view, to.reply, new ProxyError(answer, retryAfter, cause))
      if (isPromise(done)) done.then(undefined, fallback)
    } catch (err) {
      fallback(err)
    }
    return
  }
  policy.claim?.(to.reply)
  sendError(res, answer, retryAfter, to.extra)
}
