/**
 * One balancer process following DNS, forked by test/discovery-processes.test.ts:
 *   DNS_OPTIONS  JSON options for dnsDiscovery
 *   SECRET       the stickyCookie secret
 * Two balancers over the same source, each behind the core front: stickyCookie and
 * consistentHash on the x-user header. Sends { sticky, hash } (their URLs) once both
 * are ready(), then { event, id, which } for every 'added', 'draining' and
 * 'removed'; 'close' (or the parent going away) shuts it down.
 */
import { consistentHash, createBalancer, dnsDiscovery, stickyCookie, type DnsDiscoveryOptions } from '@affinity/core'
import { startCoreFront } from './core-front.js'

const source = dnsDiscovery(JSON.parse(process.env.DNS_OPTIONS!) as DnsDiscoveryOptions)
const balancers = {
  sticky: createBalancer({ upstreams: source, strategy: stickyCookie({ secret: process.env.SECRET! }) }),
  hash: createBalancer({ upstreams: source, strategy: consistentHash({ key: { header: 'x-user' } }) }),
}
const fronts = await Promise.all(Object.values(balancers).map(b => startCoreFront(b)))
for (const [which, b] of Object.entries(balancers)) {
  for (const event of ['added', 'draining', 'removed'] as const) b.on(event, (u) => { if (process.connected) process.send!({ event, id: u.id, which }) })
}
await Promise.all(Object.values(balancers).map(b => b.ready()))

let closing: Promise<void> | undefined
function shutdown (): Promise<void> {
  closing ??= Promise.all([...fronts.map(f => f.close()), ...Object.values(balancers).map(b => b.close())])
    .then(() => { if (process.connected) process.disconnect() })
  return closing
}
process.on('message', (m) => { if (m === 'close') void shutdown() })
process.on('disconnect', () => { void shutdown() })
process.send!({ sticky: fronts[0]!.url, hash: fronts[1]!.url })
