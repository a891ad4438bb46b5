import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { parse as parseCookie } from 'cookie'
import type { Balancer, RouteRequest } from '@affinity/core'

/**
 * The smallest possible adapter over @affinity/core, for testing the core's
 * forwarder with real sockets before any framework is involved: a node:http
 * server that builds a RouteRequest, asks the balancer to choose, and forwards.
 */
export async function startCoreFront (balancer: Balancer): Promise<{ url: string, server: http.Server, close (): Promise<void> }> {
  const route = (req: http.IncomingMessage): RouteRequest => ({
    method: req.method ?? 'GET',
    url: req.url ?? '/',
    headers: req.headers,
    ip: req.socket.remoteAddress,
    cookies: parseCookie(req.headers.cookie ?? ''),
    protocol: 'http',
  })
  const server = http.createServer((req, res) => {
    const choice = balancer.choose(route(req))
    if (choice instanceof Promise) void choice.then(c => balancer.forward(c, req, res, { path: req.url ?? '/' }))
    else balancer.forward(choice, req, res, { path: req.url ?? '/' })
  })
  server.on('upgrade', (req, socket, head) => {
    const choice = balancer.choose(route(req))
    if (choice instanceof Promise) void choice.then(c => balancer.upgrade(c, req, socket, head, req.url ?? '/'))
    else balancer.upgrade(choice, req, socket, head, req.url ?? '/')
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    url,
    server,
    close: () => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }),
  }
}
