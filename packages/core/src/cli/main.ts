#!/usr/bin/env node
/**
 * The `affinity` command: `affinity simulate` (the balance simulator, cli/simulate.ts),
 * `affinity status|drain|undrain|weight` (a Redis control, cli/control.ts) and `--version`. This file dispatches; each command parses its own arguments.
 */
import { readFileSync, realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { CONTROL_COMMANDS, CONTROL_HELP, controlCommand } from './control.js'
import { SIMULATE_HELP, simulateCommand } from './simulate.js'

export interface CliIo {
  out (text: string): void
  err (text: string): void
  /** Where a relative --svg path is written. */
  cwd: string
}

const processIo: CliIo = {
  out: (s) => { process.stdout.write(s) },
  err: (s) => { process.stderr.write(s) },
  cwd: process.cwd(),
}

const USAGE = `Usage: affinity <command> [options]

Commands:
  simulate   replay synthetic users through a real balancer: load per upstream,
             who moves when upstreams are added or removed, and an SVG chart
  status     the live balancer instances of a Redis control (@affinity/redis):
             per instance and upstream, state, weight, in flight, bound users
  drain      drain an upstream on every instance of a Redis control
  undrain    end a drain on every instance
  weight     set an upstream's weight on every instance

Options:
  -v, --version  print the version of @affinity/core
  -h, --help     this help

Run 'affinity <command> --help' for its options. status, drain, undrain and weight
need @affinity/redis and ioredis installed beside @affinity/core.
`

/**
 * Runs the CLI with `argv` (without node and the script) and returns the exit
 * code: 0 done, 1 failed, 2 wrong arguments. Output goes through `io`, so tests
 * call this in-process.
 */
export async function main (argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const [command, ...rest] = argv
  if (command === undefined) { io.err(USAGE); return 2 }
  if (command === '--help' || command === '-h' || command === 'help') {
    const topic = rest[0] ?? ''
    io.out(topic === 'simulate' ? SIMULATE_HELP : Object.hasOwn(CONTROL_HELP, topic) ? CONTROL_HELP[topic]! : USAGE)
    return 0
  }
  if (command === '--version' || command === '-v') {
    io.out(`${version()}\n`)
    return 0
  }
  if (CONTROL_COMMANDS.includes(command)) return await controlCommand(command, rest, io)
  if (command !== 'simulate') {
    io.err(`affinity: unknown command '${command}'\n\n${USAGE}`)
    return 2
  }
  return await simulateCommand(rest, io)
}

/** The package's own version: package.json is two levels above both src/cli/main.ts and dist/cli/main.js. */
function version (): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

/** True when this file is the program node was asked to run (directly, or through an npm/pnpm bin link). */
function isEntryPoint (): boolean {
  const script = process.argv[1]
  if (script === undefined) return false
  try {
    return realpathSync(script) === fileURLToPath(import.meta.url)
  } catch {
    return false
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then(code => { process.exitCode = code }, (err: unknown) => {
    process.stderr.write(`affinity: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exitCode = 1
  })
}
