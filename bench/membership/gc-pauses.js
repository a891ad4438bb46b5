// What the measured event loop spent on a change, apart from what merely happened
// while it ran: the garbage-collection pauses (PerformanceObserver 'gc', on
// performance.now()'s clock) that overlap an interval. A scavenge lands in whatever
// runs when the young generation fills, mostly with request objects: steady state
// without any change has pauses as long (the bench reports both).
// (The main thread's CPU time is the other half: thread-cpu.js, where it can be read.)

import { PerformanceObserver } from 'node:perf_hooks'

/** Garbage-collection pauses until stop(): count, longest, and how much of an interval they covered. */
export function gcPauses () {
  const starts = []
  const ends = []
  let max = 0
  const take = (list) => {
    for (const e of list) {
      starts.push(e.startTime)
      ends.push(e.startTime + e.duration)
      if (e.duration > max) max = e.duration
    }
  }
  const observer = new PerformanceObserver(list => take(list.getEntries()))
  observer.observe({ entryTypes: ['gc'] })
  return {
    stop () {
      take(observer.takeRecords())
      observer.disconnect()
      return {
        count: starts.length,
        max,
        /** ms of GC pause within [from, to] (pauses never overlap each other: one main thread). */
        within (from, to) {
          let sum = 0
          for (let i = 0; i < starts.length; i++) {
            const overlap = Math.min(to, ends[i]) - Math.max(from, starts[i])
            if (overlap > 0) sum += overlap
          }
          return sum
        },
      }
    },
  }
}
