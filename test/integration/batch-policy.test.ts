import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as os from 'node:os';
import { consistencyActivities } from '../../activities/consistency';
import { intakeActivities } from '../../activities/intake';
import { qcActivities } from '../../activities/qc';
import { getLogger } from '../../src/clients/logger';
import { putObject } from '../../src/clients/minio';
import { stagingKey } from '../../src/ingest/keys';
import { pinnedRecalibration } from '../../src/store/batches';
import { calibrationRows } from '../../src/store/review';
import { IDENTITY } from '../../src/qc/stats/recalibration';
import { createTestProject, harness, validLine, type Harness } from './helpers';

let h: Harness;
before(async () => {
  h = await harness({ worker: false });
});
after(() => h.close());

/** Stages and judges batches of 20 valid samples of `project` through the activities, without a worker. */
function batches(project: string) {
  const deps = { pool: h.pool, store: h.store, log: getLogger(h.cfg, 'test'), tmpDir: os.tmpdir(), inferenceQueue: h.cfg.taskQueues.inference };
  const act = { ...intakeActivities(deps), ...consistencyActivities(deps), ...qcActivities(deps) };
  return {
    stage: async (batchId: string, from: number) => {
      const key = stagingKey(project, batchId);
      await putObject(h.store, key, Array.from({ length: 20 }, (_, i) => validLine(from + i)).join('\n') + '\n', 'application/x-ndjson');
      await act.stageBatch({ project, batchId, stagingKey: key });
    },
    judge: async (batchId: string) => {
      await act.runCompliance({ project, batchId });
      await act.runConsistency({ project, batchId });
      return act.fuseAndDispose({ project, batchId });
    },
  };
}

/** A policy edited while a batch runs applies from the next batch: no batch is judged by two policies. */
test('a batch keeps the policy it was staged with; the next batch takes the edited one', async () => {
  const project = await createTestProject(h.pool, undefined, { qcPolicy: { auditShare: 0 } });
  const { stage, judge } = batches(project);
  await stage('b-before', 0);
  // Every accepted sample would go to the audit under the edited policy.
  await createTestProject(h.pool, project, { qcPolicy: { auditShare: 1 } });
  const first = await judge('b-before');
  assert.deepEqual([first.counts.accepted, first.audited], [20, 0], JSON.stringify(first));
  await stage('b-after', 100);
  const second = await judge('b-after');
  assert.deepEqual([second.counts.accepted, second.counts.review, second.audited], [0, 20, 20], JSON.stringify(second));
  const pinned = await h.pool.query<{ id: string; share: number }>(`SELECT id, (policy->>'auditShare')::float8 AS share FROM batches WHERE project_id = $1 ORDER BY id`, [project]);
  assert.deepEqual(pinned.rows.map((r) => [r.id, r.share]), [['b-after', 1], ['b-before', 0]]);
});

/**
 * Reviews tell layer 5 how wrong its estimates really are: reviewers who overturned a batch's accepted
 * labels make the next batch's alike samples go to people, and each batch keeps the recalibration it was
 * first judged by.
 */
test('reviews decided before a batch recalibrate its risk, pinned to the batch', async () => {
  const project = await createTestProject(h.pool, undefined, { qcPolicy: { auditShare: 0 } });
  const { stage, judge } = batches(project);
  await stage('r-1', 0);
  assert.equal((await judge('r-1')).counts.accepted, 20);
  // Reviewers looked at all of them (as an audit would) and corrected every one.
  await h.pool.query(
    `INSERT INTO review_tasks (sample_id, project_id, round, reason, audience, task_token, status, decision, decided_by, decided_at, due_at)
     SELECT id, project_id, 0, 'audit', 'reviewers', '\\x00', 'decided', 'correct', 'rita', now(), now() FROM samples WHERE project_id = $1 AND batch_id = 'r-1'`, [project],
  );
  await stage('r-2', 100);
  const second = await judge('r-2');
  assert.deepEqual([second.counts.accepted, second.counts.review], [0, 20], JSON.stringify(second.counts));
  const pinned = await h.pool.query<{ id: string; r: { reviews: number; overturned: number } }>(`SELECT id, recalibration AS r FROM batches WHERE project_id = $1 ORDER BY id`, [project]);
  assert.deepEqual(pinned.rows.map((x) => [x.id, x.r.reviews, x.r.overturned]), [['r-1', 0, 0], ['r-2', 20, 20]]);
  const { rows } = await h.pool.query<{ primary: number; raw: number; finding: string }>(
    `SELECT (q.details->'risk'->>'primary')::float AS primary, (q.details->'risk'->'raw'->>'primary')::float AS raw, q.findings->0->>'message' AS finding
     FROM samples s JOIN qc_results q ON q.sample_id = s.id AND q.layer = 5 WHERE s.project_id = $1 AND s.batch_id = 'r-2' LIMIT 1`, [project],
  );
  assert.ok(rows[0]!.primary > 10 * rows[0]!.raw, JSON.stringify(rows[0]));
  assert.match(rows[0]!.finding, /recalibrated against decided reviews/);
  // A retry of the batch after more reviews keeps its first recalibration.
  const again = await pinnedRecalibration(h.pool, project, 'r-2', () => Promise.resolve(IDENTITY));
  assert.equal(again.reviews, 20);
  // The QC precision report reads the estimate as decided and the models' own; r-1 was judged before any review, so they are one.
  const cal = await calibrationRows(h.pool, project);
  assert.equal(cal.length, 20);
  assert.ok(cal.every((c) => c.rawPWrong === c.pWrong && c.decision === 'correct'));
});
