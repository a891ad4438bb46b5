import type { IncomingHttpHeaders } from 'node:http'
import type { Upstream } from '../model/upstream.js'
import type { ForwardPolicy } from './policy.js'

/**
 * Rewrites an upstream's `Location` and `Content-Location` (RFC 9110 §10.2.2,
 * §8.7) from its own paths to the client's, in place: what @fastify/http-proxy's
 * internalRewriteLocationHeader does, and nginx's `proxy_redirect default`. Called
 * only for a response that carries one of them.
 */
export function rewriteLocations (headers: IncomingHttpHeaders, u: Upstream, policy: ForwardPolicy, request: unknown): void {
  const from = trimSlash(u.basePath + policy.upstreamPrefix(request))
  const to = trimSlash(policy.clientPrefix(request))
  const location = headers.location
  if (typeof location === 'string') headers.location = relocate(location, u.origin, from, to)
  const content = headers['content-location']
  if (typeof content === 'string') headers['content-location'] = relocate(content, u.origin, from, to)
}

/**
 * One reference, from the upstream's view to the client's. `from` is what the
 * upstream sees in place of the mount (its base path and rewritePrefix), `to` the
 * mount as the client sees it, both without a trailing slash ('' = the root).
 * - An absolute path (`/login`) under `from` gets `to` in its place: `/api/login`.
 * - An absolute URL at the upstream's own origin under `from` becomes that path,
 *   as nginx's `proxy_redirect default` does: upstream origins are internal
 *   addresses the client should never be sent to (and with several upstreams,
 *   another one than the client's own).
 * - Anything else (another site, a path outside `from`, a relative reference) is
 *   left as it is.
 */
export function relocate (value: string, origin: string, from: string, to: string): string {
  let path: string
  if (value.charCodeAt(0) === 47 /* / */) {
    if (value.charCodeAt(1) === 47) return value // //host/…: a network-path reference to another site
    path = value
  } else if (value.startsWith(origin) && ends(value, origin.length)) {
    path = value.slice(origin.length)
    if (path.charCodeAt(0) !== 47) path = `/${path}` // 'http://up:1' or 'http://up:1?q': the root
  } else {
    return value
  }
  if (from !== '') {
    if (!path.startsWith(from) || !ends(path, from.length)) return value
    path = path.slice(from.length)
  }
  const out = to + path
  // '' or '?q' / '#f' right after the root: the path is '/'.
  return out === '' || out.charCodeAt(0) !== 47 ? `/${out}` : out
}

/** Whether `s` ends at `i`, or goes on with a new path segment, a query or a fragment. */
function ends (s: string, i: number): boolean {
  if (i === s.length) return true
  const c = s.charCodeAt(i)
  return c === 47 /* / */ || c === 63 /* ? */ || c === 35 /* # */
}

function trimSlash (p: string): string {
  return p.endsWith('/') ? p.slice(0, -1) : p
}
