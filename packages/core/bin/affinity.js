#!/usr/bin/env node
// The `affinity` command (affinity simulate …). A committed stub, so package managers
// can link the bin at install time, before dist/ is built.
import { main } from '../dist/cli/main.js'

process.exitCode = await main(process.argv.slice(2))
