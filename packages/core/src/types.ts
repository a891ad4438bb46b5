import type { IncomingHttpHeaders } from 'node:http'

/**
 * The framework-neutral view of a request that a strategy sees. Adapters fill it
 * from Fastify's request or Express's req; `ip` is the framework's own client
 * address, so its trust-proxy setting decides whether X-Forwarded-For counts.
 */
export interface RouteRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
  ip: string | undefined
  cookies: Record<string, string | undefined>
  /** 'https' when the request arrived over TLS as the framework sees it (trust proxy included). */
  protocol?: string
  /** Host as the framework sees it (trust proxy included); defaults to the Host header. */
  host?: string
}

export interface UpstreamOptions {
  url: string
  /** Stable identity used for hashing and cookies; defaults to the URL. */
  id?: string
  weight?: number
}

export type UpstreamInput = string | UpstreamOptions

export type UpstreamState = 'up' | 'down' | 'draining'

export interface UpstreamInfo {
  id: string
  url: string
  weight: number
  state: UpstreamState
  inFlight: number
  websockets: number
  requests: number
  failures: number
  /** Passive ejections in a row (decays while the upstream stays healthy). */
  ejections: number
}

export interface HealthOptions {
  path: string
  intervalMs?: number
  timeoutMs?: number
  /** Consecutive passes that bring a down upstream back. */
  rise?: number
  /** Consecutive failures that take an upstream down. */
  fall?: number
}

export interface PassiveOptions {
  /** Consecutive failures (connect errors, timeouts, 5xx) that eject an upstream. */
  failures?: number
  /** How long a first ejection lasts; the n-th in a row lasts n × cooldownMs. */
  cooldownMs?: number
  /** The longest an ejection lasts (default 300 s, Envoy's max_ejection_time). */
  maxCooldownMs?: number
  /** At most this share of upstreams ejected at once (default 50; one may always be). */
  maxEjectedPercent?: number
}
