import { accessSync, constants } from 'node:fs'
import path from 'node:path'
import type { Test } from 'tap'

/** An executable named `name` in `dirs` then on PATH, if any. */
export function findBinary (name: string, dirs: readonly string[] = []): string | undefined {
  for (const dir of [...dirs, ...(process.env.PATH ?? '').split(path.delimiter)]) {
    if (dir === '') continue
    const bin = path.join(dir, name)
    try {
      accessSync(bin, constants.X_OK)
      return bin
    } catch {}
  }
  return undefined
}

/**
 * Runs a test file's `tests` (`t`: its tap root) when the service's binary is installed. Without it the
 * file has nothing to run — unless `requireVar`=1 (set by .ci/run, which installs
 * the service) makes that a failure: CI never skips them.
 */
export function withService (t: Test, name: string, bin: string | undefined, requireVar: string, tests: (bin: string) => void): void {
  if (bin !== undefined) tests(bin)
  else if (process.env[requireVar] === '1') t.fail(`${name} is not installed, and ${requireVar}=1 requires it (.ci/run installs it)`)
  else t.plan(0, `${name} not installed; .ci/run installs it`)
}
