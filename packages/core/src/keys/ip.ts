/**
 * Client-address normalisation for IP affinity. The canonical form is what gets
 * hashed or keyed, so two balancers (and a v4 client seen through a dual-stack
 * socket) agree:
 * - IPv4-mapped IPv6 (::ffff:a.b.c.d, RFC 4291 §2.5.5.2) folds to plain IPv4;
 * - a zone index (fe80::1%eth0, RFC 6874) and brackets are dropped;
 * - the address is masked to the prefix (IPv6 /64 by default: privacy addresses,
 *   RFC 8981, rotate inside one /64) and printed in one canonical form.
 * Anything that is not an IP address yields undefined, never a throw.
 */
export function normalizeIp (input: string | undefined, ipv4Prefix = 32, ipv6Prefix = 64): string | undefined {
  if (typeof input !== 'string' || input.length === 0 || input.length > 64) return undefined
  let s = input
  if (s.charCodeAt(0) === 91 /* [ */) {
    const end = s.indexOf(']')
    if (end === -1) return undefined
    s = s.slice(1, end)
  }
  const v4 = parseIpv4(s)
  if (v4 !== -1) return formatIpv4(mask32(v4, ipv4Prefix))
  const zone = s.indexOf('%')
  if (zone !== -1) s = s.slice(0, zone)
  const v6 = parseIpv6(s)
  if (v6 === undefined) return undefined
  if (isV4Mapped(v6)) return formatIpv4(mask32(((v6[6]! << 16) | v6[7]!) >>> 0, ipv4Prefix))
  return formatIpv6(maskV6(v6, ipv6Prefix))
}

/** Dotted-quad IPv4 (four decimal octets, no leading zeros beyond "0") → uint32, or -1. */
export function parseIpv4 (s: string): number {
  let value = 0
  let octet = 0
  let digits = 0
  let dots = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 48 && c <= 57) {
      // Leading zeros are rejected: "010" is octal to some parsers and decimal to others.
      if (digits === 1 && octet === 0) return -1
      octet = octet * 10 + (c - 48)
      if (++digits > 3 || octet > 255) return -1
    } else if (c === 46 /* . */) {
      if (digits === 0 || ++dots > 3) return -1
      value = value * 256 + octet
      octet = 0; digits = 0
    } else {
      return -1
    }
  }
  if (dots !== 3 || digits === 0) return -1
  return value * 256 + octet
}

function mask32 (v: number, prefix: number): number {
  if (prefix >= 32) return v
  if (prefix <= 0) return 0
  return (v & (~0 << (32 - prefix))) >>> 0
}

function formatIpv4 (v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`
}

/** RFC 4291 §2.2 text forms, including "::" and a trailing dotted quad → 8 hextets. */
export function parseIpv6 (s: string): number[] | undefined {
  if (s.length < 2) return undefined
  const words: number[] = []
  let gap = -1
  let i = 0
  if (s.startsWith('::')) { gap = 0; i = 2; if (s.length === 2) return [0, 0, 0, 0, 0, 0, 0, 0] }
  while (i < s.length) {
    let end = s.indexOf(':', i)
    if (end === -1) end = s.length
    const part = s.slice(i, end)
    if (part.includes('.')) {
      // An embedded IPv4 tail is only valid as the last 32 bits.
      if (end !== s.length || words.length > 6) return undefined
      const v4 = parseIpv4(part)
      if (v4 === -1) return undefined
      words.push(v4 >>> 16, v4 & 0xffff)
      i = end
      break
    }
    if (part.length === 0 || part.length > 4 || !/^[0-9a-fA-F]+$/.test(part)) return undefined
    words.push(parseInt(part, 16))
    if (end === s.length) { i = end; break }
    if (s.charCodeAt(end + 1) === 58 /* : */) {
      if (gap !== -1) return undefined
      gap = words.length
      i = end + 2
      if (i === s.length) break
    } else {
      i = end + 1
      if (i === s.length) return undefined // trailing single ':'
    }
  }
  if (gap === -1) return words.length === 8 ? words : undefined
  if (words.length > 7) return undefined
  const zeros = new Array<number>(8 - words.length).fill(0)
  return [...words.slice(0, gap), ...zeros, ...words.slice(gap)]
}

function isV4Mapped (w: number[]): boolean {
  return w[0] === 0 && w[1] === 0 && w[2] === 0 && w[3] === 0 && w[4] === 0 && w[5] === 0xffff
}

function maskV6 (w: number[], prefix: number): number[] {
  const out = w.slice()
  for (let i = 0; i < 8; i++) {
    const bits = prefix - i * 16
    if (bits >= 16) continue
    out[i] = bits <= 0 ? 0 : out[i]! & ((0xffff << (16 - bits)) & 0xffff)
  }
  return out
}

/** RFC 5952 canonical text: lowercase, no leading zeros, longest zero run (≥ 2) as "::". */
function formatIpv6 (w: number[]): string {
  let bestStart = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && w[j] === 0) j++
    if (j - i > bestLen) { bestStart = i; bestLen = j - i }
    i = j
  }
  const hex = w.map(x => x.toString(16))
  if (bestStart === -1) return hex.join(':')
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`
}
