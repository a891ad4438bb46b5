// One upstream of the failover storm (bench/storm.js forks it): a node:http server that
// serves --capacity requests at once at full speed and slows down sharply beyond, as a
// real server does (the model of test/helpers/thrashing-upstream.ts): each request in
// progress advances at (capacity / concurrency)² of full speed, so total throughput
// falls as concurrency grows past capacity. Work per request: uniform in
// [workMs / 2, 3 workMs / 2]. GET /health answers at once (no work). It counts its own
// concurrency, the most at once per 100 ms window, and answers {stats} over IPC; the
// storm kills it with SIGKILL.
import http from 'node:http'
import { parseArgs } from 'node:util'

const { values } = parseArgs({ options: { name: { type: 'string' }, capacity: { type: 'string' }, work: { type: 'string' }, seed: { type: 'string' } } })
const name = values.name
const capacity = Number(values.capacity)
const workMs = Number(values.work)
let rng = Number(values.seed) | 0
const random = () => {
  let a = rng = (rng + 0x6D2B79F5) | 0
  a = Math.imul(a ^ (a >>> 15), a | 1)
  a ^= a + Math.imul(a ^ (a >>> 7), a | 61)
  return ((a ^ (a >>> 14)) >>> 0) / 4294967296
}

const active = new Set()
let max = 0
let served = 0
/** [epoch ms at the window's start, most in progress at once in it] per 100 ms window. */
const timeline = []
let windowStart = Date.now()
let windowMax = 0
const note = () => {
  const n = active.size
  if (n > max) max = n
  const now = Date.now()
  if (now - windowStart >= 100) {
    timeline.push([windowStart, windowMax])
    windowStart = now
    windowMax = n
  } else if (n > windowMax) windowMax = n
}

let timer
let last = 0
function tick () {
  const now = performance.now()
  const dt = now - last
  last = now
  const n = active.size
  const speed = n <= capacity ? 1 : (capacity / n) ** 2
  for (const job of active) {
    job.left -= dt * speed
    if (job.left > 0) continue
    active.delete(job)
    served++
    job.res.writeHead(200, { 'content-type': 'application/json', 'x-served-by': name })
    job.res.end(`{"name":"${name}"}`)
  }
  note()
  if (active.size === 0) { clearInterval(timer); timer = undefined }
}

const server = http.createServer((req, res) => {
  req.resume()
  if (req.url === '/health') { res.end('ok'); return }
  const job = { left: workMs * (0.5 + random()), res }
  active.add(job)
  note()
  res.once('close', () => { if (active.delete(job)) note() })
  if (timer === undefined) { last = performance.now(); timer = setInterval(tick, 2) }
})
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }))
process.on('message', (m) => {
  if (m === 'stats') { note(); process.send({ stats: { name, max, served, timeline: [...timeline, [windowStart, windowMax]] } }) }
})
process.on('disconnect', () => process.exit(0))
