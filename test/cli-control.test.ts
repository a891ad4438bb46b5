/**
 * `affinity status | drain | undrain | weight` (packages/core/src/cli/control.ts), run
 * in this process through the CLI's main with its output captured: help, argument
 * errors (exit 2), failures (exit 1), and the commands against a real redis-server
 * with balancers attached in this process. test/redis-control-fleet.test.ts runs the
 * CLI as a child process against balancer processes.
 */
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { cliLoadFrom, cliMain, type CliIo } from '@affinity/core/internal'
import { attached, upstreamEvent } from './helpers/control.js'
import { findRedisServer, freePort, startRedisServer } from './helpers/redis.js'

async function cli (args: string[], env: Record<string, string> = {}): Promise<{ code: number, out: string, err: string }> {
  let out = ''
  let err = ''
  const io: CliIo = { out: s => { out += s }, err: s => { err += s }, cwd: process.cwd() }
  const saved = { ...process.env }
  Object.assign(process.env, env)
  try {
    return { code: await cliMain(args, io), out, err }
  } finally {
    for (const k of Object.keys(env)) if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k]
  }
}

t.test('help: each command has its own; the top-level usage lists them', async t => {
  for (const command of ['status', 'drain', 'undrain', 'weight']) {
    const r = await cli([command, '--help'])
    t.equal(r.code, 0)
    t.match(r.out, new RegExp(`^Usage: affinity ${command}`), `${command} --help`)
    t.match(r.out, /--redis URL/)
    t.same((await cli(['help', command])).out, r.out, `affinity help ${command}`)
  }
  const top = await cli(['--help'])
  t.match(top.out, /status\s+the live balancer instances/)
  t.match(top.out, /drain\s+drain an upstream on every instance/)
  t.equal((await cli(['help', 'constructor'])).out, top.out, 'an unknown topic gets the usage')
})

t.test('wrong arguments: exit 2 with what to fix', async t => {
  const cases: Array<[string[], RegExp]> = [
    [['status', '--name', 'shop'], /--redis URL is required/],
    [['status', '--redis', 'redis://127.0.0.1:1'], /--name NAME is required/],
    [['status', '--redis', 'http://127.0.0.1:1', '--name', 'shop'], /expected a redis:\/\/ or rediss:\/\/ URL/],
    [['status', '--redis', 'redis://a:1', '--redis', 'redis://b:1', '--name', 'shop'], /add --cluster/],
    [['status', '--redis', 'redis://127.0.0.1:1', '--name', 'a{b}'], /no \{ or \}/],
    [['status', '--redis', 'redis://127.0.0.1:1', '--name', 'shop', 'extra'], /unexpected argument 'extra'/],
    [['status', '--redis', 'redis://127.0.0.1:1', '--name', 'shop', '--wait'], /--wait is for drain/],
    [['status', '--redis', 'redis://127.0.0.1:1', '--name', 'shop', '--frobnicate'], /Unknown option '--frobnicate'/],
    [['drain', '--redis', 'redis://127.0.0.1:1', '--name', 'shop'], /expected <id>, got 0 arguments/],
    [['drain', 'S1', '--redis', 'redis://127.0.0.1:1', '--name', 'shop', '--json'], /--json is for status/],
    [['weight', 'S1', '--redis', 'redis://127.0.0.1:1', '--name', 'shop'], /expected <id> <weight>/],
    [['weight', 'S1', '0', '--redis', 'redis://127.0.0.1:1', '--name', 'shop'], /<weight>: expected a number > 0, got '0'/],
    [['weight', 'S1', 'x', '--redis', 'redis://127.0.0.1:1', '--name', 'shop'], /<weight>: expected a number > 0/],
    [['undrain', 'S1', '--redis', 'redis://127.0.0.1:1', '--name', 'shop', '--timeout=0'], /--timeout: expected milliseconds > 0/],
  ]
  for (const [args, message] of cases) {
    const r = await cli(args)
    t.equal(r.code, 2, args.join(' '))
    t.match(r.err, message)
    t.match(r.err, new RegExp(`Run 'affinity ${args[0]} --help'`))
  }
})

t.test('Redis unreachable: exit 1, naming the URL with its password masked', async t => {
  const port = await freePort()
  const r = await cli(['status', '--redis', `redis://:s3cret@127.0.0.1:${port}`, '--name', 'shop', '--timeout', '1000'])
  t.equal(r.code, 1)
  t.match(r.err, new RegExp(`cannot reach Redis at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`))
  t.notMatch(r.err, /s3cret/)
  const env = await cli(['drain', 'S1', '--timeout', '1000'], { AFFINITY_REDIS_URL: `redis://127.0.0.1:${port}`, AFFINITY_CONTROL_NAME: 'shop' })
  t.equal(env.code, 1, '$AFFINITY_REDIS_URL and $AFFINITY_CONTROL_NAME stand for the options')
  t.match(env.err, /cannot reach Redis/)
})

t.test('@affinity/redis or ioredis missing: the command says what to install', async t => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'affinity-cli-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(path.join(dir, 'package.json'), '{}')
  const from = pathToFileURL(path.join(dir, 'package.json')).href
  await t.rejects(cliLoadFrom('@affinity/redis', [from]), { message: /this command needs @affinity\/redis and ioredis: npm install @affinity\/redis ioredis \(@affinity\/redis was not found from file:/ })
  await t.rejects(cliLoadFrom('ioredis', [from]), { message: /npm install @affinity\/redis ioredis \(ioredis was not found/ })
  const found = await cliLoadFrom('ioredis', [from, pathToFileURL(path.join(process.cwd(), 'package.json')).href])
  t.type(found.module.Cluster, 'function', 'the next base is tried: found beside the project')
})

const bin = findRedisServer()
if (bin !== undefined) {
  withRedis(bin)
} else if (process.env.AFFINITY_REQUIRE_REDIS === '1') {
  t.fail('redis-server is not on PATH, and AFFINITY_REQUIRE_REDIS=1 requires it (.ci/run installs it)')
}

function withRedis (bin: string): void {
  t.test('against a real Redis: drain, undrain and weight reach the attached balancers; status shows them', async t => {
    const server = await startRedisServer(t, bin)
    const redis = ['--redis', `redis://127.0.0.1:${server.port}`, '--name', 'shop']
    const upstreams = [{ id: 'S1', url: 'http://127.0.0.1:3001' }, { id: 'http://10.0.0.2:80/a b', url: 'http://10.0.0.2:80/' }]

    const none = await cli(['drain', 'S1', ...redis])
    t.equal(none.code, 0)
    t.match(none.out, /S1: drained under 'shop' \(operator state version 1\); no instance is live now: each applies it when it attaches/)

    const a = await attached(t, server.port, { name: 'shop', upstreams, control: { id: 'bal-a', reportMs: 100 } })
    const b = await attached(t, server.port, { name: 'shop', upstreams, control: { id: 'bal-b', reportMs: 100 } })
    t.equal(a.info('S1')!.state, 'draining', 'attached after the drain: starts drained')
    await Promise.all([a, b].map(x => new Promise(resolve => x.control.once('reported', resolve))))

    const unknown = await cli(['drain', 'S9', ...redis])
    t.equal(unknown.code, 1)
    t.match(unknown.err, /no live instance under 'shop' has upstream "S9"; they have: S1, http:\/\/10\.0\.0\.2:80\/a b\. Nothing was changed/)

    const drained = [a, b].map(x => upstreamEvent(x.balancer, 'draining', 'http://10.0.0.2:80/a b'))
    const odd = await cli(['drain', 'http://10.0.0.2:80/a b', ...redis, '--wait'])
    t.equal(odd.code, 0, odd.err)
    t.match(odd.out, /applied by all 2 live instances/)
    await Promise.all(drained)

    const undrained = [a, b].map(x => upstreamEvent(x.balancer, 'undrained', 'S1'))
    t.equal((await cli(['undrain', 'S1', ...redis])).code, 0)
    await Promise.all(undrained)
    const weighted = [a, b].map(x => upstreamEvent(x.balancer, 'weight', 'S1'))
    const w = await cli(['weight', 'S1', '2.5', ...redis, '--wait'])
    t.equal(w.code, 0, w.err)
    t.match(w.out, /S1: weight 2\.5 under 'shop' \(operator state version 4\); applied by all 2 live instances/)
    await Promise.all(weighted)

    await Promise.all([a, b].map(x => new Promise(resolve => x.control.once('reported', resolve))))
    const status = await cli(['status', ...redis])
    t.equal(status.code, 0)
    t.match(status.out, /^Control 'shop' on redis:\/\/127\.0\.0\.1:\d+: 2 live instances, operator state version 4\n/)
    t.match(status.out, /Operator state: S1 undrained, weight 2\.5 \(v4\); http:\/\/10\.0\.0\.2:80\/a b drained \(v2\)/)
    t.match(status.out, /instance\s+reported\s+state v\s+upstream\s+state\s+weight\s+in flight\s+bound users/)
    t.match(status.out, /bal-a\s+\d+ ms\s+v4\s+S1\s+up\s+2\.5\s+0\s+—/)
    t.match(status.out, /All instances agree/)
    const json = JSON.parse((await cli(['status', ...redis, '--json'])).out)
    t.same(json.instances.map((i: { id: string }) => i.id), ['bal-a', 'bal-b'])
    t.match(json.instances[0].upstreams[1], { id: 'http://10.0.0.2:80/a b', state: 'draining', weight: 1, inFlight: 0, boundUsers: null })

    // An instance configured differently (an upstream missing) shows in the disagreements.
    const c = await attached(t, server.port, { name: 'shop', upstreams: upstreams.slice(0, 1), control: { id: 'bal-c', reportMs: 100 } })
    await new Promise(resolve => c.control.once('reported', resolve))
    const split = await cli(['status', ...redis])
    t.match(split.out, /3 live instances/)
    t.match(split.out, /Instances disagree:\n {2}http:\/\/10\.0\.0\.2:80\/a b: draining on bal-a, bal-b; absent on bal-c\n/)
  })
}
