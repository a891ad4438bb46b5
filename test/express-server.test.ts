/**
 * createServer(app) from @affinity/express (prototype): requests and responses are born
 * with the Express app's prototypes, so Express's per-request Object.setPrototypeOf
 * changes nothing; everything else behaves as with app.listen(): Express's req/res
 * methods, trust proxy, the middleware's forwarding and WebSocket upgrades.
 */
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import express from 'express'
import express4 from 'express4'
import { roundRobin } from '@affinity/core'
import { affinity, createServer } from '@affinity/express'
import { openWebSocket, request } from './helpers/http.js'
import { startUpstreams } from './helpers/upstreams.js'

for (const [name, factory] of [['express 5', express], ['express 4', express4]] as const) {
  t.test(`${name}: createServer(app) serves through Affinity with req/res born with the app's prototypes`, async t => {
    const ups = await startUpstreams(2)
    t.teardown(() => Promise.all(ups.map(u => u.close())))
    const app = factory()
    app.set('trust proxy', true)
    const lb = affinity({ upstreams: ups.map(u => ({ id: u.name, url: u.url })), strategy: roundRobin() })
    t.teardown(() => lb.close())
    const seenByExpress: Array<{ ip: string | undefined, locals: boolean }> = []
    app.use((req, res, next) => { seenByExpress.push({ ip: req.ip, locals: typeof res.locals === 'object' }); next() })
    app.use(lb)
    const server = createServer(app)
    const born: boolean[] = []
    // Before the app: what the server created.
    server.prependListener('request', (req, res) => {
      born.push(Object.getPrototypeOf(req) === app.request && Object.getPrototypeOf(res) === app.response && req instanceof http.IncomingMessage && res instanceof http.ServerResponse)
    })
    server.on('upgrade', lb.upgrade)
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    t.teardown(() => { server.closeAllConnections(); return new Promise<void>(resolve => server.close(() => resolve())) })
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

    const names = []
    for (let i = 0; i < 4; i++) {
      const res = await request(`${base}/echo`, { headers: { 'x-forwarded-for': '198.51.100.9' } })
      t.equal(res.status, 200)
      names.push(res.json().name)
    }
    t.same(new Set(names).size, 2, 'round robin over both upstreams')
    t.same(born, [true, true, true, true], 'req and res born with app.request and app.response')
    t.same(seenByExpress[0], { ip: '198.51.100.9', locals: true }, "Express's req.ip (trust proxy) and res.locals work")
    t.equal(ups.flatMap(u => u.seen).find(s => s.url === '/echo')?.headers['x-forwarded-for'], '198.51.100.9, 127.0.0.1', 'forwarded as with app.listen()')

    const { ws, hello } = await openWebSocket(`${base.replace(/^http/, 'ws')}/chat`)
    t.ok(ups.some(u => u.name === hello.name), 'a WebSocket upgrade reaches an upstream through lb.upgrade')
    ws.close()
  })
}
