import type { IncomingHttpHeaders } from 'node:http'
import type { ClientRequest } from './http.js'
import type { RouteRequest } from '../model/types.js'
import type { ForwardPolicy, HeaderFields } from './policy.js'

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1): meaningful for one connection only, so a
 * proxy must not forward them; `proxy-*` is matched by prefix below;
 * `http2-settings` belongs to h2c upgrades (RFC 7540 §3.2.1). `trailer`
 * is listed for requests (undici sends no request trailers) and kept on responses
 * whose trailers are relayed (see stripResponseHeaders).
 */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-connection', 'http2-settings',
])

/**
 * Request headers the balancer sets itself rather than forwards: `host` is the
 * upstream's (as nginx's proxy_set_header Host $proxy_host), `expect` is answered by
 * Node itself (100-continue) and undici rejects it, X-Forwarded-* are rebuilt.
 */
const SET_BY_PROXY = new Set(['host', 'expect', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host'])

/** Headers named in a Connection header are hop-by-hop too (RFC 9110 §7.6.1). */
export function connectionTokens (value: string | string[] | undefined): Set<string> | undefined {
  // The values nearly every request and response carries name no header: ≈200 ns of
  // split/trim/lower-case each, twice per request, saved.
  if (value === undefined || value === 'keep-alive' || value === 'close') return undefined
  const joined = Array.isArray(value) ? value.join(',') : value
  let out: Set<string> | undefined
  for (const raw of joined.split(',')) {
    const t = raw.trim().toLowerCase()
    if (t === '' || t === 'close' || t === 'keep-alive' || t === 'upgrade') continue
    ;(out ??= new Set()).add(t)
  }
  return out
}

function isHopByHop (name: string, listed: Set<string> | undefined): boolean {
  return HOP_BY_HOP.has(name) || name.startsWith('proxy-') || (listed !== undefined && listed.has(name)) ||
    (name.indexOf('_') !== -1 && isDisguised(name))
}

/** A client header the upstream request does not carry. */
function isDropped (name: string, listed: Set<string> | undefined): boolean {
  // HTTP/2 pseudo-headers (:method, :path, :authority, :scheme; RFC 9113 §8.3) belong
  // to the client's h2 stream: the upstream request carries them in its request line.
  return name.charCodeAt(0) === 58 /* : */ || SET_BY_PROXY.has(name) || isHopByHop(name, listed)
}

/**
 * A header whose name becomes a framing or hop-by-hop one once '_' reads as '-'
 * (Transfer_Encoding, Content_Length, X_Forwarded_For…): stacks that map '_' to '-'
 * (CGI's HTTP_* variables, some frameworks) would take it for the real thing, so it
 * is not forwarded. nginx drops every underscore header by default
 * (underscores_in_headers off); this drops only the ones that can mis-frame or spoof.
 */
function isDisguised (name: string): boolean {
  const dashed = name.replace(/_/g, '-')
  return HOP_BY_HOP.has(dashed) || SET_BY_PROXY.has(dashed) || dashed.startsWith('proxy-') || dashed === 'content-length'
}

/**
 * The upstream request's headers as undici's flat [name, value, …] array: the
 * client's end-to-end headers, plus X-Forwarded-For (the connection's peer address
 * appended to whatever list came in), X-Forwarded-Proto and X-Forwarded-Host (set
 * from the framework's view, replacing anything the client sent).
 */
export function upstreamRequestHeaders (req: ClientRequest, route: RouteRequest, policy?: ForwardPolicy, view?: unknown): string[] {
  const headers = req.headers
  const listed = connectionTokens(headers.connection)
  const out: string[] = []
  for (const name in headers) {
    if (isDropped(name, listed)) continue
    const value = headers[name]
    if (value === undefined) continue
    if (typeof value === 'string') out.push(name, value)
    else for (const v of value) out.push(name, v)
  }
  const peer = peerAddress(req)
  const xff = headers['x-forwarded-for']
  out.push('x-forwarded-for', xff ? `${xff}, ${peer}` : peer)
  out.push('x-forwarded-proto', route.protocol === 'https' ? 'https' : 'http')
  // An h2 client names the host in :authority, which plays Host's role (RFC 9113 §8.3.1).
  const host = route.host ?? headers.host ?? (headers[':authority'] as string | undefined)
  if (host) out.push('x-forwarded-host', host)
  if (policy === undefined) return out
  if (policy.preserveHost) {
    // The Host the client sent (an h2 client's :authority, RFC 9113 §8.3.1), as
    // http-proxy-middleware without changeOrigin and nginx's `proxy_set_header Host $http_host`.
    const own = headers.host ?? headers[':authority']
    if (typeof own === 'string' && own !== '') out.push('host', own)
  }
  return policy.rewriteRequestHeaders === undefined ? out : rewriteRequest(out, policy.rewriteRequestHeaders, view ?? req)
}

/**
 * The app's rewriteRequestHeaders, over the headers as an object and back. What it
 * returns may not carry hop-by-hop or pseudo-header fields: the proxy frames the
 * upstream request itself (and undici refuses Connection, Upgrade, Transfer-Encoding).
 */
function rewriteRequest (list: string[], rewrite: NonNullable<ForwardPolicy['rewriteRequestHeaders']>, view: unknown): string[] {
  const fields: HeaderFields = {}
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i]!
    const value = list[i + 1]!
    const had = fields[name]
    fields[name] = had === undefined ? value : Array.isArray(had) ? [...had, value] : [String(had), value]
  }
  const rewritten = rewrite(view, fields)
  if (rewritten === null || typeof rewritten !== 'object') throw new TypeError('rewriteRequestHeaders must return the headers object')
  return fieldList(rewritten, true)
}

/**
 * Header fields from an app's hook as a flat [name, value, …] list with lower-case
 * names; numbers become strings, `undefined` and `null` are left out, and (for a
 * request, `request`) hop-by-hop and pseudo-header fields are dropped.
 */
export function fieldList (fields: HeaderFields, request: boolean): string[] {
  const out: string[] = []
  for (const key in fields) {
    const value = fields[key]
    if (value === undefined || value === null) continue
    const name = key.toLowerCase()
    if (request && (name.charCodeAt(0) === 58 /* : */ || isHopByHop(name, undefined))) continue
    if (Array.isArray(value)) for (const v of value) out.push(name, String(v))
    else out.push(name, String(value))
  }
  return out
}

/** An app's response headers (rewriteHeaders) as an object with lower-case names and string values, as undici gives them. */
export function responseFields (fields: HeaderFields): IncomingHttpHeaders {
  if (fields === null || typeof fields !== 'object') throw new TypeError('rewriteHeaders must return the headers object')
  const out: IncomingHttpHeaders = {}
  for (const key in fields) {
    const value = fields[key]
    if (value === undefined || value === null) continue
    const name = key.toLowerCase()
    const v = Array.isArray(value) ? value.map(String) : String(value)
    const had = out[name]
    if (had === undefined) out[name] = v
    else out[name] = [...(Array.isArray(had) ? had : [had]), ...(Array.isArray(v) ? v : [v])]
  }
  return out
}

/** The TCP peer, with an IPv4-mapped IPv6 address shown as IPv4. */
function peerAddress (req: ClientRequest): string {
  const a = req.socket?.remoteAddress ?? ''
  return a.startsWith('::ffff:') && a.indexOf('.') !== -1 ? a.slice(7) : a
}

/** Removes hop-by-hop headers from an upstream response, in place (the WebSocket handshake's answer). */
export function stripResponseHeaders (headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): void {
  const listed = connectionTokens(headers.connection)
  for (const name in headers) {
    if (isHopByHop(name, listed)) delete headers[name]
  }
}

/**
 * The upstream response's headers for writeHead, as a flat [name, value, …] list: the
 * end-to-end ones (hop-by-hop left out, as stripResponseHeaders does, but `Trailer` kept
 * with `keepTrailer`: the trailers it names, RFC 9110 §6.6.2, will be relayed), the app's `extra`
 * replacing same-named ones, and every Set-Cookie (the upstream's, the app's, then the
 * balancer's `cookie`) in one entry. Built afresh instead of deleting from undici's object:
 * `delete` turns it into a dictionary-mode object that writeHead then walks slowly. One entry per
 * name, because writeHead on a response with headers already set (Express's X-Powered-By)
 * calls setHeader per entry, where a second entry of a name would replace the first.
 */
export function responseHeaderList (headers: IncomingHttpHeaders, extra: Record<string, string | string[] | number | undefined> | undefined, cookie: string | undefined, keepTrailer = false): Array<string | string[]> {
  const listed = connectionTokens(headers.connection)
  let replaced: string[] | undefined
  if (extra !== undefined) for (const name in extra) if (extra[name] !== undefined) (replaced ??= []).push(name.toLowerCase())
  const out: Array<string | string[]> = []
  let cookies: string[] | undefined
  for (const name in headers) {
    const value = headers[name]
    if (value === undefined) continue
    if (name === 'set-cookie') { cookies = typeof value === 'string' ? [value] : [...value]; continue }
    if (isHopByHop(name, listed) && !(keepTrailer && name === 'trailer')) continue
    if (replaced !== undefined && replaced.includes(name)) continue
    out.push(name, value)
  }
  if (extra !== undefined) {
    for (const name in extra) {
      const value = extra[name]
      if (value === undefined) continue
      const key = name.toLowerCase()
      if (key === 'set-cookie') (cookies ??= []).push(...(Array.isArray(value) ? value : [String(value)]))
      else out.push(key, Array.isArray(value) ? value : String(value))
    }
  }
  if (cookie !== undefined) (cookies ??= []).push(cookie)
  if (cookies !== undefined) out.push('set-cookie', cookies.length === 1 ? cookies[0]! : cookies)
  return out
}

/** Adds the balancer's Set-Cookie next to the upstream's own (never replacing them). */
export function appendSetCookie (headers: Record<string, string | string[] | undefined>, cookie: string): void {
  const existing = headers['set-cookie']
  if (existing === undefined) headers['set-cookie'] = cookie
  else if (Array.isArray(existing)) existing.push(cookie)
  else headers['set-cookie'] = [existing, cookie]
}
