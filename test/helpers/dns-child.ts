/**
 * A second process subscribed to dnsDiscovery, forked by test/discovery-dns-srv.test.ts:
 *   DNS_OPTIONS  JSON options for dnsDiscovery
 * Sends its first list ({ list }) and disconnects, leaving the subscription running.
 * Nothing else holds the event loop, so the process ends by itself only if the
 * source's timers do not keep it alive (they are unref'd).
 */
import { dnsDiscovery, type DnsDiscoveryOptions } from '@affinity/core'

const source = dnsDiscovery(JSON.parse(process.env.DNS_OPTIONS!) as DnsDiscoveryOptions)
let sent = false
source.subscribe((list) => {
  if (sent) return
  sent = true
  process.send!({ list }, () => process.disconnect())
}, (err) => { if (!sent) process.send!({ error: err.message }) })
