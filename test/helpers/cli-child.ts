/**
 * The `affinity` command in a child process, as packages/core/bin/affinity.js runs
 * it, but on the TypeScript sources (this process gets tap's loader and
 * --conditions=@affinity/source from fork()).
 */
import { cliMain } from '@affinity/core/internal'

process.exitCode = await cliMain(process.argv.slice(2))
if (process.connected) process.disconnect()
