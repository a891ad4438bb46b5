export { redisStore, RedisStickStore } from './redis-store.js'
export type { RedisStoreOptions, RedisStoreStats, RedisStoreLogger, RedisStoreEvent } from './redis-store.js'
export { RedisStoreError, DEGRADED_WARNING_CODE } from './errors.js'
export type { RedisStoreErrorCode } from './errors.js'
