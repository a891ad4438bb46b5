import t from 'tap'
import express from 'express'
import { expressHarness } from './adapters/harness.js'
import { runBlame } from './adapters/blame.js'

runBlame(t, expressHarness(express, 'express'))
