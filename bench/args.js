// Command-line options for the benchmarks: one parser, driven by tables of what each
// option sets, so every script accepts `--name value`, `--name=value` and --help alike.

/** Prints `script: message` and exits 2 (a usage error, not a failed benchmark). */
export function die (script, message) {
  process.stderr.write(`${script}: ${message}\n`)
  process.exit(2)
}

/**
 * `flags`: options without a value → (o) => void; `values`: options with one →
 * (o, value) => void; `help`: what --help prints. Returns `defaults`, filled in.
 */
export function parseArgs (argv, { script, defaults, flags = {}, values = {}, help }) {
  const o = { ...defaults }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const eq = a.indexOf('=')
    const name = eq === -1 ? a : a.slice(0, eq)
    if (Object.hasOwn(flags, name)) flags[name](o)
    else if (Object.hasOwn(values, name)) {
      const v = eq === -1 ? argv[++i] : a.slice(eq + 1)
      if (v === undefined) die(script, `${a} needs a value`)
      values[name](o, v)
    } else if (a === '--help' || a === '-h') {
      process.stdout.write(help.endsWith('\n') ? help : `${help}\n`)
      process.exit(0)
    } else die(script, `unknown argument ${a} (--help lists them)`)
  }
  return o
}

/** A comma-separated list option: 'a, b,,c' → ['a', 'b', 'c']. */
export const list = (v) => v.split(',').map(s => s.trim()).filter(Boolean)
