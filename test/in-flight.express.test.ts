import t from 'tap'
import express from 'express'
import { expressHarness } from './adapters/harness.js'
import { runInFlight } from './adapters/in-flight.js'

runInFlight(t, expressHarness(express, 'express'))
