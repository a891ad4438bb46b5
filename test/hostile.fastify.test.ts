import t from 'tap'
import { fastifyHarness } from './adapters/harness.js'
import { runHostile } from './adapters/hostile.js'

runHostile(t, fastifyHarness())
