import type { RouteRequest } from '@affinity/core'
import type { FastifyRequest } from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'

type ParseCookie = (header: string) => Record<string, string | undefined>

/**
 * The RouteRequest a strategy sees, read lazily from Fastify's request: `ip`,
 * `protocol` and `host` are Fastify's own (so its `trustProxy` decides whether
 * X-Forwarded-* count), and cookies are parsed with @fastify/cookie only when a
 * strategy asks for them — round robin never pays for a cookie parse.
 */
export class FastifyRouteRequest implements RouteRequest {
  readonly #request: FastifyRequest
  readonly #parse: ParseCookie
  #cookies: Record<string, string | undefined> | undefined

  constructor (request: FastifyRequest, parse: ParseCookie) {
    this.#request = request
    this.#parse = parse
  }

  get method (): string { return this.#request.method }
  get url (): string { return this.#request.url }
  get headers (): IncomingHttpHeaders { return this.#request.headers }
  get ip (): string | undefined { return this.#request.ip }
  get protocol (): string { return this.#request.protocol }
  get host (): string { return this.#request.host }

  get cookies (): Record<string, string | undefined> {
    if (this.#cookies === undefined) {
      // An app that registered @fastify/cookie with its parsing hook already has them.
      const parsed = (this.#request as { cookies?: Record<string, string | undefined> | null }).cookies
      this.#cookies = parsed ?? this.#parse(this.#request.headers.cookie ?? '')
    }
    return this.#cookies
  }
}
