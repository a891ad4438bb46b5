import t from 'tap'
import express from 'express'
import { expressHarness } from './adapters/harness.js'
import { runEarlyAnswers } from './adapters/early-answers.js'

runEarlyAnswers(t, expressHarness(express, 'express'))
