/**
 * One balancer instance in its own process, attached to a Redis control, forked by
 * forkControlBalancer() in test/helpers/control-fleet.ts:
 *   REDIS_PORT  the Redis server on 127.0.0.1      NAME  the control's name
 *   ID          the instance id                    UPSTREAMS  JSON [{ "id", "url" }, …]
 * Fastify with @affinity/fastify (stickyCookie, the admin routes on), listening on
 * 127.0.0.1:0 once the control is attached (the stored state applied). Sends the
 * parent { port }, then every balancer operation event and the control's events as
 * they happen; answers { seq, cmd: 'list' } and { seq, cmd: 'op', … } (an operation
 * on this balancer alone, as code calling its methods would make it).
 */
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import affinity from '@affinity/fastify'
import { createBalancer, stickyCookie, type UpstreamInfo } from '@affinity/core'
import { redisControl } from '@affinity/redis'

const client = new Redis({ host: '127.0.0.1', port: Number(process.env.REDIS_PORT), retryStrategy: () => 100 })
client.on('error', () => {})
const balancer = createBalancer({
  upstreams: JSON.parse(process.env.UPSTREAMS ?? '[]') as Array<{ id: string, url: string }>,
  strategy: stickyCookie({ secret: 'control-fleet-test-secret-of-32-characters!' }),
})
const control = redisControl({ client, name: process.env.NAME!, id: process.env.ID!, reportMs: 200, viewTtlMs: 1000, timeoutMs: 1000 })
const send = (m: object): void => { if (process.connected) process.send!(m) }

for (const event of ['draining', 'undrained', 'weight', 'added', 'removed'] as const) {
  balancer.on(event, (info: UpstreamInfo, reason: string) => send({ balancer: event, id: info.id, state: info.state, weight: info.weight, reason }))
}
control.on('synced', (s: object) => send({ control: 'synced', ...s }))
control.on('offline', (err: Error) => send({ control: 'offline', message: err.message }))
control.on('conflict', (detail: object) => send({ control: 'conflict', detail }))
control.on('reported', (view: { version: number }) => send({ control: 'reported', version: view.version }))

await control.attach(balancer)
const app = Fastify({ logger: false })
await app.register(affinity, { balancer, admin: true })
await app.listen({ port: 0, host: '127.0.0.1' })

let closing: Promise<void> | undefined
function shutdown (): Promise<void> {
  closing ??= (async () => {
    await app.close()
    await control.close()
    await balancer.close()
    client.disconnect()
    if (process.connected) process.disconnect()
  })()
  return closing
}

process.on('message', (m: { seq?: number, cmd?: string, op?: string, id?: string, weight?: number } | 'close') => {
  if (m === 'close') { void shutdown(); return }
  if (m.cmd === 'list') send({ seq: m.seq, list: balancer.list(), online: control.online })
  if (m.cmd === 'op') {
    if (m.op === 'drain') void balancer.drain(m.id!)
    if (m.op === 'undrain') balancer.undrain(m.id!)
    if (m.op === 'weight') balancer.setWeight(m.id!, m.weight!)
    send({ seq: m.seq, list: balancer.list() })
  }
})
process.on('disconnect', () => { void shutdown() })
send({ port: (app.server.address() as { port: number }).port })
