import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createObjectStore } from '../../src/clients/minio';
import { freePort } from '../../src/infra/process';
import { checkHealth } from '../../src/observability/health';
import { registerModel } from '../../src/models/register';
import { bagOfWordsTextModel } from '../../src/onnx/reference-models';
import { createTestProject, harness, ingestLines, uid, validLine, waitUntil, type Harness } from './helpers';

// Every process of this file serves /metrics and /health on a port of its own.
process.env.QCFLOW_METRICS_PORT = '0';

let h: Harness;
before(async () => {
  h = await harness({ worker: true, inference: true, review: true, server: true });
});
after(() => h.close());

/** Prometheus text → value of the series whose name and labels match exactly (0 when absent). */
function series(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = (m[2] ?? '').slice(1, -1).split(',').filter(Boolean);
    if (want.length === have.length && want.every((w) => have.includes(w))) sum += Number(m[3]);
  }
  return sum;
}

const scrape = async (base: string | undefined): Promise<string> => {
  assert.ok(base, 'the process serves /metrics');
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
  return res.text();
};

test('/metrics of the cpu worker and the review server move when a batch runs; the SDK\'s own metrics come along', async () => {
  const project = await createTestProject(h.pool, undefined, { ontology: { classes: ['cat', 'dog'] }, qcPolicy: { fusion: { mode: 'linear' } } });
  const before = await scrape(h.worker!.metricsUrl);
  const beforeReview = await scrape(h.server!.metricsUrl);
  assert.equal(series(beforeReview, 'qcflow_review_queue_size', { project }), 0);

  // 30 clean samples, 4 with a schema violation, 6 whose annotators disagree (→ review).
  const lines = [
    ...Array.from({ length: 30 }, (_, i) => validLine(i)),
    ...Array.from({ length: 4 }, (_, i) => validLine(100 + i, { lang: 'fr' })),
    ...Array.from({ length: 6 }, (_, i) => JSON.stringify({
      externalId: `c-${i}`, payload: { text: `conflict ${i}`, lang: 'en' },
      annotations: [{ annotator: 'ann-1', labels: { classes: ['cat'] } }, { annotator: 'ann-2', labels: { classes: ['dog'] } }],
    })),
  ];
  const r = await ingestLines(h, project, lines);
  assert.deepEqual([r.counts.accepted, r.counts.rejected, r.counts.review], [30, 4, 6]);

  const after = await scrape(h.worker!.metricsUrl);
  const moved = (name: string, labels: Record<string, string>): number => series(after, name, labels) - series(before, name, labels);
  assert.equal(moved('qcflow_qc_samples_total', { layer: '1', outcome: 'passed' }), 36);
  assert.equal(moved('qcflow_qc_samples_total', { layer: '1', outcome: 'flagged' }), 4);
  assert.equal(moved('qcflow_qc_samples_total', { layer: '2', outcome: 'flagged' }), 6);
  assert.equal(moved('qcflow_qc_samples_total', { layer: '5', outcome: 'accepted' }), 30);
  assert.equal(moved('qcflow_qc_samples_total', { layer: '5', outcome: 'review' }), 6);
  assert.equal(moved('qcflow_batch_duration_seconds_count', {}), 1);
  assert.ok(moved('qcflow_activity_duration_seconds_count', { activity: 'runCompliance', outcome: 'ok' }) >= 1);
  // The backlog gauge is read from the server at scrape time; it exists for both kinds of the cpu queue.
  assert.match(after, new RegExp(`qcflow_task_queue_backlog\\{task_queue="${h.cfg.taskQueues.cpu}",kind="activity"\\} \\d+`));
  // The Temporal SDK's exporter, appended to the same scrape.
  const sdkRuns = (text: string): number => series(text, 'temporal_activity_execution_latency_count', {
    activity_type: 'runCompliance', namespace: h.cfg.temporal.namespace, service_name: 'temporal-core-sdk', task_queue: h.cfg.taskQueues.cpu, workflow_type: 'qcBatch',
  });
  assert.equal(sdkRuns(after) - sdkRuns(before), 1);

  // Review tasks are recorded by their humanReview workflows, shortly after the batch ends.
  await waitUntil('six review tasks', async () => Number((await h.pool.query<{ n: string }>(`SELECT count(*) AS n FROM review_tasks WHERE project_id = $1`, [project])).rows[0]!.n) === 6);
  await new Promise((r) => setTimeout(r, 1100)); // past the one-second read shared by a scrape's gauges
  const review = await scrape(h.server!.metricsUrl);
  assert.equal(series(review, 'qcflow_review_queue_size', { project }), 6);
  assert.ok(series(review, 'qcflow_review_oldest_age_seconds', { project }) >= 0);
  assert.match(review, /^qcflow_process_resident_memory_bytes \d+/m);
});

test('/health says which dependency is down; /health/live answers while the worker runs', async () => {
  for (const base of [h.worker!.metricsUrl, h.review!.metricsUrl, h.server!.metricsUrl]) {
    const res = await fetch(`${base}/health`);
    const body = (await res.json()) as { ok: boolean; checks: Record<string, { ok: boolean; error?: string }> };
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.ok(body.ok && body.checks.postgres?.ok && body.checks.minio?.ok && body.checks.temporal?.ok);
    assert.equal((await fetch(`${base}/health/live`)).status, 200);
  }
  const worker = (await (await fetch(`${h.worker!.metricsUrl}/health`)).json()) as { checks: { worker: { ok: boolean; taskQueue: string; pollers: number } } };
  assert.equal(worker.checks.worker.taskQueue, h.cfg.taskQueues.cpu);
  assert.ok(worker.checks.worker.pollers >= 1, 'the server sees this worker polling its queue');

  // A MinIO that does not answer: the report fails and names it, the others stay ok.
  const down = createObjectStore({ ...h.cfg.minio, port: await freePort() });
  const report = await checkHealth({ pool: h.pool, store: down });
  assert.equal(report.ok, false);
  assert.equal(report.checks.postgres!.ok, true);
  assert.equal(report.checks.minio!.ok, false);
  assert.ok(report.checks.minio!.error);
});

test('the inference worker\'s /metrics count each model version\'s samples and runs, and its session cache', async () => {
  const cues = { cat: ['cat', 'meow', 'purr'], dog: ['dog', 'bark', 'woof'] };
  const m = bagOfWordsTextModel({ cues });
  const version = await registerModel(h.pool, h.store, { name: `bow-${uid()}`, version: '1', onnx: m.onnx, manifest: m.manifest, tokenizer: m.tokenizer }, 'test');
  const project = await createTestProject(h.pool, undefined, { ontology: { classes: ['cat', 'dog'] }, qcPolicy: { layer3: { models: [version.name] } } });
  const ingest = async (n: number, from: number): Promise<void> => {
    const r = await ingestLines(h, project, Array.from({ length: n }, (_, i) => JSON.stringify({
      externalId: `m-${from + i}`, payload: { text: 'the cat says meow', lang: 'en' },
      annotations: [1, 2].map((k) => ({ annotator: `ann-${k}`, labels: { classes: ['cat'] } })),
    })));
    assert.equal(r.counts.accepted, n);
  };
  const model = { model: version.id };
  const before = await scrape(h.inference!.metricsUrl);
  await ingest(70, 0);
  const first = await scrape(h.inference!.metricsUrl);
  assert.equal(series(first, 'qcflow_inference_samples_total', model) - series(before, 'qcflow_inference_samples_total', model), 70);
  assert.ok(series(first, 'qcflow_inference_batch_seconds_count', model) >= 2, 'two runs at batch size 64');
  assert.equal(series(first, 'qcflow_onnx_session_cache_events', { event: 'misses' }) - series(before, 'qcflow_onnx_session_cache_events', { event: 'misses' }), 1);
  await ingest(10, 100);
  const second = await scrape(h.inference!.metricsUrl);
  assert.ok(series(second, 'qcflow_onnx_session_cache_events', { event: 'hits' }) > series(first, 'qcflow_onnx_session_cache_events', { event: 'hits' }), 'the second batch finds the session loaded');
  assert.equal(series(second, 'qcflow_qc_samples_total', { layer: '3', outcome: 'passed' }) - series(before, 'qcflow_qc_samples_total', { layer: '3', outcome: 'passed' }), 80);
});
