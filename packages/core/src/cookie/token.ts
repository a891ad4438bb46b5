import { createHmac, hkdfSync, randomFillSync, timingSafeEqual } from 'node:crypto'
import { HmacSha256 } from './hmac.js'

/** 2: keys derived with HKDF (1, in 0.1.0, derived them with a bare HMAC: such cookies are re-pinned once). */
const VERSION = 2
const HEADER = 14 // version(1) ‖ expires(4) ‖ nonce(9)
const TAG = 8
const MAC = 16
const BYTES = HEADER + TAG + MAC // 38
/** base64url length of a token: what a cookie value must be before we decode it. */
export const TOKEN_LENGTH = Math.ceil((BYTES * 4) / 3) // 51
const TOKEN_RE = /^[A-Za-z0-9_-]+$/

export interface VerifiedToken {
  /** Which secret verified it: 0 is the current one, anything else asks for a re-issue. */
  secret: number
  /** The opaque upstream tag under that secret. */
  tag: string
  /** Unix seconds; 0 for a browser-session cookie. */
  expires: number
}

/**
 * The balancer cookie: an HMAC-SHA256-authenticated token naming an upstream
 * opaquely, with its expiry inside the authenticated part.
 *
 *   header = version(1) ‖ expires(4, unix seconds, 0 = session) ‖ nonce(9, random)
 *   prf    = HMAC-SHA256(k_mac, header)                      (RFC 2104)
 *   token  = base64url(header ‖ (tag ⊕ prf[0..8)) ‖ prf[8..24))
 *
 * - `tag` = HMAC-SHA256(k_tag, upstream id)[0..8): no URL, host, port or id is in the
 *   value in any encoding, and without the secret tags cannot be computed.
 * - The tag is masked with a per-token pad, so two users' cookies for the same upstream
 *   share no bytes: a cookie does not even reveal how many upstreams there are.
 * - prf[8..24) authenticates version, expiry and nonce (128-bit tag, NIST SP 800-107
 *   §5.3.4 truncation). A changed masked tag unmasks to a random 64-bit value that
 *   names a real upstream with probability N/2^64, so the upstream is authenticated by
 *   redundancy; pads never repeat because the 72-bit nonce does not.
 * - One HMAC per verification (hmac.ts: RFC 2104 over node:crypto's one-shot hash();
 *   `npm run bench:strategies`, "stickyCookie verify, cold", measures a verification),
 *   and the strategy caches verified tokens, so a returning user costs a Map lookup.
 * Keys are derived per purpose from each secret with HKDF (RFC 5869), so the raw
 * secret keys nothing directly.
 */
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

export class TokenCodec {
  readonly #mac: HmacSha256[]
  readonly #tag: Buffer[]

  constructor (secrets: readonly string[]) {
    this.#mac = secrets.map(s => new HmacSha256(derive(s, 'affinity cookie mac v2'), HEADER))
    this.#tag = secrets.map(s => derive(s, 'affinity upstream tag v2'))
  }

  get secrets (): number {
    return this.#mac.length
  }

  /** The upstream's tag under secret `i`, as a Map key (hex). Computed on membership changes only. */
  tag (i: number, upstreamId: string): string {
    return createHmac('sha256', this.#tag[i]!).update(upstreamId).digest().subarray(0, TAG).toString('hex')
  }

  /** A fresh token for `tag` (hex, under secret 0) expiring at `expires` (unix seconds, 0 = session). */
  issue (tag: string, expires: number): string {
    const buf = Buffer.allocUnsafe(BYTES)
    buf[0] = VERSION
    buf.writeUInt32BE(expires >>> 0, 1)
    nonce(buf, 5, 9)
    const prf = this.#prf(0, buf)
    buf.write(tag, HEADER, TAG, 'hex')
    for (let i = 0; i < TAG; i++) buf[HEADER + i]! ^= prf[i]!
    prf.copy(buf, HEADER + TAG, TAG, TAG + MAC)
    return buf.toString('base64url')
  }

  /** The token's tag and expiry if some secret authenticates it; undefined for anything else. */
  verify (value: string): VerifiedToken | undefined {
    if (typeof value !== 'string' || value.length !== TOKEN_LENGTH || !TOKEN_RE.test(value)) return undefined
    // The last character carries 2 spare bits the decoder ignores: accept only the
    // canonical spelling (spare bits zero), so one token has exactly one cookie value.
    if ((ALPHABET.indexOf(value[TOKEN_LENGTH - 1]!) & 3) !== 0) return undefined
    const buf = Buffer.from(value, 'base64url')
    if (buf.length !== BYTES || buf[0] !== VERSION) return undefined
    const mac = buf.subarray(HEADER + TAG)
    for (let s = 0; s < this.#mac.length; s++) {
      const prf = this.#prf(s, buf)
      // Constant-time comparison of the 128-bit MAC.
      if (!timingSafeEqual(prf.subarray(TAG, TAG + MAC), mac)) continue
      for (let i = 0; i < TAG; i++) buf[HEADER + i]! ^= prf[i]!
      return { secret: s, tag: buf.toString('hex', HEADER, HEADER + TAG), expires: buf.readUInt32BE(1) }
    }
    return undefined
  }

  /** The PRF of the token's header under secret `s`'s MAC key (a buffer reused by the next call). */
  #prf (s: number, token: Buffer): Buffer {
    return this.#mac[s]!.digest(token.subarray(0, HEADER))
  }
}

/** The codec's PRF (hmac.ts) as a function, for the tests that hold it to RFC 4231's vectors. */
export function hmacSha256 (key: Uint8Array, data: Uint8Array): Buffer {
  return Buffer.from(new HmacSha256(key, data.length).digest(data))
}

/**
 * Random nonce bytes from a pool refilled 4 KiB at a time: a randomFillSync call
 * costs nearly the same whatever its size (one trip to the OS generator), so one
 * call serves 455 cookies.
 */
const pool = Buffer.allocUnsafe(4095)
let used = pool.length

function nonce (into: Buffer, offset: number, length: number): void {
  if (used + length > pool.length) {
    randomFillSync(pool)
    used = 0
  }
  pool.copy(into, offset, used, used + length)
  used += length
}

/** A 256-bit key for one purpose (RFC 5869: extract with a fixed salt, expand with the purpose as info). */
function derive (secret: string, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'affinity', purpose, 32))
}
