// The correctness check a target must pass before it is measured, which is also every
// user's first visit (where stickyCookie users get the balancer cookie they keep).
import http from 'node:http'
import { HOST, PATH, UPSTREAM_NAMES } from './upstreams.js'
import { userHeaders } from './users.js'

function get (port, headers, agent) {
  return new Promise((resolve) => {
    const req = http.get({ host: HOST, port, path: PATH, headers, agent }, (res) => {
      const chunks = []
      res.on('data', c => chunks.push(c))
      res.on('end', () => {
        let server
        try { server = JSON.parse(Buffer.concat(chunks).toString()).server } catch {}
        resolve({ status: res.statusCode, server, setCookie: res.headers['set-cookie'] })
      })
      res.on('error', (err) => resolve({ status: 0, error: err.message }))
    })
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')))
    req.on('error', (err) => resolve({ status: 0, error: err.message }))
  })
}

/** Runs `fn` over `items`, `limit` at a time. */
async function pool (items, limit, fn) {
  const out = new Array(items.length)
  let next = 0
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) { const i = next++; out[i] = await fn(items[i], i) }
  }))
  return out
}

/**
 * The correctness check and the users' first visits: one request per user (200 from an
 * upstream; stickyCookie: the balancer cookie each user then keeps), then 100 returning
 * users must stay where they were (sticky strategies) and get no new balancer cookie.
 */
export async function checkAndPrime (target, port, users) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 })
  const problems = []
  const cookieTarget = target.strategy?.cookie === true
  for (const u of users) u.balancerCookie = undefined
  try {
    const first = await get(port, userHeaders(users[0]), agent)
    if (first.status !== 200 || !UPSTREAM_NAMES.includes(first.server)) {
      return { ok: false, problems: [`first request: status ${first.status}${first.error ? ` (${first.error})` : ''}, server ${first.server}`] }
    }
    const visits = await pool(users, 16, (u) => get(port, userHeaders(u), agent))
    const split = UPSTREAM_NAMES.map(() => 0)
    let bad = 0
    let missingCookie = 0
    for (let i = 0; i < users.length; i++) {
      const v = visits[i]
      if (v.status !== 200 || !UPSTREAM_NAMES.includes(v.server)) { bad++; continue }
      split[UPSTREAM_NAMES.indexOf(v.server)]++
      users[i].server = v.server
      if (cookieTarget) {
        const c = (v.setCookie ?? []).map(s => s.split(';')[0]).find(s => s.startsWith('affinity='))
        if (c === undefined) missingCookie++
        else users[i].balancerCookie = c
      }
    }
    if (bad > 0) problems.push(`${bad} of ${users.length} first visits failed`)
    if (missingCookie > 0) problems.push(`${missingCookie} first visits got no balancer cookie`)
    let moved = 0
    let newCookie = 0
    const sample = users.slice(0, Math.min(100, users.length))
    if (target.strategy?.sticky === true || target.nginx !== undefined) {
      const again = await pool(sample, 16, (u) => get(port, userHeaders(u), agent))
      for (let i = 0; i < sample.length; i++) {
        if (again[i].server !== sample[i].server) moved++
        if ((again[i].setCookie ?? []).some(s => s.startsWith('affinity='))) newCookie++
      }
      if (moved > 0) problems.push(`${moved} of ${sample.length} returning users changed upstream`)
      if (newCookie > 0) problems.push(`${newCookie} of ${sample.length} returning users got a new balancer cookie`)
    }
    const spread = split.filter(x => x > 0).length
    if (!['direct', 'express-hello', 'node-hello'].includes(target.group) && spread < UPSTREAM_NAMES.length) problems.push(`first visits reached only ${spread} of ${UPSTREAM_NAMES.length} upstreams`)
    return { ok: bad === 0 && missingCookie === 0, problems, firstVisitSplit: split, returningChecked: target.strategy?.sticky === true || target.nginx !== undefined ? sample.length : 0 }
  } finally {
    agent.destroy()
  }
}
