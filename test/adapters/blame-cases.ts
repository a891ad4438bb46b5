/**
 * What a client can send, as fast-check arbitraries, for the no-blame property
 * (blame.ts): HTTP/1.0 and 1.1 requests on a raw socket (pipelined, cut at any
 * byte) and HTTP/2 streams (several per connection, reset after the head or
 * after any number of body bytes, or the connection dropped).
 */
import fc from 'fast-check'

/** Upstream routes (test/helpers/upstreams.ts): all well behaved. */
export const ROUTES = ['echo', 'early-close', 'early-destroy', 'sse', 'trailers', 'download'] as const
export type Route = typeof ROUTES[number]

/** Who the client claims to be: nobody, a forged balancer cookie, or a bystander's own cookie. */
export type CookieChoice = { kind: 'none' } | { kind: 'garbage', value: string } | { kind: 'bystander', index: number }

export interface Body { framing: 'none' | 'length' | 'chunked', size: number, chunk: number }

export interface ClientRequest {
  method: string
  route: Route
  /** Bytes asked of /download. */
  download: number
  headers: Array<[string, string]>
  cookie: CookieChoice
  body: Body
}

export interface H1Case {
  version: '1.0' | '1.1'
  /** Sent back to back on one connection (pipelined). */
  requests: ClientRequest[]
  /** Close the connection after `at` (0–1) of the bytes, `delayMs` later. */
  abort?: { at: number, delayMs: number }
}

export type H2Abort = { kind: 'rst-after-head' } | { kind: 'rst', at: number } | { kind: 'session', at: number }
export interface H2Case {
  /** Streams opened together on one connection. */
  requests: Array<ClientRequest & { abort?: H2Abort }>
}

const charOf = (codes: fc.Arbitrary<number>): fc.Arbitrary<string> => codes.map(c => String.fromCharCode(c))
/** What Node accepts in a header value: HTAB, visible ASCII and space, obs-text (0x80–0xff). */
const valueChar = charOf(fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) }, { weight: 3, arbitrary: fc.integer({ min: 0x80, max: 0xff }) }, { weight: 1, arbitrary: fc.constant(9) }))
/**
 * And, in a few values, control characters: Node's HTTP/1 parser refuses them with 400
 * (CR and LF are left out there: they would frame another header line). Over HTTP/2,
 * node:http2 sends CR and LF in a value; Node's HTTP/2 server drops such a field (the
 * request reaches the app without it) and resets the stream for a NUL.
 */
const controls = fc.oneof(charOf(fc.integer({ min: 0, max: 0x1f })), fc.constant('\x7f'))
const value = (h1: boolean): fc.Arbitrary<string> => fc.oneof(
  { weight: 15, arbitrary: fc.string({ unit: valueChar, maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: h1 ? fc.oneof(valueChar, controls.filter(c => c !== '\r' && c !== '\n')) : fc.oneof(valueChar, fc.constantFrom('\r', '\n', '\r\n'), { weight: 1, arbitrary: controls }), minLength: 1, maxLength: 12 }) },
)
const TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
const token = (max: number): fc.Arbitrary<string> => fc.string({ unit: fc.constantFrom(...TCHAR), minLength: 1, maxLength: max })

/** Framing and routing are the case's to choose, not a header's. */
const RESERVED = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'expect', 'upgrade', 'cookie'])
const PSEUDO = fc.constantFrom(':method', ':path', ':authority', ':scheme', ':status', ':protocol', ':', ':x')
const TRICKY = fc.constantFrom('x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'forwarded', 'via', 'te', 'trailer', 'keep-alive',
  'proxy-connection', 'proxy-authorization', 'http2-settings', 'x-http-method-override', 'transfer_encoding', 'content_length', 'x_forwarded_for',
  '__proto__', 'constructor', 'set-cookie', 'authorization', 'range', 'if-none-match', 'accept-encoding', 'max-forwards', 'early-data')

/**
 * Header names: tokens, names with '_', pseudo-header-like names (Node's HTTP/1
 * parser refuses ':' in a name with 400; node:http2 refuses unknown pseudo-headers),
 * fields with a meaning for proxies, and (HTTP/1 only) names with bytes 0x80–0xff,
 * which Node refuses with 400.
 */
function headerName (h1: boolean): fc.Arbitrary<string> {
  const arbs: Array<fc.WeightedArbitrary<string>> = [
    { weight: 12, arbitrary: token(16) },
    { weight: 4, arbitrary: fc.tuple(token(8), token(8)).map(([a, b]) => `${a}_${b}`) },
    { weight: 3, arbitrary: TRICKY },
    // Refused by the client library or Node's parser, so rarer: one of them spoils a whole case.
    { weight: 1, arbitrary: PSEUDO },
  ]
  if (h1) arbs.push({ weight: 1, arbitrary: fc.string({ unit: charOf(fc.integer({ min: 0x80, max: 0xff })), minLength: 1, maxLength: 6 }) })
  return fc.oneof(...arbs).filter(n => !RESERVED.has(n.toLowerCase()))
}

const headers = (h1: boolean): fc.Arbitrary<Array<[string, string]>> =>
  fc.array(fc.tuple(headerName(h1), value(h1)), { maxLength: 5 })

/** Standard methods and odd tokens (Node's HTTP/1 parser refuses methods it does not know with 400). */
const method = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS') },
  { weight: 2, arbitrary: fc.constantFrom('TRACE', 'QUERY', 'PROPFIND', 'MKCOL', 'REPORT', 'PURGE', 'SEARCH', 'M-SEARCH', 'CONNECT') },
  { weight: 1, arbitrary: fc.oneof(token(10), fc.constantFrom('get', 'FOO', 'G ET', 'GET\t')) },
)

/** Body sizes: mostly small, some medium, a few past a megabyte (early answers must cope). */
const size = fc.oneof(
  { weight: 5, arbitrary: fc.integer({ min: 0, max: 2000 }) },
  { weight: 3, arbitrary: fc.integer({ min: 2001, max: 100_000 }) },
  { weight: 1, arbitrary: fc.integer({ min: 100_001, max: 1_500_000 }) },
)
const body: fc.Arbitrary<Body> = fc.record({
  framing: fc.constantFrom('none', 'length', 'chunked'),
  size,
  chunk: fc.integer({ min: 1, max: 256 * 1024 }),
}).map(b => (b.framing === 'none' ? { ...b, size: 0 } : b))

const cookie: fc.Arbitrary<CookieChoice> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 1, arbitrary: fc.string({ unit: valueChar.filter(c => c !== ';' && c !== ','), maxLength: 60 }).map(value => ({ kind: 'garbage' as const, value })) },
  { weight: 2, arbitrary: fc.nat({ max: 99 }).map(index => ({ kind: 'bystander' as const, index })) },
)

const request = (h1: boolean): fc.Arbitrary<ClientRequest> => fc.record({
  method,
  // Downloads and slow streams weigh more: a large answer queued behind a slow one on
  // a pipelined connection is where the order of events matters most.
  route: fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom<Route>('echo', 'early-close', 'early-destroy', 'trailers') },
    { weight: 1, arbitrary: fc.constant<Route>('sse') },
    { weight: 1, arbitrary: fc.constant<Route>('download') },
  ),
  download: fc.integer({ min: 0, max: 256 * 1024 }),
  headers: headers(h1),
  cookie,
  body,
})

/** Where a cut falls: anywhere, with weight on the very end (everything sent, then gone). */
const cutAt = fc.oneof({ weight: 3, arbitrary: fc.double({ min: 0, max: 1, noNaN: true }) }, { weight: 2, arbitrary: fc.constant(1) })

export const h1Case: fc.Arbitrary<H1Case> = fc.record({
  version: fc.constantFrom('1.0', '1.1'),
  requests: fc.array(request(true), { minLength: 1, maxLength: 3 }),
  abort: fc.option(fc.record({ at: cutAt, delayMs: fc.integer({ min: 0, max: 20 }) }), { nil: undefined, freq: 2 }),
}, { requiredKeys: ['version', 'requests'] })

const h2Abort: fc.Arbitrary<H2Abort> = fc.oneof(
  fc.constant({ kind: 'rst-after-head' as const }),
  cutAt.map(at => ({ kind: 'rst' as const, at })),
  cutAt.map(at => ({ kind: 'session' as const, at })),
)

export const h2Case: fc.Arbitrary<H2Case> = fc.record({
  requests: fc.array(fc.tuple(request(false), fc.option(h2Abort, { nil: undefined, freq: 2 })).map(([r, abort]) => (abort === undefined ? r : { ...r, abort })), { minLength: 1, maxLength: 3 }),
})

/** The request-target for `r`, marked with `tok` so the upstream's records can be matched. */
export function targetOf (r: ClientRequest, tok: string): string {
  const q = r.route === 'download' ? `&bytes=${r.download}` : r.route === 'sse' ? '&events=3&gap=5' : ''
  return `/api/${r.route}?t=${tok}${q}`
}

/** One HTTP/1.x request, framed as the case says (the last of a pipeline asks to close). */
export function h1Bytes (c: H1Case, r: ClientRequest, tok: string, last: boolean, cookieLine: string | undefined): Buffer {
  let head = `${r.method} ${targetOf(r, tok)} HTTP/${c.version}\r\nHost: x\r\n`
  for (const [n, v] of r.headers) head += `${n}: ${v}\r\n`
  if (cookieLine !== undefined) head += `Cookie: ${cookieLine}\r\n`
  if (last) head += 'Connection: close\r\n'
  else if (c.version === '1.0') head += 'Connection: keep-alive\r\n'
  const data = Buffer.alloc(r.body.size, 'b')
  if (r.body.framing === 'length') return Buffer.concat([Buffer.from(`${head}Content-Length: ${data.length}\r\n\r\n`, 'latin1'), data])
  if (r.body.framing === 'none') return Buffer.from(`${head}\r\n`, 'latin1')
  const parts: Buffer[] = [Buffer.from(`${head}Transfer-Encoding: chunked\r\n\r\n`, 'latin1')]
  for (let off = 0; off < data.length; off += r.body.chunk) {
    const piece = data.subarray(off, off + r.body.chunk)
    parts.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n'))
  }
  parts.push(Buffer.from('0\r\n\r\n'))
  return Buffer.concat(parts)
}
