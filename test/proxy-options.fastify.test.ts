import t from 'tap'
import { fastifyHarness } from './adapters/harness.js'
import { runProxyOptionCases } from './adapters/proxy-options.js'

runProxyOptionCases(t, fastifyHarness())
