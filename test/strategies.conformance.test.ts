/**
 * The conformance suite (test/strategies/conformance.ts) against every strategy in
 * its table: determinism, balance, minimal movement, failover, drain, previews.
 */
import t from 'tap'
import { runConformance, TABLE } from './strategies/conformance.js'

for (const e of TABLE) t.test(`conformance: ${e.name}`, t => { runConformance(t, e); t.end() })
