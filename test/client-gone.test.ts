/**
 * A client that leaves while its request waits for an upstream connection: the
 * moment is held open by a connector that waits on the test (`pool.connect`), so
 * the order of events is fixed, not raced.
 */
import { EventEmitter, once } from 'node:events'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import t from 'tap'
import { createBalancer, roundRobin } from '@affinity/core'
import { checkBooks, nextOutcome } from './helpers/h2-fixture.js'
import { startStreamUpstream } from './helpers/stream-upstream.js'

t.test('a client that leaves with its body half-sent before the upstream connection opens: aborted, nothing thrown', async t => {
  const up = await startStreamUpstream('S1')
  // undici asks for a connection; the test decides when it opens.
  const connecting = new EventEmitter()
  const balancer = createBalancer({
    upstreams: [{ url: up.url, id: up.name }],
    strategy: roundRobin(),
    pool: {
      connect: (opts, callback) => {
        connecting.emit('connect', () => {
          const socket = net.connect(Number(opts.port), opts.hostname)
          socket.once('connect', () => callback(null, socket))
          socket.once('error', (err) => callback(err, null))
        })
      },
    },
  })
  const exchanges = new EventEmitter()
  const front = http.createServer((req, res) => {
    const choice = balancer.choose({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, ip: req.socket.remoteAddress, cookies: {}, protocol: 'http' })
    balancer.forward(choice as Exclude<typeof choice, Promise<unknown>>, req, res, { path: req.url ?? '/' })
    exchanges.emit('forwarded', res)
  })
  await new Promise<void>(resolve => front.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    front.closeAllConnections()
    await new Promise<void>(resolve => front.close(() => resolve()))
    await balancer.close()
    await up.close()
  })

  const outcome = nextOutcome(balancer)
  const forwarded = once(exchanges, 'forwarded')
  const asked = once(connecting, 'connect')
  const client = net.connect((front.address() as AddressInfo).port, '127.0.0.1')
  client.write('POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789')
  const [[res], [open]] = await Promise.all([forwarded, asked]) as [[http.ServerResponse], [() => void]]
  client.destroy()
  await once(res, 'close') // the forwarder's own 'close' listener ran first
  // undici now reads the body of a client that is gone. An error the body relay
  // raises then must reach no one: unheard, it would be an uncaught exception.
  open()
  const o = await outcome
  t.equal(o.kind, 'aborted', 'outcome: aborted, not charged')
  checkBooks(t, balancer, 'the abort')
})
