/**
 * Upstream URLs as people write them: ws:// and wss:// name the same servers as
 * http:// and https:// (as @fastify/http-proxy accepts them). The id stays the URL
 * as written; the pool connects over http or https.
 */
import t from 'tap'
import { AffinityError, createBalancer, type UpstreamInput } from '@affinity/core'
import { expressHarness, fastifyHarness, type AdapterHarness } from './adapters/harness.js'
import { Browser, upstreams, wsUrl } from './adapters/scenarios.js'
import { openWebSocket } from './helpers/http.js'

function described (inputs: UpstreamInput[]): Array<{ id: string, url: string }> {
  const b = createBalancer({ upstreams: inputs })
  const out = b.list().map(({ id, url }) => ({ id, url }))
  void b.close()
  return out
}

t.test('ws:// and wss:// are the http:// and https:// servers; the id is the URL as written', async t => {
  t.same(described([
    'ws://127.0.0.1:8080',
    'wss://backend.internal/app',
    'WS://127.0.0.1:8081/',
    { url: 'wss://127.0.0.1:8443', id: 'S4' },
    'http://127.0.0.1:8082',
  ]), [
    { id: 'ws://127.0.0.1:8080', url: 'http://127.0.0.1:8080' },
    { id: 'wss://backend.internal/app', url: 'https://backend.internal/app' },
    { id: 'WS://127.0.0.1:8081/', url: 'http://127.0.0.1:8081/' },
    { id: 'S4', url: 'https://127.0.0.1:8443' },
    { id: 'http://127.0.0.1:8082', url: 'http://127.0.0.1:8082' },
  ])
  // The same server written both ways is two upstreams with two ids, as two spellings
  // of an http URL are: nothing is merged behind the user's back.
  t.equal(described(['ws://127.0.0.1:1', 'http://127.0.0.1:1']).length, 2)

  const lb = createBalancer({ upstreams: ['http://127.0.0.1:1'] })
  t.teardown(() => lb.close())
  lb.add('wss://127.0.0.1:2/base')
  t.same(lb.list().map(u => [u.id, u.url]), [['http://127.0.0.1:1', 'http://127.0.0.1:1'], ['wss://127.0.0.1:2/base', 'https://127.0.0.1:2/base']], 'add() too')
})

t.test('ws:// URLs are refused for the same reasons as http:// ones', async t => {
  for (const url of ['ws://user:pass@127.0.0.1:1', 'ws://127.0.0.1:1/?room=1', 'wss://127.0.0.1:1/#x', 'ws:/', 'wsx://127.0.0.1:1']) {
    t.throws(() => createBalancer({ upstreams: [url] }), { code: 'AFFINITY_ERR_INVALID_URL' }, url)
  }
  const err = (() => { try { createBalancer({ upstreams: ['ftp://127.0.0.1:21'] }) } catch (e) { return e } })()
  t.ok(err instanceof AffinityError)
  t.match((err as Error).message, /http:\/\/, https:\/\/, ws:\/\/ or wss:\/\//, 'the message names the schemes accepted')
})

for (const h of [fastifyHarness(), expressHarness()] as AdapterHarness[]) {
  t.test(`${h.name}: upstreams written as ws:// serve HTTP and WebSockets`, async t => {
    const ups = await upstreams(t, 2)
    const app = await h.start(t, { source: { upstreams: ups.map(u => wsUrl(u.url)) } })
    const seen = new Set<string>()
    for (let i = 0; i < 4; i++) seen.add(await new Browser().visit(app.base))
    t.same([...seen].sort(), ['S1', 'S2'], 'HTTP requests reach both (round robin)')
    const { ws, hello } = await openWebSocket(`${wsUrl(app.base)}/chat`)
    t.match(hello.name, /^S[12]$/, 'a WebSocket through the same upstreams')
    t.equal(hello.url, '/chat')
    ws.close()
  })
}
