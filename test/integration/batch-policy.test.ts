import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as os from 'node:os';
import { consistencyActivities } from '../../activities/consistency';
import { intakeActivities } from '../../activities/intake';
import { qcActivities } from '../../activities/qc';
import { getLogger } from '../../src/clients/logger';
import { putObject } from '../../src/clients/minio';
import { stagingKey } from '../../src/ingest/keys';
import { createTestProject, harness, validLine, type Harness } from './helpers';

let h: Harness;
before(async () => {
  h = await harness({ worker: false });
});
after(() => h.close());

/** A policy edited while a batch runs applies from the next batch: no batch is judged by two policies. */
test('a batch keeps the policy it was staged with; the next batch takes the edited one', async () => {
  const project = await createTestProject(h.pool, undefined, { qcPolicy: { auditShare: 0 } });
  const deps = { pool: h.pool, store: h.store, log: getLogger(h.cfg, 'test'), tmpDir: os.tmpdir(), inferenceQueue: h.cfg.taskQueues.inference };
  const act = { ...intakeActivities(deps), ...consistencyActivities(deps), ...qcActivities(deps) };
  const stage = async (batchId: string, from: number) => {
    const key = stagingKey(project, batchId);
    await putObject(h.store, key, Array.from({ length: 20 }, (_, i) => validLine(from + i)).join('\n') + '\n', 'application/x-ndjson');
    await act.stageBatch({ project, batchId, stagingKey: key });
  };
  const judge = async (batchId: string) => {
    await act.runCompliance({ project, batchId });
    await act.runConsistency({ project, batchId });
    return act.fuseAndDispose({ project, batchId });
  };
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
