import t from 'tap'
import express from 'express'
import { expressHarness } from './adapters/harness.js'
import { runOverload } from './adapters/overload.js'

runOverload(t, expressHarness(express, 'express'))
