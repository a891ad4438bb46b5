// An Express app that sits behind a reverse proxy it trusts (nginx, a cloud load
// balancer, an ingress…) and balances three upstreams with `ipHash()`: each client
// address is hashed onto a consistent-hash ring, so a client keeps landing on the
// same upstream with no state in the balancer and no cookie.
//
//   node examples/express-ip-hash/index.js           # runs the walk-through, exits
//   node examples/express-ip-hash/index.js --serve   # keeps it running to poke with curl
//
// How `trust proxy` decides the client address (req.ip, which is what ipHash hashes):
//   Express (proxy-addr) walks the chain right to left: first the TCP peer address,
//   then the X-Forwarded-For entries from last to first. Every address it trusts
//   (here: 'loopback', i.e. 127.0.0.0/8 and ::1) is a proxy, and it keeps walking;
//   the first address it does NOT trust is the client, and req.ip is that address.
//   Entries further left were written by that untrusted client itself, so they
//   could say anything and are ignored. Without `trust proxy` (Express's default),
//   req.ip is the TCP peer and X-Forwarded-For is not read at all.
// Trust only what is really in front of you: with `trust proxy: true` any client
// could pick its own req.ip — and so its upstream — by sending X-Forwarded-For.
//
// Build the workspace first (`npm run build`): `@affinity/*` resolves to packages/*/dist.
import http from 'node:http'
import { pathToFileURL } from 'node:url'
import express from 'express'
import { affinity } from '@affinity/express'
import { ipHash } from '@affinity/core'

/** A stand-in for one instance of your stateful app: per-user visit counters in memory. */
async function startUpstream (name) {
  const visits = new Map()
  const server = http.createServer((req, res) => {
    const user = new URL(req.url, 'http://x').searchParams.get('user') ?? 'anonymous'
    visits.set(user, (visits.get(user) ?? 0) + 1)
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ server: name, visits: visits.get(user), xForwardedFor: req.headers['x-forwarded-for'] }))
  })
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  return { name, url: `http://127.0.0.1:${server.address().port}`, server }
}

/** Starts the three upstreams and the Express app; `close()` stops everything. */
export async function start ({ port = 0 } = {}) {
  const upstreams = await Promise.all(['S1', 'S2', 'S3'].map(startUpstream))

  const app = express()
  // The proxy in front of this app connects from the loopback: trust it (and only it).
  // Other values: a subnet ('10.0.0.0/8'), a list, a hop count, or a function.
  app.set('trust proxy', 'loopback')

  app.get('/', (_req, res) => { res.json({ app: 'my-express-app' }) })

  // For the walk-through: tell the client which address Express settled on. Headers set
  // before the Affinity middleware go out with the proxied response.
  app.use((req, res, next) => { res.setHeader('x-client-ip', req.ip); next() })

  // ipHash() hashes req.ip (IPv4-mapped IPv6 folded to IPv4; IPv6 masked to /64).
  // Upstream ids are the hash identities: keep them stable and every balancer
  // instance with the same ids makes the same choice.
  const lb = affinity({ upstreams: upstreams.map(u => ({ id: u.name, url: u.url })), strategy: ipHash() })
  app.use('/api', lb) // /api/visit reaches the upstream as /visit

  const server = await new Promise(resolve => { const s = app.listen(port, '127.0.0.1', () => resolve(s)) })
  server.on('upgrade', lb.upgrade) // WebSockets would follow the same rule (unused here)
  const url = `http://127.0.0.1:${server.address().port}`
  return {
    app,
    url,
    upstreams,
    async close () {
      await new Promise(resolve => server.close(resolve))
      await lb.close() // closes the balancer it built from the shorthand options
      await Promise.all(upstreams.map(u => new Promise(resolve => u.server.close(resolve))))
    },
  }
}

/**
 * One request as the trusted proxy in front would forward it: the connection comes
 * from 127.0.0.1 (trusted) and X-Forwarded-For ends with the address the proxy saw.
 */
async function viaProxy (url, xForwardedFor) {
  const res = await fetch(url, { headers: { 'x-forwarded-for': xForwardedFor } })
  const body = await res.json()
  return { server: body.server, visits: body.visits, clientIp: res.headers.get('x-client-ip') }
}

export async function run ({ log = console.log } = {}) {
  const env = await start()
  try {
    const { url, app } = env
    log(`App on ${url}; trust proxy = loopback; upstreams ${env.upstreams.map(u => u.name).join(', ')}`)

    // 1. Six clients, four requests each: each sticks to one upstream. (Which one is
    //    up to the hash; with a handful of clients the split is rarely even.)
    const clients = []
    const people = [['alice', '198.51.100.7'], ['bob', '203.0.113.20'], ['carol', '2001:db8:1::42'], ['dave', '192.0.2.99'], ['erin', '198.51.100.150'], ['frank', '2001:db8:2::7']]
    for (const [user, ip] of people) {
      const seen = []
      for (let i = 0; i < 4; i++) seen.push(await viaProxy(`${url}/api/visit?user=${user}`, ip))
      const c = { user, ip, clientIp: seen[0].clientIp, servers: [...new Set(seen.map(s => s.server))], visits: seen.map(s => s.visits) }
      clients.push(c)
      log(`${user.padEnd(5)} X-Forwarded-For: ${ip.padEnd(15)} → req.ip ${c.clientIp.padEnd(15)} → ${c.servers.join(', ')}; visits ${c.visits.join(', ')}`)
    }
    const serverOf = (user) => clients.find(c => c.user === user).servers[0]

    // 2. The same client reported as an IPv4-mapped IPv6 address (what a dual-stack
    //    proxy socket sees for an IPv4 client): folded to IPv4, same upstream.
    const mapped = await viaProxy(`${url}/api/visit?user=alice`, '::ffff:198.51.100.7')
    mapped.sameAsIpv4 = mapped.server === serverOf('alice')
    log(`alice X-Forwarded-For: ::ffff:198.51.100.7 → req.ip ${mapped.clientIp} → ${mapped.server} (same as 198.51.100.7: ${mapped.sameAsIpv4}); visits ${mapped.visits}`)

    // 3. carol's IPv6 privacy address rotates within her /64: same upstream.
    const rotated = await viaProxy(`${url}/api/visit?user=carol`, '2001:db8:1::9:abcd')
    rotated.sameAsBefore = rotated.server === serverOf('carol')
    log(`carol X-Forwarded-For: 2001:db8:1::9:abcd (same /64) → ${rotated.server} (same as before: ${rotated.sameAsBefore})`)

    // 4. A spoofed X-Forwarded-For does not count. mallory (really 203.0.113.66) sends
    //    "X-Forwarded-For: 198.51.100.7" to pass as alice; the trusted proxy appends
    //    the address it saw, so the header arrives as "198.51.100.7, 203.0.113.66".
    //    Walking right to left: 127.0.0.1 (peer, trusted) → 203.0.113.66 (not trusted:
    //    this is the client) → stop. req.ip is mallory's real address; alice's is ignored.
    const spoof = await viaProxy(`${url}/api/visit?user=mallory`, '198.51.100.7, 203.0.113.66')
    const honest = await viaProxy(`${url}/api/visit?user=mallory`, '203.0.113.66')
    spoof.routedAsRealAddress = spoof.clientIp === '203.0.113.66' && spoof.server === honest.server
    log(`mallory X-Forwarded-For: 198.51.100.7, 203.0.113.66 → req.ip ${spoof.clientIp} → ${spoof.server} (routed by her real address: ${spoof.routedAsRealAddress}; alice is on ${serverOf('alice')})`)

    // The compiled trust function Express uses, for the record.
    const trust = app.get('trust proxy fn')
    const trusts = { '127.0.0.1': trust('127.0.0.1', 0), '::1': trust('::1', 0), '203.0.113.66': trust('203.0.113.66', 0) }
    log(`trust proxy fn: ${Object.entries(trusts).map(([a, v]) => `${a} ${v ? 'trusted' : 'NOT trusted'}`).join('; ')}`)
    log('A direct connection from an untrusted address would get req.ip = its own address, whatever X-Forwarded-For it sends.')

    return { clients, mapped, rotated, spoof, trusts }
  } finally {
    await env.close()
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv.includes('--serve')) {
    const env = await start({ port: Number(process.env.PORT ?? 0) })
    console.log(`Listening on ${env.url}  (try: curl -H 'X-Forwarded-For: 198.51.100.7' ${env.url}/api/visit)  Ctrl-C stops it`)
    process.once('SIGINT', () => { void env.close() })
  } else {
    await run()
  }
}
