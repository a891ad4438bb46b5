// What the decision trace ('affinity:pick' on node:diagnostics_channel) costs per pick
// (the BUILT packages: run `tsc -b` first, or `npm run bench:trace`).
//
// Cases, each in a process of its own (so call sites stay as monomorphic as in an app),
// each the median of 7 rounds of ≈0.3 s after a warm-up:
//   none          balancer.choose() with nobody subscribed: the default
//   unsubscribed  the same after a subscriber came and went (no lingering cost)
//   subscribed    with one subscriber (what tracing costs when someone listens)
//   guard         the `hasSubscribers` read alone, against an empty loop
// Strategy: consistentHash on an x-user header over 10 upstreams, 10,000 users (the
// trace digests the key only when someone listens).
// Usage: node bench/trace.js [--json]
import { fork } from 'node:child_process'
import diagnosticsChannel from 'node:diagnostics_channel'
import { fileURLToPath } from 'node:url'
import { parseArgs } from './args.js'
import { machine, machineLines } from './machine.js'
import { median } from './numbers.js'

const SELF = fileURLToPath(import.meta.url)
const CASES = ['none', 'unsubscribed', 'subscribed', 'guard']
const ROUNDS = 7
const USERS = 10_000


async function runCase (name) {
  const { createBalancer, consistentHash } = await import('@affinity/core')
  const balancer = createBalancer({
    upstreams: Array.from({ length: 10 }, (_, i) => ({ url: `http://127.0.0.1:${10_000 + i}`, id: `s${i}` })),
    strategy: consistentHash({ key: { header: 'x-user' } }),
    passive: false,
  })
  const reqs = Array.from({ length: USERS }, (_, i) => ({ method: 'GET', url: '/', headers: { 'x-user': `user-${i}` }, ip: '10.0.0.1', cookies: {} }))
  let sink = 0
  const listener = (m) => { sink += m.key.length }
  if (name === 'unsubscribed') {
    diagnosticsChannel.subscribe('affinity:pick', listener)
    for (let i = 0; i < 1000; i++) balancer.choose(reqs[i % USERS])
    diagnosticsChannel.unsubscribe('affinity:pick', listener)
  }
  if (name === 'subscribed') diagnosticsChannel.subscribe('affinity:pick', listener)
  const channel = diagnosticsChannel.channel('affinity:pick')
  const body = name === 'guard'
    ? (n) => { for (let i = 0; i < n; i++) if (channel.hasSubscribers) sink++ }
    : (n) => { for (let i = 0; i < n; i++) sink += balancer.choose(reqs[i % USERS]).reason.length }
  const empty = (n) => { for (let i = 0; i < n; i++) sink += i & 1 }
  const time = (fn, n) => { const t0 = process.hrtime.bigint(); fn(n); return Number(process.hrtime.bigint() - t0) / n }
  // Size rounds to ≈0.3 s after a warm-up.
  let n = 10_000
  for (const t0 = Date.now(); Date.now() - t0 < 300;) body(n)
  while (time(body, n) * n < 3e8 && n < 5e8) n *= 2
  const ns = []
  for (let r = 0; r < ROUNDS; r++) {
    const own = time(body, n)
    ns.push(name === 'guard' ? own - time(empty, n) : own)
  }
  await balancer.close()
  return { name, ns: median(ns), rounds: ns, picks: n, sink: sink > 0 }
}

if (process.argv[2] === '--case') {
  const r = await runCase(process.argv[3])
  process.send(r)
  process.disconnect()
} else {
  const { json } = parseArgs(process.argv.slice(2), {
    script: 'bench/trace.js',
    defaults: { json: false },
    flags: { '--json': o => { o.json = true } },
    help: 'node bench/trace.js [--json]   (build first, or npm run bench:trace)',
  })
  const results = []
  for (const name of CASES) {
    const child = fork(SELF, ['--case', name])
    const r = await new Promise((resolve, reject) => { child.once('message', resolve); child.once('exit', c => c && reject(new Error(`${name} exited ${c}`))) })
    results.push(r)
  }
  const by = Object.fromEntries(results.map(r => [r.name, r.ns]))
  if (json) {
    process.stdout.write(JSON.stringify({ node: process.version, results }, null, 2) + '\n')
  } else {
    const line = (label, v, note = '') => `${label.padEnd(44)}${v.toFixed(2).padStart(9)} ns${note}`
    for (const line of machineLines(machine(), `node bench/trace.js ${process.argv.slice(2).join(' ')}`.trim(), 9)) console.log(line)
    console.log('Decision trace cost: ns per balancer.choose(), consistentHash ring, 10 upstreams, 10,000 users; median of 7 rounds')
    console.log(line('choose(), nobody subscribed (default)', by.none))
    console.log(line('choose(), after a subscriber left', by.unsubscribed, `  (${(by.unsubscribed - by.none >= 0 ? '+' : '')}${(by.unsubscribed - by.none).toFixed(2)} ns vs default)`))
    console.log(line('choose(), one subscriber', by.subscribed, `  (+${(by.subscribed - by.none).toFixed(0)} ns: message + keyed digest)`))
    console.log(line('the hasSubscribers guard alone', by.guard, '  (what nobody listening costs per pick)'))
  }
}
