#!/usr/bin/env node
// Runs the tap suite and ends with the plain summary line CI reads:
// "N passed, N failed" (tap's own last lines count assertions as `# { total, pass, fail }`).
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const tap = new URL('../node_modules/.bin/tap', import.meta.url)
if (!existsSync(tap)) {
  console.error('Dependencies are not installed: run `npx -y pnpm@10.34.8 install --frozen-lockfile` first.')
  process.exit(1)
}
const child = spawn(fileURLToPath(tap), process.argv.slice(2), { cwd: root, stdio: ['inherit', 'pipe', 'inherit'] })
let tail = ''
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk)
  tail = (tail + chunk.toString('utf8')).slice(-8192)
})
child.on('close', (code, signal) => {
  const line = tail.split('\n').reverse().find(s => /^# \{ total: \d+/.test(s))
  const n = (k) => Number(line?.match(new RegExp(`${k}: (\\d+)`))?.[1] ?? 0)
  if (line) {
    const skipped = n('skip') + n('todo')
    console.log(`${n('pass')} passed, ${n('fail')} failed${skipped ? `, ${skipped} skipped` : ''}`)
  } else {
    console.log('0 passed, 1 failed')
  }
  process.exit(code ?? (signal ? 1 : 0))
})
