import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTemporalClient } from '../../src/clients/temporal';
import { flushTracing } from '../../src/observability/tracing';
import { createTestProject, harness, ingestLines, validLine, type Harness } from './helpers';

/** An OTLP/HTTP receiver standing in for an OpenTelemetry collector: it keeps what it is sent. */
const received: Array<{ url: string; type: string; body: string }> = [];
let collector: Server;
let h: Harness;
let temporal: Awaited<ReturnType<typeof createTemporalClient>>;
before(async () => {
  collector = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ url: req.url ?? '', type: req.headers['content-type'] ?? '', body: Buffer.concat(chunks).toString() });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
  h = await harness({ worker: true });
  temporal = await createTemporalClient(h.cfg);
});
after(async () => {
  await temporal?.connection.close();
  await h.close();
  collector.close();
});

test('with OTEL_EXPORTER_OTLP_ENDPOINT set, a batch\'s spans are exported over OTLP/HTTP to /v1/traces', async () => {
  const project = await createTestProject(h.pool);
  await ingestLines({ ...h, client: temporal.client }, project, Array.from({ length: 5 }, (_, i) => validLine(i)));
  await flushTracing();
  const traces = received.filter((r) => r.url === '/v1/traces');
  assert.ok(traces.length > 0, `the collector was sent traces (got ${received.map((r) => r.url).join(', ') || 'nothing'})`);
  const all = traces.map((t) => t.body).join('\n');
  for (const name of ['SignalWithStartWorkflow:projectIntake', 'RunActivity:runCompliance', 'RunWorkflow:qcBatch']) assert.ok(all.includes(name), `${name} was exported`);
  assert.match(all, /"service\.name"[^}]*"qcflow"/);
});
