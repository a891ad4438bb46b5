/**
 * dnsDiscovery's options, checked at construction with stable codes, and the source
 * contract that needs no DNS server: callbacks never run inside `subscribe`, and a
 * resolver that refuses (a closed loopback port) is an error, not an empty list.
 */
import dgram from 'node:dgram'
import t, { type Test } from 'tap'
import { dnsDiscovery, type DnsDiscoveryOptions } from '@affinity/core'
import { subscribe } from './helpers/discovery.js'

const invalid = (t: Test, opts: unknown, option: string, why: string): void => {
  t.throws(() => dnsDiscovery(opts as DnsDiscoveryOptions), { code: 'AFFINITY_ERR_INVALID_OPTION', message: new RegExp(`^invalid option \`${option.replace('.', '\\.')}\``) }, why)
}

t.test('invalid options are refused with AFFINITY_ERR_INVALID_OPTION, naming the option', async t => {
  invalid(t, undefined, 'dnsDiscovery', 'no options')
  invalid(t, 'shop.svc', 'dnsDiscovery', 'a string instead of options')
  invalid(t, {}, 'name', 'neither name nor srv')
  invalid(t, { port: 80 }, 'name', 'a port without a name')
  invalid(t, { name: 'shop.svc' }, 'port', 'a name without a port')
  invalid(t, { name: 'shop.svc', port: 0 }, 'port', 'port 0')
  invalid(t, { name: 'shop.svc', port: 65536 }, 'port', 'port above 65535')
  invalid(t, { name: 'shop.svc', port: 80.5 }, 'port', 'a fractional port')
  invalid(t, { name: 'shop.svc', port: '80' }, 'port', 'a port as a string')
  invalid(t, { srv: '_http._tcp.shop.svc', name: 'shop.svc', port: 80 }, 'srv', 'srv and name together')
  invalid(t, { srv: '_http._tcp.shop.svc', port: 80 }, 'srv', 'srv with a port (SRV records carry it)')
  invalid(t, { name: '10.0.0.1', port: 80 }, 'name', 'an address is not a name')
  invalid(t, { name: 'fd00::1', port: 80 }, 'name', 'an IPv6 address is not a name')
  invalid(t, { name: 'shop svc', port: 80 }, 'name', 'a space in a name')
  invalid(t, { name: 'shop..svc', port: 80 }, 'name', 'an empty label')
  invalid(t, { name: `${'a'.repeat(64)}.svc`, port: 80 }, 'name', 'a label of 64 characters')
  invalid(t, { name: '', port: 80 }, 'name', 'an empty name')
  invalid(t, { srv: 42 }, 'srv', 'a number as srv')
  invalid(t, { name: 'shop.svc', port: 80, protocol: 'ftp' }, 'protocol', "a protocol other than 'http' or 'https'")
  invalid(t, { name: 'shop.svc', port: 80, intervalMs: 5 }, 'intervalMs', 'an interval under 10 ms')
  invalid(t, { name: 'shop.svc', port: 80, intervalMs: Infinity }, 'intervalMs', 'an infinite interval')
  invalid(t, { name: 'shop.svc', port: 80, intervalMs: 2 ** 31 }, 'intervalMs', 'an interval setTimeout would fire at once')
  invalid(t, { name: 'shop.svc', port: 80, timeoutMs: 0 }, 'timeoutMs', 'a zero timeout')
  invalid(t, { name: 'shop.svc', port: 80, timeoutMs: 1.5 }, 'timeoutMs', 'a fractional timeout (c-ares takes whole ms)')
  invalid(t, { name: 'shop.svc', port: 80, servers: [] }, 'servers', 'no servers')
  invalid(t, { name: 'shop.svc', port: 80, servers: '10.0.0.10' }, 'servers', 'servers as a string')
  invalid(t, { name: 'shop.svc', port: 80, servers: ['dns.example'] }, 'servers', 'a server given by name')
  invalid(t, { name: 'shop.svc', port: 80, servers: ['10.0.0.10:99999'] }, 'servers', 'a server port above 65535 (Node would wrap it)')
  invalid(t, { name: 'shop.svc', port: 80, servers: ['[10.0.0.10]:53'] }, 'servers', 'an IPv4 address in brackets')
  invalid(t, { name: 'shop.svc', port: 80, servers: ['fd00::a:53:x'] }, 'servers', 'not an address')
})

t.test('unknown options are refused with AFFINITY_ERR_UNKNOWN_OPTION, listing the known ones', async t => {
  t.throws(() => dnsDiscovery({ name: 'shop.svc', port: 80, interval: 1000 } as DnsDiscoveryOptions), {
    code: 'AFFINITY_ERR_UNKNOWN_OPTION',
    message: 'unknown option `interval` for dnsDiscovery: the options are name, port, srv, protocol, intervalMs, servers, timeoutMs',
  })
  t.throws(() => dnsDiscovery({ srv: '_http._tcp.shop.svc', ttl: true } as DnsDiscoveryOptions), { code: 'AFFINITY_ERR_UNKNOWN_OPTION' })
})

t.test('valid options are accepted; subscribe wants two functions', async t => {
  for (const opts of [
    { name: 'shop.default.svc.cluster.local', port: 8080 },
    { name: 'shop.default.svc.cluster.local.', port: 1, protocol: 'https', intervalMs: 10, timeoutMs: 1 },
    { srv: '_http._tcp.shop.default.svc.cluster.local' },
    { srv: '_http._tcp.shop', servers: ['10.96.0.10', '10.96.0.10:5353', '[fd00::a]:53', 'fd00::a'] },
    { name: 'shop', port: 80, srv: undefined },
  ] as DnsDiscoveryOptions[]) {
    t.doesNotThrow(() => dnsDiscovery(opts), JSON.stringify(opts))
  }
  const source = dnsDiscovery({ name: 'shop.svc', port: 80 })
  t.throws(() => source.subscribe(undefined as never, () => {}), { code: 'AFFINITY_ERR_INVALID_OPTION' })
  t.throws(() => source.subscribe(() => {}, 'log' as never), { code: 'AFFINITY_ERR_INVALID_OPTION' })
})

t.test('a refusing resolver is an error, never an empty list, and never reported inside subscribe', async t => {
  // A UDP port that was free a moment ago: queries to it are refused (ICMP port unreachable).
  const sock = dgram.createSocket('udp4')
  await new Promise<void>(resolve => sock.bind(0, '127.0.0.1', resolve))
  const port = sock.address().port
  await new Promise<void>(resolve => sock.close(() => resolve()))

  const source = dnsDiscovery({ name: 'shop.svc.test', port: 80, servers: [`127.0.0.1:${port}`], intervalMs: 20, timeoutMs: 100 })
  const sub = subscribe(t, source)
  t.equal(sub.errors.length + sub.updates.length, 0, 'nothing is called back before subscribe returns')
  const first = await sub.error(0)
  t.equal(first.code, 'AFFINITY_ERR_DNS_FAILED')
  t.equal(first.cause?.code, 'ECONNREFUSED', 'the resolver error is the cause')
  t.match(first.message, /^DNS discovery: the A lookup of shop\.svc\.test failed \(ECONNREFUSED\); the membership is left as it was$/)
  await sub.error(2)
  t.equal(sub.updates.length, 0, 'every round failed, and none emitted a list')
  sub.stop()
  const after = sub.errors.length
  // Another subscription on the same source runs on its own: two more of its rounds
  // end in errors while the stopped one reports nothing.
  const other = subscribe(t, source)
  await other.error(1)
  t.equal(sub.errors.length, after, 'the stopped subscription reports nothing more')
  t.same(sub.late, [])
})

t.test('unsubscribing with a query in flight: it is cancelled and never reported', async t => {
  // A resolver that receives and never answers, as a hung DNS server: each query it
  // receives is the event that says a lookup is in flight.
  const silent = dgram.createSocket('udp4')
  const received: string[] = []
  const waiters = new Set<() => void>()
  silent.on('message', (msg) => {
    received.push(msg.toString('latin1'))
    for (const w of waiters) w()
  })
  await new Promise<void>(resolve => silent.bind(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => silent.close(() => resolve())))
  // Lookups, not datagrams: c-ares resends a query as it was, DNS id included (RFC 1035 §4.1.1).
  const asked = (wire: string): number => new Set(received.filter(m => m.includes(wire))).size
  const until = (check: () => boolean): Promise<void> => new Promise(resolve => {
    const w = (): void => { if (check()) { waiters.delete(w); resolve() } }
    waiters.add(w)
    w()
  })
  const opts = { port: 80, servers: [`127.0.0.1:${silent.address().port}`], intervalMs: 20, timeoutMs: 50 }
  const a = subscribe(t, dnsDiscovery({ name: 'a.svc', ...opts }))
  await until(() => asked('\x01a\x03svc') >= 1)
  a.stop()
  // `b` asks the same silent server with the same timeouts: by its second error, `a`'s
  // cancelled lookup would long have timed out and been reported.
  const b = subscribe(t, dnsDiscovery({ name: 'b.svc', ...opts }))
  t.equal((await b.error(1)).cause?.code, 'ETIMEOUT')
  t.same(a.errors, [], 'the cancelled lookup is not reported')
  t.same(a.late, [])
  t.equal(asked('\x01a\x03svc'), 2, 'a looked up A and AAAA once, and never again')
})
