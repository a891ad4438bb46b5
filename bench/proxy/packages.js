// Where a door's @affinity packages come from: this tree, or for an `@base` twin (--base-dir)
// the built checkout given, so one interleaved run compares two commits side by side.
import path from 'node:path'
import { pathToFileURL } from 'node:url'

/** @affinity/<pkg>: this tree's, or with AFFINITY_BENCH_BASE_DIR set (an @base twin's child) that checkout's dist. */
export function affinityImport (pkg) {
  const dir = process.env.AFFINITY_BENCH_BASE_DIR
  return dir ? import(pathToFileURL(path.join(path.resolve(dir), 'packages', pkg, 'dist', 'index.js')).href) : import(`@affinity/${pkg}`)
}

/** Affinity's own doors get an @base twin with --base-dir (the baselines do not depend on Affinity). */
export const hasTwin = (t) => t.group === 'core' || t.group === 'fastify' || t.group === 'express'
