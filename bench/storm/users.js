// The storm's users (bench/storm.js): closed loops, one per user, each keeping its own
// balancer cookie: think (exponential, mean thinkMs), GET /api/work, record, repeat.
// Every answer is recorded with the upstream the user was pinned to when it asked
// (`pinned`: the last upstream that served it), when it was sent and answered, its
// status, who served it and, for the balancer's own errors, their message.

/** mulberry32 in [0, 1). */
function prng (seed) {
  let a = seed | 0
  return () => {
    a = (a + 0x6D2B79F5) | 0
    let t = Math.imul(a ^ (a >>> 15), a | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export function runUsers ({ pool, users, thinkMs, seed }) {
  const random = prng(seed)
  const think = () => -Math.log(1 - random()) * thinkMs
  const records = []
  let stopped = false
  const user = async (k) => {
    let cookie
    let home
    // Users arrive spread over three think times, not all at once: a burst of first
    // visits would overload the fleet before the storm starts.
    await sleep(random() * 3 * thinkMs)
    while (!stopped) {
      const sentAt = performance.now()
      const pinned = home
      let status = 0
      let servedBy
      let message
      try {
        const res = await pool.request({ method: 'GET', path: `/api/work?u=${k}`, headers: cookie === undefined ? {} : { cookie } })
        const body = await res.body.text()
        status = res.statusCode
        const set = res.headers['set-cookie']
        if (set !== undefined) cookie = String(set).split(';')[0]
        servedBy = res.headers['x-served-by']
        if (status >= 500) { try { message = JSON.parse(body).message } catch { message = body.slice(0, 80) } }
      } catch (err) {
        message = err.code ?? err.message
      }
      records.push({ user: k, pinned, sentAt, doneAt: performance.now(), status, servedBy, message })
      if (servedBy !== undefined) home = servedBy
      if (!stopped) await sleep(think())
    }
  }
  const all = Promise.all(Array.from({ length: users }, (_, k) => user(k)))
  return {
    /** Stops the loops after the requests under way; resolves with every record. */
    async stop () {
      stopped = true
      await all
      return records
    },
  }
}

const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))
