import { createHmac, randomFillSync, timingSafeEqual } from 'node:crypto'

const VERSION = 1
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
 * - One HMAC per verification: node:crypto's HMAC is the dominant cost (≈3 µs here),
 *   and the strategy caches verified tokens so a returning user costs a Map lookup.
 * Keys are derived per purpose from each secret, so the raw secret keys nothing directly.
 */
export class TokenCodec {
  readonly #mac: Buffer[]
  readonly #tag: Buffer[]

  constructor (secrets: readonly string[]) {
    this.#mac = secrets.map(s => derive(s, 'affinity cookie mac v1'))
    this.#tag = secrets.map(s => derive(s, 'affinity upstream tag v1'))
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
    randomFillSync(buf, 5, 9)
    const prf = createHmac('sha256', this.#mac[0]!).update(buf.subarray(0, HEADER)).digest()
    buf.write(tag, HEADER, TAG, 'hex')
    for (let i = 0; i < TAG; i++) buf[HEADER + i]! ^= prf[i]!
    prf.copy(buf, HEADER + TAG, TAG, TAG + MAC)
    return buf.toString('base64url')
  }

  /** The token's tag and expiry if some secret authenticates it; undefined for anything else. */
  verify (value: string): VerifiedToken | undefined {
    if (typeof value !== 'string' || value.length !== TOKEN_LENGTH || !TOKEN_RE.test(value)) return undefined
    const buf = Buffer.from(value, 'base64url')
    if (buf.length !== BYTES || buf[0] !== VERSION) return undefined
    // The last character carries 2 spare bits the decoder ignores: accept only the
    // canonical spelling, so one token has exactly one valid cookie value.
    if (buf.toString('base64url') !== value) return undefined
    const header = buf.subarray(0, HEADER)
    const mac = buf.subarray(HEADER + TAG)
    for (let s = 0; s < this.#mac.length; s++) {
      const prf = createHmac('sha256', this.#mac[s]!).update(header).digest()
      if (!timingSafeEqual(prf.subarray(TAG, TAG + MAC), mac)) continue
      for (let i = 0; i < TAG; i++) prf[i]! ^= buf[HEADER + i]!
      return { secret: s, tag: prf.subarray(0, TAG).toString('hex'), expires: buf.readUInt32BE(1) }
    }
    return undefined
  }
}

function derive (secret: string, purpose: string): Buffer {
  return createHmac('sha256', secret).update(purpose).digest()
}
