// Affinity demo: three "shop" servers, each keeping shopping carts in memory,
// behind one balancer. Users add items through the balancer under each strategy
// in turn; the table shows which servers served them and whether their cart
// survived. Everything runs on loopback ports and is stopped at the end.
import http from 'node:http'
import {
  createBalancer, roundRobin, stickyCookie, stickyIp, consistentHash, ipHash,
} from '@affinity/core'

const USERS = ['Alex', 'Blair', 'Casey', 'Drew']
const ITEMS = ['apple', 'bread', 'cheese', 'dates']
const json = process.argv.includes('--json')

function listen (server) {
  return new Promise(resolve => server.listen(0, '127.0.0.1', () => resolve(server.address().port)))
}

/** A shop server: the cart lives in this process's memory only. */
async function startShop (name) {
  const carts = new Map()
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://shop')
    const user = req.headers['x-user'] ?? 'anon'
    const cart = carts.get(user) ?? []
    if (url.pathname === '/cart/add') cart.push(url.searchParams.get('item'))
    carts.set(user, cart)
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ server: name, cart }))
  })
  const port = await listen(server)
  return { name, url: `http://127.0.0.1:${port}`, server }
}

/** A minimal front: node:http + @affinity/core (the adapters do this for Fastify and Express). */
async function startFront (balancer) {
  const server = http.createServer(async (req, res) => {
    const cookies = Object.fromEntries((req.headers.cookie ?? '').split(/;\s*/).filter(Boolean).map(c => c.split('=')))
    // The demo plays several clients from one machine: each user's source address comes in x-client-ip.
    const choice = await balancer.choose({ method: req.method, url: req.url, headers: req.headers, ip: req.headers['x-client-ip'], cookies })
    balancer.forward(choice, req, res, { path: req.url })
  })
  const port = await listen(server)
  return { url: `http://127.0.0.1:${port}`, server }
}

/** One user's visit: add every item, carrying cookies like a browser. */
async function shop (front, user, ip, jar) {
  const servers = []
  let cart = []
  for (const item of ITEMS) {
    const headers = { 'x-user': user, 'x-client-ip': ip }
    if (jar.cookie) headers.cookie = jar.cookie
    const res = await fetch(`${front.url}/cart/add?item=${item}`, { headers })
    const sc = res.headers.getSetCookie().find(c => c.startsWith('affinity='))
    if (sc) jar.cookie = sc.split(';')[0]
    const body = await res.json()
    servers.push(body.server)
    cart = body.cart
  }
  return { servers: [...new Set(servers)], kept: cart.length === ITEMS.length }
}

const strategies = [
  ['Round Robin', () => roundRobin()],
  ['Sticky Sessions (cookie)', () => stickyCookie({ secret: 'demo-secret-demo-secret-demo-secret!' })],
  ['Sticky IP (stick table)', () => stickyIp()],
  ['Consistent hash (x-user)', () => consistentHash({ key: { header: 'x-user' } })],
  ['IP Hashing', () => ipHash()],
]

const shops = await Promise.all(['S1', 'S2', 'S3'].map(startShop))
const results = []
for (const [label, make] of strategies) {
  const balancer = createBalancer({ upstreams: shops.map(s => ({ url: s.url, id: s.name })), strategy: make() })
  const front = await startFront(balancer)
  for (const [i, user] of USERS.entries()) {
    const r = await shop(front, `${user}-${label}`, `198.51.100.${10 + i}`, {})
    results.push({ user, strategy: label, servers: r.servers, cartSurvived: r.kept })
  }
  await new Promise(resolve => front.server.close(resolve))
  await balancer.close()
}
for (const s of shops) s.server.close()

if (json) {
  console.log(JSON.stringify({ results }, null, 2))
} else {
  const rows = results.map(r => [r.user, r.strategy, r.servers.length === 1 ? `all requests go to ${r.servers[0]}` : `session spread over ${r.servers.join(', ')}`, r.cartSurvived ? '✅' : '❌'])
  const head = ['User', 'Strategy', 'Server response', 'Cart']
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map(r => r[i].length)))
  const line = (cells) => '| ' + cells.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |'
  console.log(line(head))
  console.log('|' + widths.map(w => '-'.repeat(w + 2)).join('|') + '|')
  for (const r of rows) console.log(line(r))
}
