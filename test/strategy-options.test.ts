/**
 * Strategy factories: invalid options throw an AffinityError with a stable code (the properties every strategy shares are in
 * strategies.conformance.test.ts; helpers in test/strategies/conformance.ts).
 */
import t from 'tap'
import { AffinityError, Balancer, consistentHash, createBalancer, ipHash, memoryStickStore, roundRobin, stickyCookie, stickyIp } from '@affinity/core'
import { SECRET } from './strategies/fixtures.js'

t.test('invalid options throw an AffinityError with a stable code', async t => {
  const codeOf = (fn: () => unknown): string => {
    let made: unknown
    try {
      made = fn()
    } catch (err) {
      return err instanceof AffinityError ? err.code : `not an AffinityError: ${String(err)}`
    }
    if (made instanceof Balancer) void made.close()
    return 'no error'
  }
  const bad = (v: unknown): never => v as never
  const cases: Array<[string, () => unknown, string]> = [
    ['stickyCookie short secret', () => stickyCookie({ secret: 'short' }), 'AFFINITY_ERR_SECRET_TOO_SHORT'],
    ['stickyCookie 31-char secret', () => stickyCookie({ secret: 'x'.repeat(31) }), 'AFFINITY_ERR_SECRET_TOO_SHORT'],
    ['stickyCookie short second secret', () => stickyCookie({ secret: [SECRET, 'short'] }), 'AFFINITY_ERR_SECRET_TOO_SHORT'],
    ['stickyCookie no secret', () => stickyCookie(bad({})), 'AFFINITY_ERR_SECRET_REQUIRED'],
    ['stickyCookie no options', () => stickyCookie(bad(undefined)), 'AFFINITY_ERR_SECRET_REQUIRED'],
    ['stickyCookie empty secret list', () => stickyCookie({ secret: [] }), 'AFFINITY_ERR_SECRET_REQUIRED'],
    ['stickyCookie non-string secret', () => stickyCookie({ secret: bad(12345) }), 'AFFINITY_ERR_SECRET_REQUIRED'],
    ['stickyCookie maxAge 0', () => stickyCookie({ secret: SECRET, maxAge: 0 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['stickyCookie maxAge 1.5', () => stickyCookie({ secret: SECRET, maxAge: 1.5 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['stickyCookie bad name', () => stickyCookie({ secret: SECRET, name: 'a b' }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['stickyCookie bad path', () => stickyCookie({ secret: SECRET, path: 'app' }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['stickyCookie SameSite=None without Secure', () => stickyCookie({ secret: SECRET, sameSite: 'none', secure: false }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash vnodes 0', () => consistentHash({ key: { header: 'x' }, vnodes: 0 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash vnodes 1.5', () => consistentHash({ key: { header: 'x' }, vnodes: 1.5 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash vnodes 100001', () => consistentHash({ key: { header: 'x' }, vnodes: 100_001 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash balanceFactor 1', () => consistentHash({ key: { header: 'x' }, balanceFactor: 1 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash balanceFactor 0.5', () => consistentHash({ key: { header: 'x' }, balanceFactor: 0.5 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash balanceFactor NaN', () => consistentHash({ key: { header: 'x' }, balanceFactor: NaN }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash balanceFactor Infinity', () => consistentHash({ key: { header: 'x' }, balanceFactor: Infinity }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash tableSize 65536', () => consistentHash({ key: { header: 'x' }, algorithm: 'maglev', tableSize: 65536 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash tableSize 2', () => consistentHash({ key: { header: 'x' }, algorithm: 'maglev', tableSize: 2 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash algorithm', () => consistentHash({ key: { header: 'x' }, algorithm: bad('modulo') }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash empty key', () => consistentHash({ key: bad({}) }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash empty header name', () => consistentHash({ key: { header: '' } }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['consistentHash no options', () => consistentHash(bad(undefined)), 'AFFINITY_ERR_INVALID_OPTION'],
    ['ipHash ipv4Prefix 33', () => ipHash({ ipv4Prefix: 33 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['ipHash ipv6Prefix -1', () => ipHash({ ipv6Prefix: -1 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['stickyIp ttlMs 0', () => stickyIp({ ttlMs: 0 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['stickyIp bad store', () => stickyIp({ store: bad({}) }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['memoryStickStore maxEntries 0', () => memoryStickStore({ maxEntries: 0 }), 'AFFINITY_ERR_INVALID_OPTION'],
    ['createBalancer no upstreams', () => createBalancer({ upstreams: [] }), 'AFFINITY_ERR_NO_UPSTREAMS'],
    ['createBalancer no options', () => createBalancer(bad(undefined)), 'AFFINITY_ERR_NO_UPSTREAMS'],
    ['createBalancer bad URL', () => createBalancer({ upstreams: ['not a url'] }), 'AFFINITY_ERR_INVALID_URL'],
    ['createBalancer ftp URL', () => createBalancer({ upstreams: ['ftp://127.0.0.1:21'] }), 'AFFINITY_ERR_INVALID_URL'],
    ['createBalancer URL with credentials', () => createBalancer({ upstreams: ['http://u:p@127.0.0.1:1'] }), 'AFFINITY_ERR_INVALID_URL'],
    ['createBalancer duplicate URL', () => createBalancer({ upstreams: ['http://127.0.0.1:1', 'http://127.0.0.1:1'] }), 'AFFINITY_ERR_DUPLICATE_ID'],
    ['createBalancer duplicate id', () => createBalancer({ upstreams: [{ url: 'http://127.0.0.1:1', id: 'x' }, { url: 'http://127.0.0.1:2', id: 'x' }] }), 'AFFINITY_ERR_DUPLICATE_ID'],
    ['createBalancer weight 0', () => createBalancer({ upstreams: [{ url: 'http://127.0.0.1:1', weight: 0 }] }), 'AFFINITY_ERR_INVALID_WEIGHT'],
    ['createBalancer weight -1', () => createBalancer({ upstreams: [{ url: 'http://127.0.0.1:1', weight: -1 }] }), 'AFFINITY_ERR_INVALID_WEIGHT'],
    ['createBalancer weight NaN', () => createBalancer({ upstreams: [{ url: 'http://127.0.0.1:1', weight: NaN }] }), 'AFFINITY_ERR_INVALID_WEIGHT'],
    ['createBalancer weight Infinity', () => createBalancer({ upstreams: [{ url: 'http://127.0.0.1:1', weight: Infinity }] }), 'AFFINITY_ERR_INVALID_WEIGHT'],
  ]
  for (const [label, fn, code] of cases) t.equal(codeOf(fn), code, label)

  const s = roundRobin()
  const b = createBalancer({ upstreams: ['http://127.0.0.1:1'], strategy: s })
  t.teardown(() => b.close())
  t.equal(codeOf(() => createBalancer({ upstreams: ['http://127.0.0.1:2'], strategy: s })), 'AFFINITY_ERR_STRATEGY_IN_USE', 'one strategy per balancer')
  t.equal(codeOf(() => b.add('http://127.0.0.1:1')), 'AFFINITY_ERR_DUPLICATE_ID', 'add: duplicate')
  t.equal(codeOf(() => b.add({ url: 'http://127.0.0.1:3', weight: 0 })), 'AFFINITY_ERR_INVALID_WEIGHT', 'add: bad weight')
  t.equal(codeOf(() => b.remove('nope')), 'AFFINITY_ERR_UNKNOWN_UPSTREAM', 'remove: unknown id')
  const err = new AffinityError('AFFINITY_ERR_SECRET_TOO_SHORT', 0, 5)
  t.ok(err instanceof Error && err.name === 'AffinityError' && /5 characters/.test(err.message), 'a readable message')
})
