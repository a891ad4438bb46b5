/**
 * Client-address normalisation for IP affinity. The canonical form is what gets
 * hashed or keyed, so two balancers (and a v4 client seen through a dual-stack
 * socket) agree:
 * - IPv4-mapped IPv6 (::ffff:a.b.c.d, RFC 4291 §2.5.5.2) folds to plain IPv4;
 * - a zone index (fe80::1%eth0, RFC 6874) and brackets are dropped;
 * - the address is masked to the prefix (IPv6 /64 by default: privacy addresses,
 *   RFC 8981, rotate inside one /64) and printed in one canonical form
 *   (dotted quad; RFC 5952 for IPv6).
 * Anything that is not an IP address yields undefined, never a throw.
 * This runs per request for ipHash and stickyIp, so it parses in one pass into a
 * reused buffer instead of splitting strings (bench/strategies.js, ipHash rows).
 */
import { murmur3Bytes, murmur3Uint32BE } from '../hashing/murmur3.js'

import { invalidOption } from '../errors.js'
import { wholeNumber } from '../options.js'

export interface IpPrefixOptions {
  /** Bits of an IPv4 address that identify a client (32: the whole address). */
  ipv4Prefix?: number
  /** Bits of an IPv6 address that identify a client (64: privacy addresses rotate inside a /64). */
  ipv6Prefix?: number
}

/** The prefix options of ipHash and stickyIp, checked, with their defaults. */
export function checkPrefixes (opts: IpPrefixOptions): { ipv4Prefix: number, ipv6Prefix: number } {
  if (opts === null || typeof opts !== 'object') throw invalidOption('ipv4Prefix', 'expected an options object')
  return {
    ipv4Prefix: wholeNumber('ipv4Prefix', opts.ipv4Prefix, 32, 0, 32),
    ipv6Prefix: wholeNumber('ipv6Prefix', opts.ipv6Prefix, 64, 0, 128),
  }
}

/** Scratch for one parse: the IPv6 hextets (parseAddress). */
const words = new Uint16Array(8)

/** parseAddress results besides an IPv4 value (0 … 2^32 − 1). */
const INVALID = -1
const V6 = -2

/**
 * Parses a client address: its IPv4 value (IPv4, or IPv4-mapped IPv6 folded), V6 (the
 * hextets are in `words`) or INVALID. Brackets, a zone index and an "a.b.c.d:port" port
 * are dropped. One pass, no allocation; the value is returned rather than kept in module
 * state, which measured ≈ 30% slower picks for ipHash (`node bench/strategies.js --only
 * pick --case ipHash-v4`).
 */
function parseAddress (input: string | undefined): number {
  if (typeof input !== 'string' || input.length === 0 || input.length > 64) return INVALID
  let start = 0
  let end = input.length
  if (input.charCodeAt(0) === 91 /* [ */) {
    const close = input.indexOf(']')
    if (close === -1) return INVALID
    start = 1
    end = close
  }
  if (start === 0) end = withoutV4Port(input, end)
  const v4 = parseIpv4(input, start, end)
  if (v4 !== -1) return v4
  const zone = input.indexOf('%', start)
  if (zone !== -1 && zone < end) end = zone
  if (!parseIpv6Into(input, start, end, words)) return INVALID
  if (words[0] === 0 && words[1] === 0 && words[2] === 0 && words[3] === 0 && words[4] === 0 && words[5] === 0xffff) {
    return ((words[6]! << 16) | words[7]!) >>> 0
  }
  return V6
}

export function normalizeIp (input: string | undefined, ipv4Prefix = 32, ipv6Prefix = 64): string | undefined {
  const v4 = parseAddress(input)
  if (v4 >= 0) {
    // A dotted quad parsed from the whole input (no brackets, port or mapped form: no
    // ':' and no '[') is already canonical (no leading zeros): reuse the string.
    if (ipv4Prefix >= 32 && input!.indexOf(':') === -1 && input!.charCodeAt(0) !== 91) return input
    return formatIpv4(mask32(v4, ipv4Prefix))
  }
  if (v4 === INVALID) return undefined
  maskV6(words, ipv6Prefix)
  return formatIpv6(words)
}

const bytes = new Uint8Array(16)

/**
 * The hash of a client address for ipHash: murmur3 (x86_32) of the masked address
 * in network byte order, 4 bytes for IPv4 (IPv4-mapped IPv6 included), 16 for IPv6;
 * -1 when there is no valid address. Hashing the bytes instead of a formatted
 * string keeps the per-request cost to one parse, and the definition is easy to
 * reproduce in any language.
 */
export function ipHashOf (input: string | undefined, ipv4Prefix = 32, ipv6Prefix = 64): number {
  // A bare dotted quad (req.ip behind most front doors, at most 15 characters) first:
  // one small loop V8 inlines; longer input (IPv6) goes straight to the full parse
  // instead of paying for a failed quad first.
  const quad = typeof input === 'string' && input.length <= 15 ? parseIpv4(input, 0, input.length) : -1
  const v4 = quad !== -1 ? quad : parseAddress(input)
  if (v4 >= 0) return murmur3Uint32BE(mask32(v4, ipv4Prefix))
  if (v4 === INVALID) return -1
  maskV6(words, ipv6Prefix)
  for (let i = 0; i < 8; i++) { bytes[2 * i] = words[i]! >>> 8; bytes[2 * i + 1] = words[i]! & 255 }
  return murmur3Bytes(bytes, 16)
}

/**
 * Some proxies report "a.b.c.d:port" in X-Forwarded-For (and "[v6]:port", which the
 * bracket handling covers): the end of the address part when `s` has that shape, else
 * `end` unchanged. A bare IPv6 address has several colons and never matches.
 */
function withoutV4Port (s: string, end: number): number {
  const colon = s.indexOf(':')
  if (colon === -1 || s.indexOf(':', colon + 1) !== -1 || colon === end - 1) return end
  for (let i = colon + 1; i < end; i++) {
    const c = s.charCodeAt(i)
    if (c < 48 || c > 57) return end
  }
  return end - colon > 6 ? end : colon
}

/** Dotted-quad IPv4 (four decimal octets, no leading zeros) in s[start, end) → uint32, or -1. */
export function parseIpv4 (s: string, start = 0, end = s.length): number {
  let value = 0
  let octet = 0
  let digits = 0
  let dots = 0
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i)
    if (c >= 48 && c <= 57) {
      // Leading zeros are rejected: "010" is octal to some parsers and decimal to others.
      if (digits === 1 && octet === 0) return -1
      octet = octet * 10 + (c - 48)
      if (++digits > 3 || octet > 255) return -1
    } else if (c === 46 /* . */) {
      if (digits === 0 || ++dots > 3) return -1
      value = value * 256 + octet
      octet = 0
      digits = 0
    } else {
      return -1
    }
  }
  if (dots !== 3 || digits === 0) return -1
  return value * 256 + octet
}

/** Hex digit value by char code, -1 for anything else: one load instead of three range tests. */
const HEX = new Int8Array(128).fill(-1)
for (let c = 0; c < 10; c++) HEX[48 + c] = c
for (let c = 0; c < 6; c++) { HEX[65 + c] = 10 + c; HEX[97 + c] = 10 + c }

function hexValue (c: number): number {
  return c < 128 ? HEX[c]! : -1
}

/**
 * RFC 4291 §2.2 text forms ("::" compression, a trailing dotted quad) in
 * s[start, end) → 8 hextets written into `out`; false when it is not IPv6.
 */
export function parseIpv6Into (s: string, start: number, end: number, out: Uint16Array): boolean {
  if (end - start < 2) return false
  let n = 0
  let gap = -1
  let i = start
  if (s.charCodeAt(i) === 58 /* : */) {
    if (s.charCodeAt(i + 1) !== 58) return false
    gap = 0
    i += 2
  }
  while (i < end) {
    const groupStart = i
    let v = 0
    let digits = 0
    while (i < end) {
      const h = hexValue(s.charCodeAt(i))
      if (h === -1) break
      v = v * 16 + h
      i++
      if (++digits > 4) return false
    }
    if (i < end && s.charCodeAt(i) === 46 /* . */) {
      // An embedded IPv4 address is only valid as the last 32 bits.
      if (n > 6) return false
      const v4 = parseIpv4(s, groupStart, end)
      if (v4 === -1) return false
      out[n++] = v4 >>> 16
      out[n++] = v4 & 0xffff
      i = end
      break
    }
    if (digits === 0 || n === 8) return false
    out[n++] = v
    if (i === end) break
    if (s.charCodeAt(i) !== 58) return false
    i++
    if (i < end && s.charCodeAt(i) === 58) {
      if (gap !== -1) return false
      gap = n
      i++
    } else if (i === end) {
      return false // a trailing single ':'
    }
  }
  if (gap === -1) return n === 8
  if (n > 7) return false
  // Move the groups after "::" to the end and zero the gap.
  const tail = n - gap
  for (let k = tail - 1; k >= 0; k--) out[8 - tail + k] = out[gap + k]!
  for (let k = gap; k < 8 - tail; k++) out[k] = 0
  return true
}

/** The same parse, returning a fresh array (for tests and tools). */
export function parseIpv6 (s: string): number[] | undefined {
  const out = new Uint16Array(8)
  return parseIpv6Into(s, 0, s.length, out) ? [...out] : undefined
}

function mask32 (v: number, prefix: number): number {
  if (prefix >= 32) return v
  if (prefix <= 0) return 0
  return (v & (~0 << (32 - prefix))) >>> 0
}

function formatIpv4 (v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`
}

function maskV6 (w: Uint16Array, prefix: number): void {
  for (let i = 0; i < 8; i++) {
    const bits = prefix - i * 16
    if (bits >= 16) continue
    w[i] = bits <= 0 ? 0 : w[i]! & ((0xffff << (16 - bits)) & 0xffff)
  }
}

/** RFC 5952 canonical text: lowercase, no leading zeros, the longest zero run (≥ 2) as "::". */
function formatIpv6 (w: Uint16Array): string {
  let bestStart = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && w[j] === 0) j++
    if (j - i > bestLen) { bestStart = i; bestLen = j - i }
    i = j
  }
  let out = ''
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      out += '::'
      i += bestLen - 1
      continue
    }
    if (out.length > 0 && !out.endsWith(':')) out += ':'
    out += w[i]!.toString(16)
  }
  return out
}
