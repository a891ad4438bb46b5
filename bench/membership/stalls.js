// How much of a call's or slice's main-thread CPU time the virtual CPU spent making no
// progress (bench/membership.js --stalls).
//
// On this project's VM (Firecracker, 2 vCPUs) a change call now and then reads 10–27 ms
// of main-thread CPU (clock_gettime(CLOCK_THREAD_CPUTIME_ID)) where the same call
// usually takes 1–3. Sampled by `perf record -e cpu-clock` at 4 kHz, such a call's
// samples come 0.3–0.7 ms apart instead of 0.25, and most of them sit on the same
// instruction as the sample before (the entry of a V8 runtime function, a Map lookup,
// the kernel's softirq exit): the guest's clock ran and the thread was charged, but the
// vCPU ran nothing, so its timer interrupts came late. The host reported no steal for
// it (/proc/stat). Running code keeps the sampling timer on time: `node
// bench/membership/stalls.js` (20 rounds each of allocating 8 MB arrays, filling a Map
// and spinning, ≈ 2.3 s) counts 0–0.34 % of that time as stalled, at most 2.5 ms within
// one 71 ms Map fill (three runs on the VM above).
//
// So, between two consecutive samples of the main thread on its core, a stall is
// - the whole interval, when the second is on the same instruction and late by over a
//   tenth (the vCPU got as far as its timer interrupt, not past the instruction; a
//   fault the host takes on the page it needs would do that: a guess, not measured);
// - else the excess over the period, when late by over a fifth.
// Same instruction alone is not enough: a tight loop, or one long `rep stos` zeroing
// 8 MB, lands there by chance in 12–62 % of samples, but then on time. Two samples of the
// main thread with another task's between them are not consecutive: it was switched
// out, which its CPU time does not count anyway.
// Linux only, where `perf` is installed and may record (root, or
// kernel.perf_event_paranoid ≤ 0), with the main thread pinned to its core.

import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'

/** Samples per second: one every 250 µs, fine enough to see a stall of 1 ms. */
const HZ = 4000
const PERIOD_NS = 1_000_000_000n / BigInt(HZ)
/** An interval longer than this is late: the vCPU did not run for the excess. */
const LATE_NS = PERIOD_NS * 6n / 5n
/** A sample on the previous one's instruction this late: the whole interval was a stall. */
const FROZEN_NS = PERIOD_NS * 11n / 10n

/**
 * Starts recording CPU `core` (perf itself runs on the CPUs `others`, a taskset list,
 * off the measured core); returns `{ stop(spans) }`, or `{ none }` saying why it
 * cannot. `stop` takes spans `{ from, to }` in process.hrtime.bigint() ns (CLOCK_MONOTONIC,
 * the clock perf is told to stamp samples with) and gives each its stalled ms.
 */
export async function stallRecorder (core, others) {
  if (core === undefined) return { none: 'the main thread is not pinned (one core, or --no-pin)' }
  const probe = spawnSync('perf', ['--version'], { stdio: 'ignore' })
  if (probe.error !== undefined || probe.status !== 0) return { none: 'no perf (Debian: linux-perf)' }
  const file = path.join(os.tmpdir(), `affinity-membership-${process.pid}.perf`)
  // taskset execs perf: the process is perf, and SIGINT stops it.
  const perf = spawn('taskset', ['-c', others, 'perf', 'record', '-q', '-e', 'cpu-clock', '-F', String(HZ), '-k', 'CLOCK_MONOTONIC', '-C', String(core), '-o', file], { stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  perf.stderr.on('data', (d) => { err += d })
  // perf has started once its file exists; it exits at once when it may not record.
  const started = await Promise.race([
    once(perf, 'exit').then(() => false),
    (async () => { while (!fs.existsSync(file)) await new Promise(resolve => setTimeout(resolve, 20)); return true })(),
  ])
  if (!started) return { none: `perf record failed: ${err.trim().split('\n')[0]}` }
  return {
    async stop (spans) {
      if (perf.exitCode === null && perf.signalCode === null) {
        perf.kill('SIGINT')
        await once(perf, 'exit')
      }
      try {
        return await measure(file, process.pid, spans)
      } finally {
        fs.rmSync(file, { force: true })
      }
    },
  }
}

/** Each span's stalled ms from the core's samples (`perf script`), in one pass over them in time order. */
async function measure (file, tid, spans) {
  const order = spans.map((_, i) => i).sort((a, b) => (spans[a].from < spans[b].from ? -1 : 1))
  const stalledMs = new Float64Array(spans.length)
  const script = spawn('perf', ['script', '-i', file, '-F', 'tid,time,ip'], { stdio: ['ignore', 'pipe', 'ignore'] })
  let prev // the last sample's time, if it was the main thread's
  let prevIp
  let k = 0 // the first span, in start order, that may still hold a sample
  for await (const line of readline.createInterface({ input: script.stdout })) {
    // "  2731  1326.481390:   f41f10"
    const m = /^\s*(\d+)\s+(\d+)\.(\d+):\s+([0-9a-f]+)/.exec(line)
    if (m === null) continue
    if (Number(m[1]) !== tid) { prev = undefined; continue }
    const t = BigInt(m[2]) * 1_000_000_000n + BigInt(m[3].padEnd(9, '0').slice(0, 9))
    const frozen = prev !== undefined && m[4] === prevIp && t - prev > FROZEN_NS
    if (frozen || (prev !== undefined && t - prev > LATE_NS)) {
      // The stalled part, where it overlaps a span (spans do not overlap one another).
      const late = frozen ? prev : prev + PERIOD_NS
      while (k < order.length && spans[order[k]].to <= late) k++
      for (let j = k; j < order.length && spans[order[j]].from < t; j++) {
        const s = spans[order[j]]
        const from = late > s.from ? late : s.from
        const to = t < s.to ? t : s.to
        if (to > from) stalledMs[order[j]] += Number(to - from) / 1e6
      }
    }
    prev = t
    prevIp = m[4]
  }
  const [code] = await once(script, 'exit')
  if (code !== 0) throw new Error(`perf script exited with ${code}`)
  return Array.from(stalledMs)
}

/**
 * `node bench/membership/stalls.js`: the method checked on work that does not stall
 * (or rarely): tight loops that allocate, fill a Map and spin, 20 rounds each, with
 * this thread on the last core and perf on the others. Prints, per kind, the time, the
 * stalled time counted, and the sampling intervals.
 */
async function check () {
  const n = os.availableParallelism()
  if (n < 2) throw new Error('needs two cores')
  const core = n - 1
  const others = n === 2 ? '0' : `0-${n - 2}`
  execFileSync('taskset', ['-cp', String(core), String(process.pid)], { stdio: 'ignore' })
  const rec = await stallRecorder(core, others)
  if (rec.none !== undefined) throw new Error(rec.none)
  const work = {
    'allocate 20 × 8 MB': () => { let s = 0; for (let i = 0; i < 20; i++) s += new Float64Array(1 << 20)[5]; return s },
    'Map of 200,000 keys': () => { const m = new Map(); for (let i = 0; i < 200_000; i++) m.set(`k${i}`, i); return m.size },
    'spin 20 ms': () => { const end = performance.now() + 20; while (performance.now() < end); },
  }
  const spans = []
  for (let round = 0; round < 20; round++) {
    for (const [name, fn] of Object.entries(work)) {
      const from = process.hrtime.bigint()
      fn()
      spans.push({ name, from, to: process.hrtime.bigint() })
    }
  }
  const stalled = await rec.stop(spans)
  for (const name of Object.keys(work)) {
    const mine = spans.map((s, i) => ({ ms: Number(s.to - s.from) / 1e6, stalled: stalled[i] })).filter((_, i) => spans[i].name === name)
    const total = mine.reduce((a, s) => a + s.ms, 0)
    const lost = mine.reduce((a, s) => a + s.stalled, 0)
    process.stdout.write(`${name.padEnd(20)} ${total.toFixed(0).padStart(6)} ms, stalled ${lost.toFixed(2)} ms (${(lost / total * 100).toFixed(2)} %), most in one ${Math.max(...mine.map(s => s.stalled)).toFixed(2)} ms\n`)
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await check()
