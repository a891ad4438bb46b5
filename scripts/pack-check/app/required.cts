// CommonJS TypeScript (.cts, NodeNext): require() of the ESM packages, as Node.js ≥ 20.19 runs it.
import core = require('@affinity/core')
import fastifyAdapter = require('@affinity/fastify')
import expressAdapter = require('@affinity/express')

const balancer: core.Balancer = core.createBalancer({ upstreams: ['http://127.0.0.1:3001'] })
const plugin: typeof fastifyAdapter.affinity = fastifyAdapter.affinity
const lb: expressAdapter.AffinityMiddleware = expressAdapter.affinity({ balancer })
export { plugin, lb }
