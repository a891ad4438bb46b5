import { parseArgs } from 'node:util'
import { connectControl, masked, type Connected, type ControlLike, type LiveInstanceLike } from './control-load.js'
import type { CliIo } from './main.js'
import { statusReport } from './status-table.js'
import { toJson } from './table.js'

const CONNECTION = `  --redis URL      the Redis of the control (redis://[:password@]host:port[/db]);
                   default: $AFFINITY_REDIS_URL. Repeat it for several cluster nodes.
  --cluster        --redis names Redis Cluster nodes (ioredis Cluster)
  --name NAME      the control's name, as in redisControl({ name }); default: $AFFINITY_CONTROL_NAME
  --prefix P       the key prefix, if the balancers set one (default affinity:control:)
  --timeout MS     how long to wait for Redis (default 5000)
  -h, --help       this help`

export const CONTROL_HELP: Record<string, string> = {
  status: `Usage: affinity status --redis URL --name NAME [--json]

Lists the live balancer instances attached under NAME (each reports its view every
couple of seconds, under a key that expires when it stops) and, per instance and
upstream: state, weight, requests in flight, bound users; how long ago it reported
(by Redis's clock), whether it is in step with Redis, the operator state stored in
Redis, and where instances disagree.

Options:
  --json           { name, state, instances: [{ id, ageMs, online, version, upstreams: [...] }] }
${CONNECTION}

Exit codes: 0 listed (also when no instance is live), 1 Redis unreachable or a
module missing, 2 wrong arguments.
`,
  drain: `Usage: affinity drain <id> --redis URL --name NAME [--wait]

Drains upstream <id> on every balancer attached under NAME: bound users stay, new
users go elsewhere. Stored in Redis, so an instance that starts later starts drained.

Options:
  --wait           wait until every live instance reports having applied it
${CONNECTION}

Exit codes: 0 done, 1 failed (Redis unreachable, no live instance knows <id>, --wait
timed out), 2 wrong arguments.
`,
  undrain: `Usage: affinity undrain <id> --redis URL --name NAME [--wait]

Ends the drain of upstream <id> on every balancer attached under NAME.

Options:
  --wait           wait until every live instance reports having applied it
${CONNECTION}

Exit codes: 0 done, 1 failed, 2 wrong arguments.
`,
  weight: `Usage: affinity weight <id> <weight> --redis URL --name NAME [--wait]

Sets upstream <id>'s weight (a number > 0) on every balancer attached under NAME.

Options:
  --wait           wait until every live instance reports having applied it
${CONNECTION}

Exit codes: 0 done, 1 failed, 2 wrong arguments.
`,
}

export const CONTROL_COMMANDS = Object.keys(CONTROL_HELP)

/** A wrong argument: printed with a pointer to --help, exit code 2. */
class UsageError extends Error {}

interface ControlArgs {
  positionals: string[]
  urls: string[]
  cluster: boolean
  name: string
  prefix: string | undefined
  timeoutMs: number
  json: boolean
  wait: boolean
}

/** `affinity status|drain|undrain|weight …`: 0 done, 1 failed, 2 wrong arguments. */
export async function controlCommand (command: string, argv: readonly string[], io: CliIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let args: ControlArgs | 'help'
  try {
    args = parseControlArgs(command, argv, env)
  } catch (err) {
    io.err(`affinity ${command}: ${(err as Error).message}\nRun 'affinity ${command} --help' for the options.\n`)
    return 2
  }
  if (args === 'help') { io.out(CONTROL_HELP[command]!); return 0 }
  let connected: Connected | undefined
  try {
    connected = await connectControl({ ...args, cwd: io.cwd })
    return await run(command, args, connected.control, io)
  } catch (err) {
    io.err(`affinity ${command}: ${err instanceof Error ? err.message : String(err)}\n`)
    return 1
  } finally {
    connected?.close()
  }
}

async function run (command: string, args: ControlArgs, control: ControlLike, io: CliIo): Promise<number> {
  const where = args.urls.map(masked).join(', ')
  if (command === 'status') {
    const [state, instances] = await Promise.all([control.state(), control.instances()])
    io.out(args.json ? toJson({ name: args.name, state, instances }) : statusReport(args.name, where, state, instances))
    return 0
  }
  const id = args.positionals[0]!
  const before = await control.instances()
  if (before.length > 0 && !before.some(i => i.upstreams.some(u => u.id === id))) {
    const known = [...new Set(before.flatMap(i => i.upstreams.map(u => u.id)))].sort()
    io.err(`affinity ${command}: no live instance under '${args.name}' has upstream ${JSON.stringify(id)}; they have: ${known.join(', ')}. Nothing was changed.\n`)
    return 1
  }
  const entry = command === 'drain'
    ? await control.drain(id)
    : command === 'undrain' ? await control.undrain(id) : await control.setWeight(id, Number(args.positionals[1]))
  const what = command === 'weight' ? `weight ${Number(args.positionals[1])}` : command === 'drain' ? 'drained' : 'undrained'
  io.out(`${id}: ${what} under '${args.name}' (operator state version ${entry.version}); `)
  if (before.length === 0) {
    io.out('no instance is live now: each applies it when it attaches.\n')
    return 0
  }
  if (!args.wait) {
    io.out(`${before.length} live instance${before.length === 1 ? '' : 's'} apply it as it is published.\n`)
    return 0
  }
  const pending = await waitApplied(control, before, entry.version, args.timeoutMs)
  if (pending.length === 0) {
    io.out(`applied by all ${before.length} live instances.\n`)
    return 0
  }
  io.out('\n')
  io.err(`affinity ${command}: not reported as applied within ${args.timeoutMs} ms by: ${pending.join(', ')}\n`)
  return 1
}

/**
 * Reads the views until every instance that was live has reported a version at
 * least `version` (it applied the operation), or has gone; returns those that did
 * not in `timeoutMs`. Views are refreshed every reportMs, so this polls them.
 */
async function waitApplied (control: ControlLike, live: LiveInstanceLike[], version: number, timeoutMs: number): Promise<string[]> {
  const end = Date.now() + timeoutMs
  let pending = live.map(i => i.id)
  for (;;) {
    const now = new Map((await control.instances()).map(i => [i.id, i]))
    pending = pending.filter(id => now.has(id) && !(now.get(id)!.online && now.get(id)!.version >= version))
    if (pending.length === 0 || Date.now() >= end) return pending
    await new Promise(resolve => setTimeout(resolve, 200))
  }
}

function parseControlArgs (command: string, argv: readonly string[], env: NodeJS.ProcessEnv): ControlArgs | 'help' {
  const { values, positionals } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: true,
    options: {
      redis: { type: 'string', multiple: true },
      cluster: { type: 'boolean' },
      name: { type: 'string' },
      prefix: { type: 'string' },
      timeout: { type: 'string' },
      json: { type: 'boolean' },
      wait: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help === true) return 'help'
  const arity = command === 'status' ? 0 : command === 'weight' ? 2 : 1
  if (positionals.length !== arity) {
    throw new UsageError(arity === 0 ? `unexpected argument '${positionals[0]}'` : `expected ${command === 'weight' ? '<id> <weight>' : '<id>'}, got ${positionals.length} argument${positionals.length === 1 ? '' : 's'}`)
  }
  if (command === 'weight') {
    const w = Number(positionals[1])
    if (positionals[1]!.trim() === '' || !Number.isFinite(w) || w <= 0) throw new UsageError(`<weight>: expected a number > 0, got '${positionals[1]}'`)
  }
  if (command === 'status' && values.wait === true) throw new UsageError('--wait is for drain, undrain and weight')
  if (command !== 'status' && values.json === true) throw new UsageError('--json is for status')
  const urls = (values.redis ?? (env.AFFINITY_REDIS_URL === undefined ? [] : [env.AFFINITY_REDIS_URL])).flatMap(u => u.split(',')).map(u => u.trim()).filter(u => u !== '')
  if (urls.length === 0) throw new UsageError('--redis URL is required (or $AFFINITY_REDIS_URL)')
  for (const u of urls) {
    if (!/^rediss?:\/\//.test(u) || !URL.canParse(u)) throw new UsageError(`--redis: expected a redis:// or rediss:// URL, got '${masked(u)}'`)
  }
  if (urls.length > 1 && values.cluster !== true) throw new UsageError('several --redis URLs are cluster nodes: add --cluster')
  const name = values.name ?? env.AFFINITY_CONTROL_NAME
  if (name === undefined || name === '') throw new UsageError('--name NAME is required (or $AFFINITY_CONTROL_NAME): the name the balancers\' redisControl uses')
  if (/[{}]/.test(name)) throw new UsageError(`--name: a control name has no { or }, got '${name}'`)
  const timeoutMs = values.timeout === undefined ? 5000 : Number(values.timeout)
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new UsageError(`--timeout: expected milliseconds > 0, got '${values.timeout}'`)
  return { positionals, urls, cluster: values.cluster === true, name, prefix: values.prefix, timeoutMs, json: values.json === true, wait: values.wait === true }
}
