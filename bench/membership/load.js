// The load generator of bench/membership.js (`--role load`): autocannon in a process of
// its own, so the balancer's process runs nothing but the balancer and the event-loop
// delay it shows is the balancer's. Driven by the parent over IPC:
//   prime  one request per user (stickyCookie users keep the cookie they get)
//   run    a timed run            → result
//   start  an open-ended run (the roll), answered with 'started'; stop → result
// Latency percentiles come from every response's own time (as bench/proxy/load.js).
import http from 'node:http'
import { percentile } from '../numbers.js'
import { userHeaders } from '../proxy/users.js'

const PATH = '/api/cart'
let autocannon

function get (port, headers, agent) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: PATH, headers, agent }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode, setCookie: res.headers['set-cookie'] }))
    })
    req.on('error', () => resolve({ status: 0 }))
  })
}

/** Every user's first visit, 16 at a time; returns the balancer cookie each got (or undefined). */
async function prime (port, users) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 })
  let next = 0
  let failed = 0
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < users.length) {
      const u = users[next++]
      const r = await get(port, userHeaders(u), agent)
      if (r.status !== 200) failed++
      u.balancerCookie = (r.setCookie ?? []).map(s => s.split(';')[0]).find(s => s.startsWith('affinity='))
    }
  }))
  agent.destroy()
  return failed
}

/** One autocannon run; `seconds` undefined: until stop(). Each connection cycles its own users. */
function load (port, users, connections, seconds) {
  const requests = users.map(u => ({ method: 'GET', path: PATH, headers: userHeaders(u) }))
  const slices = Array.from({ length: connections }, (_, c) => requests.filter((_, i) => i % connections === c))
  let clientIndex = 0
  let times = new Float64Array(1 << 16)
  let n = 0
  let ok = 0
  const t0 = performance.now()
  const inst = autocannon({
    url: `http://127.0.0.1:${port}`,
    connections,
    pipelining: 1,
    duration: seconds ?? 3600,
    sampleInt: 100,
    timeout: 10,
    requests: [requests[0]],
    setupClient: (client) => client.setRequests(slices[clientIndex++ % connections]),
  })
  inst.on('response', (_client, status, _bytes, ms) => {
    if (n === times.length) { const bigger = new Float64Array(times.length * 2); bigger.set(times); times = bigger }
    times[n++] = ms
    if (status >= 200 && status < 300) ok++
  })
  const done = inst.then(r => {
    const secs = (performance.now() - t0) / 1000
    return { seconds: secs, responses: n, rps: n / secs, p50: percentile(times, n, 50), p99: percentile(times, n, 99), max: percentile(times, n, 100), ok, non2xx: r.non2xx, errors: r.errors, timeouts: r.timeouts }
  })
  return { stop: () => inst.stop(), done }
}

export async function runLoad () {
  autocannon = (await import('autocannon')).default
  let users = []
  let running
  process.on('disconnect', () => process.exit(0))
  process.on('message', async (m) => {
    if (m.type === 'users') users = m.users
    else if (m.type === 'prime') process.send({ type: 'primed', failed: await prime(m.port, users) })
    else if (m.type === 'run') process.send({ type: 'result', ...(await load(m.port, users, m.connections, m.seconds).done) })
    else if (m.type === 'start') {
      running = load(m.port, users, m.connections, undefined)
      process.send({ type: 'started' })
    } else if (m.type === 'stop') {
      running.stop()
      process.send({ type: 'result', ...(await running.done) })
      running = undefined
    }
  })
  process.send({ type: 'ready' })
}
