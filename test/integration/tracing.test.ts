import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/clients/logger';
import { createTemporalClient } from '../../src/clients/temporal';
import { installTracing, flushTracing } from '../../src/observability/tracing';
import { createTestProject, harness, ingestLines, validLine, type Harness } from './helpers';

// Spans of this process (client, workers, activities) land in memory instead of an OTLP collector.
const exporter = new InMemorySpanExporter();

let h: Harness;
let temporal: Awaited<ReturnType<typeof createTemporalClient>>;
before(async () => {
  installTracing({ observability: { metricsPort: undefined, metricsHost: '127.0.0.1', otlpEndpoint: undefined } }, 'test', new SimpleSpanProcessor(exporter));
  h = await harness({ worker: true });
  temporal = await createTemporalClient(h.cfg);
});
after(async () => {
  await temporal?.connection.close();
  await h.close();
});

test('one trace follows a batch from the ingest signal through the intake, the batch workflow and every activity', async () => {
  const project = await createTestProject(h.pool);
  const r = await ingestLines({ ...h, client: temporal.client }, project, Array.from({ length: 20 }, (_, i) => validLine(i)));
  assert.equal(r.counts.accepted, 20);
  await flushTracing();

  const spans = exporter.getFinishedSpans();
  const signal = spans.find((s) => s.name === 'SignalWithStartWorkflow:projectIntake');
  assert.ok(signal, `the client's signal is traced; spans: ${[...new Set(spans.map((s) => s.name))].join(', ')}`);
  const trace = spans.filter((s: ReadableSpan) => s.spanContext().traceId === signal.spanContext().traceId).map((s) => s.name);
  // The intake runs on (its own RunWorkflow span ends only when it does); the batch's signal, child and activities are all here.
  for (const name of ['HandleSignal:submitBatch', 'StartChildWorkflow:qcBatch', 'RunWorkflow:qcBatch',
    'RunActivity:stageBatch', 'RunActivity:runCompliance', 'RunActivity:runConsistency', 'RunActivity:trackQualityDecay', 'RunActivity:fuseAndDispose', 'RunActivity:finishBatch']) {
    assert.ok(trace.includes(name), `${name} is in the signal's trace; it has: ${[...new Set(trace)].join(', ')}`);
  }
});

test('a log line written inside a traced span carries its trace and span ids', async () => {
  const lines: string[] = [];
  const log = createLogger('info', new Writable({ write(chunk: Buffer, _e, cb) { lines.push(chunk.toString()); cb(); } }));
  const { trace } = await import('@opentelemetry/api');
  const tracer = trace.getTracer('test');
  let ids = { traceId: '', spanId: '' };
  tracer.startActiveSpan('work', (span) => {
    ids = span.spanContext();
    log.info('inside');
    span.end();
  });
  log.info('outside');
  const [inside, outside] = lines.map((l) => JSON.parse(l) as { trace_id?: string; span_id?: string });
  assert.equal(inside!.trace_id, ids.traceId);
  assert.equal(inside!.span_id, ids.spanId);
  assert.equal(outside!.trace_id, undefined);
});
