export type RedisStoreErrorCode =
  | 'AFFINITY_REDIS_TIMEOUT' // no answer within timeoutMs
  | 'AFFINITY_REDIS_NOT_READY' // the client is connecting or reconnecting: nothing was sent

/**
 * Why the Redis stick table stopped using Redis when Redis itself reported no error
 * (the value of a 'degraded' event), with a stable `code` as @affinity/core's
 * AffinityError has. Core's table of codes is closed, so this package keeps its own.
 */
export class RedisStoreError extends Error {
  readonly code: RedisStoreErrorCode
  constructor (code: RedisStoreErrorCode, message: string) {
    super(message)
    this.name = 'RedisStoreError'
    this.code = code
  }
}

/** The `code` of the process warning emitted once per outage when no logger is given. */
export const DEGRADED_WARNING_CODE = 'AFFINITY_REDIS_DEGRADED'
