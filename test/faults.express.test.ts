import t from 'tap'
import { expressHarness } from './adapters/harness.js'
import { runFaults } from './adapters/faults.js'

// Express 5 only: the fault table is about the core's behaviour under failure, which
// Express 4 reaches through the same middleware (express.test.ts runs 4 on the scenarios).
runFaults(t, expressHarness())
