import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * qcflow's Prometheus metrics, one registry per process (like its pino root logger): worker processes and
 * the review server serve it at /metrics. An activity interceptor reads QC counts from activities' results
 * (so activities record only what their results do not carry: inference time per model), and scrape-time
 * gauges read queue sizes and backlogs from Postgres and Temporal when scraped.
 */
export const registry = new Registry();

const registers = [registry];

export const metrics = {
  qcSamples: new Counter({
    name: 'qcflow_qc_samples_total', help: 'Samples judged per QC layer and outcome (layer 5: the disposition).',
    labelNames: ['layer', 'outcome'] as const, registers,
  }),
  batchSeconds: new Histogram({
    name: 'qcflow_batch_duration_seconds', help: 'A batch from staging to done (all five layers and the routing).',
    buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800], registers,
  }),
  activitySeconds: new Histogram({
    name: 'qcflow_activity_duration_seconds', help: 'Activity executions by type and outcome (ok, error, bad_input).',
    labelNames: ['activity', 'outcome'] as const, buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300], registers,
  }),
  inferenceSeconds: new Histogram({
    name: 'qcflow_inference_batch_seconds', help: 'onnxruntime session.run per inference batch, by model version.',
    labelNames: ['model'] as const, buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10], registers,
  }),
  inferenceSamples: new Counter({
    name: 'qcflow_inference_samples_total', help: 'Samples scored by onnxruntime, by model version.', labelNames: ['model'] as const, registers,
  }),
  releaseRows: new Histogram({
    name: 'qcflow_release_rows', help: 'Samples per written release.', buckets: [10, 100, 1000, 10_000, 100_000, 1_000_000], registers,
  }),
  decayAlerts: new Gauge({
    name: 'qcflow_decay_alerted_subjects', help: 'Subjects (annotators, * the stream) under a layer-4 decay alert after the last batch this process tracked.', registers,
  }),
  releaseBytes: new Histogram({
    name: 'qcflow_release_bytes', help: 'Bytes of a release\'s files (JSONL + Arrow).', buckets: [1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10], registers,
  }),
};

/**
 * A gauge whose value is read when scraped (queue sizes, backlogs, cache counts); a failed read leaves the
 * gauge empty for that scrape rather than failing the whole scrape.
 */
export function scrapedGauge<L extends string>(name: string, help: string, labelNames: readonly L[], read: () => Promise<Array<{ labels: Partial<Record<L, string>>; value: number }>>): Gauge<L> {
  // A second worker in one process (tests, the demo) takes the gauge over rather than failing to register it.
  registry.removeSingleMetric(name);
  return new Gauge<L>({
    name, help, labelNames, registers,
    async collect() {
      this.reset();
      const values = await read().catch(() => []);
      for (const v of values) this.set(v.labels, v.value);
    },
  });
}

let processMetrics = false;

/**
 * prom-client's process metrics (RSS, event-loop lag, GC): an event-loop monitor and GC observer that run
 * for the life of the process, so they start with a /metrics endpoint, not with every import of this module
 * (activities, benchmarks and the CLI import it too).
 */
export function collectProcessMetrics(): void {
  if (processMetrics) return;
  processMetrics = true;
  collectDefaultMetrics({ register: registry, prefix: 'qcflow_' });
}
