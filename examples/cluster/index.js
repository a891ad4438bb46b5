// The balancer on every core with node:cluster: the primary forks one worker per
// core (os.availableParallelism()), each runs balancer.js, and they all accept
// connections on one port (the primary hands them out in turn). A user's requests
// land on different workers and still reach the same upstream, with nothing shared
// between the workers.
//
//   node examples/cluster/index.js             # runs the walk-through, exits
//   node examples/cluster/index.js --serve     # keeps the workers running (PORT, default 8080)
//
// Build the workspace first (`npm run build`): `@affinity/*` resolves to packages/*/dist.
import cluster from 'node:cluster'
import { once } from 'node:events'
import http from 'node:http'
import os from 'node:os'
import { fileURLToPath, pathToFileURL } from 'node:url'

const SECRET = process.env.AFFINITY_SECRET ?? 'example-only-secret-use-32-random-characters'

/** Upstreams S1, S2, S3 that answer with their name; `close()` stops them. */
async function startUpstreams () {
  const list = []
  for (const id of ['S1', 'S2', 'S3']) {
    const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(`{"server":"${id}"}`))
    await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
    list.push({ id, url: `http://127.0.0.1:${server.address().port}`, server })
  }
  return {
    list: list.map(({ id, url }) => ({ id, url })),
    close: () => Promise.all(list.map(u => new Promise(resolve => u.server.close(resolve)))),
  }
}

/**
 * Forks `workers` workers running balancer.js and resolves once all of them listen,
 * with the shared port. They inherit this process's Node flags, so they load
 * `@affinity/*` as this process does (dist, or the sources under the test suite).
 */
export async function startCluster ({ workers = os.availableParallelism(), upstreams, port = 0 }) {
  cluster.setupPrimary({ exec: fileURLToPath(new URL('./balancer.js', import.meta.url)), execArgv: process.execArgv })
  const env = { AFFINITY_SECRET: SECRET, UPSTREAMS: JSON.stringify(upstreams), PORT: String(port), HOST: '127.0.0.1' }
  const forked = Array.from({ length: workers }, () => cluster.fork(env))
  const listening = forked.map(w => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker ${w.id} did not listen within 90 s`)), 90_000)
    w.once('listening', (address) => { clearTimeout(timer); resolve(address.port) })
    w.once('exit', (code) => { clearTimeout(timer); reject(new Error(`worker ${w.id} exited with ${code} before listening (is the workspace built? npm run build)`)) })
  }))
  let ports
  try {
    ports = await Promise.all(listening)
  } catch (err) {
    await stopCluster(forked)
    throw err
  }
  return { workers: forked, port: ports[0], ports }
}

/** Asks every worker to finish and waits for it to exit (killing it after 5 s); resolves with the exit codes. */
export function stopCluster (workers) {
  return Promise.all(workers.map(async (w) => {
    if (w.process.exitCode !== null || w.process.signalCode !== null) return w.process.exitCode
    const exited = once(w, 'exit')
    const timer = setTimeout(() => w.process.kill('SIGKILL'), 5000)
    if (w.isConnected()) w.send('shutdown')
    else w.process.kill('SIGTERM')
    const [code, signal] = await exited
    clearTimeout(timer)
    return code ?? signal
  }))
}

/** One request on its own connection (no keep-alive), so each may be handed to another worker. */
function get (port, path, headers = {}) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c) => { body += c })
      res.on('end', () => {
        const cookie = (res.headers['set-cookie'] ?? []).find(c => c.startsWith('affinity='))
        resolve({ server: JSON.parse(body).server, worker: res.headers['x-worker'], cookie: cookie?.split(';')[0] })
      })
    }).on('error', reject)
  })
}

export async function run ({ log = console.log, workers = os.availableParallelism(), users = 12, requests = 6 } = {}) {
  const upstreams = await startUpstreams()
  let started
  try {
    started = await startCluster({ workers, upstreams: upstreams.list })
    log(`${workers} workers (pids ${started.workers.map(w => w.process.pid).join(', ')}) on http://127.0.0.1:${started.port}`)
    const rows = []
    for (let i = 1; i <= users; i++) {
      const user = `user-${String(i).padStart(2, '0')}`
      let cookie
      const cookieVisits = []
      const hashVisits = []
      // A user's requests in a row, each on a new connection: the primary hands
      // connections to the workers in turn, so they alternate between workers.
      for (let r = 0; r < requests; r++) {
        const c = await get(started.port, '/cookie/whoami', cookie === undefined ? {} : { cookie })
        cookie ??= c.cookie
        cookieVisits.push(c)
      }
      for (let r = 0; r < requests; r++) hashVisits.push(await get(started.port, '/hash/whoami', { 'x-user-id': user }))
      const row = {
        user,
        cookie: { servers: [...new Set(cookieVisits.map(v => v.server))], workers: [...new Set(cookieVisits.map(v => v.worker))], issued: cookieVisits.filter(v => v.cookie !== undefined).length },
        hash: { servers: [...new Set(hashVisits.map(v => v.server))], workers: [...new Set(hashVisits.map(v => v.worker))] },
      }
      rows.push(row)
      log(`${user}  cookie → ${row.cookie.servers.join(',')} via workers ${row.cookie.workers.join(',')} (cookie issued ${row.cookie.issued}×)   hash → ${row.hash.servers.join(',')} via workers ${row.hash.workers.join(',')}`)
    }
    const summary = {
      workers,
      users: rows.length,
      cookieOneUpstream: rows.filter(r => r.cookie.servers.length === 1).length,
      hashOneUpstream: rows.filter(r => r.hash.servers.length === 1).length,
      cookieSeveralWorkers: rows.filter(r => r.cookie.workers.length > 1).length,
      hashSeveralWorkers: rows.filter(r => r.hash.workers.length > 1).length,
      cookieIssuedOnce: rows.filter(r => r.cookie.issued === 1).length,
      placement: Object.fromEntries(upstreams.list.map(u => [u.id, rows.filter(r => r.cookie.servers[0] === u.id).length])),
      rows,
    }
    log(`stickyCookie: ${summary.cookieOneUpstream}/${summary.users} users on one upstream, ${summary.cookieSeveralWorkers} of them served by several workers; placement ${JSON.stringify(summary.placement)}`)
    log(`consistentHash: ${summary.hashOneUpstream}/${summary.users} users on one upstream, ${summary.hashSeveralWorkers} of them served by several workers`)
    return summary
  } finally {
    if (started !== undefined) log(`workers exited with ${(await stopCluster(started.workers)).join(', ')}`)
    await upstreams.close()
  }
}

if (cluster.isPrimary && process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv.includes('--serve')) {
    const upstreams = await startUpstreams()
    const { workers, port } = await startCluster({ upstreams: upstreams.list, port: Number(process.env.PORT ?? 8080) })
    console.log(`${workers.length} workers on http://127.0.0.1:${port}  (try: curl -i -c jar -b jar http://127.0.0.1:${port}/cookie/)  Ctrl-C stops them`)
    process.once('SIGINT', () => { void stopCluster(workers).then(upstreams.close) })
  } else {
    await run()
  }
}
