// The stateful app behind the balancer: each pod keeps its users' sessions in its own
// memory (a visit counter per `sid` cookie), which is why a pod that leaves must be
// drained before it stops. Plain node:http, no dependencies: it runs on the stock
// node image with this file mounted from a ConfigMap (see kustomization.yaml).
//
// On SIGTERM (sent after the preStop hook, prestop.js, has returned) it stops
// accepting connections, fails its readiness probe, finishes what is in flight and exits.
import http from 'node:http'
import { hostname } from 'node:os'
import { randomUUID } from 'node:crypto'
import { pathToFileURL } from 'node:url'

/** Every environment variable this file reads, with its default (undefined: required). The manifests set them; test/kubernetes-example.test.ts checks both agree. */
export const ENV = {
  PORT: '8080',
}

/** The readiness probe's path (shop.yaml). */
export const HEALTH_PATH = '/health'

/** Starts the app on PORT; resolves with { server, port, close }. */
export async function start (env = process.env) {
  const name = hostname() // the pod's name
  const sessions = new Map()
  let stopping = false
  const server = http.createServer((req, res) => {
    if (req.url === HEALTH_PATH) {
      res.writeHead(stopping ? 503 : 200).end()
      return
    }
    const sid = /(?:^|;\s*)sid=([^;]+)/.exec(req.headers.cookie ?? '')?.[1]
    const id = sid !== undefined && sessions.has(sid) ? sid : randomUUID()
    const visits = (sessions.get(id) ?? 0) + 1
    sessions.set(id, visits)
    const headers = { 'content-type': 'application/json' }
    if (id !== sid) headers['set-cookie'] = `sid=${id}; Path=/; HttpOnly`
    res.writeHead(200, headers).end(JSON.stringify({ pod: name, visits }))
  })
  await new Promise(resolve => server.listen(Number(env.PORT ?? ENV.PORT), resolve))
  const close = () => {
    stopping = true
    return new Promise(resolve => {
      server.close(resolve) // stops accepting; resolves once the open connections are done
      server.closeIdleConnections()
    })
  }
  return { server, port: server.address().port, close }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const app = await start()
  console.log(`app listening on ${app.port}`)
  process.once('SIGTERM', () => { void app.close().then(() => process.exit(0)) })
}
