import { describeFindings, type Finding } from '../qc/findings';
import type { Pool, PoolClient } from 'pg';
import type { QcPolicy } from '../qc/policy';
import type { Recalibration } from '../qc/stats/recalibration';

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

/**
 * The recalibration the batch is judged by: the one pinned at its first judgement, else `fit()` pinned now.
 * Concurrent first judgements keep whichever was pinned first.
 */
export async function pinnedRecalibration(db: Db, project: string, batchId: string, fit: () => Promise<Recalibration>): Promise<Recalibration> {
  const pinned = await db.query<{ r: Recalibration | null }>('SELECT recalibration AS r FROM batches WHERE project_id = $1 AND id = $2', [project, batchId]);
  if (pinned.rows[0]?.r) return pinned.rows[0].r;
  const fresh = await fit();
  const { rows } = await db.query<{ r: Recalibration }>(
    'UPDATE batches SET recalibration = COALESCE(recalibration, $3) WHERE project_id = $1 AND id = $2 RETURNING recalibration AS r', [project, batchId, JSON.stringify(fresh)],
  );
  return rows[0]?.r ?? fresh;
}

/** What a staged batch holds: samples written and lines refused. */
export async function stagedCounts(db: Db, project: string, batchId: string): Promise<{ staged: number; malformed: number }> {
  const { rows } = await db.query<{ staged: string; malformed: string }>(
    `SELECT (SELECT count(*) FROM samples WHERE project_id = $1 AND batch_id = $2) AS staged,
            (SELECT count(*) FROM ingest_rejections WHERE project_id = $1 AND batch_id = $2) AS malformed`,
    [project, batchId],
  );
  return { staged: Number(rows[0]!.staged), malformed: Number(rows[0]!.malformed) };
}

export interface MalformedLine {
  batchId: string;
  lineNo: number;
  externalId: string | null;
  /** What broke which rule, `pointer: rule: message; …`. */
  reason: string;
}

/** Lines refused before they became samples, with why, oldest batch line first; of one batch or the project's latest. */
export async function malformedLines(db: Db, project: string, o: { batchId?: string; limit: number }): Promise<{ total: number; lines: MalformedLine[] }> {
  const { rows } = await db.query<{ batch_id: string; line_no: number; external_id: string | null; findings: Finding[]; total: string }>(
    `SELECT batch_id, line_no, external_id, findings, count(*) OVER () AS total FROM ingest_rejections
     WHERE project_id = $1 AND ($2::text IS NULL OR batch_id = $2)
     ORDER BY ${o.batchId ? 'line_no' : 'created_at DESC, batch_id, line_no'} LIMIT $3`,
    [project, o.batchId ?? null, o.limit],
  );
  return {
    total: Number(rows[0]?.total ?? 0),
    lines: rows.map((r) => ({ batchId: r.batch_id, lineNo: r.line_no, externalId: r.external_id, reason: describeFindings(r.findings) })),
  };
}

export async function markBatchStaged(db: Db, project: string, batchId: string, lines: number): Promise<void> {
  await db.query(`UPDATE batches SET status = 'qc', lines_total = $3 WHERE project_id = $1 AND id = $2`, [project, batchId, lines]);
}

/** Marks the batch done; returns how long it took from staging to done (null: no such batch). */
export async function markBatchDone(db: Db, project: string, batchId: string, counts: unknown): Promise<{ seconds: number } | null> {
  const { rows } = await db.query<{ seconds: number }>(
    `UPDATE batches SET status = 'done', counts = $3, finished_at = COALESCE(finished_at, now()) WHERE project_id = $1 AND id = $2
     RETURNING extract(epoch FROM finished_at - created_at)::float8 AS seconds`,
    [project, batchId, JSON.stringify(counts)],
  );
  return rows[0] ?? null;
}

/** The batch's samples per status. */
export async function batchStatusCounts(db: Db, project: string, batchId: string): Promise<Record<string, number>> {
  const { rows } = await db.query<{ status: string; n: string }>('SELECT status, count(*) AS n FROM samples WHERE project_id = $1 AND batch_id = $2 GROUP BY status', [project, batchId]);
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

/** Plugins that threw on this batch, as recorded by recordBatchFinding. */
export async function batchPluginErrors(db: Db, project: string, batchId: string): Promise<Array<{ plugin: string; message: string }>> {
  const { rows } = await db.query<{ source: string; message: string }>(
    `SELECT source, message FROM batch_findings WHERE project_id = $1 AND batch_id = $2 AND rule = 'plugin.error' ORDER BY source`, [project, batchId],
  );
  return rows.map((r) => ({ plugin: r.source.replace(/^plugin:/, ''), message: r.message }));
}

/** The batch's agreement figures, and each annotator's (compared, agreed), which layer 4 reads. */
export async function writeBatchAgreement(c: PoolClient, project: string, batchId: string, agreement: unknown, annotators: Record<string, { compared: number; agreed: number }>): Promise<void> {
  await c.query('UPDATE batches SET agreement = $3 WHERE project_id = $1 AND id = $2', [project, batchId, JSON.stringify(agreement)]);
  for (const [a, t] of Object.entries(annotators)) {
    await c.query(
      `INSERT INTO annotator_agreement (project_id, batch_id, annotator, compared, agreed) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (project_id, batch_id, annotator) DO UPDATE SET compared = EXCLUDED.compared, agreed = EXCLUDED.agreed`,
      [project, batchId, a, t.compared, t.agreed],
    );
  }
}

/** Each annotator's (compared, agreed) on this batch. */
export async function batchAnnotatorAgreement(db: Db, project: string, batchId: string): Promise<Array<{ annotator: string; compared: number; agreed: number }>> {
  const { rows } = await db.query<{ annotator: string; compared: number; agreed: number }>(
    'SELECT annotator, compared, agreed FROM annotator_agreement WHERE project_id = $1 AND batch_id = $2', [project, batchId],
  );
  return rows;
}
