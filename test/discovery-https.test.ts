/**
 * `protocol: 'https'` with addresses from DNS: the URL names an IP address, so the
 * upstream's certificate is checked against that address, which a certificate for
 * the service's name does not cover; `pool: { connect: { servername } }` makes TLS
 * send and check that name instead (tls.connect checks `servername`), as the README
 * says. A real dnsmasq; an HTTPS upstream on 127.0.0.2 with the test certificate for
 * localhost / 127.0.0.1 (test/fixtures/tls).
 */
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { createBalancer, dnsDiscovery, roundRobin, type BalancerOptions } from '@affinity/core'
import { startCoreFront } from './helpers/core-front.js'
import { startDnsmasq, withDnsmasq } from './helpers/dnsmasq.js'
import { TLS } from './helpers/h2.js'
import { request } from './helpers/http.js'

withDnsmasq(t, bin => {
  t.test("https from DNS: the certificate is checked against the address unless pool.connect.servername names what it covers", async t => {
    const server = https.createServer(TLS, (req, res) => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ sni: (req.socket as { servername?: string }).servername ?? null })) })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.2', resolve))
    t.teardown(() => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }))
    const port = (server.address() as AddressInfo).port
    const dns = await startDnsmasq(t, bin, { hosts: [['127.0.0.2', 'shop.svc.test']] })

    const front = async (pool: BalancerOptions['pool']): Promise<string> => {
      const balancer = createBalancer({
        upstreams: dnsDiscovery({ name: 'shop.svc.test', port, protocol: 'https', servers: [dns.server], intervalMs: 30, timeoutMs: 100 }),
        strategy: roundRobin(),
        passive: false,
        pool,
      })
      t.teardown(() => balancer.close())
      await balancer.ready()
      t.equal(balancer.list()[0]!.url, `https://127.0.0.2:${port}`, 'the URL names the address')
      const f = await startCoreFront(balancer)
      t.teardown(() => f.close())
      return f.url
    }

    const byAddress = await front({ connect: { ca: TLS.cert } })
    t.equal((await request(`${byAddress}/`)).status, 502, 'a certificate for localhost and 127.0.0.1 does not cover 127.0.0.2: refused')
    const byName = await front({ connect: { ca: TLS.cert, servername: 'localhost' } })
    const res = await request(`${byName}/`)
    t.equal(res.status, 200, 'with servername: checked against the name it covers')
    t.same(res.json(), { sni: 'localhost' }, 'and sent as SNI')
  })
})
