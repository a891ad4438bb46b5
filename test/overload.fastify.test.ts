import t from 'tap'
import { fastifyHarness } from './adapters/harness.js'
import { runOverload } from './adapters/overload.js'

runOverload(t, fastifyHarness())
