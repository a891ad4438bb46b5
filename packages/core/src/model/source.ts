import type { UpstreamInput } from './types.js'

/**
 * Where a balancer's membership comes from when it is not a fixed list: DNS
 * (`dnsDiscovery`), or anything a user writes (Kubernetes EndpointSlices, Consul).
 *
 * Contract, for writers of a source:
 * - `subscribe` starts watching and returns the function that stops it; after that
 *   function returns, neither callback is called again.
 * - Each `update` carries the whole current membership, never a difference, and never
 *   an empty list: a source that finds nothing reports it through `error` and the
 *   last membership stands (a failed lookup must not empty a balancer).
 * - Callbacks are never called synchronously from `subscribe`.
 * - Each subscription is independent: one source may serve several balancers.
 */
export interface UpstreamSource {
  subscribe (update: (list: UpstreamInput[]) => void, error: (err: Error) => void): () => void
}

