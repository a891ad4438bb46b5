import type { Test } from 'tap'
import { request } from './http.js'

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1: Connection and what it names, Keep-Alive, TE,
 * Proxy-*) and the underscore twins of framing / forwarding headers are dropped both
 * ways; end-to-end headers pass. `base` is the balancer's URL up to the mount point;
 * the upstream behind it is a test/helpers/upstreams.ts one (/echo, /hop).
 */
export async function checkHopByHop (t: Test, base: string): Promise<void> {
  const res = await request(`${base}/echo`, {
    headers: {
      connection: 'keep-alive, x-client-private',
      'x-client-private': 'hop',
      'keep-alive': 'timeout=5',
      te: 'trailers',
      'proxy-authorization': 'Basic Zm9vOmJhcg==',
      'proxy-connection': 'keep-alive',
      'x-end-to-end': 'kept',
      authorization: 'Bearer end-to-end',
      transfer_encoding: 'chunked',
      content_length: '999',
      x_forwarded_for: '6.6.6.6',
      proxy_authorization: 'Basic eA==',
      x_custom_thing: 'kept too',
    },
  })
  t.equal(res.status, 200)
  const seen = res.json().headers
  for (const name of ['x-client-private', 'keep-alive', 'te', 'trailer', 'proxy-authorization', 'proxy-connection',
    'transfer_encoding', 'content_length', 'x_forwarded_for', 'proxy_authorization']) {
    t.notOk(name in seen, `${name} not forwarded`)
  }
  t.notMatch(String(seen.connection ?? ''), /x-client-private/, "the client's Connection header not forwarded")
  t.equal(seen.x_custom_thing, 'kept too', 'other underscore names pass')
  t.equal(seen['x-end-to-end'], 'kept')
  t.equal(seen.authorization, 'Bearer end-to-end')

  const hop = await request(`${base}/hop`)
  t.equal(hop.status, 200)
  for (const name of ['x-upstream-private', 'keep-alive', 'proxy-authenticate']) t.notOk(name in hop.headers, `response ${name} stripped`)
  t.notMatch(String(hop.headers.connection ?? ''), /x-upstream-private/)
  t.equal(hop.headers['x-end-to-end'], 'yes')
}

/**
 * With no trusted proxy: X-Forwarded-For gets the peer appended, X-Forwarded-Proto
 * and -Host are what the balancer saw (a client cannot spoof them), and Host is the
 * upstream's. `balancerHost` is the host:port the client connected to.
 */
export async function checkUntrustedForwarded (t: Test, base: string, balancerHost: string, upstreamPort: number): Promise<void> {
  const plain = (await request(`${base}/echo`)).json().headers
  t.equal(plain['x-forwarded-for'], '127.0.0.1')
  t.equal(plain['x-forwarded-proto'], 'http')
  t.equal(plain['x-forwarded-host'], balancerHost)
  t.equal(plain.host, `127.0.0.1:${upstreamPort}`, "Host is the upstream's")
  const spoofed = (await request(`${base}/echo`, {
    headers: { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example' },
  })).json().headers
  t.equal(spoofed['x-forwarded-for'], '203.0.113.9, 127.0.0.1', 'client list kept, peer appended')
  t.equal(spoofed['x-forwarded-proto'], 'http', 'untrusted proto not believed')
  t.equal(spoofed['x-forwarded-host'], balancerHost, 'untrusted host not believed')
}
