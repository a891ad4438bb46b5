import t from 'tap'
import { fastifyHarness } from './adapters/harness.js'
import { runBlame, runBlameH2 } from './adapters/blame.js'

runBlame(t, fastifyHarness())
// Express cannot serve node:http2 itself: the HTTP/2 front door is Fastify's.
runBlameH2(t, fastifyHarness({ http2: true }))
