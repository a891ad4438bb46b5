/**
 * Two balancer processes following the same DNS (a real dnsmasq) agree on every
 * user: ids come from DNS data only (address:port), so a stickyCookie with the same
 * secret honours the other's cookies, and consistentHash maps every key alike —
 * at the start, after a member joins and while one drains after leaving.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import t, { type Test } from 'tap'
import type { DnsDiscoveryOptions } from '@affinity/core'
import { startDnsmasq, withDnsmasq } from './helpers/dnsmasq.js'
import { Browser, request } from './helpers/http.js'
import { startHeadlessFleet } from './helpers/upstreams.js'

const NAME = 'shop.svc.test'
const SECRET = 'two-processes-secret-0123456789abcdefghijklm'

interface Instance { sticky: string, hash: string, child: ChildProcess, events: string[], until (event: string, id: string): Promise<void> }

async function instance (t: Test, opts: DnsDiscoveryOptions): Promise<Instance> {
  const child = fork(new URL('./helpers/discovery-balancer.ts', import.meta.url), {
    env: { ...process.env, DNS_OPTIONS: JSON.stringify(opts), SECRET },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const exited = once(child, 'exit')
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    if (child.connected) child.send('close')
    else child.kill('SIGKILL')
    await exited
  })
  const events: string[] = []
  const waiters = new Set<() => void>()
  child.on('message', (m: { event?: string, id?: string, which?: string }) => {
    if (m.event === undefined) return
    events.push(`${m.which} ${m.event} ${m.id}`)
    for (const w of waiters) w()
  })
  const urls = await new Promise<{ sticky: string, hash: string }>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the balancer process exited (${code}) before it was ready`)))
    child.on('message', (m: { sticky?: string, hash?: string }) => { if (m.sticky !== undefined) resolve(m as { sticky: string, hash: string }) })
  })
  /** Resolves once both of its balancers have reported `event` for `id`. */
  const until = (event: string, id: string): Promise<void> => new Promise(resolve => {
    const check = (): void => {
      if (['sticky', 'hash'].every(w => events.includes(`${w} ${event} ${id}`))) { waiters.delete(check); resolve() }
    }
    waiters.add(check)
    check()
  })
  return { ...urls, child, events, until }
}

async function servedBy (url: string, user: string): Promise<string> {
  const res = await request(`${url}/echo`, { headers: { 'x-user': user } })
  return res.json().name
}

/** Every key maps to the same upstream on both instances. */
async function hashAgrees (t: Test, a: Instance, b: Instance, what: string): Promise<Map<string, string>> {
  const owners = new Map<string, string>()
  const differ: string[] = []
  for (let i = 0; i < 120; i++) {
    const key = `user-${i}`
    const [x, y] = await Promise.all([servedBy(a.hash, key), servedBy(b.hash, key)])
    owners.set(key, x)
    if (x !== y) differ.push(`${key}: ${x} vs ${y}`)
  }
  t.same(differ, [], `consistentHash, ${what}: both instances map all 120 keys alike`)
  return owners
}

/** Users pinned on one instance are honoured as they are on the other, both ways. */
async function stickyAgrees (t: Test, a: Instance, b: Instance, users: Map<Browser, string>, what: string): Promise<void> {
  const differ: string[] = []
  for (const [user, was] of users) {
    const [x, y] = [await user.visit(a.sticky), await user.visit(b.sticky)]
    if (x !== was || y !== was) differ.push(`${was}: ${x} / ${y}`)
  }
  t.same(differ, [], `stickyCookie, ${what}: ${users.size} users reach their upstream through either instance`)
}

withDnsmasq(t, bin => {
  t.test('two balancer processes on the same DNS agree on every user', { timeout: 120_000 }, async t => {
    const ups = await startHeadlessFleet(4)
    t.teardown(() => Promise.all(ups.map(u => u.close())))
    const port = ups[0]!.port
    const hosts = (addresses: string[]): Array<[string, string]> => addresses.map(a => [a, NAME])
    const dns = await startDnsmasq(t, bin, { hosts: hosts(['127.0.0.2', '127.0.0.3', '127.0.0.4']) })
    const opts: DnsDiscoveryOptions = { name: NAME, port, servers: [dns.server], intervalMs: 30, timeoutMs: 100 }
    const [a, b] = await Promise.all([instance(t, opts), instance(t, opts)])

    // Users pinned through one instance or the other.
    const users = new Map<Browser, string>()
    for (let i = 0; i < 12; i++) {
      const user = new Browser()
      users.set(user, await user.visit(i % 2 === 0 ? a.sticky : b.sticky))
    }
    t.equal(new Set(users.values()).size, 3, 'spread over the three members')
    await stickyAgrees(t, a, b, users, 'at the start')
    const start = await hashAgrees(t, a, b, 'at the start')

    const joined = `127.0.0.5:${port}`
    await dns.setHosts(hosts(['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5']))
    await Promise.all([a.until('added', joined), b.until('added', joined)])
    await stickyAgrees(t, a, b, users, 'after a member joined')
    const after = await hashAgrees(t, a, b, 'after a member joined')
    const moved = [...start].filter(([k, owner]) => after.get(k) !== owner)
    t.ok(moved.every(([k]) => after.get(k) === '127.0.0.5'), `only keys onto the new member moved (${moved.length})`)

    const left = `127.0.0.3:${port}`
    await dns.setHosts(hosts(['127.0.0.2', '127.0.0.4', '127.0.0.5']))
    await Promise.all([a.until('draining', left), b.until('draining', left)])
    await stickyAgrees(t, a, b, users, 'while a member that left drains')
    await hashAgrees(t, a, b, 'while a member that left drains')
  })
})
