import t from 'tap'
import { fastifyHarness } from './adapters/harness.js'
import { runEarlyAnswers, runEarlyAnswersH2 } from './adapters/early-answers.js'

runEarlyAnswers(t, fastifyHarness())
runEarlyAnswersH2(t, fastifyHarness({ http2: true }))
