import { createHmac, createSecretKey, randomBytes } from 'node:crypto'
import diagnosticsChannel from 'node:diagnostics_channel'
import type { Choice } from './model/choice.js'

/**
 * The decision trace: one message per pick on `node:diagnostics_channel`
 * ('affinity:pick'), the channel Node's own http, undici and fastify publish on,
 * so APM tools and tests subscribe the same way. Publishing is guarded by
 * `hasSubscribers`, so nobody listening costs one property read per pick
 * (bench/trace.js measures it).
 */
export const pickChannel = diagnosticsChannel.channel('affinity:pick')

export interface PickMessage {
  /** The balancer's `name` option, when given. */
  balancer: string | undefined
  strategy: string
  /** The chosen upstream's id, or undefined when none could take the request. */
  upstream: string | undefined
  reason: string
  /**
   * A keyed digest of what the strategy keyed on (16 hex digits), the same for the
   * same user within this process; undefined for keyless strategies.
   */
  key: string | undefined
  /** 1 for the first pick, 2+ for a re-pick after a failed attempt. */
  attempt: number
  method: string
}

// A per-process random HMAC key: digests correlate one user's requests, but an IP
// or a user id cannot be recovered from them by hashing candidates (the IPv4 space
// is small enough to enumerate against a plain hash).
// Paid only while someone subscribes (bench/trace.js measures it).
const digestKey = createSecretKey(randomBytes(32))

export function keyDigest (key: string | number | undefined): string | undefined {
  if (key === undefined) return undefined
  return createHmac('sha256', digestKey).update(typeof key === 'string' ? key : String(key)).digest('hex').slice(0, 16)
}

export function publishPick (balancer: string | undefined, strategy: string, choice: Choice): void {
  const msg: PickMessage = {
    balancer,
    strategy,
    upstream: choice.upstream?.id,
    reason: choice.reason,
    key: keyDigest(choice.key),
    attempt: (choice.tried?.length ?? 0) + 1,
    method: choice.request.method,
  }
  pickChannel.publish(msg)
}
