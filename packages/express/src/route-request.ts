import type { RouteRequest } from '@affinity/core'
import { parse as parseCookie } from 'cookie'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'

/** The parts of Express's req (4 and 5) the adapter reads. */
export interface ExpressRequest extends IncomingMessage {
  ip?: string
  protocol?: string
  baseUrl?: string
  originalUrl?: string
  body?: unknown
  cookies?: Record<string, string | undefined>
  app?: { get (setting: string): unknown }
}

type TrustFn = (address: string, hop: number) => boolean

/**
 * The RouteRequest a strategy sees, read lazily from Express's req: `ip` and
 * `protocol` are Express's own (so its `trust proxy` setting decides whether
 * X-Forwarded-* count), and cookies are parsed with the `cookie` package only when
 * a strategy asks (or taken from cookie-parser's req.cookies when it ran).
 */
export class ExpressRouteRequest implements RouteRequest {
  readonly #req: ExpressRequest
  #cookies: Record<string, string | undefined> | undefined

  constructor (req: ExpressRequest) {
    this.#req = req
  }

  get method (): string { return this.#req.method ?? 'GET' }
  get url (): string { return this.#req.url ?? '/' }
  get headers (): IncomingHttpHeaders { return this.#req.headers }
  get ip (): string | undefined { return this.#req.ip ?? this.#req.socket?.remoteAddress }
  /**
   * Express's req.protocol (trust proxy decides whether X-Forwarded-Proto counts). Without
   * that header its answer is the socket's, so it is read from the socket directly: the
   * getter's trust check (proxy-addr) costs ≈1 µs per request, asked for every request's
   * X-Forwarded-Proto (bench/proxy/profile-diff.js on an express-roundRobin profile).
   */
  get protocol (): string {
    const req = this.#req
    if (req.headers['x-forwarded-proto'] === undefined) return (req.socket as { encrypted?: boolean } | null)?.encrypted === true ? 'https' : 'http'
    return req.protocol ?? 'http'
  }

  /**
   * The Host as Express 5's req.host computes it (X-Forwarded-Host only from a
   * trusted proxy, port kept); written out because Express 4's req.host drops the port.
   */
  get host (): string | undefined {
    const req = this.#req
    const trust = req.app?.get('trust proxy fn') as TrustFn | undefined
    let value = req.headers['x-forwarded-host']
    if (typeof value !== 'string' || trust === undefined || !trust(req.socket?.remoteAddress ?? '', 0)) return req.headers.host
    const comma = value.indexOf(',')
    if (comma !== -1) value = value.slice(0, comma).trimEnd()
    return value
  }

  get cookies (): Record<string, string | undefined> {
    if (this.#cookies === undefined) this.#cookies = this.#req.cookies ?? parseCookie(this.#req.headers.cookie ?? '')
    return this.#cookies
  }
}
