// The tables of bench/membership.js: blocking per change, then traffic steady vs roll.

function table (title, cols, rows, notes = []) {
  const cells = rows.map(r => cols.map(c => { const v = c.get(r); return v === undefined || v === null ? '—' : String(v) }))
  const widths = cols.map((c, i) => Math.max(c.label.length, ...cells.map(r => r[i].length)))
  const line = (vals) => vals.map((v, i) => (cols[i].left ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ').trimEnd()
  return [title, '', line(cols.map(c => c.label)), widths.map(w => '─'.repeat(w)).join('  '), ...cells.map(line), ...notes].join('\n') + '\n'
}

const offText = (o) => (o === undefined ? '—' : `${o.preempted} / ${o.waited}`)
const pair = (s) => (s === undefined || s.count === 0 ? undefined : `${s.max} / ${s.p99}`)

/** Each change within 10 ms: per call, or per change of a source's update (its time over the changes it made). */
function withinBudget (r) {
  const calls = ['add', 'drain', 'undrain', 'remove'].map(k => r.changes[k]).filter(s => s.count > 0)
  const worst = Math.max(...calls.map(s => s.max), r.changes.perChange?.max ?? 0, r.slices?.max ?? 0)
  if (worst <= 10) return 'yes'
  const warm = Math.max(r.changes.later.max, r.changes.perChange?.max ?? 0, r.slices?.warm?.max ?? r.slices?.max ?? 0)
  return warm <= 10 && r.rollBy === 'calls' ? 'after warm-up' : 'NO'
}

/** The same, for the main thread's CPU time in each call and slice (steal and any wait excluded). */
function cpuWithinBudget (r) {
  if (r.threadCpu === undefined) return undefined
  if (Math.max(r.threadCpu.calls, r.slices?.threadCpu ?? 0) <= 10) return 'yes'
  return Math.max(r.threadCpu.later, r.slices?.threadCpuWarm ?? 0) <= 10 && r.rollBy === 'calls' ? 'after warm-up' : 'NO'
}

/** The same, for the main thread's CPU time less the time its vCPU was stalled (--stalls). */
function stallsWithinBudget (r) {
  if (r.stalls === undefined) return undefined
  if (Math.max(r.stalls.calls ?? 0, r.stalls.slices ?? 0) <= 10) return 'yes'
  return Math.max(r.stalls.later ?? 0, r.stalls.slicesWarm ?? 0) <= 10 && r.rollBy === 'calls' ? 'after warm-up' : 'NO'
}

/** The same, for each call's and slice's own work: main-thread CPU time less the GC pauses within it. */
function ownWithinBudget (r) {
  if (r.own === undefined) return undefined
  if (Math.max(r.own.all.max, r.slices?.ownMax ?? 0) <= 10) return 'yes'
  return Math.max(r.own.later.max, r.slices?.ownWarmMax ?? 0) <= 10 ? 'after warm-up' : 'NO'
}

export function report (rows, withCore) {
  const who = [
    { label: 'N', get: r => r.n },
    { label: 'strategy', left: true, get: r => r.strategy },
    ...(rows.some(r => r.rollBy !== 'calls') ? [{ label: 'roll by', left: true, get: r => r.rollBy }] : []),
    ...(withCore ? [{ label: 'core', left: true, get: r => r.core }] : []),
  ]
  const blocking = table(
    'Blocking per change, ms (max / p99), the change call timed directly',
    [
      ...who,
      { label: 'changes', get: r => r.changes.all.count },
      { label: 'add', get: r => pair(r.changes.add) },
      { label: 'drain', get: r => pair(r.changes.drain) },
      { label: 'undrain', get: r => pair(r.changes.undrain) },
      { label: 'remove', get: r => pair(r.changes.remove) },
      ...(rows.some(r => r.rollBy !== 'calls') ? [{ label: 'update', get: r => pair(r.changes.update) }, { label: 'per change', get: r => pair(r.changes.perChange) }, { label: 'CPU/change', get: r => pair(r.cpu.perChange) }] : []),
      { label: 'all', get: r => pair(r.changes.all) },
      { label: 'first', get: r => r.firstMs },
      { label: 'all but first', get: r => pair(r.changes.later) },
      { label: 'slices', get: r => (r.slices?.warm === undefined || r.slices.warm.count === 0 ? undefined : pair(r.slices.warm)) },
      { label: 'warm-up', get: r => r.slices?.max },
      { label: '≤ 10 ms', get: r => withinBudget(r) },
      { label: '> 10 ms: calls / slices', get: r => `${r.overCalls} of ${r.changes.all.count} / ${r.slices?.over ?? 0} of ${r.slices?.count ?? 0}` },
      { label: 'CPU of those', get: r => (r.overCallsCpuMax === undefined && r.slices?.overCpuMax === undefined ? undefined : `${r.overCallsCpuMax ?? '—'} / ${r.slices?.overCpuMax ?? '—'}`) },
      { label: 'main thread CPU: calls / slices', get: r => (r.threadCpu === undefined ? undefined : `${r.threadCpu.calls} / ${r.slices?.count > 0 ? r.slices.threadCpu : '—'}`) },
      { label: 'in those over 10 ms', get: r => (r.threadCpu === undefined || (r.threadCpu.overCalls === undefined && r.slices?.overThreadCpu === undefined) ? undefined : `${r.threadCpu.overCalls ?? '—'} / ${r.slices?.overThreadCpu ?? '—'}`) },
      { label: 'of those, preempted / waited: calls · slices', get: r => (r.threadCpu === undefined || (r.threadCpu.overCalls === undefined && r.slices?.overThreadCpu === undefined) ? undefined : `${offText(r.threadCpu.overCallsOff)} · ${offText(r.slices?.overOff)}`) },
      { label: '≤ 10 ms on CPU', get: r => cpuWithinBudget(r) },
      ...(rows.some(r => r.stalls !== undefined)
        ? [
            { label: 'vCPU stalled ≥ 1 ms: in / of those over 10 ms', get: r => (r.stalls === undefined ? undefined : `${r.stalls.stalled} (max ${r.stalls.stalledMax}) / ${r.stalls.overStalled} of ${r.stalls.over}`) },
            { label: 'main thread CPU less stalls: calls / slices', get: r => (r.stalls === undefined ? undefined : `${r.stalls.calls ?? '—'} / ${r.stalls.slices ?? '—'}`) },
            { label: '≤ 10 ms, CPU less stalls', get: r => stallsWithinBudget(r) },
          ]
        : []),
      { label: 'own: calls / slices', get: r => (r.own === undefined ? undefined : `${r.own.all.max} / ${r.slices?.ownMax ?? '—'}`) },
      { label: '≤ 10 ms, own', get: r => ownWithinBudget(r) },
      { label: 'GC max steady → roll', get: r => `${r.steady.gcMax ?? '—'} → ${r.gc?.max}` },
      { label: 'GC in a call', get: r => r.own?.gcInCallsMax },
      { label: 'preview()', get: r => (r.previewMs === undefined ? undefined : `${r.previewMs.median} / ${r.previewMs.max}`) },
    ],
    rows,
    [
      '',
      'drain/undrain take the path a health change (down/up) takes: new Members, remap preview, strategy.update.',
      'first = the case\'s first change; the first of its kind in the process runs code V8 has not optimised yet (JIT warm-up).',
      'own = the longest own work of a call (the first included) and of a slice: its time less the GC pauses within it; "≤ 10 ms, own" checks those.',
      'CPU of those = the most CPU time (process.cpuUsage(), all of this process\'s threads) used during one of the calls / slices over 10 ms:',
      '  a call that took longer than the CPU it used was off its core for the rest (preempted, or the hypervisor\'s steal).',
      'main thread CPU = the most CPU time the main thread itself used in one call / slice (clock_gettime(CLOCK_THREAD_CPUTIME_ID): the change\'s own',
      '  work, without the time the thread was off its core, stolen by the hypervisor or waiting); in those over 10 ms = the most in one of the calls / slices',
      '  whose time was over 10 ms; "≤ 10 ms on CPU" checks the first (after warm-up: all calls but the first and the slices after the first 12 changes).',
      'preempted / waited = of the calls · slices over 10 ms, how many had an involuntary context switch of the main thread (another task ran on',
      '  its core) / a voluntary one (it waited: a lock, or another thread such as a GC helper) (getrusage(RUSAGE_THREAD)).',
      ...(rows.some(r => r.stalls !== undefined)
        ? ['vCPU stalled (--stalls) = calls and slices with 1 ms or more in which the main thread\'s vCPU made no progress yet its CPU clock ran',
            '  (perf at 4 kHz: samples late, or late and on one instruction: membership/stalls.js), the longest such time in one, and how many of the calls and slices over',
            '  10 ms had one; CPU less stalls = the most main-thread CPU time of one call / slice less its stalled time; "≤ 10 ms, CPU less stalls" checks it.']
        : []),
      'GC in a call = the most GC pause time within one call.',
      'slices = the strategy\'s slices of the roll after its first 12 changes (max / p99): where hash strategies apply a change at fleet scale, after the call;',
      '  warm-up = the longest of all of them, the first 12 changes included (code V8 has not optimised yet). "after warm-up": all calls but the first and',
      '  the slices after the first 12 changes within 10 ms.',
      'GC max = the longest garbage-collection pause of steady state (no change) and of the roll (PerformanceObserver \'gc\'): it lands in whatever runs then.',
      'preview() = Balancer.preview(), ms per call (median / max of 5 pairs: one add, one remove): an explicit what-if, not on the change path.',
      'roll by source ×K: updates from a membership source, each replacing K upstreams in one snapshot (update = the whole update; per change = update / 2K,',
      'what "≤ 10 ms" checks for these rows, with the drain/undrain calls).',
    ],
  )
  const traffic = table(
    'Traffic: steady state → during the roll',
    [
      ...who,
      { label: 'req/s', get: r => `${r.steady.rps} → ${r.roll.rps}` },
      { label: 'µs CPU/req', get: r => `${r.steady.cpuUsPerReq} → ${r.roll.cpuUsPerReq}` },
      { label: 'req p50 ms', get: r => `${r.steady.p50} → ${r.roll.p50}` },
      { label: 'req p99 ms', get: r => `${r.steady.p99} → ${r.roll.p99}` },
      { label: 'req max ms', get: r => `${r.steady.max} → ${r.roll.max}` },
      { label: 'loop delay max ms', get: r => `${r.steady.loop.max} → ${r.roll.loop.max}` },
      { label: 'loop p99 ms', get: r => `${r.steady.loop.p99} → ${r.roll.loop.p99}` },
      { label: 'roll s', get: r => r.rollSeconds },
      { label: 'steal ms', get: r => r.stealMs },
      { label: 'errors', get: r => r.steady.errors + r.roll.errors + r.steady.non2xx + r.roll.non2xx + r.primeFailures },
    ],
    rows,
    ['', 'errors: non-2xx responses and socket errors, steady + roll + the users\' first visits.',
      'steal ms = the hypervisor\'s steal on the main thread\'s core during the roll (/proc/stat, 10 ms ticks; pinned runs only).'],
  )
  return `${blocking}\n${traffic}`
}
