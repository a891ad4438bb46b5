/**
 * Balancer.preview() answers a what-if without touching the network: the would-be
 * upstreams it builds have no transport, so previewing the addition of a live
 * server opens no connection to it, for every kind of strategy, and the previewed
 * change is not applied.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { consistentHash, createBalancer, leastConnections, stickyCookie, type Strategy } from '@affinity/core'
import { startUpstreams } from './helpers/upstreams.js'

const SECRET = 'preview-test-secret-0123456789abcdef-0123456789'

const STRATEGIES: Array<[string, () => Strategy]> = [
  ['consistentHash ring', () => consistentHash({ key: { header: 'x-user' } })],
  ['consistentHash maglev', () => consistentHash({ key: { header: 'x-user' }, algorithm: 'maglev' })],
  ['stickyCookie', () => stickyCookie({ secret: SECRET })],
  ['leastConnections', () => leastConnections()],
]

/** A server that counts the connections it accepts. */
async function countingServer (): Promise<{ server: Server, url: string, connections: () => number }> {
  let connections = 0
  const server = createServer((_req, res) => res.end('ok'))
  server.on('connection', () => { connections++ })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return { server, url: `http://127.0.0.1:${port}`, connections: () => connections }
}

for (const [label, strategy] of STRATEGIES) {
  t.test(`${label}: previewing an addition opens no connection to it`, async t => {
    const ups = await startUpstreams(3)
    const extra = await countingServer()
    const balancer = createBalancer({ upstreams: ups.map(u => ({ url: u.url, id: u.name })), strategy: strategy() })
    t.teardown(async () => {
      await balancer.close()
      extra.server.closeAllConnections()
      await new Promise(resolve => extra.server.close(resolve))
      await Promise.all(ups.map(u => u.close()))
    })
    for (let i = 0; i < 200; i++) await balancer.choose({ method: 'GET', url: '/', headers: { 'x-user': `u${i}` }, ip: '127.0.0.1', cookies: {} })
    const remap = balancer.preview({ add: [{ url: extra.url, id: 'extra' }], remove: [ups[0]!.name] })
    t.ok(['bound', 'sampled', 'none', 'uncounted'].includes(remap.known), `the preview answers (${remap.known}, ${remap.moved} moved)`)
    t.same(balancer.list().map(u => u.id), ups.map(u => u.name), 'the previewed change is not applied')
    // Had the preview opened a pool and dispatched, the connection would be accepted
    // on the next turns of the loop: a round trip to the extra server proves they passed.
    const res = await fetch(extra.url)
    await res.text()
    t.equal(extra.connections(), 1, 'the only connection the extra server saw is the test\'s own')
  })
}
