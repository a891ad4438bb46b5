import t from 'tap'
import { expressHarness } from './adapters/harness.js'
import { runProxyOptionCases } from './adapters/proxy-options.js'

runProxyOptionCases(t, expressHarness())
