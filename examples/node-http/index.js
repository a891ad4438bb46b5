// A plain node:http server in front of three stateful servers, through the
// page-long adapter in adapter.js: the same cookie stickiness and WebSocket
// tunnelling the Fastify and Express adapters give.
//
//   node examples/node-http/index.js     # runs the walk-through, exits
//
// Build the workspace first (`npm run build`): `@affinity/*` resolves to packages/*/dist.
import http from 'node:http'
import { pathToFileURL } from 'node:url'
import { stickyCookie } from '@affinity/core'
import { affinity } from './adapter.js'

const SECRET = process.env.AFFINITY_SECRET ?? 'example-only-secret-use-32-random-characters'

async function startServer (name) {
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ server: name, path: req.url }))
  })
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  return { name, url: `http://127.0.0.1:${server.address().port}`, server }
}

export async function run ({ log = console.log } = {}) {
  const upstreams = await Promise.all(['S1', 'S2', 'S3'].map(startServer))
  const lb = affinity({ upstreams: upstreams.map(u => ({ url: u.url, id: u.name })), strategy: stickyCookie({ secret: SECRET }) })
  const front = http.createServer(lb)
  front.on('upgrade', lb.upgrade)
  await new Promise(resolve => front.listen(0, '127.0.0.1', resolve))
  const base = `http://127.0.0.1:${front.address().port}`
  log(`plain node:http balancer on ${base}`)

  const visit = async (cookie) => {
    const res = await fetch(`${base}/hello?x=1`, { headers: cookie === undefined ? {} : { cookie } })
    const body = await res.json()
    return { server: body.server, path: body.path, setCookie: res.headers.get('set-cookie') }
  }
  const first = await visit()
  const cookie = first.setCookie.split(';')[0]
  const again = []
  for (let i = 0; i < 4; i++) again.push((await visit(cookie)).server)
  log(`a browser lands on ${first.server}, then ${again.join(', ')} (cookie ${cookie.slice(0, 20)}…)`)
  const fresh = new Set()
  for (let i = 0; i < 6; i++) fresh.add((await visit()).server)
  log(`new users spread over ${[...fresh].sort().join(', ')}`)

  await lb.close()
  front.closeAllConnections()
  await new Promise(resolve => front.close(resolve))
  for (const u of upstreams) u.server.close()
  return { first: first.server, path: first.path, again, spread: [...fresh].sort() }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  run().then(s => console.log(JSON.stringify(s)), (err) => { console.error(err); process.exitCode = 1 })
}
