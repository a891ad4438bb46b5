// CommonJS: require() of the ESM packages (Node.js >= 20.19 loads ES modules synchronously).
'use strict'
const assert = require('node:assert/strict')
const core = require('@affinity/core')
const { affinity: fastifyPlugin } = require('@affinity/fastify')
const { affinity: expressMiddleware } = require('@affinity/express')
const { redisStore } = require('@affinity/redis')

const balancer = core.createBalancer({ upstreams: ['http://127.0.0.1:1', 'ws://127.0.0.1:2'], strategy: core.stickyCookie({ secret: 'a'.repeat(32) }) })
assert.equal(typeof fastifyPlugin, 'function')
assert.equal(typeof redisStore, 'function')
const lb = expressMiddleware({ balancer })
assert.equal(lb.balancer, balancer)
assert.deepEqual(balancer.list().map(u => u.url), ['http://127.0.0.1:1', 'http://127.0.0.1:2'])
assert.throws(() => core.createBalancer({ upstreams: [] }), { code: 'AFFINITY_ERR_NO_UPSTREAMS' })
lb.close().then(() => balancer.close()).then(() => {
  console.log(`require('@affinity/core') ${require('@affinity/core/package.json').version}: ${Object.keys(core).length} exports`)
})
