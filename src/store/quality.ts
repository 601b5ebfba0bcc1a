import type { QualityBucket } from '../qc/dashboard';
import type { Pool, PoolClient } from 'pg';
import { inWindow, type BatchSampleQuality, type Bucket, type Breach, type SubjectSummary } from '../qc/decay';
import type { QcPolicy } from '../qc/policy';

type Db = Pool | PoolClient;

/** Adds a batch's buckets; a retried batch adds nothing twice. */
export async function insertBuckets(db: Db, project: string, batchId: string, buckets: Map<string, Bucket>): Promise<void> {
  for (const [subject, b] of buckets) {
    await db.query(
      `INSERT INTO quality_buckets (project_id, subject, batch_id, data_time, n, l1_failed, l2_compared, l2_agreed, l3_n, l3_sum, l3_scores, time_hist)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (project_id, subject, batch_id) DO NOTHING`,
      [project, subject, batchId, b.dataTime, b.n, b.l1Failed, b.l2Compared, b.l2Agreed, b.l3N, b.l3Sum, b.l3Scores, b.timeHist],
    );
  }
}

const PAGE = 64;

type BucketRow = { seq: string; data_time: Date; n: number; l1_failed: number; l2_compared: number; l2_agreed: number; l3_n: number; l3_sum: number; l3_scores: number[]; time_hist: number[] };

/**
 * A subject's newest buckets by data time, newest first, just as many as the long window needs: pages down
 * the (project, subject, data_time, seq) index and stops once the window is covered, so the cost does not
 * grow with history. Time windows reach back from the newest bucket's data time.
 */
export async function newestBuckets(db: Db, project: string, subject: string, window: QcPolicy['layer4']['window']): Promise<Bucket[]> {
  const out: Bucket[] = [];
  let before = null as { time: Date; seq: string } | null;
  let samples = 0;
  for (;;) {
    const { rows }: { rows: BucketRow[] } = await db.query<BucketRow>(
      `SELECT seq, data_time, n, l1_failed, l2_compared, l2_agreed, l3_n, l3_sum, l3_scores, time_hist FROM quality_buckets
       WHERE project_id = $1 AND subject = $2 AND ($3::timestamptz IS NULL OR (data_time, seq) < ($3, $4::bigint))
       ORDER BY data_time DESC, seq DESC LIMIT ${PAGE}`,
      [project, subject, before?.time ?? null, before?.seq ?? null],
    );
    for (const r of rows) {
      if (!inWindow(window.kind, window.long, samples, r.data_time, out[0]?.dataTime ?? r.data_time)) return out;
      out.push({ n: r.n, l1Failed: r.l1_failed, l2Compared: r.l2_compared, l2Agreed: r.l2_agreed, l3N: r.l3_n, l3Sum: r.l3_sum, l3Scores: r.l3_scores, timeHist: r.time_hist, dataTime: r.data_time });
      samples += r.n;
    }
    if (rows.length < PAGE) return out;
    before = { time: rows[rows.length - 1]!.data_time, seq: rows[rows.length - 1]!.seq };
  }
}

/** A project's newest buckets of every subject (at most `limit`), for the dashboard. */
export async function projectBuckets(db: Db, project: string, limit: number): Promise<QualityBucket[]> {
  const { rows } = await db.query<BucketRow & { subject: string; batch_id: string }>(
    `SELECT subject, batch_id, seq, data_time, n, l1_failed, l2_compared, l2_agreed, l3_n, l3_sum, l3_scores, time_hist FROM quality_buckets
     WHERE project_id = $1 ORDER BY data_time DESC, seq DESC LIMIT $2`, [project, limit],
  );
  return rows.map((r) => ({ subject: r.subject, batchId: r.batch_id, dataTime: r.data_time, n: r.n, l2Compared: r.l2_compared, l2Agreed: r.l2_agreed, l3N: r.l3_n, l3Sum: r.l3_sum, timeHist: r.time_hist }));
}

export async function saveWindow(db: Db, project: string, subject: string, batchId: string, summary: SubjectSummary): Promise<void> {
  await db.query(
    `INSERT INTO quality_windows (project_id, subject, batch_id, summary) VALUES ($1, $2, $3, $4)
     ON CONFLICT (project_id, subject) DO UPDATE SET batch_id = EXCLUDED.batch_id, summary = EXCLUDED.summary, updated_at = now()`,
    [project, subject, batchId, JSON.stringify(summary)],
  );
}

/** Opens (or refreshes) an alert per breached metric and clears the subject's alerts that no longer breach. */
export async function syncAlerts(db: Db, project: string, subject: string, batchId: string, breaches: Breach[]): Promise<void> {
  for (const b of breaches) {
    await db.query(
      `INSERT INTO decay_alerts (project_id, subject, metric, short_value, reference_value, delta, threshold, slope, opened_batch, last_batch)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
       ON CONFLICT (project_id, subject, metric) WHERE cleared_at IS NULL DO UPDATE SET
         short_value = EXCLUDED.short_value, reference_value = EXCLUDED.reference_value, delta = EXCLUDED.delta,
         threshold = EXCLUDED.threshold, slope = EXCLUDED.slope, last_batch = EXCLUDED.last_batch, updated_at = now()`,
      [project, subject, b.metric, b.shortValue, b.referenceValue, b.delta, b.threshold, b.slope, batchId],
    );
  }
  await db.query(
    `UPDATE decay_alerts SET cleared_at = now(), last_batch = $4 WHERE project_id = $1 AND subject = $2 AND cleared_at IS NULL AND NOT (metric = ANY($3::text[]))`,
    [project, subject, breaches.map((b) => b.metric), batchId],
  );
}

export interface DecayAlert {
  subject: string;
  metric: string;
  shortValue: number;
  referenceValue: number;
  delta: number;
  threshold: number;
  slope: number | null;
  openedBatch: string;
  lastBatch: string;
  openedAt: Date;
}

export async function openAlerts(db: Db, project: string): Promise<DecayAlert[]> {
  const { rows } = await db.query<{ subject: string; metric: string; short_value: number; reference_value: number; delta: number; threshold: number; slope: number | null; opened_batch: string; last_batch: string; opened_at: Date }>(
    `SELECT subject, metric, short_value, reference_value, delta, threshold, slope, opened_batch, last_batch, opened_at
     FROM decay_alerts WHERE project_id = $1 AND cleared_at IS NULL ORDER BY subject, metric`, [project],
  );
  return rows.map((r) => ({ subject: r.subject, metric: r.metric, shortValue: r.short_value, referenceValue: r.reference_value, delta: r.delta, threshold: r.threshold, slope: r.slope, openedBatch: r.opened_batch, lastBatch: r.last_batch, openedAt: r.opened_at }));
}

/** The latest window summary of a subject (the stream by default), or undefined before its first batch. */
export async function latestWindow(db: Db, project: string, subject: string): Promise<{ batchId: string; summary: SubjectSummary } | undefined> {
  const { rows } = await db.query<{ batch_id: string; summary: SubjectSummary }>('SELECT batch_id, summary FROM quality_windows WHERE project_id = $1 AND subject = $2', [project, subject]);
  return rows[0] && { batchId: rows[0].batch_id, summary: rows[0].summary };
}

/** A batch's samples as layer 4 counts them: layer verdicts and each annotation's time and submission time. */
export async function batchSampleQuality(db: Db, project: string, batchId: string): Promise<BatchSampleQuality[]> {
  const { rows } = await db.query<{ id: string; l1: boolean; l2: number | null; l3: number | null; annotations: Array<{ annotator: string; durationMs: number | null; submittedAt: string | null }> }>(
    `SELECT s.id, q1.passed AS l1, q2.score AS l2, q3.score AS l3,
            COALESCE((SELECT jsonb_agg(jsonb_build_object('annotator', a.annotator, 'durationMs', a.duration_ms, 'submittedAt', a.submitted_at)) FROM annotations a WHERE a.sample_id = s.id), '[]') AS annotations
     FROM samples s JOIN qc_results q1 ON q1.sample_id = s.id AND q1.layer = 1
     LEFT JOIN qc_results q2 ON q2.sample_id = s.id AND q2.layer = 2
     LEFT JOIN qc_results q3 ON q3.sample_id = s.id AND q3.layer = 3
     WHERE s.project_id = $1 AND s.batch_id = $2 ORDER BY s.id`,
    [project, batchId],
  );
  return rows.map((r) => ({
    id: r.id, l1Passed: r.l1, l2Score: r.l2, l3Score: r.l3,
    annotations: r.annotations.map((a) => ({ annotator: a.annotator, durationMs: a.durationMs ?? undefined, submittedAt: a.submittedAt ? new Date(a.submittedAt) : undefined })),
  }));
}

/** The database's clock: what data-time windows compare with (one clock for every worker). */
export async function databaseNow(db: Pool | PoolClient): Promise<Date> {
  const { rows } = await db.query<{ now: Date }>('SELECT now() AS now');
  return rows[0]!.now;
}
