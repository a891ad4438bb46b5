import t from 'tap'
import { expressHarness } from './adapters/harness.js'
import { runProtocolScenarios } from './adapters/protocols.js'

runProtocolScenarios(t, expressHarness())
