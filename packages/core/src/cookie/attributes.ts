import { invalidOption } from '../errors.js'

export type SameSite = 'lax' | 'strict' | 'none' | false

export interface CookieAttributeOptions {
  maxAge?: number
  path?: string
  domain?: string
  httpOnly?: boolean
  sameSite?: SameSite
}

// RFC 6265 §4.1.1: cookie-name is an RFC 2616 token; attribute values exclude CTLs and ';'.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const ATTR_VALUE = /^[\u0020-\u003a\u003c-\u007e]+$/

export function checkCookieName (name: unknown): string {
  if (typeof name !== 'string' || !TOKEN.test(name)) throw invalidOption('name', 'a cookie name must be an RFC 6265 token (letters, digits, !#$%&\'*+-.^_`|~)')
  return name
}

/**
 * The attribute suffix of the balancer's Set-Cookie, built once: '; Path=/; Max-Age=…;
 * HttpOnly; SameSite=Lax' (RFC 6265 §4.1; SameSite per RFC 6265bis). `Secure` is
 * appended per request by the caller when the request came over https.
 */
export function cookieAttributes (opts: CookieAttributeOptions): string {
  let out = ''
  const path = opts.path ?? '/'
  if (typeof path !== 'string' || !ATTR_VALUE.test(path) || path[0] !== '/') throw invalidOption('path', "expected a path starting with '/' without ';' or control characters")
  out += `; Path=${path}`
  if (opts.domain !== undefined) {
    if (typeof opts.domain !== 'string' || !/^\.?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/.test(opts.domain)) throw invalidOption('domain', 'expected a host name such as example.com')
    out += `; Domain=${opts.domain}`
  }
  if (opts.maxAge !== undefined) {
    if (!Number.isInteger(opts.maxAge) || opts.maxAge <= 0 || opts.maxAge > 400 * 86400) throw invalidOption('maxAge', 'expected whole seconds from 1 to 34560000 (400 days, the RFC 6265bis cap)')
    out += `; Max-Age=${opts.maxAge}`
  }
  if (opts.httpOnly ?? true) out += '; HttpOnly'
  const sameSite = opts.sameSite ?? 'lax'
  if (sameSite === 'lax') out += '; SameSite=Lax'
  else if (sameSite === 'strict') out += '; SameSite=Strict'
  else if (sameSite === 'none') out += '; SameSite=None'
  else if (sameSite !== false) throw invalidOption('sameSite', "expected 'lax', 'strict', 'none' or false")
  return out
}
