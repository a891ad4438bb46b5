import net from 'node:net'
import type { Test } from 'tap'

/** A TCP relay in front of a server, whose link can be cut and restored on the same port (a network partition). */
export interface Relay {
  port: number
  /** Destroys every open connection and refuses new ones (accepted, then destroyed) until restore(). */
  cut (): void
  restore (): void
}

/** A relay on a free loopback port to 127.0.0.1:`target`; closed at the end of `t`. */
export async function startRelay (t: Test, target: number): Promise<Relay> {
  const open = new Set<net.Socket>()
  let cut = false
  const server = net.createServer((client) => {
    if (cut) { client.destroy(); return }
    const upstream = net.connect(target, '127.0.0.1')
    for (const s of [client, upstream]) {
      open.add(s)
      s.on('error', () => {})
      s.on('close', () => { open.delete(s); client.destroy(); upstream.destroy() })
    }
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => {
    for (const s of open) s.destroy()
    server.close(() => resolve())
  }))
  return {
    port: (server.address() as net.AddressInfo).port,
    cut () {
      cut = true
      for (const s of open) s.destroy()
    },
    restore () { cut = false },
  }
}
