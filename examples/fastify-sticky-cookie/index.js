// An existing Fastify app (it has its own `/` and `/health` routes) mounts Affinity
// under /app, in front of three "session" servers that keep each user's visit
// counter in their own memory. `stickyCookie` keeps a user with a cookie jar (a
// browser) on one server, so their session survives from one request to the next.
//
//   node examples/fastify-sticky-cookie/index.js           # runs the walk-through, exits
//   node examples/fastify-sticky-cookie/index.js --serve   # keeps it running to poke with curl
//
// Build the workspace first (`npm run build`): `@affinity/*` resolves to packages/*/dist.
import http from 'node:http'
import { randomUUID } from 'node:crypto'
import { pathToFileURL } from 'node:url'
import Fastify from 'fastify'
import affinity from '@affinity/fastify'
import { stickyCookie } from '@affinity/core'

// ≥ 32 characters, the same on every balancer instance, kept out of source control.
// The fallback is for this example only.
const SECRET = process.env.AFFINITY_SECRET ?? 'example-only-secret-use-32-random-characters'

/**
 * A stand-in for one instance of your stateful app: sessions live in this
 * process's memory only. It sets its own `sid` cookie, which reaches the client
 * next to the balancer's cookie.
 */
async function startSessionServer (name) {
  const sessions = new Map() // sid → visit count
  const server = http.createServer((req, res) => {
    const sid = /(?:^|;\s*)sid=([^;]+)/.exec(req.headers.cookie ?? '')?.[1]
    const known = sid !== undefined && sessions.has(sid)
    const id = known ? sid : randomUUID()
    const visits = (sessions.get(id) ?? 0) + 1
    sessions.set(id, visits)
    res.setHeader('content-type', 'application/json')
    if (!known) res.setHeader('set-cookie', `sid=${id}; Path=/; HttpOnly; SameSite=Lax`)
    // The upstream sees the path below the prefix: /app/visit arrives as /visit.
    res.end(JSON.stringify({ server: name, path: req.url, visits }))
  })
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  return { name, url: `http://127.0.0.1:${server.address().port}`, server, sessions }
}

/** Starts the three session servers and the Fastify app; `close()` stops everything. */
export async function start ({ port = 0 } = {}) {
  const upstreams = await Promise.all(['S1', 'S2', 'S3'].map(startSessionServer))

  // --- your existing app --------------------------------------------------------
  const app = Fastify({ logger: false })
  app.get('/', async () => ({ app: 'my-existing-app', hint: 'the balanced part lives under /app' }))
  app.get('/health', async () => ({ status: 'ok' }))

  // --- Affinity, mounted under /app ------------------------------------------------
  await app.register(affinity, {
    prefix: '/app', // /app/visit reaches an upstream as /visit (rewritePrefix: '' is the default)
    // Give each upstream a stable `id`: the cookie names the id (opaquely), so
    // upstreams can change address or order without logging anyone out.
    upstreams: upstreams.map(u => ({ id: u.name, url: u.url })),
    strategy: stickyCookie({
      secret: SECRET,
      maxAge: 3600, // seconds; omit it for a browser-session cookie
      path: '/app', // the cookie is only sent to the balanced part of the site
      // httpOnly: true, sameSite: 'lax', secure: 'auto' (Secure over https) are the defaults;
      // new users are placed by leastConnections() (option `assign`).
    }),
  })
  // The balancer built from this shorthand is closed with the app (app.close()).

  await app.listen({ port, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${app.server.address().port}`
  return {
    app,
    url,
    upstreams,
    async close () {
      await app.close()
      await Promise.all(upstreams.map(u => new Promise(resolve => u.server.close(resolve))))
    },
  }
}

/** A browser-like cookie jar, just enough for this example (it ignores Path and expiry). */
class CookieJar {
  #cookies = new Map()
  store (response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';')
      const eq = pair.indexOf('=')
      this.#cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim())
    }
  }

  header () { return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ') }
}

/** GET through the app, with a jar (a browser) or without one (a client that drops cookies). */
async function get (url, jar) {
  const cookie = jar?.header()
  const headers = cookie ? { cookie } : {}
  const res = await fetch(url, { headers })
  jar?.store(res)
  return { status: res.status, setCookie: res.headers.getSetCookie(), body: await res.json() }
}

/** Turns `name=value; Path=/app; Max-Age=3600; HttpOnly` into { name, value, attributes }. */
function parseSetCookie (line) {
  const [pair, ...attrs] = line.split(';').map(s => s.trim())
  const eq = pair.indexOf('=')
  const attributes = {}
  for (const a of attrs) {
    const i = a.indexOf('=')
    if (i === -1) attributes[a] = true
    else attributes[a.slice(0, i)] = a.slice(i + 1)
  }
  return { name: pair.slice(0, eq), value: pair.slice(eq + 1), attributes }
}

/** Runs the walk-through against a fresh set of servers and returns what it saw. */
export async function run ({ log = console.log } = {}) {
  const env = await start()
  try {
    const { url, upstreams } = env
    log(`App on ${url}; upstreams ${upstreams.map(u => `${u.name}=${u.url}`).join(', ')}`)

    // 1. Users with a cookie jar stay on one server: their session counter keeps counting.
    const users = []
    let firstVisit
    for (const name of ['alice', 'bob', 'carol']) {
      const jar = new CookieJar()
      const visits = []
      for (let i = 0; i < 4; i++) {
        const r = await get(`${url}/app/visit`, jar)
        if (firstVisit === undefined) firstVisit = r
        visits.push(r)
      }
      const user = {
        user: name,
        servers: [...new Set(visits.map(v => v.body.server))],
        visits: visits.map(v => v.body.visits),
        // How many responses carried the balancer's cookie (it is set once, not every time).
        affinityCookiesSet: visits.filter(v => v.setCookie.some(c => c.startsWith('affinity='))).length,
      }
      users.push(user)
      log(`${name.padEnd(6)} 4 requests → ${user.servers.join(', ')}; session visits ${user.visits.join(', ')}; affinity cookie set ${user.affinityCookiesSet}×`)
    }

    // 2. Without a cookie jar every request is a "new user": placed anew, session lost.
    const noJar = []
    for (let i = 0; i < 4; i++) noJar.push(await get(`${url}/app/visit`))
    const cookieless = { servers: [...new Set(noJar.map(v => v.body.server))], visits: noJar.map(v => v.body.visits) }
    log(`no jar 4 requests → ${cookieless.servers.join(', ')}; session visits ${cookieless.visits.join(', ')} (each request starts over)`)

    // 3. The app's own routes are untouched: answered by Fastify, no balancer cookie,
    //    nothing reaches an upstream.
    const before = upstreams.reduce((n, u) => n + [...u.sessions.values()].reduce((a, b) => a + b, 0), 0)
    const ownRoutes = {}
    for (const path of ['/', '/health']) {
      const res = await fetch(`${url}${path}`)
      ownRoutes[path] = { status: res.status, body: await res.json(), setCookie: res.headers.getSetCookie() }
      log(`GET ${path.padEnd(7)} → ${res.status} ${JSON.stringify(ownRoutes[path].body)}; Set-Cookie: ${ownRoutes[path].setCookie.length === 0 ? 'none' : ownRoutes[path].setCookie.join(' | ')}`)
    }
    const after = upstreams.reduce((n, u) => n + [...u.sessions.values()].reduce((a, b) => a + b, 0), 0)
    const ownRoutesReachedUpstreams = after !== before

    // 4. The cookie the balancer set on alice's first response, next to the upstream's own.
    const affinityLine = firstVisit.setCookie.find(c => c.startsWith('affinity='))
    const cookie = parseSetCookie(affinityLine)
    cookie.upstreamCookies = firstVisit.setCookie.filter(c => !c.startsWith('affinity=')).map(c => parseSetCookie(c).name)
    // Opaque: the value names no upstream (no URL, host or port in it; the id is masked too).
    cookie.opaque = !upstreams.some(u => cookie.value.includes(new URL(u.url).port) || decodeURIComponent(cookie.value).includes(new URL(u.url).host))
    log(`Set-Cookie on alice's first response: ${affinityLine}`)
    log(`  value: ${cookie.value.length} characters, opaque (names no upstream): ${cookie.opaque}; upstream cookies alongside: ${cookie.upstreamCookies.join(', ')}`)

    return { users, cookieless, ownRoutes, ownRoutesReachedUpstreams, cookie }
  } finally {
    await env.close()
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv.includes('--serve')) {
    const env = await start({ port: Number(process.env.PORT ?? 0) })
    console.log(`Listening on ${env.url}  (try: curl -i -c jar -b jar ${env.url}/app/visit)  Ctrl-C stops it`)
    process.once('SIGINT', () => { void env.close() })
  } else {
    await run()
  }
}
