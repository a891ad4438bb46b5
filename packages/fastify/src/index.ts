import { affinity } from './plugin.js'

export { affinity }
export type { AffinityFastifyOptions } from './plugin.js'
export default affinity
