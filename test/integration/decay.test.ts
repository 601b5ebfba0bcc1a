import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ingestFile } from '../../src/cli/ingest';
import { connectServices, status } from '../../src/cli/commands';
import { getLogger } from '../../src/clients/logger';
import { decayActivities } from '../../activities/decay';
import { createTestProject, harness, uid, type Harness } from './helpers';

let h: Harness;
before(async () => {
  h = await harness({ worker: true });
});
after(() => h.close());

let n = 0;
/** `ann2Dissents(k)`: whether ann-2 gives the other class on the k-th line of this call. */
function lines(count: number, ann2Ms: number, ann2Dissents: (k: number) => boolean = () => false): string[] {
  return Array.from({ length: count }, (_, k) => {
    const i = n++;
    return JSON.stringify({
      externalId: `s-${i}`, payload: { text: `sample ${i}`, lang: 'en' },
      annotations: [
        { annotator: 'ann-1', durationMs: 10_000, labels: { classes: ['cat'] } },
        { annotator: 'ann-2', durationMs: ann2Ms, labels: { classes: [ann2Dissents(k) ? 'dog' : 'cat'] } },
        { annotator: 'ann-3', durationMs: 12_000, labels: { classes: ['cat'] } },
      ],
    });
  });
}

async function ingest(project: string, content: string[], batchSize: number) {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'qcflow-l4-')), 'in.jsonl');
  writeFileSync(file, content.join('\n') + '\n');
  const r = await ingestFile(h.cfg, h.client, h.store, { project, file, batchSize, wait: true });
  assert.deepEqual(r.failedBatches, []);
  return r;
}

test('an annotator who starts rushing is alerted, their samples are reviewed where their labels count, it shows in status, and is cleared when back to normal', async () => {
  const project = await createTestProject(h.pool, `t-${uid()}`, {
    ontology: { classes: ['cat', 'dog'] },
    qcPolicy: { layer4: { window: { short: 20, long: 200 }, minReference: 20, alertReviewShare: 1 } },
  });
  await ingest(project, lines(100, 9_000), 25);
  const calm = await h.pool.query<{ n: string }>(`SELECT count(*) AS n FROM decay_alerts WHERE project_id = $1`, [project]);
  assert.equal(calm.rows[0]!.n, '0');

  // Rushing, ann-2 now gets the odd sample wrong (two of 25: too few for an agreement alert of its own).
  const rushed = await ingest(project, lines(25, 600, (k) => k % 13 === 0), 25);
  const { rows: alerts } = await h.pool.query<{ subject: string; metric: string; short_value: number; reference_value: number; cleared_at: Date | null }>(
    `SELECT subject, metric, short_value, reference_value, cleared_at FROM decay_alerts WHERE project_id = $1 ORDER BY subject`, [project],
  );
  // ann-2's median time fell from ~9 s to ~0.6 s; the stream's median (two of three annotators unchanged) did not.
  assert.deepEqual(alerts.map((a) => [a.subject, a.metric, a.cleared_at]), [['ann-2', 'annotationTimeP50', null]]);
  assert.ok(alerts[0]!.short_value < 700 && alerts[0]!.reference_value > 8000, JSON.stringify(alerts[0]));

  const batchId = rushed.batches[0]!.batchId;
  const { rows } = await h.pool.query<{ external_id: string; status: string; reason: string; l4: Array<{ rule: string; annotators: string[] }> }>(
    `SELECT s.external_id, s.status, q5.details->>'reason' AS reason, q4.findings AS l4 FROM samples s
     JOIN qc_results q4 ON q4.sample_id = s.id AND q4.layer = 4 JOIN qc_results q5 ON q5.sample_id = s.id AND q5.layer = 5
     WHERE s.project_id = $1 AND s.batch_id = $2`, [project, batchId],
  );
  assert.equal(rows.length, 25);
  const first = n - 25;
  for (const r of rows) {
    assert.deepEqual(r.l4.map((f) => [f.rule, f.annotators]), [['layer4.annotator_alert', ['ann-2']]]);
    const dissent = (Number(r.external_id.slice(2)) - first) % 13 === 0;
    // Where ann-1 and ann-3 settle the sample and ann-2 agrees, a review would learn nothing: accepted.
    // Where ann-2 dissents, every such sample (alertReviewShare 1) goes to a person.
    if (dissent) assert.ok(r.status === 'review' && ['annotator_alert', 'uncertain'].includes(r.reason), JSON.stringify(r));
    else assert.deepEqual([r.status, r.reason], ['accepted', 'confident'], JSON.stringify(r));
  }
  assert.ok(rows.some((r) => r.reason === 'annotator_alert'), 'some dissent is settled by the others, and still reviewed for the alert');

  const s = await connectServices(h.cfg);
  try {
    assert.match(await status(s, project), /alert {5}annotator ann-2 annotationTimeP50 \d+\.\d{3} recent vs \d+\.\d{3} reference \(worse by 0\.9\d\d > 0\.5\)/);
    assert.match(await status(s, project), /stability 1\.000 \(/);
  } finally {
    await s.close();
  }

  // A retried layer-4 activity adds no bucket twice and opens no second alert.
  const activities = decayActivities({ pool: h.pool, store: h.store, log: getLogger(h.cfg, 'test'), tmpDir: os.tmpdir(), inferenceQueue: h.cfg.taskQueues.inference });
  const before = await h.pool.query<{ n: string }>(`SELECT count(*) AS n FROM quality_buckets WHERE project_id = $1`, [project]);
  await activities.trackQualityDecay({ project, batchId });
  const afterRetry = await h.pool.query<{ n: string; alerts: string }>(
    `SELECT (SELECT count(*) FROM quality_buckets WHERE project_id = $1) AS n, (SELECT count(*) FROM decay_alerts WHERE project_id = $1) AS alerts`, [project],
  );
  assert.equal(afterRetry.rows[0]!.n, before.rows[0]!.n);
  assert.equal(afterRetry.rows[0]!.alerts, '1');
  // 5 batches × (stream, ann-1, ann-2, ann-3)
  assert.equal(Number(before.rows[0]!.n), 20);

  // Back to normal speed: the short window is the newest batch again, and the alert clears.
  await ingest(project, lines(25, 9_000), 25);
  const cleared = await h.pool.query<{ cleared_at: Date | null }>(`SELECT cleared_at FROM decay_alerts WHERE project_id = $1`, [project]);
  assert.ok(cleared.rows[0]!.cleared_at instanceof Date);
});
