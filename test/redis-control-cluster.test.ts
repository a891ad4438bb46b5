/**
 * redisControl over an ioredis Cluster client, on a real Redis Cluster (three
 * redis-server masters in cluster mode on loopback ports, joined by redis-cli): the
 * `{name}` hash tag keeps a control's keys in one slot, so its scripts and
 * pipelines run; operations published from the slot's node reach subscribers on
 * any node; `affinity status --cluster` lists the instances.
 *
 * Without redis-server (and redis-cli, from the same Debian package) the file is
 * skipped, unless AFFINITY_REQUIRE_REDIS=1.
 */
import path from 'node:path'
import { accessSync, constants } from 'node:fs'
import t from 'tap'
import { Cluster } from 'ioredis'
import { cliMain } from '@affinity/core/internal'
import { createBalancer, roundRobin } from '@affinity/core'
import { redisControl } from '@affinity/redis'
import { nextEvent, upstreamEvent } from './helpers/control.js'
import { findRedisServer } from './helpers/redis.js'
import { startRedisCluster } from './helpers/redis-cluster.js'
import { startUpstreams } from './helpers/upstreams.js'

const server = findRedisServer()
const cli = server === undefined ? undefined : path.join(path.dirname(server), 'redis-cli')
const hasCli = cli !== undefined && (() => { try { accessSync(cli, constants.X_OK); return true } catch { return false } })()
if (server !== undefined && hasCli) {
  tests(server, cli!)
} else if (process.env.AFFINITY_REQUIRE_REDIS === '1') {
  t.fail('redis-server and redis-cli are not on PATH, and AFFINITY_REQUIRE_REDIS=1 requires them (.ci/run installs them)')
} else {
  t.plan(0, 'redis-server / redis-cli not installed; .ci/run installs them')
}

function tests (serverBin: string, cliBin: string): void {
  t.test('two balancers on ioredis Cluster clients share one control', async t => {
    const ports = await startRedisCluster(t, serverBin, cliBin)
    const ups = await startUpstreams(3)
    t.teardown(() => Promise.all(ups.map(u => u.close())))
    const nodes = ports.map(port => ({ host: '127.0.0.1', port }))
    const cluster = (): Cluster => {
      const c = new Cluster(nodes, { clusterRetryStrategy: () => 100 })
      c.on('error', () => {})
      t.teardown(() => c.disconnect())
      return c
    }
    const instance = async (id: string): Promise<{ balancer: ReturnType<typeof createBalancer>, control: ReturnType<typeof redisControl> }> => {
      const balancer = createBalancer({ upstreams: ups.map(u => ({ id: u.name, url: u.url })), strategy: roundRobin() })
      const control = redisControl({ client: cluster(), name: 'shop', id, reportMs: 100 })
      t.teardown(async () => { await control.close(); await balancer.close() })
      await control.attach(balancer)
      return { balancer, control }
    }
    const a = await instance('bal-a')
    const b = await instance('bal-b')
    t.equal(a.control.online && b.control.online, true, 'both in step with the cluster')

    const watch = cluster()
    const slots = await Promise.all(['affinity:control:{shop}', 'affinity:control:{shop}:views', 'affinity:control:{shop}:view:bal-a'].map(k => watch.call('CLUSTER', 'KEYSLOT', k)))
    t.ok(slots.every(s => s === slots[0]), `one slot for every key of the control (${slots[0]})`)

    const drained = upstreamEvent(b.balancer, 'draining', 'S2')
    void a.balancer.drain('S2')
    await drained
    const weighted = upstreamEvent(a.balancer, 'weight', 'S1')
    b.balancer.setWeight('S1', 3)
    await weighted
    t.same((await a.control.state()).upstreams, { S2: { version: 1, drained: true }, S1: { version: 2, weight: 3 } })

    // A balancer attached later starts from the state, through the cluster.
    const c = await instance('bal-c')
    t.same(c.balancer.list().map(u => [u.id, u.state, u.weight]), [['S1', 'up', 3], ['S2', 'draining', 1], ['S3', 'up', 1]])

    await Promise.all([a, b, c].map(x => nextEvent(x.control, 'reported')))
    t.same((await a.control.instances()).map(i => i.id), ['bal-a', 'bal-b', 'bal-c'], 'views read through the cluster')
    let out = ''
    let err = ''
    const code = await cliMain(['status', '--cluster', ...ports.flatMap(p => ['--redis', `redis://127.0.0.1:${p}`]), '--name', 'shop', '--json'],
      { out: s => { out += s }, err: s => { err += s }, cwd: process.cwd() })
    t.equal(code, 0, err)
    t.same(JSON.parse(out).instances.map((i: { id: string }) => i.id), ['bal-a', 'bal-b', 'bal-c'], 'affinity status --cluster')
  })
}
