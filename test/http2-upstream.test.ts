/**
 * HTTP/2 upstreams, which the SPEC allows when the user opts into undici's allowH2
 * (`pool: { allowH2: true }`), behind the minimal core front and an HTTP/1.1
 * client: what undici's h2 client does differently from its HTTP/1.1 one must not
 * show. (The Fastify http2 front against h2 upstreams: http2.fastify.test.ts.)
 */
import { once } from 'node:events'
import http from 'node:http'
import t, { type Test } from 'tap'
import { createBalancer, roundRobin } from '@affinity/core'
import { startCoreFront } from './helpers/core-front.js'
import { TLS } from './helpers/h2.js'
import { checkBooks } from './helpers/h2-fixture.js'
import { startH2Upstream } from './helpers/stream-upstream.js'

async function setup (t: Test) {
  const up = await startH2Upstream('H2')
  const balancer = createBalancer({ upstreams: [{ url: up.url, id: up.name }], strategy: roundRobin(), pool: { allowH2: true, connect: { ca: TLS.cert } } })
  const front = await startCoreFront(balancer)
  t.teardown(async () => { await front.close(); await balancer.close(); await up.close() })
  return { up, balancer, front }
}

t.test('trailers from an HTTP/2 upstream reach an HTTP/1.1 client', async t => {
  const { balancer, front } = await setup(t)
  const req = http.get(`${front.url}/trailers`)
  const [res] = await once(req, 'response') as [http.IncomingMessage]
  const chunks: Buffer[] = []
  res.on('data', (c: Buffer) => chunks.push(c))
  await once(res, 'end')
  t.equal(Buffer.concat(chunks).toString(), 'part one, part two')
  t.equal(res.headers['transfer-encoding'], 'chunked', 'relayed chunked, so trailers can follow')
  t.equal(res.headers.trailer, 'x-checksum, x-status')
  t.same(res.trailers, { 'x-checksum': 'abc123', 'x-status': 'done' }, 'the trailer fields arrive')
  checkBooks(t, balancer, 'the response')
})
