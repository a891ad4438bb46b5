import t from 'tap'
import express from 'express'
import { expressHarness } from './adapters/harness.js'
import { runHostile } from './adapters/hostile.js'

runHostile(t, expressHarness(express, 'express'))
