import { createHash } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import { RedisStoreError } from './errors.js'

export type Client = Redis | Cluster

/**
 * Where one control name lives in Redis. Every key carries the hash tag `{name}`, so
 * a Redis Cluster keeps them in one slot: the scripts below may touch several of
 * them atomically, and a pipeline reads them from one node.
 *   state    hash: '#epoch', '#version' and one field 'u:<id>' per upstream an operator touched
 *   views    sorted set of instance ids (score: the instance's clock at its last report)
 *   view:ID  one instance's view (JSON), with a TTL
 *   channel  pub/sub: every operation, as the state script publishes it
 */
export interface ControlKeys {
  state: string
  views: string
  viewPrefix: string
  channel: string
}

export function controlKeys (prefix: string, name: string): ControlKeys {
  const base = `${prefix}{${name}}`
  return { state: base, views: `${base}:views`, viewPrefix: `${base}:view:`, channel: base }
}

/**
 * Applies one operation to the stored state, atomically, and publishes it.
 * KEYS[1] state hash. ARGV: mode, upstream id, entry JSON (without v), base epoch,
 * base version, a fresh epoch (used only if the hash has none), channel.
 *   merge    the entry's fields are set over the stored ones (drain, undrain, weight)
 *   replace  the entry replaces the stored one (add, remove)
 *   cas      replace, only if the stored entry is still the one the caller based its
 *            change on: same epoch and version (0: none); in another epoch, only if
 *            there is no entry (a Redis that lost its data is re-seeded, never overwritten)
 *   forget   delete, on the same condition as cas (same epoch only)
 * Each write takes the next version (HINCRBY '#version') and is published in the same
 * script, so messages go out in version order. Returns { epoch, won, entry, version }.
 * Entry values are strings, booleans and the integer version only: cjson re-encodes
 * numbers with 14 digits, so weights travel as strings and come back exact.
 */
export const OPERATE = `
local epoch = redis.call('HGET', KEYS[1], '#epoch')
if not epoch then
  epoch = ARGV[6]
  redis.call('HSET', KEYS[1], '#epoch', epoch)
end
local field = 'u:' .. ARGV[2]
local cur = redis.call('HGET', KEYS[1], field)
local mode = ARGV[1]
if mode == 'cas' or mode == 'forget' then
  local ok
  if ARGV[4] == epoch then
    local curv = 0
    if cur then curv = cjson.decode(cur).v end
    ok = curv == tonumber(ARGV[5])
  else
    ok = (not cur) and mode == 'cas'
  end
  if not ok then
    return {epoch, 0, cur or '', tonumber(redis.call('HGET', KEYS[1], '#version') or '0')}
  end
end
local v = redis.call('HINCRBY', KEYS[1], '#version', 1)
local head = '{"e":' .. cjson.encode(epoch) .. ',"id":' .. cjson.encode(ARGV[2])
if mode == 'forget' then
  redis.call('HDEL', KEYS[1], field)
  redis.call('PUBLISH', ARGV[7], head .. ',"forget":' .. v .. '}')
  return {epoch, 1, '', v}
end
local e = cjson.decode(ARGV[3])
if mode == 'merge' and cur then
  local stored = cjson.decode(cur)
  for k, x in pairs(e) do stored[k] = x end
  e = stored
end
e.v = v
local s = cjson.encode(e)
redis.call('HSET', KEYS[1], field, s)
redis.call('PUBLISH', ARGV[7], head .. ',"entry":' .. s .. '}')
return {epoch, 1, s, v}
`

/**
 * One instance's report. KEYS: view key, views set, state hash. ARGV: view JSON,
 * TTL ms, instance id, the instance's clock (ms), prune-before (ms). Returns the
 * state's epoch and version, so an instance that missed a message (pub/sub delivers
 * at most once) notices within one report and reads the state again.
 */
export const REPORT = `
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
return redis.call('HMGET', KEYS[3], '#epoch', '#version')
`

const sha = new Map<string, string>()
function sha1 (script: string): string {
  let h = sha.get(script)
  if (h === undefined) {
    h = createHash('sha1').update(script).digest('hex')
    sha.set(script, h)
  }
  return h
}

/**
 * Runs a script by its SHA1 (EVALSHA), loading it with EVAL when the server does not
 * have it yet (NOSCRIPT: first use, or a restarted Redis). ioredis routes both by
 * the first key, so a Cluster sends them to the slot's node.
 */
export async function runScript (client: Client, script: string, keys: string[], args: Array<string | number>): Promise<unknown> {
  try {
    return await client.evalsha(sha1(script), keys.length, ...keys, ...args)
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
    return await client.eval(script, keys.length, ...keys, ...args)
  }
}

/**
 * `run()`, rejected after `ms` when Redis has not answered (a late answer is
 * dropped). As in the stick store, the verdict waits for setImmediate, so an answer
 * already in the socket after a busy moment is read first.
 */
export function withTimeout<T> (ms: number, run: () => Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false
    const timer = setTimeout(() => setImmediate(() => {
      if (!settled) reject(new RedisStoreError('AFFINITY_REDIS_TIMEOUT', `Redis did not answer within ${ms} ms`))
    }), ms)
    timer.unref()
    const settle = (): void => { settled = true; clearTimeout(timer) }
    run().then(v => { settle(); resolve(v) }, (err: unknown) => { settle(); reject(err) })
  })
}

/** Whether commands sent now go out at once (anything else would sit in ioredis's offline queue). */
export function isReady (client: Client): boolean {
  return client.status === 'ready'
}
