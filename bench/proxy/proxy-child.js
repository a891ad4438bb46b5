// One proxy under test, in a child process of its own (`--role proxy --target <name>`):
// Fastify or Express, with Affinity or with the baseline proxy package; the doors on plain
// node:http (the floor, the core alone, Express hello world) are in node-doors.js.
import { once } from 'node:events'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { listenCore, listenExpressHello, listenFloor, listenNodeHello } from './node-doors.js'
import { affinityImport } from './packages.js'
import { TARGETS } from './targets.js'
import { HOST } from './upstreams.js'

const SECRET = 'bench-proxy-secret-0123456789abcdef-0123456789'

export async function makeStrategy (key) {
  const core = await affinityImport('core')
  switch (key) {
    case 'roundRobin': return core.roundRobin()
    case 'leastConnections': return core.leastConnections()
    case 'stickyCookie': return core.stickyCookie({ secret: SECRET })
    case 'stickyIp': return core.stickyIp()
    case 'hashRing': return core.consistentHash({ key: { header: 'x-user' } })
    case 'hashMaglev': return core.consistentHash({ key: { header: 'x-user' }, algorithm: 'maglev' })
    case 'ipHash': return core.ipHash()
  }
  throw new Error(`unknown strategy ${key}`)
}

async function listenFastify (t, origins) {
  const { default: Fastify } = await import('fastify')
  const app = Fastify({ logger: false, trustProxy: true })
  if (t.group === 'fastify-base') {
    const { default: fastifyHttpProxy } = await import('@fastify/http-proxy')
    let i = 0
    await app.register(fastifyHttpProxy, {
      upstream: '',
      replyOptions: { getUpstream: () => { i = (i + 1) % origins.length; return origins[i] } },
    })
  } else {
    const { default: affinity } = await affinityImport('fastify')
    await app.register(affinity, { upstreams: origins, strategy: await makeStrategy(t.strategy.key) })
  }
  await app.listen({ port: 0, host: HOST })
  return { port: app.server.address().port, close: () => app.close() }
}

async function listenExpress (t, origins) {
  const { default: express } = await import('express')
  const app = express()
  app.set('trust proxy', true)
  let lb
  if (t.group === 'express-base') {
    const { createProxyMiddleware } = await import('http-proxy-middleware')
    let i = 0
    // express-hpm: a keep-alive agent, as the undici pools behind the other Node proxies keep
    // their upstream connections open. express-hpm-noagent: http-proxy's default (no agent),
    // what users get out of the box: `Connection: close`, a new upstream connection per request.
    const agent = t.name === 'express-hpm' ? new http.Agent({ keepAlive: true }) : undefined
    app.use(createProxyMiddleware({
      router: () => { i = (i + 1) % origins.length; return origins[i] },
      changeOrigin: true,
      xfwd: true,
      ...(agent !== undefined ? { agent } : {}),
    }))
  } else {
    const { affinity } = await affinityImport('express')
    lb = affinity({ upstreams: origins, strategy: await makeStrategy(t.strategy.key) })
    app.use(lb)
  }
  // createServer(app): req/res born with the app's prototypes; else what app.listen() does.
  const server = t.createServer ? (await affinityImport('express')).createServer(app) : http.createServer(app)
  server.listen(0, HOST)
  await once(server, 'listening')
  return {
    port: server.address().port,
    close: async () => {
      await lb?.close()
      server.closeAllConnections()
      await new Promise(resolve => server.close(resolve))
    },
  }
}

/**
 * --alloc-prof: V8's sampling heap profiler, keeping samples of collected objects too, so
 * the profile shows where the bytes are allocated (GC pressure), not what stays alive.
 * Returns the function that writes the profile to `file`.
 */
async function sampleAllocations (file) {
  const { Session } = await import('node:inspector')
  const session = new Session()
  session.connect()
  await new Promise((resolve, reject) => session.post('HeapProfiler.startSampling', {
    samplingInterval: 16384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true,
  }, (err) => (err ? reject(err) : resolve())))
  return () => new Promise(resolve => session.post('HeapProfiler.stopSampling', (err, r) => {
    if (!err) fs.writeFileSync(file, JSON.stringify(r.profile))
    resolve()
  }))
}

function listenTarget (t, origins) {
  switch (t.group) {
    case 'floor': return listenFloor(origins)
    case 'core': return makeStrategy(t.strategy.key).then(s => listenCore(origins, s))
    case 'express-hello': return listenExpressHello(t.createServer === true)
    case 'node-hello': return listenNodeHello()
    case 'fastify': case 'fastify-base': return listenFastify(t, origins)
    default: return listenExpress(t, origins)
  }
}

/** The proxy child: listens, reports its port, exits when the parent says so or goes away. */
export async function runProxy (name) {
  const t = TARGETS.find(x => x.name === name.replace(/@base$/, ''))
  if (t === undefined) throw new Error(`unknown target ${name}`)
  const origins = JSON.parse(process.env.AFFINITY_BENCH_UPSTREAMS)
  const { port, close } = await listenTarget(t, origins)
  const allocDir = process.env.AFFINITY_BENCH_ALLOC_PROF
  const writeAllocations = allocDir ? await sampleAllocations(path.join(allocDir, `${name}.heapprofile`)) : undefined
  let exiting = false
  const exit = async () => {
    if (exiting) return
    exiting = true
    const force = setTimeout(() => process.exit(0), 3000)
    await writeAllocations?.()
    try { await close() } catch {}
    clearTimeout(force)
    process.exit(0) // also what writes the --cpu-prof profile
  }
  process.on('disconnect', exit)
  process.on('message', (m) => { if (m.type === 'exit') exit() })
  // Ctrl-C reaches the whole process group: exit cleanly (a --cpu-prof profile is written on exit).
  process.on('SIGINT', exit)
  process.on('SIGTERM', exit)
  process.send({ type: 'ready', port })
}
