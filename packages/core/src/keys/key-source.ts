import { invalidOption } from '../errors.js'
import type { RouteRequest } from '../model/types.js'

/** Where a hash key comes from (Envoy's hash_policy; HAProxy's get_server_* family). */
export type KeySpec =
  | { cookie: string }
  | { header: string }
  | { query: string }
  | ((req: RouteRequest) => string | undefined)

export type KeyFn = (req: RouteRequest) => string | undefined

/**
 * Compiles a key spec once into a function; a missing or empty key is undefined,
 * which sends the request to the strategy's fallback.
 */
export function compileKey (spec: KeySpec): KeyFn {
  if (typeof spec === 'function') {
    return (req) => {
      const k = spec(req)
      return typeof k === 'string' && k.length > 0 ? k : undefined
    }
  }
  if (spec === null || typeof spec !== 'object') throw invalidOption('key', 'expected { cookie }, { header }, { query } or a function')
  if ('cookie' in spec && typeof spec.cookie === 'string' && spec.cookie) {
    const name = spec.cookie
    return (req) => nonEmpty(req.cookies?.[name])
  }
  if ('header' in spec && typeof spec.header === 'string' && spec.header) {
    const name = spec.header.toLowerCase()
    return (req) => {
      const v = req.headers[name]
      return nonEmpty(Array.isArray(v) ? v[0] : v)
    }
  }
  if ('query' in spec && typeof spec.query === 'string' && spec.query) {
    const name = spec.query
    return (req) => nonEmpty(queryParam(req.url, name))
  }
  throw invalidOption('key', 'expected { cookie: name }, { header: name }, { query: name } or a function')
}

function nonEmpty (v: string | undefined): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined
}

/**
 * The first value of `name` in the query string of `url`, decoded as a form value
 * ('+' is a space). Scans the string instead of building a URLSearchParams per
 * request; invalid percent-encoding yields the raw value rather than a throw.
 */
export function queryParam (url: string, name: string): string | undefined {
  const hash = url.indexOf('#')
  const end = hash === -1 ? url.length : hash
  // The query is the part between the first '?' and the fragment; a '?' inside the
  // fragment starts nothing (RFC 3986 §3.4–3.5).
  const q = url.indexOf('?')
  if (q === -1 || q > end) return undefined
  let i = q + 1
  // One pass over the query: each parameter's '=' is looked for only inside it, so a
  // long query of '=' less parameters costs O(length), not O(length²).
  while (i < end) {
    let amp = i
    let eq = -1
    for (; amp < end; amp++) {
      const c = url.charCodeAt(amp)
      if (c === 38 /* & */) break
      if (c === 61 /* = */ && eq === -1) eq = amp
    }
    const keyEnd = eq === -1 ? amp : eq
    if (decode(url.slice(i, keyEnd)) === name) {
      return keyEnd === amp ? '' : decode(url.slice(keyEnd + 1, amp))
    }
    i = amp + 1
  }
  return undefined
}

function decode (s: string): string {
  if (s.indexOf('%') === -1 && s.indexOf('+') === -1) return s
  const plus = s.replace(/\+/g, ' ')
  try {
    return decodeURIComponent(plus)
  } catch {
    return plus
  }
}
