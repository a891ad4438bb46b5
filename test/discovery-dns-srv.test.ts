/**
 * dnsDiscovery over SRV records against a real dnsmasq (`--srv-host`, read at start:
 * a change is a restart on the same port), and two processes on one DNS.
 *
 * Without dnsmasq the file has nothing to run, unless AFFINITY_REQUIRE_DNSMASQ=1
 * (.ci/run) makes that a failure.
 */
import { fork } from 'node:child_process'
import { once } from 'node:events'
import t, { type Test } from 'tap'
import { dnsDiscovery, type DnsDiscoveryOptions, type UpstreamOptions } from '@affinity/core'
import { lines, subscribe } from './helpers/discovery.js'
import { startDnsmasq, withDnsmasq, type Dnsmasq, type SrvRecord } from './helpers/dnsmasq.js'
import { request } from './helpers/http.js'
import { startHeadlessFleet, type TestUpstream } from './helpers/upstreams.js'

const SRV = '_http._tcp.shop.svc.test'

function source (dns: Dnsmasq, opts: Partial<DnsDiscoveryOptions> = {}): ReturnType<typeof dnsDiscovery> {
  return dnsDiscovery({ srv: SRV, servers: [dns.server], intervalMs: 30, timeoutMs: 100, ...opts })
}

async function fleet (t: Test, n: number): Promise<TestUpstream[]> {
  const ups = await startHeadlessFleet(n)
  t.teardown(() => Promise.all(ups.map(u => u.close())))
  return ups
}

const srv = (target: string, port: number, priority: number, weight: number): SrvRecord => ({ name: SRV, target, port, priority, weight })

/** Target names a.svc.test… with their addresses. */
const targets = (entries: Record<string, string[]>): Array<[string, string]> =>
  Object.entries(entries).flatMap(([name, addresses]) => addresses.map(a => [a, `${name}.svc.test`] as [string, string]))

withDnsmasq(t, bin => {
  t.test('one upstream per record of the lowest priority: id target:port, URL at the target address from the same DNS, weight by ratio', async t => {
    const ups = await fleet(t, 4)
    const port = ups[0]!.port
    const dns = await startDnsmasq(t, bin, {
      // c has two addresses: the lowest is used, on every instance and every round.
      hosts: targets({ a: ['127.0.0.2'], b: ['127.0.0.3'], c: ['127.0.0.9', '127.0.0.4'], backup: ['127.0.0.5'] }),
      srv: [srv('a.svc.test', port, 10, 60), srv('B.svc.test', port, 10, 20), srv('c.svc.test', port, 10, 20), srv('backup.svc.test', port, 20, 100)],
    })
    const sub = subscribe(t, source(dns))
    const list = await sub.update(0)
    // These names exist only in this dnsmasq: the URLs prove the targets were resolved through it.
    t.same(lines(list), [
      `a.svc.test:${port} http://127.0.0.2:${port} 3`,
      `b.svc.test:${port} http://127.0.0.3:${port} 1`,
      `c.svc.test:${port} http://127.0.0.4:${port} 1`,
    ], 'priority 20 left out; weights 60:20:20 as 3:1:1; the target name in lower case')
    for (const m of list) t.equal((await request(`${m.url}/`)).json().name, new URL(m.url).hostname, `${m.id} answers at ${m.url}`)
    t.equal(sub.errors.length, 0)
  })

  t.test('weights: equal weights scaled by the record count stay 1 as members come; weight 0 counts as 1', async t => {
    const dns = await startDnsmasq(t, bin, {
      hosts: targets({ a: ['127.0.0.2'], b: ['127.0.0.3'], c: ['127.0.0.4'], d: ['127.0.0.5'] }),
      // As CoreDNS publishes a service: every record weighted 100 / count.
      srv: ['a', 'b', 'c'].map(n => srv(`${n}.svc.test`, 8080, 0, 33)),
    })
    const sub = subscribe(t, source(dns))
    t.same((await sub.update(0)).map(m => m.weight), [1, 1, 1])
    await dns.restart({ srv: ['a', 'b', 'c', 'd'].map(n => srv(`${n}.svc.test`, 8080, 0, 25)) })
    const four = await sub.update(1)
    t.same(four.map(m => `${m.id} ${m.weight}`), ['a.svc.test:8080 1', 'b.svc.test:8080 1', 'c.svc.test:8080 1', 'd.svc.test:8080 1'], 'only the new member differs')
    await dns.restart({ srv: [srv('a.svc.test', 8080, 0, 0), srv('b.svc.test', 8080, 0, 10)] })
    t.same((await sub.update(2)).map(m => m.weight), [1, 10], 'weight 0 beside 10: the smallest share, 1')
    await dns.restart({ srv: [srv('a.svc.test', 8080, 0, 0), srv('b.svc.test', 8080, 0, 0)] })
    t.same((await sub.update(3)).map(m => m.weight), [1, 1], 'all 0: equal')
  })

  t.test('records for the same target and port are one member with their weights added; other ports are other members', async t => {
    const dns = await startDnsmasq(t, bin, {
      hosts: targets({ a: ['127.0.0.2'], b: ['127.0.0.3'] }),
      srv: [srv('a.svc.test', 8080, 0, 10), srv('a.svc.test', 8080, 0, 20), srv('a.svc.test', 9090, 0, 10), srv('b.svc.test', 8080, 0, 10)],
    })
    const sub = subscribe(t, source(dns))
    t.same(lines(await sub.update(0)), [
      'a.svc.test:8080 http://127.0.0.2:8080 3',
      'a.svc.test:9090 http://127.0.0.2:9090 1',
      'b.svc.test:8080 http://127.0.0.3:8080 1',
    ])
  })

  t.test('a target without an address is left out and reported; the others are emitted', async t => {
    const dns = await startDnsmasq(t, bin, {
      hosts: targets({ a: ['127.0.0.2'] }),
      srv: [srv('a.svc.test', 8080, 0, 1), srv('ghost.svc.test', 8080, 0, 1)],
    })
    const sub = subscribe(t, source(dns))
    t.same(lines(await sub.update(0)), ['a.svc.test:8080 http://127.0.0.2:8080 1'])
    const err = await sub.error(0)
    t.equal(err.code, 'AFFINITY_ERR_DNS_SRV_TARGET')
    t.equal(err.message, `DNS discovery: SRV targets of ${SRV} without an address are left out: ghost.svc.test (A: ENOTFOUND, AAAA: ENOTFOUND)`)
    // It gets an address: it joins.
    await dns.setHosts(targets({ a: ['127.0.0.2'], ghost: ['127.0.0.3'] }))
    t.same(lines(await sub.update(1)), ['a.svc.test:8080 http://127.0.0.2:8080 1', 'ghost.svc.test:8080 http://127.0.0.3:8080 1'])
  })

  t.test('no SRV records, only target ".", or no target with an address: reported as empty, nothing emitted, the last list stands', async t => {
    const dns = await startDnsmasq(t, bin, {
      hosts: targets({ a: ['127.0.0.2'] }),
      srv: [srv('a.svc.test', 8080, 0, 1), { name: '_http._tcp.closed.svc.test' }],
    })
    const sub = subscribe(t, source(dns))
    await sub.update(0)
    await dns.setHosts([])
    const err = await sub.error(0)
    t.equal(err.code, 'AFFINITY_ERR_DNS_EMPTY')
    t.match(err.message, /has no SRV target with an address \(a\.svc\.test \(A: ENOTFOUND, AAAA: ENOTFOUND\)\)/)
    t.equal(sub.updates.length, 1)

    const missing = subscribe(t, source(dns, { srv: '_http._tcp.missing.svc.test' }))
    t.match((await missing.error(0)).message, /missing\.svc\.test has no SRV records \(ENOTFOUND\)/)
    const closed = subscribe(t, source(dns, { srv: '_http._tcp.closed.svc.test' }))
    t.match((await closed.error(0)).message, /closed\.svc\.test has no SRV records \(only target "\."\)/, 'RFC 2782: the service is decidedly not available')
    t.equal(missing.updates.length + closed.updates.length, 0)
  })

  t.test('two processes on the same DNS derive the same list; the source does not keep a process alive', async t => {
    const ups = await fleet(t, 3)
    const port = ups[0]!.port
    const dns = await startDnsmasq(t, bin, {
      hosts: targets({ a: ['127.0.0.4', '127.0.0.2'], b: ['127.0.0.3'], c: ['127.0.0.4'] }),
      srv: [srv('c.svc.test', port, 0, 30), srv('a.svc.test', port, 0, 10), srv('b.svc.test', port, 0, 20)],
    })
    const opts: DnsDiscoveryOptions = { srv: SRV, servers: [dns.server], intervalMs: 30, timeoutMs: 100 }
    const child = fork(new URL('./helpers/dns-child.ts', import.meta.url), {
      env: { ...process.env, DNS_OPTIONS: JSON.stringify(opts) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    const exited = once(child, 'exit')
    t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
    const [theirs] = await once(child, 'message') as [{ list?: UpstreamOptions[], error?: string }]
    const ours = await subscribe(t, dnsDiscovery(opts)).update(0)
    t.same(theirs, { list: ours }, 'the same ids, URLs and weights in the same order')
    t.same(lines(ours), [`a.svc.test:${port} http://127.0.0.2:${port} 1`, `b.svc.test:${port} http://127.0.0.3:${port} 2`, `c.svc.test:${port} http://127.0.0.4:${port} 3`])
    // The child still has its subscription; it ends anyway, since nothing else holds it.
    // The guard reports a child that stays instead of leaving tap to time the file out.
    let guard: NodeJS.Timeout | undefined
    const stayed = new Promise(resolve => { guard = setTimeout(() => resolve('still running after 15 s'), 15_000) })
    t.same(await Promise.race([exited, stayed]), [0, null], 'the child exits on its own (its re-resolution timer is unref\'d)')
    clearTimeout(guard)
  })
})
