import type { Pool, PoolClient } from 'pg';
import type { Annotation, Labels, MediaRef } from '../ingest/envelope';
import type { AnnotatorLabels } from '../qc/consistency';
import type { Finding } from '../qc/findings';

/**
 * SQL expression for a sample's annotations as `[{annotator, labels}]` in submission order (`[]` when none);
 * use with the sample aliased `s`. Layers 1 and 2 read annotations through it so they see the same shape.
 */
export const ANNOTATIONS_OF_S = `COALESCE((SELECT jsonb_agg(jsonb_build_object('annotator', a.annotator, 'labels', a.labels) ORDER BY a.ordinal)
                            FROM annotations a WHERE a.sample_id = s.id), '[]'::jsonb)`;

type Db = Pool | PoolClient;

/**
 * Inserts a sample as the next revision of its externalId, retiring the earlier ones from `is_latest`
 * (a first revision has none to retire). Returns false when the same content was staged before.
 */
export async function insertSampleRevision(db: Db, s: { id: string; project: string; externalId: string; contentHash: string; payload: unknown; media: unknown[]; batchId: string; lineNo: number }): Promise<boolean> {
  const inserted = await db.query<{ revision: number }>(
    `INSERT INTO samples (id, project_id, external_id, revision, content_hash, payload, media, batch_id, line_no)
     SELECT $1, $2, $3, COALESCE(max(revision), 0) + 1, $4, $5, $6, $7, $8 FROM samples WHERE project_id = $2 AND external_id = $3
     ON CONFLICT (project_id, external_id, content_hash) DO NOTHING RETURNING revision`,
    [s.id, s.project, s.externalId, s.contentHash, JSON.stringify(s.payload), JSON.stringify(s.media), s.batchId, s.lineNo],
  );
  if (inserted.rowCount === 0) return false;
  if (inserted.rows[0]!.revision > 1) {
    await db.query('UPDATE samples SET is_latest = false WHERE project_id = $1 AND external_id = $2 AND id <> $3 AND is_latest', [s.project, s.externalId, s.id]);
  }
  return true;
}

/** New samples' annotations in one statement (a round trip per annotation dominated staging). */
export async function insertAnnotations(db: Db, rows: Array<{ sampleId: string; ordinal: number; annotation: Annotation }>): Promise<void> {
  if (rows.length === 0) return;
  await db.query(
    `INSERT INTO annotations (sample_id, ordinal, annotator, labels, submitted_at, duration_ms)
     SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::jsonb[], $5::timestamptz[], $6::int[])
     ON CONFLICT (sample_id, ordinal) DO NOTHING`,
    [rows.map((r) => r.sampleId), rows.map((r) => r.ordinal), rows.map((r) => r.annotation.annotator), rows.map((r) => JSON.stringify(r.annotation.labels)),
      rows.map((r) => r.annotation.submittedAt ?? null), rows.map((r) => r.annotation.durationMs ?? null)],
  );
}

export async function insertRejection(db: Db, r: { project: string; batchId: string; lineNo: number; externalId: string | undefined; excerpt: string; findings: Finding[] }): Promise<void> {
  await db.query(
    `INSERT INTO ingest_rejections (project_id, batch_id, line_no, external_id, excerpt, findings) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (project_id, batch_id, line_no) DO NOTHING`,
    [r.project, r.batchId, r.lineNo, r.externalId ?? null, r.excerpt, JSON.stringify(r.findings)],
  );
}

/** A batch's layer-1-passed samples with their annotations and payload, in id order (what layer 2 learns annotators from). */
export async function passedSampleAnnotations(db: Db, project: string, batchId: string): Promise<Array<{ annotations: AnnotatorLabels[]; payload: Record<string, unknown> }>> {
  const { rows } = await db.query<{ annotations: AnnotatorLabels[]; payload: Record<string, unknown> }>(
    `SELECT ${ANNOTATIONS_OF_S} AS annotations, s.payload
     FROM samples s JOIN qc_results q ON q.sample_id = s.id AND q.layer = 1 AND q.passed
     WHERE s.project_id = $1 AND s.batch_id = $2 ORDER BY s.id`,
    [project, batchId],
  );
  return rows;
}

/** One sample as a reviewer sees it: its record, media and every annotation, with each QC layer's result. */
export async function sampleForReview(db: Db, sampleId: string): Promise<{
  externalId: string; payload: Record<string, unknown>; media: MediaRef[]; annotations: Array<{ annotator: string; labels: Labels }>;
  layers: Array<{ layer: number; passed: boolean; score: number | null; findings: Finding[]; details: Record<string, unknown> | null; model_version: string | null }>;
} | undefined> {
  const { rows } = await db.query<{ external_id: string; payload: Record<string, unknown>; media: MediaRef[]; annotations: Array<{ annotator: string; labels: Labels }> }>(
    `SELECT s.external_id, s.payload, s.media, ${ANNOTATIONS_OF_S} AS annotations FROM samples s WHERE s.id = $1`, [sampleId],
  );
  const s = rows[0];
  if (!s) return undefined;
  const layers = await db.query<{ layer: number; passed: boolean; score: number | null; findings: Finding[]; details: Record<string, unknown> | null; model_version: string | null }>(
    'SELECT layer, passed, score, findings, details, model_version FROM qc_results WHERE sample_id = $1 ORDER BY layer', [sampleId],
  );
  return { externalId: s.external_id, payload: s.payload, media: s.media, annotations: s.annotations, layers: layers.rows };
}

/** A sample's record and media: what a correction is checked against. */
export async function sampleRecord(db: Db, sampleId: string): Promise<{ externalId: string; payload: Record<string, unknown>; media: MediaRef[] } | undefined> {
  const { rows } = await db.query<{ external_id: string; payload: Record<string, unknown>; media: MediaRef[] }>('SELECT external_id, payload, media FROM samples WHERE id = $1', [sampleId]);
  return rows[0] && { externalId: rows[0].external_id, payload: rows[0].payload, media: rows[0].media };
}
