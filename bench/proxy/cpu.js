// CPU time from /proc (Linux): per process, machine-wide, per round; and pinning (--pin).
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import { round } from '../numbers.js'

export const OTHERS_LIMIT = 0.1 // cores used by other processes during a round before it is flagged
const CLK_TCK = 100 // USER_HZ: /proc times are in 1/100 s on Linux

/** CPU seconds (user + system) of a process, from /proc; undefined off Linux. */
function procCpu (pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(f[11]) + Number(f[12])) / CLK_TCK
  } catch { return undefined }
}

/** Machine-wide CPU seconds: busy (all but idle and iowait) and steal, from /proc/stat. */
export function machineCpu () {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
    const [user, nice, system, , , irq, softirq, steal] = f
    return { busy: (user + nice + system + irq + softirq + steal) / CLK_TCK, tasks: (user + nice + system) / CLK_TCK, steal: steal / CLK_TCK }
  } catch { return undefined }
}

/** A snapshot of CPU time: the proxy (and its workers), the upstreams, this process, the machine. */
export function cpuSnapshot (proxyPids, upstreamPid) {
  const u = process.cpuUsage()
  let proxy = 0
  for (const pid of proxyPids) { const c = procCpu(pid); if (c === undefined) return undefined; proxy += c }
  return { t: performance.now() / 1000, proxy, upstreams: procCpu(upstreamPid), loadgen: (u.user + u.system) / 1e6, machine: machineCpu() }
}

/** CPU use between two snapshots, as a share of one core (1.0 = one core busy). */
export function cpuBetween (a, b) {
  if (a === undefined || b === undefined) return undefined
  const dt = b.t - a.t
  return {
    proxy: round((b.proxy - a.proxy) / dt, 2),
    upstreams: round((b.upstreams - a.upstreams) / dt, 2),
    loadgen: round((b.loadgen - a.loadgen) / dt, 2),
    machine: b.machine && a.machine ? round((b.machine.busy - a.machine.busy) / dt, 2) : undefined,
    // user + system time of every process but ours (irq/softirq, where loopback traffic is partly
    // accounted, left out): another job on the machine.
    others: b.machine && a.machine && b.upstreams !== undefined ? round(Math.max(0, (b.machine.tasks - a.machine.tasks) - (b.proxy - a.proxy) - (b.upstreams - a.upstreams) - (b.loadgen - a.loadgen)) / dt, 2) : undefined,
    steal: b.machine && a.machine ? round((b.machine.steal - a.machine.steal) / dt, 2) : undefined,
  }
}

/** Per thread of `pid`: CPU ticks (user + system) and the CPU it last ran on (/proc/<pid>/task/<tid>/stat). */
function threads (pid) {
  const out = new Map()
  let tids
  try { tids = fs.readdirSync(`/proc/${pid}/task`) } catch { return out }
  for (const tid of tids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      out.set(tid, { ticks: Number(f[11]) + Number(f[12]), cpu: Number(f[36]) }) // fields 14, 15, 39 (proc(5))
    } catch {}
  }
  return out
}

/** Where each process's threads are, by role: { door: [pids], upstreams: [pid], loadgen: [pid] }. */
export function coreSnapshot (roles) {
  const snap = {}
  for (const [role, pids] of Object.entries(roles)) snap[role] = pids.map(threads)
  return snap
}

/**
 * The CPUs each role's threads ran on between two snapshots: a thread counts when it used
 * CPU time in between (a thread asleep since before the pinning still reports its old CPU).
 */
export function coresBetween (a, b) {
  const out = {}
  for (const role of Object.keys(b)) {
    const cpus = new Set()
    b[role].forEach((after, i) => {
      for (const [tid, t] of after) if (t.ticks > (a[role]?.[i]?.get(tid)?.ticks ?? 0)) cpus.add(t.cpu)
    })
    out[role] = [...cpus].sort((x, y) => x - y)
  }
  return out
}

/** The CPUs a process may run on (Cpus_allowed_list), e.g. '1' or '0-1'. */
export function allowedCpus (pid) {
  try { return /^Cpus_allowed_list:\s*(\S+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] } catch { return undefined }
}

/** Pins a process (every thread) to the given CPUs with taskset; false when it cannot. */
function pin (pid, cpus) {
  const r = spawnSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { encoding: 'utf8' })
  return r.status === 0
}

let plan // { proxy: '1', rest: '0' } once --pin took effect

/**
 * --pin (the default): the proxies get the last CPU, this process (autocannon) and the
 * upstreams the others (issue 18: on 2 cores, upstreams + load generator on CPU 0, each door
 * alone on CPU 1); false when taskset fails or there is one CPU.
 */
export function startPinning () {
  const n = os.cpus().length
  if (n < 2) return false
  plan = { proxy: String(n - 1), rest: n > 2 ? `0-${n - 2}` : '0' }
  if (!pin(process.pid, plan.rest)) plan = undefined
  return plan !== undefined
}

/** Pins `pid` to the CPUs of its role ('proxy' or 'rest') when --pin is on. */
export function pinAs (pid, role) {
  if (plan !== undefined) pin(pid, plan[role])
}
