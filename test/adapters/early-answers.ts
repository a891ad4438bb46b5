/**
 * Early answers (RFC 9112 §9.6): an upstream that answers 413 before reading an
 * upload and closes the connection — with `Connection: close`, or by destroying the
 * socket — is relayed to the client as it answered, status, headers and body, never
 * as a 502, and is never charged. The rest of the client's upload is read and
 * discarded: nothing stays in flight, and the client's connection (or a new one)
 * serves the next request. Clients: curl as an outsider uses it (with and without
 * `Expect: 100-continue`; it stops sending at the answer), and a raw keep-alive client
 * that sends its whole 8 MiB regardless, then another request on the same connection.
 * Run per adapter by early-answers.express.test.ts and early-answers.fastify.test.ts
 * (which also runs an HTTP/2 client against a Fastify `http2: true` app).
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Test } from 'tap'
import type { AdapterHarness } from './harness.js'
import { checkBooks, RawClient, rig, within, type Rig } from './in-flight-rig.js'
import { connect, send } from '../helpers/h2-client.js'

const UPLOAD = 8 << 20
const TRIES = 20
const CURL = '/usr/bin/curl'

/** The upstream: /early-close and /early-destroy answer 413 at once; anything else is echoed with its body size. */
function upstream (req: IncomingMessage, res: ServerResponse): void {
  const early = req.url!.startsWith('/early-')
  if (!early) {
    let bytes = 0
    req.on('data', (c: Buffer) => { bytes += c.length })
    req.on('end', () => res.end(JSON.stringify({ url: req.url, bytes })))
    return
  }
  const body = `upload too large: at most 1 MiB (${req.url})`
  const headers = { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'x-early': 'yes' }
  if (req.url!.startsWith('/early-close')) res.writeHead(413, { ...headers, connection: 'close' }).end(body)
  else res.writeHead(413, headers).end(body, () => req.socket.destroy())
}

function curl (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return new Promise(resolve => {
    execFile(CURL, args, { encoding: 'utf8', maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: unknown }).code ?? -1), stdout, stderr })
    })
  })
}

/** How many requests for `style` the upstream received. */
function seenFor (r: Rig, style: string): number {
  return r.seen.filter(s => s.url.startsWith(`/${style}/`)).length
}

export function runEarlyAnswers (t: Test, h: AdapterHarness): void {
  for (const style of ['early-close', 'early-destroy'] as const) {
    t.test(`${h.name}: curl uploads 8 MiB to an upstream that answers 413 at once and ${style === 'early-close' ? 'closes (Connection: close)' : 'destroys the connection'}`, async t => {
      const dir = await mkdtemp(join(tmpdir(), 'affinity-early-'))
      t.teardown(() => rm(dir, { recursive: true, force: true }))
      const file = join(dir, 'upload.bin')
      await writeFile(file, Buffer.alloc(UPLOAD, 'u'))
      const r = await rig(t, h, { handle: upstream })
      const got: string[] = []
      for (let i = 0; i < TRIES; i++) {
        // -T streams the file; curl asks `Expect: 100-continue` for it unless told not to.
        const expect = i % 2 === 0 ? [] : ['-H', 'Expect:']
        const out = join(dir, `answer-${i}`)
        const res = await curl(['-sS', '-T', file, '-X', 'POST', ...expect, '-D', '-', '-o', out, '-w', '%{http_code}', `${r.origin}/api/${style}/${i}`])
        const body = await readFile(out, 'utf8').catch(() => '')
        got.push(`${res.stdout.slice(-3)}${/x-early: yes/i.test(res.stdout) ? '+header' : ''}${body === `upload too large: at most 1 MiB (/${style}/${i})` ? '+body' : ` body=${JSON.stringify(body.slice(0, 80))}`}${res.code === 0 ? '' : ` curl exit ${res.code}: ${res.stderr.trim()}`}`)
      }
      t.same(got, Array(TRIES).fill('413+header+body'), `${TRIES} of ${TRIES} uploads got the upstream's 413, its headers and its body`)
      await checkBooks(t, r, { aborted: 0 })
      t.equal(r.b.stats().upstreams[0]!.outcomes['4xx'], TRIES, `${TRIES} answers counted as 4xx`)
      t.equal(seenFor(r, style), TRIES, 'each upload reached the upstream once (never replayed)')
      const next = await curl(['-sS', '-o', '/dev/null', '-w', '%{http_code}', `${r.origin}/api/next`])
      t.equal(next.stdout, '200', 'a new connection is served afterwards')
    })

    t.test(`${h.name}: a keep-alive client sends all 8 MiB to an upstream that answers 413 at once and ${style === 'early-close' ? 'closes (Connection: close)' : 'destroys the connection'}, then another request on the same connection`, async t => {
      const r = await rig(t, h, { handle: upstream })
      const got: string[] = []
      const chunk = Buffer.alloc(64 * 1024, 'u')
      for (let i = 0; i < TRIES; i++) {
        const c = new RawClient(r.port)
        await c.write(`POST /api/${style}/${i} HTTP/1.1\r\nHost: x\r\nContent-Length: ${UPLOAD}\r\n\r\n`)
        // The whole body, whatever comes back meanwhile (each write waits for the kernel to take it).
        for (let sent = 0; sent < UPLOAD; sent += chunk.length) await c.write(chunk)
        await c.write(`GET /api/after/${i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
        await within(c.closed, 20_000, 'the connection to close after the second answer')
        const answers = c.answers()
        const [first, second] = answers
        got.push([
          first?.status, first?.headers['x-early']?.[0], first?.body.toString(),
          second?.status, second === undefined ? undefined : JSON.parse(second.body.toString()).bytes,
        ].join(' | '))
      }
      const expected = (i: number): string => [413, 'yes', `upload too large: at most 1 MiB (/${style}/${i})`, 200, 0].join(' | ')
      t.same(got, Array.from({ length: TRIES }, (_, i) => expected(i)), `${TRIES} of ${TRIES}: the 413 with its header and body, then the next request on the same connection answered (the rest of the upload discarded, not forwarded)`)
      await checkBooks(t, r, { aborted: 0 })
      t.equal(r.b.stats().upstreams[0]!.outcomes['4xx'], TRIES, `${TRIES} answers counted as 4xx`)
      t.equal(seenFor(r, style), TRIES, 'each upload reached the upstream once (never replayed)')
      t.equal(r.seen.filter(s => s.url.startsWith('/after/') && s.bytes === 0 && s.complete).length, TRIES, 'each follow-up request reached the upstream on its own, with no upload bytes in it')
    })
  }
}

/** The same over HTTP/2 (Fastify `http2: true`): each upload a stream on one connection, then a GET on it. */
export function runEarlyAnswersH2 (t: Test, h: AdapterHarness): void {
  for (const style of ['early-close', 'early-destroy'] as const) {
    t.test(`${h.name} (http2): streams uploading 8 MiB each to an upstream that answers 413 at once and ${style === 'early-close' ? 'closes (Connection: close)' : 'destroys the connection'}`, async t => {
      const r = await rig(t, h, { handle: upstream })
      const session = connect(r.origin)
      t.teardown(() => session.destroy())
      const body = Buffer.alloc(UPLOAD, 'u')
      const got: string[] = []
      for (let i = 0; i < TRIES; i++) {
        const a = await send(session, { method: 'POST', path: `/api/${style}/${i}`, body, chunk: 64 * 1024 })
        got.push(`${a.status} ${String(a.headers?.['x-early'])} ${a.body.toString()}`)
      }
      t.same(got, Array.from({ length: TRIES }, (_, i) => `413 yes upload too large: at most 1 MiB (/${style}/${i})`), `${TRIES} of ${TRIES} uploads got the upstream's 413, its header and its body`)
      const next = await send(session, { method: 'GET', path: '/api/after/h2' })
      t.equal(next.status, 200, 'the same connection serves the next request')
      session.close()
      await checkBooks(t, r, { aborted: 0 })
      t.equal(r.b.stats().upstreams[0]!.outcomes['4xx'], TRIES, `${TRIES} answers counted as 4xx`)
      t.equal(seenFor(r, style), TRIES, 'each upload reached the upstream once (never replayed)')
    })
  }
}
