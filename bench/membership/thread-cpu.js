// The main thread's own CPU time, so that a long change call or slice can be told
// apart from one the main thread spent off its core. The process's CPU time
// (process.cpuUsage) counts every thread; Node 20 has no per-thread clock
// (process.threadCpuUsage is Node 23.9); /proc/thread-self/schedstat, getrusage
// (RUSAGE_THREAD) and WASI's thread clock lag by up to a scheduler tick (a 14 ms spin
// read as 7.7 ms, a 0.5 ms one as 4 ms, on this project's VM). clock_gettime
// (CLOCK_THREAD_CPUTIME_ID) is exact (14 ms read as 13.93 by a C program), and steal
// is not in it (CONFIG_PARAVIRT_TIME_ACCOUNTING); a vCPU stall the host does not
// report as steal is, and so is the kernel's interrupt work on the thread's core
// (no CONFIG_IRQ_TIME_ACCOUNTING): --stalls measures the first (membership/stalls.js).
// So thread-cpu.c, a dozen lines of
// N-API, is compiled with the system's C compiler against Node's own headers when
// both are there (into the OS temp directory, once per Node version); otherwise the
// bench reports no main-thread figures.

import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * A function returning the main thread's CPU time in ms, with `switches()`: its context
 * switches so far, [voluntary, involuntary]; or an object saying why there is none.
 */
export function threadCpuClock () {
  const headers = path.join(path.dirname(process.execPath), '..', 'include', 'node')
  if (!fs.existsSync(path.join(headers, 'node_api.h'))) return { none: `no Node headers at ${headers}` }
  // Named for its source too: an older build of it in the temp directory lacks threadSwitches.
  const source = fileURLToPath(new URL('./thread-cpu.c', import.meta.url))
  const tag = createHash('sha256').update(fs.readFileSync(source)).digest('hex').slice(0, 12)
  const out = path.join(os.tmpdir(), `affinity-thread-cpu-${process.version}-${process.arch}-${tag}.node`)
  try {
    if (!fs.existsSync(out)) {
      execFileSync('cc', ['-O2', '-shared', '-fPIC', `-I${headers}`, '-o', `${out}.${process.pid}`, source], { stdio: 'ignore' })
      fs.renameSync(`${out}.${process.pid}`, out)
    }
    const { threadCpuMs, threadSwitches } = createRequire(import.meta.url)(out)
    // The first reads of a process jump by a few ms (seen in Node, not in C): read it past them.
    for (let i = 0; i < 1000; i++) threadCpuMs()
    return Object.assign(threadCpuMs, { switches: threadSwitches })
  } catch (err) {
    return { none: `no C compiler to build bench/membership/thread-cpu.c (${err.code ?? err.status})` }
  }
}
