/**
 * examples/kubernetes is not applied in CI (there is no cluster here). Instead this
 * test parses its manifests and checks every name, port, path, label, env var and
 * duration in them against the example's code and against each other, then runs
 * the code: app.js behind a real balancer, and the preStop hook (prestop.js)
 * draining that pod through a real admin route; and balancer.js itself, two
 * replicas, discovering pods on a real DNS server (dnsmasq, as a headless Service
 * answers) and sharing a Redis control on a real redis-server.
 */
import { readFileSync, existsSync } from 'node:fs'
import t from 'tap'
import { parseAllDocuments, parse } from 'yaml'
import Fastify from 'fastify'
import affinity from '@affinity/fastify'
import { createBalancer, stickyCookie } from '@affinity/core'
import { cliMain } from '@affinity/core/internal'
import { nextEvent } from './helpers/control.js'
import { findDnsmasq, startDnsmasq, ZONE } from './helpers/dnsmasq.js'
import { Browser, request } from './helpers/http.js'
import { findRedisServer, startRedisServer } from './helpers/redis.js'
import { startHeadlessFleet } from './helpers/upstreams.js'

const dir = new URL('../examples/kubernetes/', import.meta.url)
const read = (file: string): string => readFileSync(new URL(file, dir), 'utf8')

interface Env { name: string, value?: string, valueFrom?: { fieldRef?: { fieldPath: string }, secretKeyRef?: { name: string, key: string } } }
interface Container {
  name: string
  image: string
  command?: string[]
  workingDir?: string
  ports?: Array<{ name: string, containerPort: number }>
  env?: Env[]
  readinessProbe?: { httpGet: { path: string, port: string } }
  lifecycle?: { preStop?: { exec: { command: string[] } } }
  volumeMounts?: Array<{ name: string, mountPath: string }>
}
interface PodSpec { terminationGracePeriodSeconds?: number, containers: Container[], initContainers?: Container[], volumes?: Array<{ name: string, configMap?: { name: string }, emptyDir?: object }> }
interface Doc {
  apiVersion: string
  kind: string
  metadata: { name: string, labels?: Record<string, string> }
  spec: {
    clusterIP?: string
    selector?: Record<string, string> & { matchLabels?: Record<string, string> }
    ports?: Array<{ name: string, port: number, targetPort: string | number }>
    replicas?: number
    template?: { metadata: { labels: Record<string, string> }, spec: PodSpec }
  }
}
interface Kustomization {
  resources: string[]
  configMapGenerator: Array<{ name: string, files: string[] }>
  secretGenerator: Array<{ name: string, literals: string[] }>
}

/** An example module: its declared environment (undefined: required) and constants. */
type Module = { ENV: Record<string, string | undefined> } & Record<string, unknown>
const load = async (file: string): Promise<Module> => await import(new URL(file, dir).href) as Module

/** The env var names a file reads (`env.X`, `process.env.X`, or through its ENV table). */
function envReads (source: string): Set<string> {
  return new Set([...source.matchAll(/\benv\.([A-Z_][A-Z0-9_]*)/g)].map(m => m[1]!))
}

t.test('examples/kubernetes: the manifests agree with the code and with each other', async t => {
  const kustomization = parse(read('kustomization.yaml')) as Kustomization
  const docs: Doc[] = []
  for (const file of kustomization.resources) {
    t.ok(existsSync(new URL(file, dir)), `${file} exists`)
    for (const d of parseAllDocuments(read(file))) {
      t.same(d.errors, [], `${file} parses`)
      docs.push(d.toJS() as Doc)
    }
  }
  const byKind = (kind: string): Doc[] => docs.filter(d => d.kind === kind)
  const named = (kind: string, name: string): Doc => {
    const d = docs.find(x => x.kind === kind && x.metadata.name === name)
    if (d === undefined) throw new Error(`no ${kind} ${name}`)
    return d
  }
  const configMaps = new Map(kustomization.configMapGenerator.map(g => [g.name, new Map(g.files.map(f => {
    const [key, file] = f.includes('=') ? f.split('=') : [f, f]
    return [key!, file!]
  }))]))
  const secrets = new Map(kustomization.secretGenerator.map(g => [g.name, new Set(g.literals.map(l => l.slice(0, l.indexOf('='))))]))
  for (const [name, files] of configMaps) for (const [key, file] of files) t.ok(existsSync(new URL(file, dir)), `configMap ${name}: ${key} from ${file}`)

  // Deployments: selectors match their pods; every Service selects one Deployment's pods and targets a named port of them.
  const deployments = byKind('Deployment')
  t.same(deployments.map(d => d.metadata.name).sort(), ['redis', 'shop', 'shop-balancer'])
  for (const d of deployments) t.same(d.spec.selector!.matchLabels, d.spec.template!.metadata.labels, `${d.metadata.name}: selector = pod labels`)
  const podsOf = (svc: Doc): Doc => {
    const matches = deployments.filter(d => Object.entries(svc.spec.selector!).every(([k, v]) => d.spec.template!.metadata.labels[k] === v))
    t.equal(matches.length, 1, `Service ${svc.metadata.name} selects one Deployment`)
    return matches[0]!
  }
  for (const svc of byKind('Service')) {
    const pods = podsOf(svc)
    for (const p of svc.spec.ports!) {
      const port = pods.spec.template!.spec.containers.flatMap(c => c.ports ?? []).find(cp => cp.name === p.targetPort)
      t.ok(port, `Service ${svc.metadata.name}: targetPort ${p.targetPort} is a port of ${pods.metadata.name}`)
    }
  }

  const balancerJs = await load('balancer.js')
  const appJs = await load('app.js')
  const prestopJs = await load('prestop.js')
  const sources = { 'balancer.js': read('balancer.js'), 'app.js': read('app.js'), 'prestop.js': read('prestop.js') }
  for (const [file, mod] of [['balancer.js', balancerJs], ['app.js', appJs], ['prestop.js', prestopJs]] as const) {
    t.same([...envReads(sources[file])].filter(n => !(n in mod.ENV)), [], `${file} declares every env var it reads in ENV`)
  }

  /** A container's env as the kubelet resolves it: literal values, $(VAR) expanded from earlier entries. */
  const envOf = (c: Container): Map<string, Env> => new Map((c.env ?? []).map(e => [e.name, e]))
  const value = (c: Container, name: string, fields: Record<string, string> = {}): string | undefined => {
    const e = envOf(c).get(name)
    if (e?.value !== undefined) return e.value.replace(/\$\(([A-Z_]+)\)/g, (_, v: string) => value(c, v, fields) ?? `$(${v})`)
    if (e?.valueFrom?.fieldRef !== undefined) return fields[e.valueFrom.fieldRef.fieldPath]
    return undefined
  }
  const checkEnv = (c: Container, modules: Module[], where: string): void => {
    const declared = new Set(modules.flatMap(m => Object.keys(m.ENV)))
    const env = envOf(c)
    const expansionOnly = new Set([...env.values()].flatMap(e => [...(e.value ?? '').matchAll(/\$\(([A-Z_]+)\)/g)].map(m => m[1]!)))
    for (const name of env.keys()) t.ok(declared.has(name) || expansionOnly.has(name), `${where}: ${name} is read by the code`)
    for (const m of modules) {
      for (const [name, fallback] of Object.entries(m.ENV)) if (fallback === undefined) t.ok(env.has(name), `${where}: required ${name} is set`)
    }
    for (const e of env.values()) {
      const ref = e.valueFrom?.secretKeyRef
      if (ref !== undefined) t.ok(secrets.get(ref.name)?.has(ref.key), `${where}: secret ${ref.name}/${ref.key} is generated`)
    }
  }

  // The app pods.
  const shop = named('Deployment', 'shop')
  const app = shop.spec.template!.spec.containers.find(c => c.name === 'app')!
  checkEnv(app, [appJs, prestopJs], 'shop/app')
  t.same(app.command, ['node', '/code/app.js'])
  t.same(app.lifecycle?.preStop?.exec.command, ['node', '/code/prestop.js'], 'the preStop hook runs prestop.js')
  const codeMount = app.volumeMounts!.find(m => m.mountPath === '/code')!
  const codeMap = shop.spec.template!.spec.volumes!.find(v => v.name === codeMount.name)!.configMap!.name
  t.same([...configMaps.get(codeMap)!.keys()].sort(), ['app.js', 'prestop.js'], `ConfigMap ${codeMap} holds the files run from /code`)
  t.equal(app.readinessProbe!.httpGet.path, appJs.HEALTH_PATH, 'readiness probe path = app.js HEALTH_PATH')
  t.equal(app.ports![0]!.containerPort, Number(value(app, 'PORT') ?? appJs.ENV.PORT), 'containerPort = PORT')
  const headless = named('Service', 'shop-headless')
  t.equal(headless.spec.clusterIP, 'None', 'the app Service is headless (one A record per ready pod)')
  t.equal(podsOf(headless), shop)
  t.equal(String(headless.spec.ports![0]!.port), value(app, 'APP_PORT'), 'APP_PORT (the upstream id\'s port) = the headless Service port')

  // The balancer pods.
  const lb = named('Deployment', 'shop-balancer')
  const balancer = lb.spec.template!.spec.containers.find(c => c.name === 'balancer')!
  checkEnv(balancer, [balancerJs], 'shop-balancer/balancer')
  t.equal(balancer.ports![0]!.containerPort, Number(value(balancer, 'PORT')), 'containerPort = PORT')
  t.equal(balancer.readinessProbe!.httpGet.path, balancerJs.READY_PATH, 'readiness probe path = balancer.js READY_PATH')
  t.equal(value(balancer, 'APP_DNS_NAME', { 'metadata.namespace': 'default' }), 'shop-headless.default.svc.cluster.local', 'APP_DNS_NAME is the headless Service, fully qualified')
  t.equal(value(balancer, 'APP_PORT'), String(headless.spec.ports![0]!.port), 'the balancer resolves the app on the headless Service\'s port')
  t.equal(value(balancer, 'APP_PORT'), String(app.ports![0]!.containerPort), 'which is the app\'s port')
  const redisUrl = new URL(value(balancer, 'REDIS_URL')!)
  const redisSvc = named('Service', redisUrl.hostname)
  t.equal(String(redisSvc.spec.ports![0]!.port), redisUrl.port, 'REDIS_URL names the redis Service and its port')
  t.equal(podsOf(redisSvc).metadata.name, 'redis')
  const install = lb.spec.template!.spec.initContainers!.find(c => c.name === 'install')!
  const lbCode = lb.spec.template!.spec.volumes!.find(v => v.name === install.volumeMounts!.find(m => m.mountPath === '/code')!.name)!.configMap!.name
  t.same([...configMaps.get(lbCode)!.keys()].sort(), ['balancer.js', 'package.json'])
  t.match(install.command!.join(' '), /cp \/code\/balancer\.js \/code\/package\.json \/app\/ && npm install/)
  t.equal(balancer.workingDir, '/app')
  t.same(balancer.command, ['node', 'balancer.js'])
  const installed = Object.keys((JSON.parse(read(configMaps.get(lbCode)!.get('package.json')!)) as { dependencies: Record<string, string> }).dependencies).sort()
  const imported = [...new Set([...sources['balancer.js'].matchAll(/^import .* from '([^.][^']*)'$/gm)].map(m => m[1]!).filter(s => !s.startsWith('node:')))].sort()
  t.same(installed, imported, 'the pods install exactly the packages balancer.js imports')
  t.same(Object.keys((JSON.parse(read('package.json')) as { dependencies: Record<string, string> }).dependencies).sort(), imported, 'as the workspace package.json lists them')

  // What the preStop hook calls: every balancer pod, on the admin route, with this pod's upstream id.
  const peers = named('Service', value(app, 'BALANCER_PEERS')!)
  t.equal(peers.spec.clusterIP, 'None', 'BALANCER_PEERS is headless: one address per balancer pod')
  t.equal(podsOf(peers), lb)
  t.equal(String(peers.spec.ports![0]!.port), value(app, 'BALANCER_PORT'))
  t.equal(value(app, 'BALANCER_PORT'), value(balancer, 'PORT'), 'BALANCER_PORT is the balancer\'s own port')
  t.equal(prestopJs.ADMIN_ROUTE, balancerJs.ADMIN_ROUTE, 'the hook calls the balancer\'s admin route')
  t.equal(value(app, 'APP_PORT'), value(balancer, 'APP_PORT'), 'the hook names the pod as the balancer does (POD_IP:APP_PORT)')
  t.equal(envOf(app).get('POD_IP')?.valueFrom?.fieldRef?.fieldPath, 'status.podIP')

  // The grace period, end to end (README.md): the hook's wait fits the pod's grace
  // period with time left for the app's shutdown; a discovered pod is not removed
  // while the hook may still be waiting for its users; a drain can complete in time.
  const graceMs = shop.spec.template!.spec.terminationGracePeriodSeconds! * 1000
  const hookMs = Number(value(app, 'DRAIN_TIMEOUT_MS')) + 5000 // prestop.js: timeoutMs + 5 s per call
  t.ok(graceMs - hookMs >= 20_000, `grace ${graceMs} ms leaves ≥ 20 s after the hook (${hookMs} ms) for SIGTERM`)
  t.ok(Number(value(balancer, 'REMOVE_GRACE_MS')) >= hookMs, 'REMOVE_GRACE_MS covers the hook: bound users are not moved while the pod drains')
  t.ok(Number(value(balancer, 'DRAIN_IDLE_MS')) < Number(value(app, 'DRAIN_TIMEOUT_MS')), 'a drain can complete before the hook gives up')
  const lbPreStop = balancer.lifecycle!.preStop!.exec.command
  t.ok(lb.spec.template!.spec.terminationGracePeriodSeconds! > Number(lbPreStop[1]), 'the balancer\'s own preStop pause fits its grace period')

  const readme = read('README.md')
  for (const file of ['kustomization.yaml', 'shop.yaml', 'balancer.yaml', 'redis.yaml', 'balancer.js', 'app.js', 'prestop.js']) t.ok(readme.includes(file), `README mentions ${file}`)
})

t.test('examples/kubernetes: app.js behind a balancer; prestop.js drains its pod through the admin route and waits', async t => {
  const { start } = await load('app.js') as unknown as { start (env: Record<string, string>): Promise<{ port: number, close (): Promise<void> }> }
  const { run } = await load('prestop.js') as unknown as { run (env: Record<string, string>, log: (s: string) => void): Promise<Array<{ status: number, body: { drained?: boolean } }>> }
  const pods = await Promise.all([start({ PORT: '0' }), start({ PORT: '0' })])
  // Ids as dnsDiscovery derives them: address:port.
  const upstreams = pods.map(p => ({ id: `127.0.0.1:${p.port}`, url: `http://127.0.0.1:${p.port}` }))
  const balancer = createBalancer({ upstreams, strategy: stickyCookie({ secret: 'kubernetes-example-test-secret-0123456789' }), drainIdleMs: 200 })
  const lb = Fastify()
  await lb.register(affinity, {
    balancer,
    admin: { route: '/affinity/admin', onRequest: (req, reply, done) => { if (req.headers.authorization === 'Bearer t0ken') done(); else void reply.code(401).send() } },
  })
  await lb.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await lb.close(); await balancer.close(); await Promise.all(pods.map(p => p.close())) })
  const lbPort = (lb.server.address() as { port: number }).port

  const user = new Browser()
  const first = (await user.get(`http://127.0.0.1:${lbPort}/cart`)).json()
  t.equal((await user.get(`http://127.0.0.1:${lbPort}/cart`)).json().visits, 2, 'the session lives in one pod')
  const home = upstreams.find(u => balancer.list().find(x => x.id === u.id)!.requests === 2)!
  t.equal(first.visits, 1)

  const lines: string[] = []
  const answers = await run({ POD_IP: '127.0.0.1', APP_PORT: home.id.split(':')[1]!, BALANCER_PEERS: '127.0.0.1', BALANCER_PORT: String(lbPort), ADMIN_TOKEN: 't0ken', DRAIN_TIMEOUT_MS: '10000' }, s => lines.push(s))
  t.equal(answers.length, 1)
  t.equal(answers[0]!.status, 200, lines.join('\n'))
  t.match(answers[0]!.body, { id: home.id, drained: true })
  t.equal(balancer.list().find(u => u.id === home.id)!.state, 'draining', 'the pod is drained; new users go to the other')
  t.match(lines[0], new RegExp(`^draining 127\\.0\\.0\\.1:${home.id.split(':')[1]} on 1 balancer replica`))
})

interface Replica { app: { server: { address (): { port: number } } }, balancer: import('@affinity/core').Balancer, control: import('@affinity/redis').RedisControl, close (): Promise<void> }

const dnsmasqBin = findDnsmasq()
const redisBin = findRedisServer()
if (dnsmasqBin !== undefined && redisBin !== undefined) {
  t.test('examples/kubernetes: balancer.js for real: two replicas find the pods by DNS, share a Redis control; prestop.js drains a pod everywhere; it leaves DNS and is forgotten', async t => {
    const pods = await startHeadlessFleet(3) // 127.0.0.2–4 on one port, as pod IPs behind a headless Service
    t.teardown(() => Promise.all(pods.map(p => p.close())))
    const name = `shop-headless.default.${ZONE}`
    const dns = await startDnsmasq(t, dnsmasqBin, { hosts: pods.map(p => [new URL(p.url).hostname, name] as [string, string]) })
    const redis = await startRedisServer(t, redisBin)
    const { start } = await load('balancer.js') as unknown as { start (env: Record<string, string>): Promise<Replica> }
    const port = String(pods[0]!.port)
    const env = (pod: string): Record<string, string> => ({
      PORT: '0', POD_NAME: pod, APP_DNS_NAME: name, APP_PORT: port, AFFINITY_SECRET: 'kubernetes-example-test-secret-0123456789', ADMIN_TOKEN: 't0ken',
      REDIS_URL: `redis://127.0.0.1:${redis.port}`, CONTROL_NAME: 'shop', DNS_INTERVAL_MS: '100', DNS_SERVERS: dns.server,
      REMOVE_GRACE_MS: '10000', DRAIN_IDLE_MS: '0', SLOW_START_MS: '0', LOG_LEVEL: 'silent',
    })
    const replicas = await Promise.all([start(env('shop-balancer-a')), start(env('shop-balancer-b'))])
    t.teardown(() => Promise.all(replicas.map(r => r.close())))
    const [a, b] = replicas as [Replica, Replica]
    const urlOf = (r: Replica): string => `http://127.0.0.1:${r.app.server.address().port}`
    const leaving = `127.0.0.3:${port}`
    t.same(a.balancer.list().map(u => u.id).sort(), pods.map(p => `${new URL(p.url).hostname}:${port}`).sort(), 'the pods, by address:port, from DNS')

    const res = await request(`${urlOf(a)}/cart`)
    t.equal(res.status, 200, 'proxied to a pod')
    t.equal((await request(`${urlOf(a)}/affinity/admin`)).status, 401, 'the admin routes want the token')

    // The pod 127.0.0.3 is deleted: its preStop hook drains it (here through replica A,
    // the one BALANCER_PEERS resolves to); the Redis control drains it on B too.
    const onB = nextEvent<[{ id: string }, string]>(b.balancer, 'draining', (info) => info.id === leaving)
    const lines: string[] = []
    const { run } = await load('prestop.js') as unknown as { run (env: Record<string, string>, log: (s: string) => void): Promise<Array<{ status: number, body: object }>> }
    const answers = await run({ POD_IP: '127.0.0.3', APP_PORT: port, BALANCER_PEERS: '127.0.0.1', BALANCER_PORT: String(a.app.server.address().port), ADMIN_TOKEN: 't0ken', DRAIN_TIMEOUT_MS: '10000' }, s => lines.push(s))
    t.match(answers, [{ status: 200, body: { id: leaving, drained: true } }], lines.join('\n'))
    const [, reason] = await onB
    t.equal(reason, 'draining', 'B drained it as an operator\'s drain, through Redis')

    await Promise.all(replicas.map(r => nextEvent(r.control, 'reported')))
    let out = ''
    t.equal(await cliMain(['status', '--redis', `redis://127.0.0.1:${redis.port}`, '--name', 'shop', '--json'], { out: s => { out += s }, err: () => {}, cwd: process.cwd() }), 0)
    const status = JSON.parse(out) as { instances: Array<{ id: string, upstreams: Array<{ id: string, state: string }> }> }
    t.same(status.instances.map(i => [i.id, i.upstreams.find(u => u.id === leaving)?.state]), [['shop-balancer-a', 'draining'], ['shop-balancer-b', 'draining']], 'affinity status: both replicas, the pod draining on each')

    // It leaves DNS (its endpoint turned not-ready): each replica removes it once idle, and
    // the stored drain of that address is forgotten.
    const removed = replicas.map(r => nextEvent<[{ id: string }, string]>(r.balancer, 'removed', (info) => info.id === leaving))
    const forgotten = Promise.race(replicas.map(r => nextEvent(r.control, 'forgotten')))
    await dns.setHosts(pods.filter(p => !p.url.includes('127.0.0.3')).map(p => [new URL(p.url).hostname, name]))
    for (const [, why] of await Promise.all(removed)) t.equal(why, 'discovery')
    t.same(await forgotten, [leaving])
    t.same((await a.control.state()).upstreams, {}, 'nothing stored for an address a new pod may get')
  })
} else if (process.env.AFFINITY_REQUIRE_DNSMASQ === '1' || process.env.AFFINITY_REQUIRE_REDIS === '1') {
  t.fail('dnsmasq and redis-server are required (.ci/run installs them)')
} else {
  t.comment('balancer.js not run: dnsmasq or redis-server is not installed (.ci/run installs them)')
}
