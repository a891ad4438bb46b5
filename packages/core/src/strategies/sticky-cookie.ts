import { LRUCache } from 'lru-cache'
import { AffinityError, invalidOption } from '../errors.js'
import { knownKeys, milliseconds, oneOf, wholeNumber } from '../options.js'
import { checkCookieName, cookieAttributes, type SameSite } from '../cookie/attributes.js'
import { TokenCodec, type VerifiedToken } from '../cookie/token.js'
import type { Members } from '../model/members.js'
import { boundRemap, type Remap } from '../model/remap.js'
import { RecentUsers, type SeenStamp } from '../stick/recent-users.js'
import type { RouteRequest, TokenCacheStats } from '../model/types.js'
import type { Upstream } from '../model/upstream.js'
import { Placement } from './placement.js'
import { type Strategy } from './strategy.js'
import type { Choice, PickReason, PickResult } from '../model/choice.js'

export interface StickyCookieOptions {
  /** HMAC secret(s), ≥ 32 characters. The first signs; all verify (key rotation). */
  secret: string | readonly string[]
  name?: string
  /** Seconds, as the Max-Age attribute; absent = a browser-session cookie. */
  maxAge?: number
  path?: string
  domain?: string
  httpOnly?: boolean
  /** true, false, or 'auto': Secure when the request arrived over https. */
  secure?: boolean | 'auto'
  sameSite?: SameSite
  /** Places users who have no valid cookie (and re-places them on failover). */
  assign?: Strategy
  /** Verified tokens remembered so a returning user skips the HMAC (default 10,000). */
  cacheSize?: number
  /**
   * A user counts as bound (stats, status page, session cap) while seen within this
   * window (default 30 minutes).
   */
  activeMs?: number
  /**
   * Bounded loads on sessions (e.g. 1.25): a new or failed-over user is not placed
   * on an upstream already holding ceil(factor × average) bound users (weighted);
   * bound users never move. Users are those seen within `activeMs`, as remembered
   * by this balancer instance (needs `cacheSize` > 0). Off by default.
   */
  sessionBalanceFactor?: number
}

const MIN_SECRET = 32

const STICKY_COOKIE_OPTIONS = [
  'secret', 'name', 'maxAge', 'path', 'domain', 'httpOnly', 'secure', 'sameSite', 'assign', 'cacheSize', 'activeMs', 'sessionBalanceFactor',
] as const satisfies ReadonlyArray<keyof StickyCookieOptions>

/** A verified token as cached, with where and when its user was last counted (for bound() and the session cap). */
interface SeenToken extends VerifiedToken, SeenStamp {}

/**
 * Sticky sessions by a balancer-issued cookie (HAProxy `cookie … insert`, nginx
 * `sticky cookie`), with what none of them has: the value is authenticated and
 * opaque (cookie/token.ts), and its expiry is checked by the balancer.
 * - valid cookie, upstream up or draining → that upstream, no Set-Cookie
 *   (unless renewing: an older secret verified it, or half its Max-Age has passed);
 * - no cookie, or a forged / expired / malformed / unknown one → `assign` picks, and
 *   exactly one fresh cookie is set;
 * - pinned upstream down, removed, or failed for this request → `assign` re-pins
 *   (nginx: "as if the client has not been bound yet") and the cookie is rewritten.
 * Adding upstreams moves nobody: a cookie names its upstream, not a hash position.
 */
class StickyCookie implements Strategy {
  readonly name = 'stickyCookie'
  readonly #codec: TokenCodec
  readonly #cookie: string
  readonly #maxAge: number | undefined
  readonly #attrs: string
  readonly #secure: boolean | 'auto'
  readonly #placement: Placement
  readonly #cache: LRUCache<string, SeenToken> | undefined
  /** Users seen within activeMs, per upstream: counted as they come back, never by a scan. */
  readonly #recent: RecentUsers
  /** Per secret: tag → upstream, over every member (down ones included: they fail over). */
  #byTag: Map<string, Upstream>[] = []
  /** Per upstream id: its tag under the signing secret. */
  #tagOf = new Map<string, string>()
  readonly #tagCache = new Map<string, string[]>()
  #members: Members | undefined
  readonly #cacheSize: number
  /** Tokens evicted from the full cache (their users' next visit costs an HMAC, and they stop counting as bound). */
  #evicted = 0
  #onEvict: ((table: 'tokenCache') => void) | undefined

  constructor (opts: StickyCookieOptions) {
    if (opts === null || typeof opts !== 'object') throw new AffinityError('AFFINITY_ERR_SECRET_REQUIRED')
    knownKeys('stickyCookie', opts, STICKY_COOKIE_OPTIONS)
    const secrets = typeof opts.secret === 'string' ? [opts.secret] : opts.secret
    if (!Array.isArray(secrets) || secrets.length === 0) throw new AffinityError('AFFINITY_ERR_SECRET_REQUIRED')
    secrets.forEach((s, i) => {
      if (typeof s !== 'string') throw new AffinityError('AFFINITY_ERR_SECRET_REQUIRED')
      if (s.length < MIN_SECRET) throw new AffinityError('AFFINITY_ERR_SECRET_TOO_SHORT', i, s.length)
    })
    this.#codec = new TokenCodec(secrets)
    this.#cookie = checkCookieName(opts.name ?? 'affinity')
    this.#maxAge = opts.maxAge
    this.#attrs = cookieAttributes(opts)
    this.#secure = oneOf('secure', opts.secure, 'auto', ['auto', true, false])
    if (opts.sameSite === 'none' && this.#secure === false) throw invalidOption('sameSite', "SameSite=None requires Secure: set secure to true or 'auto'")
    this.#placement = new Placement(opts.assign, opts.sessionBalanceFactor)
    const cacheSize = wholeNumber('cacheSize', opts.cacheSize, 10_000, 0)
    this.#cacheSize = cacheSize
    this.#recent = new RecentUsers(milliseconds('activeMs', opts.activeMs, 30 * 60_000, { positive: true }))
    if (this.#placement.cap !== undefined && cacheSize === 0) throw invalidOption('sessionBalanceFactor', 'counts users through the token cache: needs cacheSize > 0')
    // No lru-cache TTL: its per-hit bookkeeping cost ≈55 ns (bench/strategies.js,
    // cookie-warm); the bucket stamp on the cached token costs a comparison. A token
    // leaving the cache (evicted, cleared) stops counting: bound users are the most
    // recent cacheSize ones.
    this.#cache = cacheSize > 0
      ? new LRUCache({
        max: cacheSize,
        dispose: (token, _raw, reason) => {
          this.#recent.forget(token)
          if (reason === 'evict') {
            this.#evicted++
            this.#onEvict?.('tokenCache')
          }
        },
      })
      : undefined
  }

  update (members: Members): void {
    this.#members = members
    this.#placement.update(members)
    const n = this.#codec.secrets
    const byTag: Map<string, Upstream>[] = Array.from({ length: n }, () => new Map())
    const tagOf = new Map<string, string>()
    for (const u of members.all) {
      let tags = this.#tagCache.get(u.id)
      if (tags === undefined) {
        tags = Array.from({ length: n }, (_, i) => this.#codec.tag(i, u.id))
        this.#tagCache.set(u.id, tags)
      }
      for (let i = 0; i < n; i++) byTag[i]!.set(tags[i]!, u)
      tagOf.set(u.id, tags[0]!)
    }
    for (const id of this.#tagCache.keys()) if (!members.index.has(id)) this.#tagCache.delete(id)
    this.#byTag = byTag
    this.#tagOf = tagOf
  }

  /** `aside` (no capacity there) only steers the placement of users without a valid cookie: bound ones wait for theirs. */
  pick (req: RouteRequest, choice: Choice, aside?: ReadonlySet<Upstream>): PickResult {
    let reason: PickReason = choice.tried === undefined ? 'assigned' : 'failover'
    const raw = req.cookies[this.#cookie]
    if (raw !== undefined) {
      choice.key = raw
      const now = Date.now()
      const token = this.#verify(raw, now)
      if (token !== undefined) {
        // An authentic cookie whose upstream is unknown was pinned to one since removed.
        reason = 'failover'
        const u = this.#byTag[token.secret]!.get(token.tag)
        if (u !== undefined) {
          if (this.#members!.keeps(u) && !choice.avoids(u)) {
            choice.reason = 'sticky'
            if (token.secret !== 0 || this.#dueForRenewal(token.expires, now)) {
              // Counted once, under its renewed cookie.
              this.#recent.forget(token)
              choice.setCookie = this.#setCookie(u, req)
            } else {
              this.#recent.touch(token, u.id, now)
            }
            return u
          }
        }
        // The user leaves its upstream: a fresh cookie will count it where it lands.
        this.#recent.forget(token)
      }
    }
    return this.#placement.place(req, choice, reason, this.#counts, u => {
      choice.setCookie = u === undefined ? undefined : this.#setCookie(u, req)
      return u
    }, aside)
  }

  /** The verified-token cache: entries, size, evictions (a full cache: raise cacheSize; see README, "Stick-table pressure"). */
  tokenCacheStats (): TokenCacheStats | undefined {
    if (this.#cache === undefined) return undefined
    return { entries: this.#cache.size, max: this.#cacheSize, evicted: this.#evicted }
  }

  onEvict (listener: (table: 'tokenCache') => void): void {
    this.#onEvict = listener
  }

  /**
   * Users seen within activeMs (up to activeMs × 9/8), by the upstream they are bound
   * to: the most recent cacheSize users, as this instance saw them. The same counts
   * the session cap reads; a copy, O(upstreams).
   */
  bound (): ReadonlyMap<string, number> | undefined {
    if (this.#cache === undefined) return undefined
    const counts = new Map<string, number>()
    for (const [id, n] of this.#recent.counts(Date.now())) if (n > 0) counts.set(id, n)
    return counts
  }

  /** Users of an upstream that goes away or down are re-placed at their next request; nobody else moves. */
  preview (from: Members, to: Members): Remap {
    return boundRemap(this.#cache === undefined ? undefined : this.#recent.counts(Date.now()), from, to)
  }

  close (): void | Promise<void> {
    this.#cache?.clear()
    return this.#placement.close()
  }

  /** Bound users per upstream, as the session cap reads them. */
  #counts = (): ReadonlyMap<string, number> => this.#recent.counts(Date.now())

  /**
   * Authenticated, unexpired token or undefined. Verified tokens are cached (LRU):
   * a returning user costs a lookup, not an HMAC. Only authentic tokens enter the
   * cache: forged cookies cost one HMAC each and never displace real entries.
   */
  #verify (raw: string, now: number): SeenToken | undefined {
    let token = this.#cache?.get(raw)
    if (token === undefined) {
      const verified = this.#codec.verify(raw)
      if (verified === undefined) return undefined
      token = { secret: verified.secret, tag: verified.tag, expires: verified.expires, bucket: -1, upstream: '' }
      this.#cache?.set(raw, token)
    }
    if (token.expires !== 0 && token.expires * 1000 <= now) {
      this.#recent.forget(token)
      return undefined
    }
    return token
  }

  /**
   * Sliding expiry: re-issue once less than half of Max-Age is left, so active users
   * never lose their server. A session token (no expiry inside) met while maxAge is
   * configured is re-issued with one, so it becomes subject to the expiry check.
   */
  #dueForRenewal (expires: number, now: number): boolean {
    if (this.#maxAge === undefined) return false
    return expires === 0 || (expires * 1000 - now) < this.#maxAge * 500
  }

  #setCookie (u: Upstream, req: RouteRequest): string {
    const expires = this.#maxAge === undefined ? 0 : Math.floor(Date.now() / 1000) + this.#maxAge
    const tag = this.#tagOf.get(u.id)!
    const token = this.#codec.issue(tag, expires)
    // Remembered at once: the new user counts as bound, and its return skips the HMAC.
    if (this.#cache !== undefined) {
      const seen: SeenToken = { secret: 0, tag, expires, bucket: -1, upstream: '' }
      this.#cache.set(token, seen)
      this.#recent.touch(seen, u.id, Date.now())
    }
    const secure = this.#secure === 'auto' ? req.protocol === 'https' : this.#secure
    return `${this.#cookie}=${token}${this.#attrs}${secure ? '; Secure' : ''}`
  }
}

export function stickyCookie (opts: StickyCookieOptions): Strategy {
  return new StickyCookie(opts)
}
