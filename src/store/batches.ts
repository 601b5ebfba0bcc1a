import type { Pool, PoolClient } from 'pg';
import type { QcPolicy } from '../qc/policy';

type Db = Pool | PoolClient;

/** A problem of a whole batch (shown by `qcflow status`), one row per source and rule, the latest message kept. */
export async function recordBatchFinding(db: Db, f: { project: string; batchId: string; source: string; rule: string; message: string }): Promise<void> {
  await db.query(
    `INSERT INTO batch_findings (project_id, batch_id, source, rule, message) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (project_id, batch_id, source, rule) DO UPDATE SET message = EXCLUDED.message`,
    [f.project, f.batchId, f.source, f.rule, f.message],
  );
}

/** Records a batch (once) with the policy it will be judged by. */
export async function insertBatch(db: Db, b: { project: string; batchId: string; stagingKey: string; policy: QcPolicy }): Promise<void> {
  await db.query(
    `INSERT INTO batches (project_id, id, staging_key, policy) VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, id) DO NOTHING`,
    [b.project, b.batchId, b.stagingKey, JSON.stringify(b.policy)],
  );
}

/**
 * The batch's pinned policy; a batch staged before policies were pinned gets `current` pinned now. Undefined
 * when there is no such batch (activities called outside a batch: benchmarks, scripts).
 */
export async function pinnedBatchPolicy(db: Db, project: string, batchId: string, current: QcPolicy): Promise<QcPolicy | undefined> {
  const { rows } = await db.query<{ policy: QcPolicy }>(
    'UPDATE batches SET policy = COALESCE(policy, $3) WHERE project_id = $1 AND id = $2 RETURNING policy', [project, batchId, JSON.stringify(current)],
  );
  return rows[0]?.policy;
}
