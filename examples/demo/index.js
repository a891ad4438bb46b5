// Affinity demo: what each strategy does to a stateful app, from live traffic.
//
// Three "shop" servers keep shopping carts in memory (nothing shared between them).
// A Fastify app with the Affinity plugin balances them. Users add items to their
// carts under each strategy in turn, then three things happen that break naive
// setups: Alex's IP address changes, a fourth server is added, a server dies.
// Every figure printed is measured from the requests made here.
//
//   npm run demo            # a readable report
//   npm run demo -- --json  # the same results as JSON
import http from 'node:http'
import { pathToFileURL } from 'node:url'
import Fastify from 'fastify'
import affinity from '@affinity/fastify'
import { createBalancer, roundRobin, stickyCookie, stickyIp, consistentHash, ipHash } from '@affinity/core'

const USERS = [
  { name: 'Alex', ip: '198.51.100.10' },
  { name: 'Blair', ip: '198.51.100.11' },
  { name: 'Casey', ip: '203.0.113.12' },
  { name: 'Drew', ip: '203.0.113.13' },
  { name: 'Emery', ip: '192.0.2.14' },
  { name: 'Finley', ip: '192.0.2.15' },
]
const ITEMS = ['apple', 'bread', 'cheese']
const SECRET = 'demo-only-secret-use-32-random-characters!'

const STRATEGIES = [
  { key: 'roundRobin', label: 'Round Robin', make: () => roundRobin() },
  { key: 'stickyCookie', label: 'Sticky Sessions (cookie)', make: () => stickyCookie({ secret: SECRET }) },
  { key: 'stickyIp', label: 'Sticky IP (stick table)', make: () => stickyIp() },
  { key: 'consistentHash', label: 'Consistent hash (user id)', make: () => consistentHash({ key: { header: 'x-user-id' } }) },
  { key: 'ipHash', label: 'IP Hashing', make: () => ipHash() },
]

/** A shop server: carts live in this process's memory only. */
async function startShop (name) {
  const carts = new Map()
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://shop')
    const user = String(req.headers['x-user-id'] ?? 'anonymous')
    const cart = carts.get(user) ?? []
    if (url.pathname === '/cart/add') cart.push(url.searchParams.get('item'))
    carts.set(user, cart)
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ server: name, cart }))
  })
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  return { name, url: `http://127.0.0.1:${server.address().port}`, server, stop: () => stopServer(server) }
}

function stopServer (server) {
  return new Promise(resolve => { server.closeAllConnections(); server.close(() => resolve()) })
}

/**
 * The balancer: an ordinary Fastify app with the plugin under /shop. It trusts the
 * loopback proxy in front (this script), which reports each user's address in
 * X-Forwarded-For — as a CDN or ingress would.
 */
async function startFront (shops, strategy) {
  const balancer = createBalancer({
    upstreams: shops.map(s => ({ url: s.url, id: s.name })),
    strategy,
    passive: { failures: 1, cooldownMs: 60_000 },
  })
  const app = Fastify({ trustProxy: '127.0.0.1' })
  // The app's own hooks can read Affinity's decision: expose why each request went where it went.
  app.addHook('preHandler', (request, reply, done) => {
    if (request.affinity) reply.header('x-affinity-reason', request.affinity.reason)
    done()
  })
  await app.register(affinity, { prefix: '/shop', balancer })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${app.server.address().port}/shop`
  return { url, balancer, stop: async () => { await app.close(); await balancer.close() } }
}

/** One request as a browser would make it: the user's cookie jar, id header and address. */
async function addItem (front, user, item) {
  const headers = { 'x-user-id': user.name, 'x-forwarded-for': user.ip }
  if (user.cookie) headers.cookie = user.cookie
  const res = await fetch(`${front.url}/cart/add?item=${item}`, { headers })
  const set = res.headers.getSetCookie().find(c => c.startsWith('affinity='))
  if (set) user.cookie = set.split(';')[0]
  const body = await res.json()
  const reason = res.headers.get('x-affinity-reason')
  if (res.status !== 200) return { status: res.status, server: undefined, cart: [], reason }
  return { status: res.status, server: body.server, cart: body.cart, reason }
}

/** Runs one strategy through the whole story and returns what happened. */
async function runStrategy (spec) {
  const shops = await Promise.all(['S1', 'S2', 'S3'].map(startShop))
  const front = await startFront(shops, spec.make())
  const users = USERS.map(u => ({ ...u, cookie: undefined, added: [], servers: [], home: undefined }))
  const visit = async (user, item) => {
    const r = await addItem(front, user, item)
    user.added.push(item)
    user.servers.push(r.server ?? `HTTP ${r.status}`)
    // The cart survived if the server that answered holds everything this user added.
    return { ...r, kept: r.cart.length === user.added.length }
  }

  // 1. Shopping: each user in turn adds three items.
  const last = new Map()
  for (const u of users) for (const item of ITEMS) last.set(u, await visit(u, item))
  const shopping = users.map(u => ({
    user: u.name,
    servers: [...new Set(u.servers)],
    cartSurvived: last.get(u).kept,
  }))
  for (const u of users) u.home = u.servers.at(-1)

  // 2. Alex's address changes (a phone switching from Wi-Fi to 4G).
  const alex = users[0]
  const before = alex.home
  alex.ip = '100.64.7.42'
  const moved = await visit(alex, 'dates')
  const ipChange = { from: before, to: moved.server, reason: moved.reason, cartSurvived: moved.kept }
  alex.home = moved.server

  // 3. Scale out: a fourth server joins.
  const s4 = await startShop('S4')
  shops.push(s4)
  front.balancer.add({ url: s4.url, id: 'S4' })
  const afterAdd = []
  for (const u of users) {
    const r = await visit(u, 'eggs')
    afterAdd.push({ user: u.name, from: u.home, to: r.server, cartSurvived: r.kept })
    u.home = r.server
  }

  // 4. The server holding the most users dies, without warning.
  const counts = new Map()
  for (const u of users) counts.set(u.home, (counts.get(u.home) ?? 0) + 1)
  const victim = [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0]
  await shops.find(s => s.name === victim).stop()
  const afterDeath = []
  for (const u of users) {
    const r = await visit(u, 'figs')
    afterDeath.push({ user: u.name, from: u.home, to: r.server, status: r.status, cartSurvived: r.kept })
  }

  await front.stop()
  await Promise.all(shops.filter(s => s.name !== victim).map(s => s.stop()))
  return {
    strategy: spec.key,
    label: spec.label,
    shopping,
    ipChange,
    scaleOut: { moved: afterAdd.filter(m => m.from !== m.to).length, users: afterAdd.length, detail: afterAdd },
    serverDies: {
      server: victim,
      usersOnIt: afterDeath.filter(m => m.from === victim).length,
      rePinned: afterDeath.filter(m => m.from === victim && m.status === 200).map(m => m.user),
      othersMoved: afterDeath.filter(m => m.from !== victim && m.to !== m.from).map(m => m.user),
      errors: afterDeath.filter(m => m.status !== 200).length,
      cartsLost: afterDeath.filter(m => !m.cartSurvived).map(m => m.user),
      detail: afterDeath,
    },
  }
}

// ---------------------------------------------------------------- report

const width = (s) => [...String(s)].reduce((w, ch) => w + (/\p{Extended_Pictographic}/u.test(ch) ? 2 : ch === '\uFE0F' ? 0 : 1), 0)
const pad = (s, n) => String(s) + ' '.repeat(Math.max(0, n - width(s)))

function table (head, rows) {
  const widths = head.map((h, i) => Math.max(width(h), ...rows.map(r => width(r[i]))))
  const line = (cells) => '| ' + cells.map((c, i) => pad(c, widths[i])).join(' | ') + ' |'
  return [line(head), '|' + widths.map(w => '-'.repeat(w + 2)).join('|') + '|', ...rows.map(line)].join('\n')
}

/** What Alex's IP change did: kept by design, moved, or re-bound to the same server by luck. */
function ipChangeText (c) {
  if (c.from !== c.to) return `${c.from} → ${c.to} ❌ cart lost`
  if (c.reason === 'sticky' || c.reason === 'hash') return `stays on ${c.to} ✅`
  return `new binding, ${c.to} again by luck ⚠️`
}

function verdict (r) {
  const kept = r.shopping.filter(s => s.cartSurvived).length
  const sticky = kept === r.shopping.length
  if (!sticky) return { stateful: '❌', note: `sessions spread over servers: ${r.shopping.length - kept}/${r.shopping.length} users lost cart items` }
  const notes = []
  const c = r.ipChange
  notes.push(c.from === c.to && (c.reason === 'sticky' || c.reason === 'hash') ? 'survives an IP change' : 'an IP change re-binds the user')
  notes.push(`adding S4 moved ${r.scaleOut.moved}/${r.scaleOut.users}`)
  notes.push(`when ${r.serverDies.server} died only its ${r.serverDies.usersOnIt} users moved`)
  return { stateful: r.strategy === 'ipHash' ? '✅ (unless IP changes)' : '✅', note: notes.join('; ') }
}

function report (results) {
  const out = []
  out.push('Affinity demo: 3 shop servers with in-memory carts, one balancer, 6 users.\n')
  out.push(table(['User', 'Strategy', 'Server response'], results.map(r => {
    const a = r.shopping[0]
    const where = a.servers.length === 1 ? `all requests go to ${a.servers[0]}` : `session spread over ${a.servers.join(', ')}`
    const extra = r.strategy === 'ipHash' ? ' (unless IP changes)' : ''
    return [a.user, r.label, `${where} → ${a.cartSurvived ? '✅' : '❌'}${a.cartSurvived ? extra : ''}`]
  })))
  out.push('')
  for (const r of results) {
    const kept = r.shopping.filter(s => s.cartSurvived).length
    out.push(`${pad(r.label, 27)} all users: ${kept}/${r.shopping.length} carts intact after ${ITEMS.length} items each`)
  }
  out.push('\nThen three things happen:\n')
  out.push(table(['Strategy', "Alex's IP changes", 'S4 added: users moved', 'Busiest server dies'], results.map(r => [
    r.label,
    ipChangeText(r.ipChange),
    r.scaleOut.moved === 0 ? `0 of ${r.scaleOut.users}` : `${r.scaleOut.moved} of ${r.scaleOut.users}: ${r.scaleOut.detail.filter(m => m.from !== m.to).map(m => m.user).join(', ')}`,
    `${r.serverDies.server}: ${r.serverDies.rePinned.join(', ') || 'nobody'} re-pinned, ${r.serverDies.errors} errors, ${r.serverDies.othersMoved.length ? `${r.serverDies.othersMoved.length} others moved` : 'nobody else moved'}`,
  ])))
  out.push('\nSummary (measured above):\n')
  out.push(table(['Strategy', 'Supports stateful?', 'Notes'], results.map(r => {
    const v = verdict(r)
    return [r.label, v.stateful, v.note]
  })))
  out.push('\nA user on a server that dies loses that server\'s memory whatever the balancer does;')
  out.push('what Affinity guarantees is that they are re-pinned at once (no error) and that nobody else moves.')
  return out.join('\n')
}

export async function runDemo () {
  const results = []
  for (const spec of STRATEGIES) results.push(await runStrategy(spec))
  return results
}

export { report }

// Run only when executed directly (test/demo.test.ts imports runDemo instead).
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const started = Date.now()
  const results = await runDemo()
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify({ users: USERS.map(u => u.name), items: ITEMS, results, ms: Date.now() - started }, null, 2))
  } else {
    console.log(report(results))
    console.log(`\n(${results.length} strategies, ${Date.now() - started} ms)`)
  }
}
