/**
 * The layer-3 activity's batch stream, called directly on the real stack: batches cross page boundaries, an
 * ensemble runs on the onnxruntime thread, and a model fault on the first batch still leaves every sample
 * with exactly one layer-3 result.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as os from 'node:os';
import pino from 'pino';
import { SessionCache } from '../../src/clients/onnx-sessions';
import { registerModel } from '../../src/models/register';
import { bagOfWordsTextModel } from '../../src/onnx/reference-models';
import { resolveModelRefs } from '../../src/store/models';
import { inferenceActivities } from '../../activities/inference';
import { createTestProject, harness, uid, type Harness } from './helpers';

let h: Harness;
let sessions: SessionCache;
before(async () => {
  h = await harness({ worker: false });
  sessions = new SessionCache({ providers: ['cpu'], intraOpThreads: 1, maxSessions: 4, maxBytes: 1e9, log: pino({ level: 'silent' }) });
});
after(async () => {
  await sessions.close();
  await h.close();
});

const CUES = { cat: ['cat', 'meow', 'purr'], dog: ['dog', 'woof', 'bark'], bird: ['bird', 'tweet', 'nest'] };
// More than a page (512) plus the first one-batch page, and not a multiple of the batch size.
const N = 600;

/** `N` layer-1-passed samples whose consensus is cat: even ones say cat words, odd ones dog words. */
async function seed(project: string, batchId: string): Promise<void> {
  await h.pool.query(
    `WITH s AS (
       INSERT INTO samples (id, project_id, external_id, revision, content_hash, payload, batch_id, status)
       SELECT $1 || '-' || $2 || '-' || lpad(g::text, 4, '0'), $1, $2 || '-' || g, 1, md5(g::text),
              jsonb_build_object('text', CASE WHEN g % 2 = 0 THEN 'meow and purr' ELSE 'woof and bark' END), $2, 'qc'
       FROM generate_series(0, $3::int - 1) g RETURNING id)
     , q1 AS (INSERT INTO qc_results (sample_id, layer, passed, score, findings) SELECT id, 1, true, 1, '[]' FROM s)
     INSERT INTO qc_results (sample_id, layer, passed, score, findings, details)
     SELECT id, 2, true, 1, '[]', '{"consensus":{"classes":{"classes":["cat"]}}}' FROM s`,
    [project, batchId, N],
  );
}

async function layer3Rows(project: string, batchId: string) {
  const { rows } = await h.pool.query<{ id: string; score: number | null; rules: string[]; model_version: string; spread: number | null }>(
    `SELECT s.id, q3.score, ARRAY(SELECT jsonb_array_elements(q3.findings)->>'rule') AS rules, q3.model_version, (q3.details->>'spread')::float AS spread
     FROM samples s JOIN qc_results q3 ON q3.sample_id = s.id AND q3.layer = 3 WHERE s.project_id = $1 AND s.batch_id = $2 ORDER BY s.id`,
    [project, batchId],
  );
  return rows;
}

test('an ensemble scores every sample once across batch and page boundaries, on the onnxruntime thread', async () => {
  const [a, b] = [`bow-a-${uid()}`, `bow-b-${uid()}`];
  for (const [name, strength] of [[a, 3], [b, 2]] as const) {
    const m = bagOfWordsTextModel({ cues: CUES, strength });
    await registerModel(h.pool, h.store, { name, version: '1', onnx: m.onnx, manifest: m.manifest, tokenizer: m.tokenizer }, 'test');
  }
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: { classes: Object.keys(CUES) }, qcPolicy: { layer3: { models: [a, b] } } });
  await seed(project, 'b1');
  const acts = inferenceActivities({ pool: h.pool, store: h.store, log: pino({ level: 'silent' }), tmpDir: os.tmpdir(), inferenceQueue: 'unused', sessions, batchSize: 64 });
  const plan = { models: await resolveModelRefs(h.pool, [a, b]), taskQueue: 'unused' };
  const summary = await acts.scorePlausibility({ project, batchId: 'b1', plan });
  assert.deepEqual({ scored: summary.scored, failed: summary.failed, disagreements: summary.disagreements, modelError: summary.modelError }, { scored: N, failed: 0, disagreements: N / 2, modelError: null });
  const rows = await layer3Rows(project, 'b1');
  assert.equal(rows.length, N);
  rows.forEach((r, i) => {
    assert.equal(r.model_version, `default/${a}/1+default/${b}/1`);
    // Rows are ordered by the zero-padded index, so even rows are the cat texts.
    if (i % 2 === 0) assert.ok(r.score! > 0.9 && r.rules.length === 0, `${r.id}: ${JSON.stringify(r)}`);
    else assert.ok(r.score! < 0.1 && r.rules[0] === 'layer3.model_disagrees', `${r.id}: ${JSON.stringify(r)}`);
    assert.ok(r.spread !== null && r.spread >= 0, 'the ensemble reports its spread');
  });
  // A second call finds nothing left to score: results are keyed by sample and layer.
  const again = await acts.scorePlausibility({ project, batchId: 'b1', plan });
  assert.equal(again.scored + again.failed, 0);
});

test('a model fault on the first batch sends every sample of the batch to review with the reason, none lost or doubled', async () => {
  const name = `bow-bad-${uid()}`;
  const m = bagOfWordsTextModel({ cues: CUES });
  // Four labels for a model with three outputs: onnxruntime runs it, the activity refuses its output.
  await registerModel(h.pool, h.store, { name, version: '1', onnx: m.onnx, manifest: { ...m.manifest, labels: [...m.manifest.labels, 'fish'] }, tokenizer: m.tokenizer }, 'test');
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: { classes: [...Object.keys(CUES), 'fish'] }, qcPolicy: { layer3: { models: [name] } } });
  await seed(project, 'b1');
  const acts = inferenceActivities({ pool: h.pool, store: h.store, log: pino({ level: 'silent' }), tmpDir: os.tmpdir(), inferenceQueue: 'unused', sessions, batchSize: 64 });
  const summary = await acts.scorePlausibility({ project, batchId: 'b1', plan: { models: await resolveModelRefs(h.pool, [name]), taskQueue: 'unused' } });
  assert.equal(summary.scored, 0);
  assert.equal(summary.failed, N);
  assert.match(summary.modelError ?? '', /has shape \[64, 3\]; expected \[64, 4\] \(one logit per manifest label\)/);
  const rows = await layer3Rows(project, 'b1');
  assert.equal(rows.length, N);
  assert.ok(rows.every((r) => r.score === null && r.rules.join() === 'layer3.model_unavailable'));
});
