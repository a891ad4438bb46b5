import t from 'tap'
import { fastifyHarness } from './adapters/harness.js'
import { runProtocolScenarios } from './adapters/protocols.js'

runProtocolScenarios(t, fastifyHarness())
