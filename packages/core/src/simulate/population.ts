import type { Choice } from '../model/choice.js'
import type { RouteRequest } from '../model/types.js'
import { hex8, mulberry32 } from './prng.js'
import { thousands } from '../render/format.js'

/** The header that carries the user id for consistentHash (`key: { header: 'x-user' }`). */
export const USER_HEADER = 'x-user'
/** stickyCookie's cookie name (its default). */
export const COOKIE_NAME = 'affinity'

/**
 * The simulated traffic: who sends the requests. Each entry (a user, a client
 * address, or for stateless strategies one request) is replayed in the same order
 * before and after a membership change, so "moved" compares like with like.
 */
export interface Population {
  /** What one entry is: a user (sticky and hashing strategies) or a request (stateless ones). */
  readonly unit: 'users' | 'requests'
  readonly size: number
  /** One line for reports, e.g. "10,000 users, each a distinct x-user header value". */
  readonly description: string
  /** A fresh run: users start with empty cookie jars, as new browsers. */
  session (): Session
}

export interface Session {
  /** The request entry `i` sends now. */
  request (i: number): RouteRequest
  /** What entry `i` keeps from the answer (a browser stores the balancer's Set-Cookie). */
  accept (i: number, choice: Choice): void
}

/** K distinct user ids ("u-" and 12 hex digits), drawn from the seeded PRNG. */
export function userKeys (size: number, seed: number): string[] {
  const next = mulberry32(seed)
  const seen = new Set<string>()
  const keys: string[] = []
  while (keys.length < size) {
    const key = `u-${hex8(next())}${hex8(next()).slice(0, 4)}`
    if (seen.has(key)) continue
    seen.add(key)
    keys.push(key)
  }
  return keys
}

/** K distinct IPv4 client addresses, drawn uniformly from the whole space by the seeded PRNG. */
export function clientIps (size: number, seed: number): string[] {
  const next = mulberry32(seed)
  const seen = new Set<number>()
  const ips: string[] = []
  while (ips.length < size) {
    const v = next()
    if (seen.has(v)) continue
    seen.add(v)
    ips.push(`${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`)
  }
  return ips
}

const ignore = (): void => {}

/** consistentHash: each user sends its id in the x-user header. */
export function headerUsers (size: number, seed: number): Population {
  const keys = userKeys(size, seed)
  return {
    unit: 'users',
    size,
    description: `${thousands(size)} users, each a distinct ${USER_HEADER} header value`,
    session: () => ({
      request: (i) => ({ method: 'GET', url: '/', headers: { [USER_HEADER]: keys[i]! }, ip: undefined, cookies: {} }),
      accept: ignore,
    }),
  }
}

/** ipHash and stickyIp: each client has its own address. */
export function ipClients (size: number, seed: number): Population {
  const ips = clientIps(size, seed)
  return {
    unit: 'users',
    size,
    description: `${thousands(size)} users, each a distinct random IPv4 client address`,
    session: () => ({
      request: (i) => ({ method: 'GET', url: '/', headers: {}, ip: ips[i]!, cookies: {} }),
      accept: ignore,
    }),
  }
}

/** stickyCookie: users start without a cookie and keep the one they are issued, as a browser does. */
export function cookieUsers (size: number): Population {
  return {
    unit: 'users',
    size,
    description: `${thousands(size)} users, each keeping the cookie it was issued (a browser's cookie jar)`,
    session: () => {
      const jar: Array<string | undefined> = new Array(size)
      return {
        request: (i) => {
          const value = jar[i]
          return { method: 'GET', url: '/', headers: {}, ip: undefined, cookies: value === undefined ? {} : { [COOKIE_NAME]: value } }
        },
        accept: (i, choice) => {
          const value = cookieValue(choice.setCookie)
          if (value !== undefined) jar[i] = value
        },
      }
    },
  }
}

/** roundRobin and leastConnections: K requests in a row, from nobody in particular. */
export function sequentialRequests (size: number): Population {
  return {
    unit: 'requests',
    size,
    description: `${thousands(size)} sequential requests`,
    session: () => ({
      request: () => ({ method: 'GET', url: '/', headers: {}, ip: undefined, cookies: {} }),
      accept: ignore,
    }),
  }
}

/** The value of the balancer's cookie in a Set-Cookie header value, as a browser would store it. */
export function cookieValue (setCookie: string | undefined): string | undefined {
  if (setCookie === undefined || !setCookie.startsWith(`${COOKIE_NAME}=`)) return undefined
  const end = setCookie.indexOf(';')
  return setCookie.slice(COOKIE_NAME.length + 1, end === -1 ? undefined : end)
}
