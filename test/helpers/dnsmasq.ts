/**
 * A real DNS server for the discovery tests: Debian's dnsmasq, started on a free
 * loopback port, answering only from the records a test gives it.
 *
 * - Names under ZONE (`svc.test`) come from a hosts file (A/AAAA), `--srv-host` and
 *   `--txt-record`; any other name under ZONE is NXDOMAIN (`--local`). A name with
 *   only a TXT record answers A/AAAA queries with NOERROR and no records (NODATA).
 * - `setHosts` rewrites the hosts file and sends SIGHUP; dnsmasq logs
 *   "read FILE - N names" once it has re-read it, and answers after that from the new
 *   file (it is single-threaded), so waiting for that line is waiting for the reload.
 * - SRV and TXT records are command-line options, read at start: `restart` changes them.
 * - `servfail: true` makes names under FAILING_ZONE (`fail.test`) that are not in the
 *   hosts file answer SERVFAIL, for real: dnsmasq validates DNSSEC from the root trust
 *   anchor and forwards those names to a second dnsmasq whose answers are unsigned, so
 *   validation is abandoned and the client gets SERVFAIL (dnsmasq's own failure paths
 *   answer REFUSED or nothing). Names of FAILING_ZONE that are in the hosts file are
 *   answered locally; give them both an A and an AAAA line, or the missing family is
 *   forwarded too.
 * - `pause` (SIGSTOP) makes queries time out; `kill` (SIGKILL) makes them refused.
 *
 * Run as root, dnsmasq drops to an unprivileged user after binding, and re-reads the
 * hosts file as that user: the directory and file are world-readable for that.
 * `--pid-file` keeps it off the system's /run/dnsmasq/dnsmasq.pid.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { promises as dns } from 'node:dns'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import dgram from 'node:dgram'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import type { Test } from 'tap'
import { findBinary, withService } from './services.js'

export const ZONE = 'svc.test'
export const FAILING_ZONE = 'fail.test'

/** The root zone's KSK-2017 as a DS record (IANA root-anchors.xml): only there to make validation fail on unsigned answers. */
const ROOT_TRUST_ANCHOR = '.,20326,8,2,E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D'

export interface SrvRecord { name: string, target?: string, port?: number, priority?: number, weight?: number }

export interface DnsRecords {
  /** Hosts-file lines, [address, name]. */
  hosts?: Array<[string, string]>
  /** `--srv-host` records; without `target`, the record says "service not available" (target "."). */
  srv?: SrvRecord[]
  /** Names that exist with a TXT record only. */
  txt?: string[]
}

export interface Dnsmasq {
  readonly port: number
  /** For `servers`: '127.0.0.1:PORT'. */
  readonly server: string
  /** Rewrites the hosts file, sends SIGHUP and resolves once dnsmasq has re-read it. */
  setHosts (hosts: Array<[string, string]>): Promise<void>
  /** Stops it and starts it again on the same port with these records (the others unchanged). */
  restart (records?: DnsRecords): Promise<void>
  /** SIGKILL: queries are refused (ICMP port unreachable) until `start`. */
  kill (): Promise<void>
  start (): Promise<void>
  /** SIGSTOP: queries go unanswered (time out) until `resume`. */
  pause (): void
  resume (): void
  /** Queries dnsmasq has logged for `type` (A, AAAA, SRV) and `name` since the test began. */
  queries (type: string, name: string): number
  /** Resolves once `queries(type, name)` reaches `count`. */
  waitForQueries (type: string, name: string, count: number): Promise<void>
}

/** dnsmasq's path: /usr/sbin is often not on a user's PATH. */
export function findDnsmasq (): string | undefined {
  return findBinary('dnsmasq', ['/usr/sbin', '/usr/local/sbin'])
}

/** Runs `tests` with dnsmasq (a failure under AFFINITY_REQUIRE_DNSMASQ=1 when missing). */
export function withDnsmasq (t: Test, tests: (bin: string) => void): void {
  withService(t, 'dnsmasq', findDnsmasq(), 'AFFINITY_REQUIRE_DNSMASQ', tests)
}

/** A loopback port free for both TCP and UDP a moment ago (dnsmasq listens on both). */
async function freeDnsPort (): Promise<number> {
  for (;;) {
    const s = net.createServer()
    await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
    const port = (s.address() as net.AddressInfo).port
    const u = dgram.createSocket('udp4')
    const udpFree = await new Promise<boolean>(resolve => {
      u.once('error', () => resolve(false))
      u.bind(port, '127.0.0.1', () => resolve(true))
    })
    await new Promise<void>(resolve => u.close(() => resolve()))
    await new Promise<void>(resolve => s.close(() => resolve()))
    if (udpFree) return port
  }
}

/** One dnsmasq process, its log lines read as events. */
class Daemon {
  readonly #counts = new Map<string, number>()
  readonly #waiters = new Set<{ check: () => boolean, resolve: () => void, reject: (err: Error) => void }>()
  #child: ChildProcess | undefined
  #log = ''

  constructor (readonly bin: string, readonly hostsFile: string) {}

  count (key: string): number { return this.#counts.get(key) ?? 0 }

  /** Resolves once `check()` holds, rechecked on every log line; rejects if dnsmasq exits first. */
  until (what: string, check: () => boolean): Promise<void> {
    if (check()) return Promise.resolve()
    return new Promise((resolve, reject) => {
      // A guard against a hang, reported with dnsmasq's log; never what a test waits on.
      const timer = setTimeout(() => { this.#waiters.delete(w); reject(new Error(`dnsmasq: no ${what} within 15 s\n${this.#log}`)) }, 15_000)
      const w = { check, resolve: () => { clearTimeout(timer); resolve() }, reject: (err: Error) => { clearTimeout(timer); reject(err) } }
      this.#waiters.add(w)
    })
  }

  get running (): boolean { return this.#child !== undefined }

  async start (args: string[]): Promise<void> {
    if (this.#child !== undefined) throw new Error('dnsmasq is already running')
    const child = spawn(this.bin, args, { stdio: ['ignore', 'ignore', 'pipe'] })
    this.#child = child
    const reads = this.count('read')
    let pending = ''
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.#log = (this.#log + chunk).slice(-8192)
      pending += chunk
      const lines = pending.split('\n')
      pending = lines.pop()!
      for (const line of lines) this.#line(line)
    })
    child.once('exit', (code, signal) => {
      if (this.#child === child) this.#child = undefined
      const err = new Error(`dnsmasq exited (${code ?? signal})\n${this.#log}`)
      for (const w of this.#waiters) w.reject(err)
      this.#waiters.clear()
    })
    await this.until('start', () => this.count('read') > reads)
  }

  #line (line: string): void {
    const query = /: query\[(\w+)\] (\S+) from /.exec(line)
    if (query !== null) this.#bump(`${query[1]} ${query[2]}`)
    else if (line.includes(`: read ${this.hostsFile} - `)) this.#bump('read')
    for (const w of this.#waiters) {
      if (w.check()) { this.#waiters.delete(w); w.resolve() }
    }
  }

  #bump (key: string): void { this.#counts.set(key, this.count(key) + 1) }

  signal (signal: NodeJS.Signals): void {
    if (this.#child === undefined) throw new Error('dnsmasq is not running')
    this.#child.kill(signal)
  }

  async stop (signal: NodeJS.Signals): Promise<void> {
    const child = this.#child
    if (child === undefined) return
    const exited = new Promise(resolve => child.once('exit', resolve))
    child.kill('SIGCONT') // a paused process would not act on SIGTERM
    child.kill(signal)
    await exited
  }
}

/** Starts dnsmasq (and, with `servfail`, its unsigned upstream) for `t`; both are stopped and their files removed at its end. */
export async function startDnsmasq (t: Test, bin: string, opts: DnsRecords & { servfail?: boolean } = {}): Promise<Dnsmasq> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'affinity-dnsmasq-'))
  chmodSync(dir, 0o755)
  const file = (name: string, text: string): string => {
    const p = path.join(dir, name)
    writeFileSync(p, text)
    chmodSync(p, 0o644)
    return p
  }
  const hostsText = (hosts: Array<[string, string]>): string => hosts.map(([a, n]) => `${a} ${n}\n`).join('')
  const hostsFile = file('hosts', hostsText(opts.hosts ?? []))
  const records: Required<DnsRecords> = { hosts: opts.hosts ?? [], srv: opts.srv ?? [], txt: opts.txt ?? [] }
  const main = new Daemon(bin, hostsFile)
  const unsigned = opts.servfail === true ? new Daemon(bin, file('upstream-hosts', '')) : undefined
  let port = 0
  let upstreamPort = 0

  const common = (p: number, hosts: string, pid: string): string[] => [
    `--port=${p}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts',
    `--addn-hosts=${hosts}`, '--keep-in-foreground', `--pid-file=${path.join(dir, pid)}`, '--log-facility=-',
  ]
  const mainArgs = (): string[] => [
    ...common(port, hostsFile, 'dnsmasq.pid'), '--log-queries', `--local=/${ZONE}/`,
    ...records.srv.map(r => `--srv-host=${[r.name, ...(r.target === undefined ? [] : [r.target, r.port ?? 80, r.priority ?? 0, r.weight ?? 0])].join(',')}`),
    ...records.txt.map(n => `--txt-record=${n},none`),
    ...(unsigned === undefined ? [] : [`--server=127.0.0.1#${upstreamPort}`, '--dnssec', `--trust-anchor=${ROOT_TRUST_ANCHOR}`]),
  ]

  const killOnExit = (): void => {
    for (const d of [main, unsigned]) if (d?.running === true) d.signal('SIGKILL')
  }
  process.once('exit', killOnExit)
  t.teardown(async () => {
    process.off('exit', killOnExit)
    await Promise.all([main.stop('SIGTERM'), unsigned?.stop('SIGTERM')])
    rmSync(dir, { recursive: true, force: true })
  })

  // Another process may take a port between freeDnsPort and dnsmasq's bind: try again.
  for (let attempt = 1; ; attempt++) {
    try {
      if (unsigned !== undefined && !unsigned.running) {
        upstreamPort = await freeDnsPort()
        await unsigned.start([...common(upstreamPort, unsigned.hostsFile, 'upstream.pid'), '--address=/#/127.0.0.9', '--address=/#/fd00::9'])
      }
      port = await freeDnsPort()
      await main.start(mainArgs())
      break
    } catch (err) {
      if (attempt === 5 || !String(err).includes('Address already in use')) throw err
    }
  }
  await answering(port)

  return {
    port,
    server: `127.0.0.1:${port}`,
    async setHosts (hosts) {
      records.hosts = hosts
      const reads = main.count('read')
      writeFileSync(hostsFile, hostsText(hosts))
      main.signal('SIGHUP')
      await main.until('hosts reload', () => main.count('read') > reads)
    },
    async restart (changed = {}) {
      Object.assign(records, changed)
      writeFileSync(hostsFile, hostsText(records.hosts))
      await main.stop('SIGTERM')
      await main.start(mainArgs())
      await answering(port)
    },
    kill: () => main.stop('SIGKILL'),
    async start () {
      await main.start(mainArgs())
      await answering(port)
    },
    pause: () => main.signal('SIGSTOP'),
    resume: () => main.signal('SIGCONT'),
    queries: (type, name) => main.count(`${type} ${name}`),
    waitForQueries: (type, name, count) => main.until(`${count} ${type} queries for ${name}`, () => main.count(`${type} ${name}`) >= count),
  }
}

/**
 * dnsmasq binds before it logs that it read its hosts file; one real query confirms
 * it answers (any DNS answer, even NODATA for the zone's own name, is an answer).
 */
async function answering (port: number): Promise<void> {
  const r = new dns.Resolver({ timeout: 1000, tries: 3 })
  r.setServers([`127.0.0.1:${port}`])
  try {
    await r.resolve4(ZONE)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'ENODATA' && code !== 'ENOTFOUND') throw new Error(`dnsmasq on port ${port} does not answer: ${code}`)
  }
}
