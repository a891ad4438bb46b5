import type { FastifyRequest } from 'fastify'

/**
 * Non-ASCII characters of a configured prefix as UTF-8 percent-encodings
 * ('/café' → '/caf%C3%A9'), so the prefix is valid in a request-target (RFC 3986
 * §2.1); ASCII, route parameters (':tenant') and existing encodings stay as they are.
 */
export function encodePrefix (prefix: string | undefined): string | undefined {
  if (prefix === undefined) return undefined
  // eslint-disable-next-line no-control-regex
  return prefix.replace(/[^\x00-\x7f]+/gu, s => encodeURIComponent(s))
}

/**
 * The path to request upstream: @fastify/http-proxy's destination with route
 * parameters percent-encoded again. It substitutes `rewritePrefix`'s `:name` with
 * the router's *decoded* parameter values, so '/api/caf%C3%A9/x' under
 * prefix '/api/:tenant' and rewritePrefix '/internal/:tenant' would go up as
 * '/internal/café/x' — raw bytes in the request line, which upstreams refuse. The
 * same substitution is made here twice (decoded, as @fastify/http-proxy did, and
 * encoded with encodeURIComponent), and the decoded head of `dest` is swapped for
 * the encoded one. The rest of `dest` is the client's own path, untouched.
 */
export function upstreamPath (request: FastifyRequest, dest: string, rewritePrefix: string | undefined): string {
  let path = dest
  if (rewritePrefix !== undefined && rewritePrefix.includes(':')) {
    let decoded = rewritePrefix
    let encoded = rewritePrefix
    for (const [name, value] of Object.entries(request.params as Record<string, string>)) {
      decoded = decoded.replace(`:${name}`, value)
      encoded = encoded.replace(`:${name}`, encodeURIComponent(value))
    }
    // @fastify/http-proxy drops the prefix's trailing slash in some mounts: match without it.
    if (decoded.endsWith('/') && encoded.endsWith('/')) {
      decoded = decoded.slice(0, -1)
      encoded = encoded.slice(0, -1)
    }
    if (decoded !== encoded && path.startsWith(decoded)) path = encoded + path.slice(decoded.length)
  }
  const url = request.raw.url
  const q = url?.indexOf('?') ?? -1
  return q === -1 ? path : path + url!.slice(q)
}

type Params = Record<string, string | undefined>

/**
 * The mount as the client sees it (the registration's prefix) and what the upstream
 * sees in its place (rewritePrefix, '/' by default, as @fastify/http-proxy), as
 * functions of the request for the Location rewrite. Fixed strings unless they have
 * route parameters, which are filled in (percent-encoded) from the request's own
 * values: @fastify/http-proxy's rewrite would write '/api/:id' into the header.
 * Called only for a response that carries Location or Content-Location.
 */
export function mountPrefixes (prefix: string, rewritePrefix: string | undefined): { client: (request: FastifyRequest) => string, upstream: (request: FastifyRequest) => string } {
  return { client: filled(prefix), upstream: filled(rewritePrefix ?? '') }
}

function filled (path: string): (request: FastifyRequest) => string {
  if (!path.includes(':')) return () => path
  return (request) => {
    let out = path
    for (const [name, value] of Object.entries(request.params as Params)) {
      if (name !== '*' && value !== undefined) out = out.replace(`:${name}`, encodeURIComponent(value))
    }
    return out
  }
}
