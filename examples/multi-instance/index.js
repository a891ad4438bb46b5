// Two balancer processes in front of the same three upstreams, sharing nothing but
// their configuration: the same secret and the same upstream ids, listed in a
// different order. A user whose cookie was issued by instance A lands on the same
// upstream through instance B, and consistentHash on a user-id header makes the
// same choice on both. That is what lets you run several balancers (behind DNS
// round robin or an L4 load balancer) with no shared store.
//
//   node examples/multi-instance/index.js
//
// Build the workspace first (`npm run build`): `@affinity/*` resolves to packages/*/dist.
import { fork } from 'node:child_process'
import http from 'node:http'
import { fileURLToPath, pathToFileURL } from 'node:url'

const SECRET = process.env.AFFINITY_SECRET ?? 'example-only-secret-use-32-random-characters'
const BALANCER = fileURLToPath(new URL('./balancer.js', import.meta.url))

/** An upstream that says who it is. */
async function startUpstream (name) {
  const server = http.createServer((_req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ server: name }))
  })
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  return { id: name, url: `http://127.0.0.1:${server.address().port}`, server }
}

/**
 * Starts balancer.js in a child process and resolves with its URL once it listens.
 *
 * The child gets the parent's own Node flags (fork's default, `execArgv:
 * process.execArgv`, written out here), so it resolves `@affinity/*` exactly as this
 * process does: run with plain `node`, both load packages/*\/dist; run in-process by
 * the test suite, both load the TypeScript sources through tap's loader and the
 * `--conditions=@affinity/source` flag. That way the child never needs something the
 * parent did not (no stale or missing dist under test, no loader when run directly).
 */
function startBalancer (instance, upstreams) {
  const child = fork(BALANCER, [], {
    execArgv: process.execArgv,
    env: { ...process.env, INSTANCE: instance, AFFINITY_SECRET: SECRET, UPSTREAMS: JSON.stringify(upstreams), PORT: '0' },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'], // stderr shows if it crashes
  })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill(); reject(new Error(`balancer ${instance} did not start within 90 s`)) }, 90_000)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`balancer ${instance} exited with code ${code} before listening (its error is above; is the workspace built? npm run build)`))
    })
    child.once('message', (m) => {
      clearTimeout(timer)
      child.removeAllListeners('exit')
      resolve({ instance, url: `http://127.0.0.1:${m.port}`, child, order: upstreams.map(u => u.id) })
    })
  })
}

/** Asks a balancer to close, and waits for its process to exit (killing it after 5 s). */
function stopBalancer ({ child }) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode)
  return new Promise(resolve => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
    child.once('exit', (code, signal) => { clearTimeout(timer); resolve(code ?? signal) })
    if (child.connected) child.send('close')
    else child.kill('SIGTERM')
  })
}

async function get (url, headers = {}) {
  const res = await fetch(url, { headers })
  const body = await res.json()
  const cookie = res.headers.getSetCookie().find(c => c.startsWith('affinity='))
  return { server: body.server, balancer: res.headers.get('x-balancer'), cookie: cookie?.split(';')[0] }
}

export async function run ({ log = console.log, users = 20 } = {}) {
  const upstreams = await Promise.all(['S1', 'S2', 'S3'].map(startUpstream))
  const list = upstreams.map(({ id, url }) => ({ id, url }))
  const balancers = []
  try {
    // Same ids, different order on each instance. (allSettled: if one fails to start,
    // the other is still stopped in `finally`.)
    const started = await Promise.allSettled([
      startBalancer('A', [list[0], list[1], list[2]]),
      startBalancer('B', [list[2], list[0], list[1]]),
    ])
    for (const r of started) if (r.status === 'fulfilled') balancers.push(r.value)
    const failed = started.find(r => r.status === 'rejected')
    if (failed !== undefined) throw failed.reason
    const [a, b] = balancers
    for (const x of balancers) log(`balancer ${x.instance}: ${x.url} (pid ${x.child.pid}), upstreams listed as ${x.order.join(', ')}`)

    const rows = []
    for (let i = 1; i <= users; i++) {
      const user = `user-${String(i).padStart(2, '0')}`
      // stickyCookie: first visit on A (which picks an upstream and issues the cookie),
      // then the same browser on B, carrying A's cookie.
      const first = await get(`${a.url}/cookie/whoami`)
      const again = await get(`${b.url}/cookie/whoami`, { cookie: first.cookie })
      // consistentHash: the same user id on both instances, no cookie involved.
      const hashA = await get(`${a.url}/hash/whoami`, { 'x-user-id': user })
      const hashB = await get(`${b.url}/hash/whoami`, { 'x-user-id': user })
      const row = {
        user,
        cookie: { a: first.server, b: again.server, agreed: first.server === again.server, reissuedByB: again.cookie !== undefined, answeredBy: [first.balancer, again.balancer] },
        hash: { a: hashA.server, b: hashB.server, agreed: hashA.server === hashB.server },
      }
      rows.push(row)
      log(`${user}  cookie from A → ${row.cookie.a}, same cookie on B → ${row.cookie.b} ${row.cookie.agreed ? '✓' : '✗'}${row.cookie.reissuedByB ? ' (B re-issued it!)' : ''}   hash(x-user-id) A → ${row.hash.a}, B → ${row.hash.b} ${row.hash.agreed ? '✓' : '✗'}`)
    }

    const count = (pick) => Object.fromEntries(upstreams.map(u => [u.id, rows.filter(r => pick(r) === u.id).length]))
    const summary = {
      users: rows.length,
      cookieAgreed: rows.filter(r => r.cookie.agreed).length,
      cookieReissuedByB: rows.filter(r => r.cookie.reissuedByB).length,
      hashAgreed: rows.filter(r => r.hash.agreed).length,
      cookieSpread: count(r => r.cookie.a),
      hashSpread: count(r => r.hash.a),
      rows,
    }
    log(`stickyCookie: ${summary.cookieAgreed}/${summary.users} users on the same upstream through A and B (B re-issued ${summary.cookieReissuedByB} cookies); placement ${JSON.stringify(summary.cookieSpread)}`)
    log(`consistentHash: ${summary.hashAgreed}/${summary.users} users on the same upstream through A and B; placement ${JSON.stringify(summary.hashSpread)}`)
    return summary
  } finally {
    const codes = await Promise.all(balancers.map(stopBalancer))
    log(`balancers exited with ${codes.join(', ')}`)
    await Promise.all(upstreams.map(u => new Promise(resolve => u.server.close(resolve))))
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run()
}
