/**
 * Three balancer processes attached to one Redis control (the contract), on
 * a real redis-server: a drain through one instance's admin route reaches all three
 * within a second; a restarted instance comes up drained; `affinity status` (the CLI,
 * as a child process) lists the three; Redis killed mid-way: each instance keeps
 * working on its own, and when Redis restarts (same port, without its data) the
 * instances re-seed it, a conflict is settled one way for all, and views reappear.
 *
 * Without redis-server on PATH the file is skipped, unless AFFINITY_REQUIRE_REDIS=1.
 */
import t from 'tap'
import { cliMain } from '@affinity/core/internal'
import { request } from './helpers/http.js'
import { forkControlBalancer, runCli, type ChildMessage, type ForkedControlBalancer } from './helpers/control-fleet.js'
import { findRedisServer, startRedisServer } from './helpers/redis.js'
import { startUpstreams } from './helpers/upstreams.js'

const bin = findRedisServer()
if (bin !== undefined) {
  fleet(bin)
} else if (process.env.AFFINITY_REQUIRE_REDIS === '1') {
  t.fail('redis-server is not on PATH, and AFFINITY_REQUIRE_REDIS=1 requires it (.ci/run installs it)')
} else {
  t.plan(0, 'redis-server not installed; .ci/run installs it')
}

/** The CLI in this process (the same main as the child process runs), for the runs that need no separate process. */
async function cli (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const code = await cliMain(args, { out: s => { stdout += s }, err: s => { stderr += s }, cwd: process.cwd() })
  return { code, stdout, stderr }
}

const stateOf = (list: Array<{ id: string, state: string, weight: number }>, id: string): string | undefined => list.find(u => u.id === id)?.state
const weightOf = (list: Array<{ id: string, weight: number }>, id: string): number | undefined => list.find(u => u.id === id)?.weight

/** Resolves once every instance has reported a view after this call (so `affinity status` shows what they hold now). */
async function reported (fleet: ForkedControlBalancer[]): Promise<void> {
  await Promise.all(fleet.map(b => b.next(m => m.control === 'reported')))
}

function fleet (bin: string): void {
  t.test('three balancer processes under one control', async t => {
    const server = await startRedisServer(t, bin)
    const ups = await startUpstreams(3)
    t.teardown(() => Promise.all(ups.map(u => u.close())))
    const upstreams = ups.map(u => ({ id: u.name, url: u.url }))
    const start = (id: string): Promise<ForkedControlBalancer> => forkControlBalancer(t, { redisPort: server.port, name: 'shop', id, upstreams })
    const [a, b, c] = await Promise.all([start('bal-a'), start('bal-b'), start('bal-c')])
    const fleet = [a!, b!, c!]
    const redis = ['--redis', `redis://127.0.0.1:${server.port}`, '--name', 'shop']

    // 1. A drain through A's admin route reaches all three within a second.
    const draining = fleet.map(x => x.next(m => m.balancer === 'draining' && m.id === 'S2').then(() => performance.now()))
    const sent = performance.now()
    const res = await request(`${a!.url}/affinity/admin/drain/S2`, { method: 'POST' })
    t.equal(res.status, 202)
    const arrived = await Promise.all(draining)
    const ms = arrived.map(at => Math.round(at - sent))
    t.comment(`drain S2 through bal-a's admin route: 'draining' on bal-a, bal-b, bal-c after ${ms.join(', ')} ms`)
    for (const [i, x] of fleet.entries()) t.ok(ms[i]! < 1000, `${x.id} drained S2 within 1 s (${ms[i]} ms)`)

    // 2. `affinity status` lists the three, each with S2 draining.
    await reported(fleet)
    const status = await runCli(['status', ...redis, '--json'])
    t.equal(status.code, 0, status.stderr)
    const listed = JSON.parse(status.stdout) as { name: string, state: { version: number }, instances: Array<{ id: string, online: boolean, upstreams: Array<{ id: string, state: string }> }> }
    t.same(listed.instances.map(i => i.id), ['bal-a', 'bal-b', 'bal-c'], 'three live instances')
    for (const i of listed.instances) t.same(i.upstreams.map(u => [u.id, u.state]), [['S1', 'up'], ['S2', 'draining'], ['S3', 'up']], `${i.id}'s view`)
    t.match(listed.state, { version: 1, upstreams: { S2: { version: 1, drained: true } } }, "one operation stored, once")
    const table = await cli(['status', ...redis])
    t.equal(table.code, 0, table.stderr)
    t.match(table.stdout, /3 live instances/)
    t.comment(`affinity status:\n${table.stdout}`)

    // 3. A restarted instance comes up drained (the stored state is applied before it serves).
    await b!.kill()
    const b2 = await start('bal-b')
    fleet[1] = b2
    t.equal(stateOf(await b2.list(), 'S2'), 'draining', 'bal-b restarted drained')

    // 4. Redis killed: every instance keeps serving and applies local operations locally.
    const offline = fleet.map(x => x.next(m => m.control === 'offline'))
    await server.kill()
    await Promise.all(offline)
    const w5 = await request(`${a!.url}/affinity/admin/weight/S1`, { method: 'POST', body: '{"weight":5}' })
    t.equal(w5.status, 200, 'the admin route works without Redis')
    t.equal(w5.json().upstream.weight, 5)
    t.equal(weightOf(await c!.op('weight', 'S1', 7), 'S1'), 7, 'bal-c set S1 to 7 on its own')
    t.equal(stateOf(await b2.op('drain', 'S3'), 'S3'), 'draining', 'bal-b drained S3 on its own')
    t.equal(stateOf(await a!.list(), 'S3'), 'up', 'nothing travels while Redis is down')
    const down = await cli(['status', ...redis, '--timeout', '1000'])
    t.equal(down.code, 1)
    t.match(down.stderr, /cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+/)
    const proxied = await request(`${a!.url}/who`)
    t.equal(proxied.status, 200, 'traffic is unaffected')

    // 5. Redis back on the same port, empty (no persistence): a new epoch. Each instance
    // re-offers what it knows, kept only where nobody wrote first: the pre-outage drain
    // of S2 and bal-b's drain of S3 are stored; bal-a (5) and bal-c (7) both changed S1,
    // one wins and the other reports the conflict and follows it.
    const conflicts: ChildMessage[] = []
    for (const x of fleet) x.messages.on('message', (m: ChildMessage) => { if (m.control === 'conflict') conflicts.push(m) })
    const synced = fleet.map(x => x.next(m => m.control === 'synced'))
    const s3 = [a!, c!].map(x => x.next(m => m.balancer === 'draining' && m.id === 'S3'))
    await server.start()
    await Promise.all(synced)
    await Promise.all(s3)
    const lists = await Promise.all(fleet.map(x => x.list()))
    const weights = lists.map(l => weightOf(l, 'S1'))
    t.ok(weights.every(w => w === weights[0]) && (weights[0] === 5 || weights[0] === 7), `all three agree on S1's weight (${weights.join(', ')})`)
    for (const l of lists) t.same([stateOf(l, 'S2'), stateOf(l, 'S3')], ['draining', 'draining'])
    t.equal(conflicts.length, 1, 'exactly one of the two offline changes to S1 lost')
    t.match(conflicts[0]!.detail, { upstream: 'S1', stored: { weight: weights[0] } })
    await reported(fleet)
    const after = await cli(['status', ...redis, '--json'])
    t.equal(after.code, 0, after.stderr)
    const again = JSON.parse(after.stdout) as { state: { upstreams: Record<string, object> }, instances: Array<{ id: string, online: boolean }> }
    t.same(again.instances.map(i => [i.id, i.online]), [['bal-a', true], ['bal-b', true], ['bal-c', true]], 'the views are back')
    t.same(Object.keys(again.state.upstreams).sort(), ['S1', 'S2', 'S3'], 'Redis re-seeded')

  })
}
