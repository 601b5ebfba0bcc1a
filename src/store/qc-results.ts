import type { Pool, PoolClient } from 'pg';
import type { Finding } from '../qc/findings';
import type { SampleRisk } from '../qc/risk';
import { insertResampleRequests } from './resamples';
import { ANNOTATIONS_OF_S } from './samples';
import type { Annotation, MediaRef } from '../ingest/envelope';
import type { AnnotatorLabels, Tallies } from '../qc/consistency/types';

type Db = Pool | PoolClient;

/** One sample's result at one layer. */
export interface QcResultRow {
  id: string;
  passed: boolean;
  score: number | null;
  findings: Finding[];
  details?: Record<string, unknown>;
  modelVersion?: string | null;
}

/**
 * The one write of `qc_results`: a page of one layer's results in one statement. A rerun replaces a result
 * (a retried page recomputes the same one), except with `keepFirst`: layer 3 keeps the first scoring, so a
 * retried page never has another arm's model rescore a sample. The model version is set when a row is
 * first written.
 */
export async function upsertQcResults(db: Db, layer: 1 | 2 | 3 | 4 | 5, rows: QcResultRow[], o: { keepFirst?: boolean } = {}): Promise<void> {
  if (rows.length === 0) return;
  await db.query(
    `INSERT INTO qc_results (sample_id, layer, passed, score, findings, details, model_version)
     SELECT id, $1, passed, score, findings, details, model_version
     FROM unnest($2::text[], $3::bool[], $4::float8[], $5::jsonb[], $6::jsonb[], $7::text[]) AS t(id, passed, score, findings, details, model_version)
     ON CONFLICT (sample_id, layer) DO ${o.keepFirst ? 'NOTHING' : 'UPDATE SET passed = EXCLUDED.passed, score = EXCLUDED.score, findings = EXCLUDED.findings, details = EXCLUDED.details'}`,
    [layer, rows.map((r) => r.id), rows.map((r) => r.passed), rows.map((r) => r.score), rows.map((r) => JSON.stringify(r.findings)),
      rows.map((r) => JSON.stringify(r.details ?? {})), rows.map((r) => r.modelVersion ?? null)],
  );
}

/** A page of layer-1 results and the samples' move to `qc`, a statement each (a round trip per sample dominated layer 1). */
export async function writeLayer1Results(db: Db, rows: Array<{ id: string; passed: boolean; findings: Finding[] }>): Promise<void> {
  await upsertQcResults(db, 1, rows.map((r) => ({ ...r, score: r.passed ? 1 : 0 })));
  await db.query(`UPDATE samples SET status = 'qc', updated_at = now() WHERE id = ANY($1::text[]) AND status = 'received'`, [rows.map((r) => r.id)]);
}

/**
 * A page of layer-2 results in one statement; plugins that join layer 1 fail the sample there, and its
 * layer-1 row keeps both its own and their findings.
 */
export async function writeLayer2Results(db: Db, rows: Array<{ id: string; layer1: Finding[]; passed: boolean; score: number; findings: Finding[]; details: Record<string, unknown> }>): Promise<void> {
  await upsertQcResults(db, 2, rows);
  for (const r of rows) {
    if (r.layer1.length === 0) continue;
    await db.query(
      `UPDATE qc_results SET passed = false, findings = findings || $2::jsonb WHERE sample_id = $1 AND layer = 1 AND NOT findings @> $2::jsonb`,
      [r.id, JSON.stringify(r.layer1)],
    );
  }
}

/**
 * Every layer-1-passed sample of a batch with its layer-2 risk, the layer-3 model's probability of its
 * consensus class, and whether a vote may decide it (no blocking finding, layer 3 able to judge) —
 * whatever its status, so a retried layer 5 computes the same batch threshold.
 */
export async function batchRiskRows(db: Db, project: string, batchId: string): Promise<Array<{ id: string; risk: SampleRisk | null; modelP: number | null; eligible: boolean }>> {
  const { rows } = await db.query<{ id: string; risk: SampleRisk | null; model_p: number | null; eligible: boolean }>(
    `SELECT s.id, q2.details->'risk' AS risk, q3.score AS model_p,
            COALESCE(jsonb_array_length(q2.details->'blocking'), 0) = 0 AND NOT COALESCE(NOT q3.passed AND q3.score IS NULL, false) AS eligible
     FROM samples s JOIN qc_results q1 ON q1.sample_id = s.id AND q1.layer = 1 AND q1.passed
     LEFT JOIN qc_results q2 ON q2.sample_id = s.id AND q2.layer = 2
     LEFT JOIN qc_results q3 ON q3.sample_id = s.id AND q3.layer = 3
     WHERE s.project_id = $1 AND s.batch_id = $2`,
    [project, batchId],
  );
  return rows.map((r) => ({ id: r.id, risk: r.risk, modelP: r.model_p, eligible: r.eligible }));
}

export interface DispositionRow {
  id: string;
  externalId: string;
  disposition: string;
  confidence: number | null;
  findings: Finding[];
  details: Record<string, unknown>;
  modelVersion: string | null;
}

/** A page of layer-5 decisions: results, resample requests and statuses, a statement each. */
export async function writeDispositions(db: Db, project: string, batchId: string, rows: DispositionRow[]): Promise<void> {
  await upsertQcResults(db, 5, rows.map((r) => ({ id: r.id, passed: r.disposition === 'accepted', score: r.confidence, findings: r.findings, details: r.details, modelVersion: r.modelVersion })));
  await insertResampleRequests(db, project, batchId, rows.filter((r) => r.disposition === 'resample').map((r) => ({ sampleId: r.id, externalId: r.externalId, reasons: r.findings.map((f) => f.message) })));
  await db.query(
    `UPDATE samples s SET status = t.status, decided_at = now(), updated_at = now() FROM unnest($1::text[], $2::text[]) AS t(id, status) WHERE s.id = t.id AND s.status = 'qc'`,
    [rows.map((r) => r.id), rows.map((r) => r.disposition)],
  );
}

/** What layer 5 reads of one page of a batch's undecided samples: every layer's verdict it fuses. */
export interface UndecidedRow {
  id: string; external_id: string; l1: boolean; l2: boolean | null; agreement: number | null; l2_rules: string[] | null;
  score: number | null; uncertainty: string | null; l3_failed: boolean; stability: number | null; model_version: string | null;
  alerted: string[] | null; blocking: string[] | null;
  /** Layer 2's per-annotator agreement with this sample's consensus. */
  tallies: Tallies | null;
}

export async function undecidedPage(db: Db, project: string, batchId: string, limit: number): Promise<UndecidedRow[]> {
  const { rows } = await db.query<UndecidedRow>(
    `SELECT s.id, s.external_id, q1.passed AS l1, q2.passed AS l2, q2.score AS agreement, q2.details->'blocking' AS blocking, q2.details->'tallies' AS tallies,
            (SELECT array_agg(DISTINCT f->>'rule') FROM jsonb_array_elements(q2.findings) f) AS l2_rules,
            q3.score, q3.details->>'uncertainty' AS uncertainty, q3.model_version, COALESCE(NOT q3.passed AND q3.score IS NULL, false) AS l3_failed,
            q4.score AS stability, (SELECT array_agg(a) FROM jsonb_array_elements_text(q4.details->'alertedAnnotators') a) AS alerted
     FROM samples s JOIN qc_results q1 ON q1.sample_id = s.id AND q1.layer = 1
     LEFT JOIN qc_results q2 ON q2.sample_id = s.id AND q2.layer = 2
     LEFT JOIN qc_results q3 ON q3.sample_id = s.id AND q3.layer = 3
     LEFT JOIN qc_results q4 ON q4.sample_id = s.id AND q4.layer = 4
     WHERE s.project_id = $1 AND s.batch_id = $2 AND s.status = 'qc' ORDER BY s.id LIMIT $3`,
    [project, batchId, limit],
  );
  return rows;
}

/** A page of the batch's samples that layer 1 has not checked yet, with their annotations. */
export async function uncheckedPage(db: Db, project: string, batchId: string, limit: number): Promise<Array<{ id: string; external_id: string; payload: Record<string, unknown>; media: MediaRef[]; annotations: Annotation[] }>> {
  const { rows } = await db.query<{ id: string; external_id: string; payload: Record<string, unknown>; media: MediaRef[]; annotations: Annotation[] }>(
    `SELECT s.id, s.external_id, s.payload, s.media,
            ${ANNOTATIONS_OF_S} AS annotations
     FROM samples s WHERE s.project_id = $1 AND s.batch_id = $2 AND s.status = 'received' ORDER BY s.id LIMIT $3`,
    [project, batchId, limit],
  );
  return rows;
}

/** A page of the batch's layer-1-passed samples without a layer-2 result yet. */
export async function layer2Page(db: Db, project: string, batchId: string, limit: number): Promise<Array<{ id: string; payload: Record<string, unknown>; media: MediaRef[]; annotations: AnnotatorLabels[] }>> {
  const { rows } = await db.query<{ id: string; payload: Record<string, unknown>; media: MediaRef[]; annotations: AnnotatorLabels[] }>(
    `SELECT s.id, s.payload, s.media,
            ${ANNOTATIONS_OF_S} AS annotations
     FROM samples s JOIN qc_results q1 ON q1.sample_id = s.id AND q1.layer = 1 AND q1.passed
     LEFT JOIN qc_results q2 ON q2.sample_id = s.id AND q2.layer = 2
     WHERE s.project_id = $1 AND s.batch_id = $2 AND s.status = 'qc' AND q2.sample_id IS NULL ORDER BY s.id LIMIT $3`,
    [project, batchId, limit],
  );
  return rows;
}

export async function layer1Counts(db: Db, project: string, batchId: string): Promise<{ passed: number; failed: number }> {
  const { rows } = await db.query<{ passed: string; failed: string }>(
    `SELECT count(*) FILTER (WHERE q.passed) AS passed, count(*) FILTER (WHERE NOT q.passed) AS failed
     FROM samples s JOIN qc_results q ON q.sample_id = s.id AND q.layer = 1 WHERE s.project_id = $1 AND s.batch_id = $2`,
    [project, batchId],
  );
  return { passed: Number(rows[0]!.passed), failed: Number(rows[0]!.failed) };
}

/** Layer 2's tallies summed per annotator over the batch, and its sample and conflict counts. */
export async function layer2Summary(db: Db, project: string, batchId: string): Promise<{ annotators: Array<{ annotator: string; compared: number; agreed: number }>; samples: number; conflicts: number }> {
  const per = await db.query<{ annotator: string; compared: string; agreed: string }>(
    `SELECT t.key AS annotator, sum((t.value->>'compared')::int) AS compared, sum((t.value->>'agreed')::int) AS agreed
     FROM samples s JOIN qc_results q ON q.sample_id = s.id AND q.layer = 2, jsonb_each(q.details->'tallies') t
     WHERE s.project_id = $1 AND s.batch_id = $2 GROUP BY t.key ORDER BY t.key`,
    [project, batchId],
  );
  const totals = await db.query<{ samples: string; conflicts: string }>(
    `SELECT count(*) AS samples, count(*) FILTER (WHERE NOT q.passed) AS conflicts
     FROM samples s JOIN qc_results q ON q.sample_id = s.id AND q.layer = 2 WHERE s.project_id = $1 AND s.batch_id = $2`,
    [project, batchId],
  );
  return {
    annotators: per.rows.map((r) => ({ annotator: r.annotator, compared: Number(r.compared), agreed: Number(r.agreed) })),
    samples: Number(totals.rows[0]!.samples), conflicts: Number(totals.rows[0]!.conflicts),
  };
}

/** How many of the batch's samples layer 5 sent to the audit. */
export async function auditedCount(db: Db, project: string, batchId: string): Promise<number> {
  const { rows } = await db.query<{ n: string }>(
    `SELECT count(*) AS n FROM samples s JOIN qc_results q ON q.sample_id = s.id AND q.layer = 5
     WHERE s.project_id = $1 AND s.batch_id = $2 AND q.details->>'reason' = 'audit'`, [project, batchId],
  );
  return Number(rows[0]!.n);
}

/** What layer 3 reads of the batch's unscored samples: payload, media and layer 2's consensus classes, in id order after `after`. */
export interface UnscoredSample {
  id: string;
  payload: unknown;
  media: MediaRef[];
  consensus: string[] | null;
  /** Who annotated it, in submission order (read only under a gray release: its evaluation context). */
  annotators: string[];
}

/** `withAnnotators`: a gray release's evaluation context names them; without one the page does not read them. */
export async function unscoredPage(db: Db, project: string, batchId: string, after: string, limit: number, withAnnotators = false): Promise<UnscoredSample[]> {
  const { rows } = await db.query<UnscoredSample>(
    `SELECT s.id, s.payload, s.media, q2.details->'consensus'->'classes'->'classes' AS consensus,
            ${withAnnotators ? 'ARRAY(SELECT a.annotator FROM annotations a WHERE a.sample_id = s.id ORDER BY a.ordinal)' : `'{}'::text[]`} AS annotators
     FROM samples s JOIN qc_results q1 ON q1.sample_id = s.id AND q1.layer = 1 AND q1.passed
     LEFT JOIN qc_results q2 ON q2.sample_id = s.id AND q2.layer = 2
     WHERE s.project_id = $1 AND s.batch_id = $2 AND s.status = 'qc' AND s.id > $4
       AND NOT EXISTS (SELECT 1 FROM qc_results q3 WHERE q3.sample_id = s.id AND q3.layer = 3)
     ORDER BY s.id LIMIT $3`,
    [project, batchId, limit, after],
  );
  return rows;
}
