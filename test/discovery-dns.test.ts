/**
 * dnsDiscovery over A/AAAA records against a real dnsmasq (test/helpers/dnsmasq.ts),
 * upstreams on 127.0.0.2, 127.0.0.3… on one port, as a headless service looks.
 * Every wait is on an event: an update or error from the source, a line in
 * dnsmasq's log (its hosts file re-read, a query received).
 *
 * Without dnsmasq the file has nothing to run, unless AFFINITY_REQUIRE_DNSMASQ=1
 * (.ci/run) makes that a failure.
 */
import t, { type Test } from 'tap'
import { dnsDiscovery, type DnsDiscoveryOptions } from '@affinity/core'
import { lines, subscribe } from './helpers/discovery.js'
import { startDnsmasq, withDnsmasq, type Dnsmasq } from './helpers/dnsmasq.js'
import { request } from './helpers/http.js'
import { startHeadlessFleet, type TestUpstream } from './helpers/upstreams.js'

const NAME = 'shop.svc.test'

/** A source on `dns` re-resolving every 30 ms, each attempt waiting 100 ms. */
function source (dns: Dnsmasq, opts: Partial<DnsDiscoveryOptions> = {}): ReturnType<typeof dnsDiscovery> {
  return dnsDiscovery({ name: NAME, port: opts.srv === undefined ? 8080 : undefined, servers: [dns.server], intervalMs: 30, timeoutMs: 100, ...opts })
}

async function fleet (t: Test, n: number): Promise<TestUpstream[]> {
  const ups = await startHeadlessFleet(n)
  t.teardown(() => Promise.all(ups.map(u => u.close())))
  return ups
}

const hosts = (name: string, addresses: string[]): Array<[string, string]> => addresses.map(a => [a, name])
const member = (address: string, port: number): string => `${address}:${port} http://${address}:${port} 1`

withDnsmasq(t, bin => {
  t.test('A records: one upstream per address, id address:port, in address order; the URLs reach the upstreams', async t => {
    const ups = await fleet(t, 3)
    const port = ups[0]!.port
    // Listed out of order: the source sorts, so instances agree whatever DNS rotates.
    const dns = await startDnsmasq(t, bin, { hosts: hosts(NAME, ['127.0.0.4', '127.0.0.2', '127.0.0.3']) })
    const sub = subscribe(t, source(dns, { port }))
    const list = await sub.update(0)
    t.same(lines(list), ['127.0.0.2', '127.0.0.3', '127.0.0.4'].map(a => member(a, port)))
    for (const m of list) {
      const res = await request(`${m.url}/`)
      t.equal(res.json().name, m.id!.split(':')[0], `${m.url} is served by the upstream at that address`)
    }
    t.equal(sub.errors.length, 0)
  })

  t.test('address order is numeric, IPv4 before IPv6; AAAA ids and URLs are [v6]:port; https', async t => {
    // Resolution only: these addresses are not all listened on (only ::1 is IPv6
    // loopback, and IPv6 may be off on a CI machine), so no request is made here.
    const dns = await startDnsmasq(t, bin, {
      hosts: hosts(NAME, ['2001:db8::10', '127.0.0.10', '::1', '2001:db8::9', '10.0.0.1', '127.0.0.9', '::ffff:192.0.2.1']),
    })
    const sub = subscribe(t, source(dns, { port: 8443, protocol: 'https' }))
    t.same(lines(await sub.update(0)), [
      '10.0.0.1:8443 https://10.0.0.1:8443 1',
      '127.0.0.9:8443 https://127.0.0.9:8443 1',
      '127.0.0.10:8443 https://127.0.0.10:8443 1',
      '[::1]:8443 https://[::1]:8443 1',
      '[::ffff:192.0.2.1]:8443 https://[::ffff:192.0.2.1]:8443 1',
      '[2001:db8::9]:8443 https://[2001:db8::9]:8443 1',
      '[2001:db8::10]:8443 https://[2001:db8::10]:8443 1',
    ])
  })

  t.test('a member added, then one removed (hosts file + SIGHUP): each update is the whole list', async t => {
    const ups = await fleet(t, 4)
    const port = ups[0]!.port
    const dns = await startDnsmasq(t, bin, { hosts: hosts(NAME, ['127.0.0.2', '127.0.0.3', '127.0.0.4']) })
    const sub = subscribe(t, source(dns, { port }))
    await sub.update(0)

    await dns.setHosts(hosts(NAME, ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5']))
    const added = await sub.update(1)
    t.same(lines(added), ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'].map(a => member(a, port)), 'added: all four')
    t.equal((await request(`${added[3]!.url}/`)).json().name, '127.0.0.5', 'the new member answers')

    await dns.setHosts(hosts(NAME, ['127.0.0.2', '127.0.0.4', '127.0.0.5']))
    t.same(lines(await sub.update(2)), ['127.0.0.2', '127.0.0.4', '127.0.0.5'].map(a => member(a, port)), 'removed: the three left')
    t.equal(sub.errors.length, 0)
  })

  t.test('an unchanged answer emits nothing', async t => {
    const dns = await startDnsmasq(t, bin, { hosts: hosts(NAME, ['127.0.0.2', '127.0.0.3']) })
    const sub = subscribe(t, source(dns))
    await sub.update(0)
    // Same records, other order, re-read: three more rounds (the third has begun, so
    // the two before it have ended) bring no update.
    await dns.setHosts(hosts(NAME, ['127.0.0.3', '127.0.0.2']))
    await dns.waitForQueries('A', NAME, dns.queries('A', NAME) + 3)
    t.equal(sub.updates.length, 1)
    t.equal(sub.errors.length, 0)
  })

  t.test('DNS server paused: the lookup times out, is reported, nothing is emitted; then it is followed again', async t => {
    const dns = await startDnsmasq(t, bin, { hosts: hosts(NAME, ['127.0.0.2', '127.0.0.3']) })
    const sub = subscribe(t, source(dns))
    const before = await sub.update(0)
    dns.pause()
    const err = await sub.error(0)
    t.equal(err.code, 'AFFINITY_ERR_DNS_FAILED')
    t.equal(err.cause?.code, 'ETIMEOUT')
    t.match(err.message, /the A lookup of shop\.svc\.test failed \(ETIMEOUT\); the membership is left as it was/)
    await sub.error(1)
    t.equal(sub.updates.length, 1, 'no list while DNS is silent: the last one stands')
    dns.resume()
    await dns.setHosts(hosts(NAME, ['127.0.0.2', '127.0.0.3', '127.0.0.6']))
    t.same(lines(await sub.update(1)), [...lines(before), member('127.0.0.6', 8080)], 'followed again once it answers')
  })

  t.test('DNS server killed: queries are refused, reported, nothing is emitted; a restarted server is followed', async t => {
    const dns = await startDnsmasq(t, bin, { hosts: hosts(NAME, ['127.0.0.2', '127.0.0.3']) })
    const sub = subscribe(t, source(dns))
    await sub.update(0)
    await dns.kill()
    const err = await sub.error(0)
    t.equal(err.code, 'AFFINITY_ERR_DNS_FAILED')
    t.equal(err.cause?.code, 'ECONNREFUSED')
    await sub.error(2)
    t.equal(sub.updates.length, 1, 'the last list stands')
    await dns.restart({ hosts: hosts(NAME, ['127.0.0.3', '127.0.0.7']) })
    t.same(lines(await sub.update(1)), [member('127.0.0.3', 8080), member('127.0.0.7', 8080)])
  })

  t.test('SERVFAIL: reported, nothing is emitted, the last list stands; a name that always fails never emits', async t => {
    const name = 'shop.fail.test'
    // Both families locally, or the missing one would be forwarded and fail too.
    const dns = await startDnsmasq(t, bin, { servfail: true, hosts: hosts(name, ['127.0.0.2', '::1']) })
    const sub = subscribe(t, source(dns, { name }))
    t.same(lines(await sub.update(0)), [member('127.0.0.2', 8080), '[::1]:8080 http://[::1]:8080 1'])
    await dns.setHosts([])
    const err = await sub.error(0)
    t.equal(err.code, 'AFFINITY_ERR_DNS_FAILED')
    t.equal(err.cause?.code, 'ESERVFAIL')
    await sub.error(1)
    t.equal(sub.updates.length, 1, 'the last list stands')
    await dns.setHosts(hosts(name, ['127.0.0.2', '127.0.0.3', '::1']))
    t.equal((await sub.update(1)).length, 3, 'followed again once it answers')

    const never = subscribe(t, source(dns, { name: 'gone.fail.test' }))
    t.equal((await never.error(1)).cause?.code, 'ESERVFAIL')
    t.equal(never.updates.length, 0)
  })

  t.test('NXDOMAIN and NODATA: reported as empty, nothing is emitted, the last list stands', async t => {
    const dns = await startDnsmasq(t, bin, { hosts: hosts(NAME, ['127.0.0.2']), txt: ['txt-only.svc.test'] })
    const sub = subscribe(t, source(dns))
    await sub.update(0)
    await dns.setHosts([]) // the name is gone: NXDOMAIN for A and AAAA
    const err = await sub.error(0)
    t.equal(err.code, 'AFFINITY_ERR_DNS_EMPTY')
    t.equal(err.message, 'DNS discovery: shop.svc.test has no A or AAAA records (A: ENOTFOUND, AAAA: ENOTFOUND); the membership is left as it was')
    await sub.error(1)
    t.equal(sub.updates.length, 1, 'never an empty list')

    const nodata = subscribe(t, source(dns, { name: 'txt-only.svc.test' }))
    const empty = await nodata.error(0)
    t.equal(empty.code, 'AFFINITY_ERR_DNS_EMPTY')
    t.match(empty.message, /\(A: ENODATA, AAAA: ENODATA\)/, 'NOERROR with no records')
    t.equal(nodata.updates.length, 0)
  })

  t.test('unsubscribing stops re-resolution and every callback', async t => {
    const dns = await startDnsmasq(t, bin, { hosts: [['127.0.0.2', 'a.svc.test'], ['127.0.0.3', 'b.svc.test']] })
    const a = subscribe(t, source(dns, { name: 'a.svc.test' }))
    const b = subscribe(t, source(dns, { name: 'b.svc.test' }))
    await Promise.all([a.update(0), b.update(0)])
    a.stop()
    const asked = dns.queries('A', 'a.svc.test')
    // Three more rounds of `b`, on the same interval: `a` would have asked again.
    await dns.waitForQueries('A', 'b.svc.test', dns.queries('A', 'b.svc.test') + 3)
    t.ok(dns.queries('A', 'a.svc.test') <= asked + 1, `no new lookups after unsubscribe (${asked} before, at most one already on its way)`)
    t.same(a.late, [], 'no update or error after unsubscribe')
  })
})
