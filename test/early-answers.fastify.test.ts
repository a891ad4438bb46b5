import t from 'tap'
import { fastifyHarness } from './adapters/harness.js'
import { runEarlyAnswers } from './adapters/early-answers.js'

runEarlyAnswers(t, fastifyHarness())
