import type { ServerResponse } from 'node:http'
import type { AffinityMetrics } from '../observe/metrics.js'
import type { StatusResponse } from '../observe/status-page.js'

/** An answer the balancer gives itself on a route of its own (metrics, status, admin): the framework sends it. */
export type RouteAnswer = StatusResponse

/** The Prometheus exposition text as a route answer. */
export async function metricsAnswer (metrics: AffinityMetrics): Promise<RouteAnswer> {
  return { status: 200, headers: { 'content-type': metrics.contentType }, body: await metrics.metrics() }
}

/** Writes a route answer on a node:http response (HEAD: head only). */
export function writeAnswer (res: ServerResponse, answer: RouteAnswer, method = 'GET'): void {
  res.writeHead(answer.status, { ...answer.headers, 'content-length': Buffer.byteLength(answer.body) })
  res.end(method === 'HEAD' ? undefined : answer.body)
}
