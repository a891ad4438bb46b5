/**
 * @affinity/core/internal: the pieces white-box tests and benchmarks reach for
 * (codecs, tables, hashes, the simulator's parts). Declared so that nothing imports
 * a file path; not published (package.json publishConfig leaves it out) and not an
 * API: anything here may change in any release.
 */
export { isPromise } from './model/choice.js'
export { Upstream } from './model/upstream.js'
export { hmacSha256, TOKEN_LENGTH, TokenCodec } from './cookie/token.js'
export { murmur3Bytes } from './hashing/murmur3.js'
export { DEFAULT_VNODES } from './hashing/ring-points.js'
export { Ring } from './hashing/ring.js'
export { lookupIf } from './hashing/ring-what-if.js'
export { DEFAULT_MAGLEV_SIZE, Maglev } from './hashing/maglev.js'
export { ResolvedTable } from './hashing/table.js'
export { ipHashOf } from './keys/ip.js'
export { compileKey, queryParam } from './keys/key-source.js'
export { chartGeometry } from './observe/status-chart.js'
export { StatsHistory } from './observe/history.js'
export { simulate, type SimulationResult } from './simulate/simulation.js'
export { SimulationOptionError, upstreamList, type SimulationOptions } from './simulate/options.js'
export { renderChart } from './simulate/chart.js'
export { hex8, mulberry32 } from './simulate/prng.js'
export { main as cliMain, type CliIo } from './cli/main.js'
export { loadFrom as cliLoadFrom } from './cli/control-load.js'
export { rampFactor, SLOW_START_FLOOR, SLOW_START_STEPS } from './balancer/slow-start.js'
export { Pressure, PRESSURE_WINDOW_MS } from './balancer/pressure.js'
export { SCAN_UP_TO } from './strategies/least-connections.js'
