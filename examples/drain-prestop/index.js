// Taking a stateful server out of rotation without logging anyone out: the drain a
// Kubernetes preStop hook waits for. The balancer has an admin endpoint,
// POST /drain/:id, that answers only once the upstream is drained: nothing in flight,
// no WebSocket open, and no user bound to it has come back for the idle window. The
// server's pod runs the hook before it gets SIGTERM (see README.md), so in-memory
// sessions are finished, not cut.
//
//   node examples/drain-prestop/index.js           # runs the walk-through, exits
//   node examples/drain-prestop/index.js --serve   # keeps it running (ADMIN_PORT, PORT)
//
// Build the workspace first (`npm run build`): `@affinity/*` resolves to packages/*/dist.
import http from 'node:http'
import { randomUUID } from 'node:crypto'
import { pathToFileURL } from 'node:url'
import Fastify from 'fastify'
import affinity from '@affinity/fastify'
import { createBalancer, stickyCookie } from '@affinity/core'

const SECRET = process.env.AFFINITY_SECRET ?? 'example-only-secret-use-32-random-characters'

/** One instance of a stateful app: visit counters in its own memory, keyed by its `sid` cookie. */
async function startSessionServer (name) {
  const sessions = new Map()
  const server = http.createServer((req, res) => {
    const sid = /(?:^|;\s*)sid=([^;]+)/.exec(req.headers.cookie ?? '')?.[1]
    const id = sid !== undefined && sessions.has(sid) ? sid : randomUUID()
    const visits = (sessions.get(id) ?? 0) + 1
    sessions.set(id, visits)
    res.setHeader('content-type', 'application/json')
    if (id !== sid) res.setHeader('set-cookie', `sid=${id}; Path=/; HttpOnly`)
    res.end(JSON.stringify({ server: name, visits }))
  })
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  return { id: name, url: `http://127.0.0.1:${server.address().port}`, server }
}

/**
 * The balancer (public port) and its admin API (a second port, never exposed to the
 * internet: only the pods' preStop hooks reach it).
 *   POST /drain/:id[?idleMs=…&timeoutMs=…]  drain, and answer once drained:
 *        200 { id, drained: true, waitedMs }, or 503 { drained: false } after timeoutMs
 *        (the hook must end before the pod's terminationGracePeriodSeconds)
 *   GET  /upstreams                          balancer.list()
 */
export async function start ({ port = 0, adminPort = 0, idleMs = 30_000, upstreams: given } = {}) {
  const upstreams = given ?? await Promise.all(['S1', 'S2', 'S3'].map(startSessionServer))
  const balancer = createBalancer({
    upstreams: upstreams.map(({ id, url }) => ({ id, url })), // ids: the pod names, in Kubernetes
    strategy: stickyCookie({ secret: SECRET }),
    // A drain completes only once no bound user has come back for this long.
    drainIdleMs: idleMs,
  })

  const app = Fastify({ logger: false })
  await app.register(affinity, { balancer })
  await app.listen({ port, host: '127.0.0.1' })

  const admin = Fastify({ logger: false })
  admin.get('/upstreams', async () => balancer.list())
  admin.post('/drain/:id', async (request, reply) => {
    const { id } = request.params
    if (!balancer.list().some(u => u.id === id)) return reply.code(404).send({ id, error: 'no such upstream' })
    const idle = request.query.idleMs === undefined ? undefined : Number(request.query.idleMs)
    const timeoutMs = Number(request.query.timeoutMs ?? 10 * 60_000)
    const started = performance.now()
    let timer
    const timedOut = new Promise(resolve => { timer = setTimeout(resolve, timeoutMs, 'timeout') })
    const outcome = await Promise.race([balancer.drain(id, idle === undefined ? {} : { idleMs: idle }).then(() => 'drained'), timedOut])
    clearTimeout(timer)
    const waitedMs = Math.round(performance.now() - started)
    if (outcome !== 'drained') return reply.code(503).send({ id, drained: false, waitedMs })
    return { id, drained: true, waitedMs }
  })
  await admin.listen({ port: adminPort, host: '127.0.0.1' })

  return {
    balancer,
    upstreams,
    url: `http://127.0.0.1:${app.server.address().port}`,
    adminUrl: `http://127.0.0.1:${admin.server.address().port}`,
    async close () {
      await admin.close()
      await app.close()
      await balancer.close()
      if (given === undefined) await Promise.all(upstreams.map(u => new Promise(resolve => u.server.close(resolve))))
    },
  }
}

/** A browser, enough for this example: keeps cookies, reports who answered. */
class Browser {
  #cookies = new Map()
  constructor (name) { this.name = name }
  async visit (url) {
    const cookie = [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ')
    const res = await fetch(`${url}/visit`, { headers: cookie ? { cookie } : {} })
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';')
      this.#cookies.set(pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1))
    }
    return await res.json()
  }
}

const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))

/** Runs the walk-through with a short idle window and returns what it saw. */
export async function run ({ log = console.log, idleMs = 300 } = {}) {
  const env = await start({ idleMs })
  try {
    const { url, adminUrl, balancer } = env
    log(`balancer ${url}, admin ${adminUrl}; drain idle window ${idleMs} ms`)
    const drainedEvents = []
    balancer.on('drained', (u, reason) => { drainedEvents.push({ id: u.id, reason }); log(`event drained: ${u.id} (${reason})`) })

    // 1. Users settle in: each is bound to one server by its cookie.
    const users = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'].map(name => new Browser(name))
    const home = new Map()
    for (const u of users) home.set(u, (await u.visit(url)).server)
    const alice = users[0]
    const target = home.get(alice)
    log(`users placed: ${users.map(u => `${u.name}→${home.get(u)}`).join(', ')}`)

    // 2. The pod running `target` is being deleted: its preStop hook calls the admin API
    //    and blocks until the answer comes.
    const hookStarted = performance.now()
    let hookAnswered = false
    const hook = fetch(`${adminUrl}/drain/${target}`, { method: 'POST' }).then(async res => {
      hookAnswered = true
      return { status: res.status, body: await res.json() }
    })
    log(`preStop hook for ${target}: POST /drain/${target} …`)

    // 3. alice keeps working for three idle windows: she stays on her server (her
    //    in-memory session keeps counting) and the hook keeps waiting.
    const during = []
    let lastVisit = 0
    for (let i = 0; i < 6; i++) {
      await sleep(idleMs / 2)
      lastVisit = performance.now()
      during.push(await alice.visit(url))
    }
    const hookPendingWhileActive = !hookAnswered
    log(`alice during the drain: ${during.map(r => `${r.server}#${r.visits}`).join(' ')}; hook still waiting: ${hookPendingWhileActive}`)

    // 4. New users never land on the draining server.
    const newcomers = []
    for (let i = 0; i < 6; i++) newcomers.push((await new Browser(`new-${i}`).visit(url)).server)
    log(`new users during the drain → ${newcomers.join(', ')}`)

    // 5. alice goes quiet: one idle window later the hook gets its answer and the pod may stop.
    const answer = await hook
    const answeredAfterMs = Math.round(performance.now() - hookStarted)
    const quietMs = Math.round(performance.now() - lastVisit)
    log(`hook answered ${answer.status} ${JSON.stringify(answer.body)} after ${answeredAfterMs} ms, ${quietMs} ms after alice's last visit`)

    // 6. The pod is gone: remove it. preview() says beforehand who moves; the remap event
    //    reports it as it happens (users bound there are placed afresh at their next visit).
    const preview = balancer.preview({ remove: target })
    log(`preview of removing ${target}: ${preview.moved} of ${preview.total} bound users move ${JSON.stringify(preview.flows)}`)
    const remaps = []
    balancer.on('remap', r => remaps.push(r))
    balancer.remove(target)
    const afterRemoval = await alice.visit(url)
    log(`after removal alice → ${afterRemoval.server} (session #${afterRemoval.visits}: her state on ${target} is gone, which is why the drain waited for her)`)

    return {
      target,
      idleMs,
      during: during.map(r => r.server),
      visits: during.map(r => r.visits),
      hookPendingWhileActive,
      newcomers,
      hook: answer,
      answeredAfterMs,
      quietMs,
      drainedEvents,
      preview,
      remap: remaps[0] && { moved: remaps[0].moved, flows: remaps[0].flows, change: { upstream: remaps[0].change.upstream, to: remaps[0].change.to } },
      afterRemoval: afterRemoval.server,
    }
  } finally {
    await env.close()
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv.includes('--serve')) {
    const env = await start({ port: Number(process.env.PORT ?? 0), adminPort: Number(process.env.ADMIN_PORT ?? 0), idleMs: Number(process.env.DRAIN_IDLE_MS ?? 30_000) })
    console.log(`balancer ${env.url}  admin ${env.adminUrl}  (try: curl -X POST ${env.adminUrl}/drain/S2)  Ctrl-C stops it`)
    process.once('SIGINT', () => { void env.close() })
  } else {
    await run()
  }
}
