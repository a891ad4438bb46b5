// The app pod's preStop hook: `node /code/prestop.js`, run by the kubelet in the app
// container as soon as the pod is being deleted, before SIGTERM. It asks every
// balancer replica to drain this pod and waits until each one says it is drained
// (nothing in flight there, no bound user back for the drain idle window), so the
// users whose sessions live in this pod's memory finish here before it stops.
//
// Every replica is called (their addresses come from the balancer's headless
// Service), not just one through the load-balanced Service: with redisControl one
// call would drain the pod everywhere, but each replica only knows its own traffic,
// so each one's "drained" is waited for. No dependencies: the stock node image runs it.
import { lookup } from 'node:dns/promises'
import { isIPv6 } from 'node:net'
import { pathToFileURL } from 'node:url'

/** Every environment variable this file reads, with its default (undefined: required). */
export const ENV = {
  /** This pod's address (downward API: status.podIP). */
  POD_IP: undefined,
  /** The port the balancer discovers the app on (with POD_IP: the upstream id, address:port). */
  APP_PORT: '8080',
  /** The balancer's headless Service: one address per balancer pod. */
  BALANCER_PEERS: 'shop-balancer-peers',
  BALANCER_PORT: '8080',
  ADMIN_TOKEN: undefined,
  /** How long each replica may take to drain this pod (it answers 503 after that). */
  DRAIN_TIMEOUT_MS: '120000',
}

/** The balancer's admin route (balancer.js). */
export const ADMIN_ROUTE = '/affinity/admin'

/** Drains this pod on every balancer replica; resolves with each replica's answer. */
export async function run (env = process.env, log = console.log) {
  for (const [name, fallback] of Object.entries(ENV)) if ((env[name] ?? fallback) === undefined) throw new Error(`${name} is not set`)
  const ip = env.POD_IP
  const id = `${isIPv6(ip) ? `[${ip}]` : ip}:${env.APP_PORT ?? ENV.APP_PORT}` // the id dnsDiscovery gives this pod
  const timeoutMs = Number(env.DRAIN_TIMEOUT_MS ?? ENV.DRAIN_TIMEOUT_MS)
  const peers = await lookup(env.BALANCER_PEERS ?? ENV.BALANCER_PEERS, { all: true })
  log(`draining ${id} on ${peers.length} balancer replica(s)`)
  return await Promise.all(peers.map(async ({ address, family }) => {
    const host = family === 6 ? `[${address}]` : address
    const url = `http://${host}:${env.BALANCER_PORT ?? ENV.BALANCER_PORT}${ADMIN_ROUTE}/drain/${encodeURIComponent(id)}?wait=1&timeoutMs=${timeoutMs}`
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
        signal: AbortSignal.timeout(timeoutMs + 5000),
      })
      const body = await res.json().catch(() => ({}))
      log(`${address}: ${res.status} ${JSON.stringify(body)}`)
      return { address, status: res.status, body }
    } catch (err) {
      // A replica that cannot be reached is not waited for: the grace period is finite.
      log(`${address}: ${err.message}`)
      return { address, status: 0, body: { error: err.message } }
    }
  }))
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // Whatever happens, the hook ends: the pod's termination must go on.
  await run().catch(err => console.error(`preStop: ${err.message}`))
}
