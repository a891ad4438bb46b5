import t from 'tap'
import { fastifyHarness } from './adapters/harness.js'
import { runDiscoveryScenarios } from './adapters/discovery.js'
import { withDnsmasq } from './helpers/dnsmasq.js'

withDnsmasq(t, bin => runDiscoveryScenarios(t, fastifyHarness(), bin))
