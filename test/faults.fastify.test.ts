import t from 'tap'
import { fastifyHarness } from './adapters/harness.js'
import { runFaults } from './adapters/faults.js'

runFaults(t, fastifyHarness())
