import t from 'tap'
import { fastifyHarness } from './adapters/harness.js'
import { runInFlight, runInFlightH2 } from './adapters/in-flight.js'

runInFlight(t, fastifyHarness())
runInFlightH2(t, fastifyHarness({ http2: true }))
