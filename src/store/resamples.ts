import type { Pool, PoolClient } from 'pg';

export interface ResampleRequest {
  sampleId: string;
  externalId: string;
  batchId: string;
  reasons: string[];
  createdAt: string;
  notifiedAt: string | null;
}

/** Resample requests of a project (optionally one batch), newest first, with the total for paging. */
export async function listResamples(pool: Pool, q: { project: string; batchId?: string; limit: number; offset?: number; unnotified?: boolean }): Promise<{ total: number; items: ResampleRequest[] }> {
  const where = `project_id = $1 AND ($2::text IS NULL OR batch_id = $2) AND (NOT $3 OR notified_at IS NULL)`;
  const params = [q.project, q.batchId ?? null, q.unnotified ?? false];
  const total = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM resample_requests WHERE ${where}`, params);
  const { rows } = await pool.query<{ sample_id: string; external_id: string; batch_id: string; reasons: string[]; created_at: Date; notified_at: Date | null }>(
    `SELECT sample_id, external_id, batch_id, reasons, created_at, notified_at FROM resample_requests WHERE ${where}
     ORDER BY created_at DESC, sample_id LIMIT $4 OFFSET $5`,
    [...params, q.limit, q.offset ?? 0],
  );
  return {
    total: Number(total.rows[0]!.n),
    items: rows.map((r) => ({ sampleId: r.sample_id, externalId: r.external_id, batchId: r.batch_id, reasons: r.reasons, createdAt: r.created_at.toISOString(), notifiedAt: r.notified_at?.toISOString() ?? null })),
  };
}

export async function markNotified(pool: Pool, sampleIds: string[]): Promise<void> {
  await pool.query('UPDATE resample_requests SET notified_at = now() WHERE sample_id = ANY($1) AND notified_at IS NULL', [sampleIds]);
}

/** Records resample requests (one per sample: a request already there stays as it was). */
export async function insertResampleRequests(db: Pool | PoolClient, project: string, batchId: string, rows: Array<{ sampleId: string; externalId: string; reasons: string[] }>): Promise<void> {
  if (rows.length === 0) return;
  await db.query(
    `INSERT INTO resample_requests (sample_id, project_id, batch_id, external_id, reasons)
     SELECT id, $2, $3, external_id, reasons FROM unnest($1::text[], $4::text[], $5::jsonb[]) AS t(id, external_id, reasons) ON CONFLICT (sample_id) DO NOTHING`,
    [rows.map((r) => r.sampleId), project, batchId, rows.map((r) => r.externalId), rows.map((r) => JSON.stringify(r.reasons))],
  );
}
