/**
 * Property tests (fast-check) for the pure building blocks under the strategies:
 * the cookie token codec, client-address normalisation, hash-key extraction and
 * murmur3. Each property is checked with `fc.check` and reported as one assertion,
 * with fast-check's shrunk counterexample in the message when it fails.
 */
import net from 'node:net'
import fc from 'fast-check'
import { createHmac } from 'node:crypto'
import t, { type Test } from 'tap'
import { murmur3, normalizeIp, type RouteRequest } from '@affinity/core'
import { compileKey, hmacSha256, ipHashOf, murmur3Bytes as coreMurmur3Bytes, queryParam, TOKEN_LENGTH, TokenCodec } from '@affinity/core/internal'

/** A new seed per run (FC_SEED=… replays one); printed so a failure can be reproduced. */
const SEED = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31)
t.comment(`fast-check seed ${SEED}`)

function holds<Ts extends [unknown, ...unknown[]]> (t: Test, name: string, prop: fc.IProperty<Ts>, numRuns = 300): void {
  const r = fc.check(prop, { numRuns, seed: SEED })
  t.ok(!r.failed, name, r.failed ? { diagnostic: true, report: fc.defaultReportMessage(r) } : {})
}

// ---------------------------------------------------------------------------
// Cookie token codec
// ---------------------------------------------------------------------------

t.test('cookie token codec', async t => {
  const A = 'property-secret-A-0123456789abcdefghijkl'
  const B = 'property-secret-B-0123456789abcdefghijkl'
  const codec = new TokenCodec([A])
  const tagArb = fc.uint8Array({ minLength: 8, maxLength: 8 }).map(b => Buffer.from(b).toString('hex'))
  const expiresArb = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffffffff }))
  const HEADER = 14
  const TAG_END = 22

  holds(t, 'random strings never throw and never verify', fc.property(
    fc.oneof(fc.string({ unit: 'binary', maxLength: 80 }), fc.string({ unit: 'grapheme', maxLength: 60 }), fc.stringMatching(/^[A-Za-z0-9_-]{51}$/)),
    s => codec.verify(s) === undefined,
  ), 1000)

  holds(t, 'random bytes as base64url never verify', fc.property(
    fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      // Right length and version byte: only the MAC stands in the way.
      fc.uint8Array({ minLength: 38, maxLength: 38 }).map(b => { b[0] = 1; return b }),
    ),
    b => codec.verify(Buffer.from(b).toString('base64url')) === undefined,
  ), 1000)

  holds(t, 'only the canonical base64url spelling of a token verifies', fc.property(tagArb, expiresArb, (tag, expires) => {
    const token = codec.issue(tag, expires)
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    const last = alphabet.indexOf(token[token.length - 1]!)
    // The last character holds 4 data bits and 2 spare bits: the 3 other spellings
    // decode to the same bytes and must be refused.
    for (let spare = 1; spare < 4; spare++) {
      const other = token.slice(0, -1) + alphabet[last ^ spare]
      if (Buffer.from(other, 'base64url').equals(Buffer.from(token, 'base64url')) && codec.verify(other) !== undefined) return false
    }
    return codec.verify(token) !== undefined
  }), 200)

  holds(t, 'issue → verify round-trips tag and expiry', fc.property(tagArb, expiresArb, (tag, expires) => {
    const token = codec.issue(tag, expires)
    const v = codec.verify(token)
    return token.length === TOKEN_LENGTH && /^[A-Za-z0-9_-]+$/.test(token) &&
      v !== undefined && v.secret === 0 && v.tag === tag && v.expires === expires
  }), 500)

  holds(t, 'two tokens for the same tag and expiry differ (random nonce, masked tag)', fc.property(tagArb, expiresArb, (tag, expires) => {
    const x = Buffer.from(codec.issue(tag, expires), 'base64url')
    const y = Buffer.from(codec.issue(tag, expires), 'base64url')
    return !x.subarray(5, HEADER).equals(y.subarray(5, HEADER)) && !x.subarray(HEADER, TAG_END).equals(y.subarray(HEADER, TAG_END))
  }), 200)

  holds(t, 'a token with any single byte changed is never honoured as issued', fc.property(
    tagArb, expiresArb, fc.integer({ min: 0, max: 37 }), fc.integer({ min: 1, max: 255 }),
    (tag, expires, index, mask) => {
      const b = Buffer.from(codec.issue(tag, expires), 'base64url')
      b[index]! ^= mask
      const v = codec.verify(b.toString('base64url'))
      if (index < HEADER || index >= TAG_END) return v === undefined // header and MAC: authenticated
      // The masked tag is authenticated by redundancy, not by the MAC (token.ts): a change
      // unmasks to another 64-bit tag, which names no upstream (p = N / 2^64).
      return v !== undefined && v.tag !== tag && v.expires === expires
    },
  ), 1000)

  holds(t, 'tokens from a different secret do not verify', fc.property(
    fc.string({ minLength: 32, maxLength: 48 }), fc.string({ minLength: 32, maxLength: 48 }), tagArb, expiresArb,
    (s1, s2, tag, expires) => {
      fc.pre(s1 !== s2)
      return new TokenCodec([s2]).verify(new TokenCodec([s1]).issue(tag, expires)) === undefined
    },
  ), 200)

  holds(t, 'rotation: a token from an older secret verifies as that secret', fc.property(tagArb, expiresArb, (tag, expires) => {
    const v = new TokenCodec([B, A]).verify(codec.issue(tag, expires))
    return v !== undefined && v.secret === 1 && v.tag === tag && v.expires === expires
  }), 200)

  t.equal(codec.tag(0, 'x'), new TokenCodec([A, B]).tag(0, 'x'), 'tags depend on the secret and id only')
  t.not(codec.tag(0, 'x'), new TokenCodec([B]).tag(0, 'x'), 'and differ between secrets')
})

// ---------------------------------------------------------------------------
// IP normalisation
// ---------------------------------------------------------------------------

const octets = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255))
const u32 = fc.integer({ min: 0, max: 0xffffffff })
const fmt4 = (v: number): string => `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`
const hextet = fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 0xf }) }, { weight: 3, arbitrary: fc.integer({ min: 0, max: 0xffff }) })
const isMapped = (w: readonly number[]): boolean => w.slice(0, 5).every(x => x === 0) && w[5] === 0xffff
const v6words = fc.array(hextet, { minLength: 8, maxLength: 8 }).filter(w => !isMapped(w))
/** Node's own canonical IPv6 text (WHATWG URL host serializer: RFC 5952 compression). */
const canonical6 = (w: readonly number[]): string => new URL(`http://[${w.map(x => x.toString(16)).join(':')}]`).hostname.slice(1, -1)
const toBig = (w: readonly number[]): bigint => w.reduce((acc, x) => (acc << 16n) | BigInt(x), 0n)
const fromBig = (v: bigint): number[] => Array.from({ length: 8 }, (_, i) => Number((v >> BigInt(16 * (7 - i))) & 0xffffn))

/** Another RFC 4291 §2.2 text form of the same address. */
interface Form { upper: boolean, pad: boolean, v4tail: boolean, run: number, len: number, zone: string | undefined, bracket: boolean }
const formArb: fc.Arbitrary<Form> = fc.record({
  upper: fc.boolean(),
  pad: fc.boolean(),
  v4tail: fc.boolean(),
  run: fc.nat(7),
  len: fc.nat(7),
  zone: fc.option(fc.stringMatching(/^[a-z0-9]{1,8}$/)),
  bracket: fc.boolean(),
})

function render (w: readonly number[], f: Form): string {
  const hex = (x: number): string => {
    let s = x.toString(16)
    if (f.pad) s = s.padStart(4, '0')
    return f.upper ? s.toUpperCase() : s
  }
  const n = f.v4tail ? 6 : 8
  const parts: string[] = w.slice(0, n).map(hex)
  // "::" over some run of zero hextets (of length ≥ 1), or none.
  const runs: Array<[number, number]> = []
  for (let i = 0; i < n;) {
    if (w[i] !== 0) { i++; continue }
    let j = i
    while (j < n && w[j] === 0) j++
    runs.push([i, j - i])
    i = j
  }
  const tail = f.v4tail ? [fmt4(((w[6]! << 16) | w[7]!) >>> 0)] : []
  let text: string
  if (runs.length === 0 || f.run >= runs.length + 1) {
    text = [...parts, ...tail].join(':')
  } else {
    const [start, runLen] = runs[f.run % runs.length]!
    const len = 1 + (f.len % runLen)
    text = `${[...parts.slice(0, start)].join(':')}::${[...parts.slice(start + len), ...tail].join(':')}`
  }
  if (f.zone !== null && f.zone !== undefined) text += `%${f.zone}`
  return f.bracket ? `[${text}]` : text
}

t.test('normalizeIp', async t => {
  holds(t, 'random IPv4 → the same canonical dotted quad', fc.property(octets, o => {
    const s = o.join('.')
    return normalizeIp(s) === s && normalizeIp(`[${s}]`) === s
  }), 500)

  holds(t, '::ffff:a.b.c.d and ::ffff:XXXX:XXXX fold to the IPv4 address', fc.property(u32, fc.integer({ min: 0, max: 32 }), (v, p) => {
    const v4 = fmt4(v)
    const hi = (v >>> 16).toString(16)
    const lo = (v & 0xffff).toString(16)
    const expected = normalizeIp(v4, p)
    return [
      `::ffff:${v4}`, `::FFFF:${v4}`, `0:0:0:0:0:ffff:${v4}`, `[::ffff:${v4}]`, `::ffff:${v4}%eth0`,
      `::ffff:${hi}:${lo}`, `::FFFF:${hi.toUpperCase()}:${lo.padStart(4, '0')}`, `0000:0000:0000:0000:0000:ffff:${hi}:${lo}`,
    ].every(s => normalizeIp(s, p) === expected) && normalizeIp(`::ffff:${v4}`) === v4
  }), 500)

  holds(t, 'any textual form of an IPv6 address normalises to Node\'s canonical form', fc.property(v6words, formArb, (w, f) => {
    const text = render(w, f)
    const bare = text.replace(/^\[|\]$/g, '')
    const masked64 = [...w.slice(0, 4), 0, 0, 0, 0]
    return net.isIPv6(bare) &&
      normalizeIp(text, 32, 128) === canonical6(w) &&
      normalizeIp(text) === canonical6(masked64)
  }), 1000)

  holds(t, 'IPv4 prefixes group exactly the addresses that share the prefix', fc.property(u32, fc.nat(31), fc.integer({ min: 0, max: 32 }), (a, bit, p) => {
    const b = (a ^ (1 << (31 - bit))) >>> 0 // differs from a in bit `bit` (0 = most significant)
    const same = normalizeIp(fmt4(a), p) === normalizeIp(fmt4(b), p)
    const maskedA = p === 0 ? 0 : (a & (~0 << (32 - p))) >>> 0
    return same === (bit >= p) && normalizeIp(fmt4(a), p) === fmt4(maskedA)
  }), 1000)

  holds(t, 'IPv6 prefixes group exactly the addresses that share the prefix', fc.property(v6words, fc.nat(127), fc.integer({ min: 0, max: 128 }), (w, bit, p) => {
    const a = toBig(w)
    const other = fromBig(a ^ (1n << BigInt(127 - bit)))
    fc.pre(!isMapped(other))
    const na = normalizeIp(canonical6(w), 32, p)
    const same = na === normalizeIp(canonical6(other), 32, p)
    const mask = p === 0 ? 0n : ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - p)) - 1n)
    const maskedW = fromBig(a & mask)
    return same === (bit >= p) && (isMapped(maskedW) || na === canonical6(maskedW))
  }), 1000)

  // Strings close to addresses (hex digits, ':', '.') find parser disagreements; Node's
  // net.isIP is the oracle for what is an address (zones and brackets handled apart).
  const nearIp = fc.oneof(
    fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF:.'), maxLength: 45 }),
    fc.string({ unit: fc.constantFrom(...'0125:.f'), maxLength: 20 }),
    fc.tuple(octets, fc.constantFrom('', '0', '.', '.1', '1', ':', ':80')).map(([o, s]) => o.join('.') + s),
    fc.tuple(v6words, formArb, fc.constantFrom('', ':', '::', ':1', '.1', '1', '0000', ':1.2.3.4')).map(([w, f, s]) => render(w, { ...f, zone: undefined, bracket: false }) + s),
  )
  // An IPv4 address may carry a port ("1.2.3.4:80", as some proxies write X-Forwarded-For).
  const withoutPort = (s: string): string => (/^[\d.]+:\d{1,5}$/.test(s) ? s.slice(0, s.indexOf(':')) : s)
  holds(t, 'near-addresses: defined exactly when Node says it is an IP (an IPv4 port aside)', fc.property(nearIp, s => {
    const r = normalizeIp(s, 32, 128)
    return (r !== undefined) === (net.isIP(withoutPort(s)) !== 0)
  }), 3000)

  holds(t, 'arbitrary strings never throw; non-addresses give undefined', fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 70 }), fc.string({ maxLength: 70 })), s => {
    const r = normalizeIp(s)
    const bare = s.startsWith('[') ? s.slice(1, s.indexOf(']') === -1 ? undefined : s.indexOf(']')) : s
    const noZone = bare.includes('%') ? bare.slice(0, bare.indexOf('%')) : bare
    return r === undefined || net.isIP(noZone) !== 0 || net.isIP(withoutPort(noZone)) !== 0
  }), 1000)

  t.equal(normalizeIp(undefined), undefined)
  t.equal(normalizeIp(''), undefined)
  t.equal(normalizeIp('010.1.1.1'), undefined, 'leading zeros are ambiguous (octal to some parsers)')
  t.equal(normalizeIp('1.2.3.4:80'), '1.2.3.4', 'a port is not part of the address')
  t.equal(normalizeIp('[2001:db8::1'), undefined, 'unclosed bracket')
  t.equal(normalizeIp('2001:DB8::1%eth0', 32, 128), '2001:db8::1')
  t.equal(normalizeIp('2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff'), '2001:db8:aaaa:bbbb::', 'IPv6 /64 by default')
  t.equal(normalizeIp('192.168.7.9', 24), '192.168.7.0')
})

// ---------------------------------------------------------------------------
// Key extraction
// ---------------------------------------------------------------------------

/** A spec-level reference: the query is between the first '?' and the fragment. */
function refQuery (url: string, name: string): string | undefined {
  const hash = url.indexOf('#')
  const beforeFragment = hash === -1 ? url : url.slice(0, hash)
  const q = beforeFragment.indexOf('?')
  if (q === -1) return undefined
  const dec = (s: string): string => {
    const plus = s.replace(/\+/g, ' ')
    try { return decodeURIComponent(plus) } catch { return plus }
  }
  for (const part of beforeFragment.slice(q + 1).split('&')) {
    if (part === '') continue // as URLSearchParams: empty sequences are skipped
    const eq = part.indexOf('=')
    if (dec(eq === -1 ? part : part.slice(0, eq)) === name) return eq === -1 ? '' : dec(part.slice(eq + 1))
  }
  return undefined
}

const req = (over: Partial<RouteRequest>): RouteRequest => ({ method: 'GET', url: '/', headers: {}, ip: undefined, cookies: {}, ...over })
const wellFormed = fc.string({ unit: 'binary', maxLength: 20 })
const encode = (s: string, plus: boolean): string => {
  const e = encodeURIComponent(s)
  return plus ? e.replace(/%20/g, '+') : e
}

t.test('key extraction', async t => {
  const urlish = fc.string({ unit: fc.constantFrom(...'?&=#%+kKa0/é '), maxLength: 30 })
  holds(t, 'arbitrary URLs and names never throw', fc.property(fc.oneof(fc.string({ unit: 'binary' }), urlish), fc.oneof(fc.string(), fc.constant('k')), (url, name) => {
    const v = queryParam(url, name)
    return v === undefined || typeof v === 'string'
  }), 2000)

  holds(t, 'agrees with the reference on structure (first "?", fragment, "&", "=")', fc.property(urlish, fc.constantFrom('k', 'K', 'a', 'k a', 'é'), (url, name) => {
    return queryParam(url, name) === refQuery(url, name)
  }), 3000)

  holds(t, 'percent-encoded names and values decode; "+" is a space', fc.property(
    fc.array(fc.tuple(wellFormed, wellFormed), { maxLength: 4 }), wellFormed.filter(s => s.length > 0), wellFormed, fc.boolean(),
    (others, name, value, plus) => {
      const before = others.filter(([n]) => n !== name).map(([n, v]) => `${encode(n, plus)}=${encode(v, plus)}`)
      const url = `/path?${[...before, `${encode(name, plus)}=${encode(value, plus)}`].join('&')}`
      return queryParam(url, name) === value
    },
  ), 1000)

  holds(t, 'the first value wins', fc.property(wellFormed, wellFormed, wellFormed, (a, b, c) => {
    return queryParam(`/?k=${encode(a, true)}&x=1&k=${encode(b, false)}&k=${encode(c, true)}`, 'k') === a
  }), 500)

  holds(t, 'invalid percent-encoding returns the raw value', fc.property(
    fc.array(fc.constantFrom('%', '%f', '%zz', '%ff', '%c3', '%c3%28', '%e2%82', '%41', 'a', 'Z', '9', '-'), { minLength: 1, maxLength: 6 }).map(p => p.join('')),
    raw => {
      let invalid = false
      try { decodeURIComponent(raw) } catch { invalid = true }
      fc.pre(invalid)
      return queryParam(`/x?a=1&k=${raw}`, 'k') === raw
    },
  ), 500)

  holds(t, '"+" decodes to a space', fc.property(fc.string({ unit: fc.constantFrom('a', 'b', '+', '1'), minLength: 1, maxLength: 12 }), v => {
    return queryParam(`/?k=${v}`, 'k') === v.replace(/\+/g, ' ')
  }), 300)

  const byQuery = compileKey({ query: 'k' })
  holds(t, 'compiled keys are never empty strings', fc.property(urlish, url => {
    const v = byQuery(req({ url }))
    return v === undefined || v.length > 0
  }), 1000)

  t.test('missing or empty keys are undefined', t => {
    for (const url of ['/', '/?', '/?x=1', '/?k=', '/?k', '/?k&x=1', '/?k=&k=2', '/#?k=1', '/?x=1#k=2']) t.equal(byQuery(req({ url })), undefined, `query ${url}`)
    t.equal(byQuery(req({ url: '/?x=1&k=v' })), 'v')
    const byHeader = compileKey({ header: 'X-Key' })
    t.equal(byHeader(req({ headers: {} })), undefined, 'header missing')
    t.equal(byHeader(req({ headers: { 'x-key': '' } })), undefined, 'header empty')
    t.equal(byHeader(req({ headers: { 'x-key': [] } })), undefined, 'header empty list')
    t.equal(byHeader(req({ headers: { 'x-key': ['first', 'second'] } })), 'first', 'header list: first value')
    const byCookie = compileKey({ cookie: 'sid' })
    t.equal(byCookie(req({ cookies: {} })), undefined, 'cookie missing')
    t.equal(byCookie(req({ cookies: { sid: '' } })), undefined, 'cookie empty')
    t.equal(byCookie(req({ cookies: { sid: 's1' } })), 's1')
    const byFn = compileKey(r => r.ip)
    t.equal(byFn(req({ ip: '' })), undefined, 'function: empty')
    t.equal(byFn(req({ ip: undefined })), undefined, 'function: undefined')
    t.equal(compileKey(() => 5 as unknown as string)(req({})), undefined, 'function: not a string')
    t.equal(byFn(req({ ip: '1.2.3.4' })), '1.2.3.4')
    t.end()
  })
})

// ---------------------------------------------------------------------------
// murmur3
// ---------------------------------------------------------------------------

/** MurmurHash3_x86_32 over bytes, written from the reference (smhasher MurmurHash3.cpp). */
function murmur3Bytes (bytes: Uint8Array, seed: number): number {
  const c1 = 0xcc9e2d51
  const c2 = 0x1b873593
  let h = seed >>> 0
  const blocks = bytes.length >>> 2
  for (let i = 0; i < blocks; i++) {
    const j = i * 4
    let k = bytes[j]! | (bytes[j + 1]! << 8) | (bytes[j + 2]! << 16) | (bytes[j + 3]! << 24)
    k = Math.imul(k, c1); k = (k << 15) | (k >>> 17); k = Math.imul(k, c2)
    h ^= k
    h = (h << 13) | (h >>> 19)
    h = (Math.imul(h, 5) + 0xe6546b64) | 0
  }
  const tail = blocks * 4
  const rest = bytes.length & 3
  let k = 0
  if (rest >= 3) k ^= bytes[tail + 2]! << 16
  if (rest >= 2) k ^= bytes[tail + 1]! << 8
  if (rest >= 1) {
    k ^= bytes[tail]!
    k = Math.imul(k, c1); k = (k << 15) | (k >>> 17); k = Math.imul(k, c2)
    h ^= k
  }
  h ^= bytes.length
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

t.test('murmur3', async t => {
  // Published MurmurHash3_x86_32 vectors (smhasher; the widely quoted table of Ian Boyd).
  // Byte vectors with bytes ≥ 0x80 have no string form (a string hashes as UTF-8), so
  // they check the byte-wise reference only.
  const byteVectors: Array<[number[], number, number]> = [
    [[0x21, 0x43, 0x65, 0x87], 0, 0xf55b516b],
    [[0x21, 0x43, 0x65, 0x87], 0x5082edee, 0x2362f9de],
    [[0xff, 0xff, 0xff, 0xff], 0, 0x76293b50],
  ]
  for (const [bytes, seed, want] of byteVectors) {
    t.equal(murmur3Bytes(Uint8Array.from(bytes), seed), want, `reference: bytes ${bytes.map(b => b.toString(16)).join(' ')} seed 0x${seed.toString(16)} → 0x${want.toString(16)}`)
  }
  const vectors: Array<[string, number, number]> = [
    ['', 0, 0],
    ['', 1, 0x514e28b7],
    ['', 0xffffffff, 0x81f16f39],
    ['\0\0\0\0', 0, 0x2362f9de],
    ['\x21\x43\x65', 0, 0x7e4a8634],
    ['\x21\x43', 0, 0xa0f7b07a],
    ['\x21', 0, 0x72661cf4],
    ['\0\0\0', 0, 0x85f0b427],
    ['\0\0', 0, 0x30f4c306],
    ['\0', 0, 0x514e28b7],
    ['aaaa', 0x9747b28c, 0x5a97808a],
    ['aaa', 0x9747b28c, 0x283e0130],
    ['aa', 0x9747b28c, 0x5d211726],
    ['a', 0x9747b28c, 0x7fa09ea6],
    ['abcd', 0x9747b28c, 0xf0478627],
    ['abc', 0x9747b28c, 0xc84a62dd],
    ['ab', 0x9747b28c, 0x74875592],
    ['Hello, world!', 0x9747b28c, 0x24884cba],
    ['ππππππππ', 0x9747b28c, 0xd58063c1],
    ['The quick brown fox jumps over the lazy dog', 0x9747b28c, 0x2fa826cd],
    ['test', 0, 0xba6bd213],
    ['Hello, world!', 0, 0xc0363e43],
    ['The quick brown fox jumps over the lazy dog', 0, 0x2e4ff723],
  ]
  for (const [s, seed, want] of vectors) {
    const label = `${JSON.stringify(s)} seed 0x${seed.toString(16)} → 0x${want.toString(16)}`
    t.equal(murmur3(s, seed), want, label)
    t.equal(murmur3Bytes(new TextEncoder().encode(s), seed), want, `reference: ${label}`)
  }
  t.equal(murmur3('abc'), murmur3('abc', 0), 'seed 0 by default')

  // Strings of arbitrary UTF-16 code units: lone and paired surrogates included.
  const codeUnits = fc.array(fc.oneof(
    fc.integer({ min: 0, max: 0x7f }), fc.integer({ min: 0x80, max: 0x7ff }), fc.integer({ min: 0, max: 0xffff }),
    fc.integer({ min: 0xd800, max: 0xdbff }), fc.integer({ min: 0xdc00, max: 0xdfff }),
  ), { maxLength: 40 }).map(units => String.fromCharCode(...units))
  const seed = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffffffff }))
  holds(t, 'hashing a string equals hashing its UTF-8 bytes (TextEncoder: lone surrogates → U+FFFD)', fc.property(
    fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 20 }), codeUnits), seed,
    (s, sd) => murmur3(s, sd) === murmur3Bytes(new TextEncoder().encode(s), sd),
  ), 2000)
  holds(t, 'results are unsigned 32-bit integers', fc.property(fc.string(), seed, (s, sd) => {
    const h = murmur3(s, sd)
    return Number.isInteger(h) && h >= 0 && h <= 0xffffffff
  }), 300)
})

t.test('the token codec\'s PRF is HMAC-SHA256 (cookie/token.ts hmacSha256)', async t => {
  const mac = (key: Uint8Array, data: Uint8Array): string => hmacSha256(key, data).toString('hex')
  // RFC 4231 §4.2–4.8 (test case 5, a truncated output, does not apply).
  const aa131 = Buffer.alloc(131, 0xaa)
  const vectors: Array<[Buffer, Buffer, string]> = [
    [Buffer.alloc(20, 0x0b), Buffer.from('Hi There'), 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7'],
    [Buffer.from('Jefe'), Buffer.from('what do ya want for nothing?'), '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'],
    [Buffer.alloc(20, 0xaa), Buffer.alloc(50, 0xdd), '773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe'],
    [Buffer.from(Array.from({ length: 25 }, (_, i) => i + 1)), Buffer.alloc(50, 0xcd), '82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b'],
    [aa131, Buffer.from('Test Using Larger Than Block-Size Key - Hash Key First'), '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54'],
    [aa131, Buffer.from('This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.'), '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2'],
  ]
  for (const [i, [key, data, want]] of vectors.entries()) t.equal(mac(key, data), want, `RFC 4231 test case ${i < 4 ? i + 1 : i + 2}`)
})

t.test('the PRF agrees with node:crypto createHmac on any key and message, call after call', async t => {
  holds(t, 'hmacSha256(key, m) = createHmac(key).update(m)', fc.property(
    fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ maxLength: 300 }),
    (key, data) => hmacSha256(key, data).equals(createHmac('sha256', key).update(data).digest()),
  ), 500)
  // The codec reuses one instance per secret: a second verification must not see the first's bytes.
  const codec = new TokenCodec(['a-secret-of-thirty-two-characters!!'])
  holds(t, 'tokens issued one after another verify one after another', fc.property(
    fc.array(fc.tuple(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 2 ** 31 })), { minLength: 1, maxLength: 20 }),
    (items) => {
      const tokens = items.map(([tag, expires]) => [tag.toString(16).padStart(16, '0'), expires, codec.issue(tag.toString(16).padStart(16, '0'), expires)] as const)
      return tokens.every(([tag, expires, token]) => { const v = codec.verify(token); return v !== undefined && v.tag === tag && v.expires === expires })
    },
  ), 200)
})

t.test('ipHashOf: murmur3 of the masked address bytes, agreeing with normalizeIp', async t => {
  holds(t, 'two spellings of one address hash alike, and alike iff their normalised forms match', fc.property(
    fc.ipV6(), fc.ipV6(), fc.integer({ min: 0, max: 128 }),
    (a, b, p) => (ipHashOf(a, 32, p) === ipHashOf(b, 32, p)) === (normalizeIp(a, 32, p) === normalizeIp(b, 32, p)) &&
      ipHashOf(a.toUpperCase(), 32, p) === ipHashOf(a, 32, p),
  ), 500)
  holds(t, 'IPv4 and its IPv4-mapped IPv6 form hash alike', fc.property(fc.ipV4(), fc.integer({ min: 0, max: 32 }),
    (ip, p) => ipHashOf(ip, p) === ipHashOf(`::ffff:${ip}`, p) && ipHashOf(ip, p) === ipHashOf(`[::FFFF:${ip}]`, p)), 500)
  holds(t, 'anything else is -1, never a throw', fc.property(fc.string({ maxLength: 80 }),
    s => (normalizeIp(s) === undefined) === (ipHashOf(s) === -1)), 1000)
  t.equal(ipHashOf('1.2.3.4'), coreMurmur3Bytes(Buffer.from([1, 2, 3, 4]), 4), 'defined as murmur3 over network-order bytes')
})

t.test('murmur3Bytes (core) equals the byte-wise reference', async t => {
  holds(t, 'any bytes, any seed', fc.property(fc.uint8Array({ maxLength: 40 }), fc.integer({ min: 0, max: 0xffffffff }),
    (b, seed) => coreMurmur3Bytes(b, b.length, seed) === murmur3Bytes(b, seed)), 500)
})

t.test('normalizeIp / ipHashOf: an address with a port (as some proxies write X-Forwarded-For)', async t => {
  holds(t, 'a.b.c.d:port is a.b.c.d, [v6]:port is v6', fc.property(fc.ipV4(), fc.ipV6(), fc.integer({ min: 0, max: 65535 }),
    (v4, v6, port) => normalizeIp(`${v4}:${port}`) === normalizeIp(v4) && ipHashOf(`${v4}:${port}`) === ipHashOf(v4) &&
      normalizeIp(`[${v6}]:${port}`) === normalizeIp(v6) && ipHashOf(`[${v6}]:${port}`) === ipHashOf(v6)), 300)
  for (const bad of ['1.2.3.4:', '1.2.3.4:123456', '1.2.3.4:8o', '1.2.3.4:80:80', ':80']) t.equal(normalizeIp(bad), undefined, `${bad} is not an address`)
})
