// Compile-only type test (checked by `tsc -b`, never run): createMetrics keeps the
// type of the registry it is given, and wrong options do not type-check.
import { Registry, type OpenMetricsContentType } from 'prom-client'
import { createBalancer, createMetrics, type AffinityMetrics, type MetricsRegistry } from '@affinity/core'

export async function typeTests (): Promise<void> {
  const balancer = createBalancer({ name: 'shop', upstreams: ['http://127.0.0.1:3001'] })
  const own: AffinityMetrics = await createMetrics(balancer)
  const text: string = await own.metrics()
  const type: string = own.contentType
  const plain: MetricsRegistry = own.registry
  own.close()
  void text
  void type
  void plain

  // Your registry, typed as yours: prom-client's own methods stay available.
  const registry = new Registry<OpenMetricsContentType>()
  const mine = await createMetrics(balancer, { registry, prefix: 'lb_', buckets: [0.01, 0.1, 1] })
  mine.registry.setDefaultLabels({ region: 'eu' })

  // @ts-expect-error the prefix is a string
  await createMetrics(balancer, { prefix: 1 })
  // @ts-expect-error a registry has prom-client's methods
  await createMetrics(balancer, { registry: {} })
  // @ts-expect-error createMetrics needs the balancer
  await createMetrics({ registry })
}
