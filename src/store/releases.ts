import type { Pool, PoolClient } from 'pg';
import type { QcSummary } from '../release/manifest';
import type { ReleaseRow } from '../release/writers';
import type { ReleaseSummary } from '../../workflows/definitions';
import { audit } from './audit';
import { RELEASABLE } from './projects';

type Db = Pool | PoolClient;

export interface Snapshot {
  releaseId: string;
  sampleCount: number;
  published: boolean;
}

export async function releaseSummary(db: Db, releaseId: string): Promise<ReleaseSummary> {
  const { rows } = await db.query<{ project_id: string; version: string; sample_count: number; manifest_key: string; checksums: ReleaseSummary['files'] }>(
    'SELECT project_id, version, sample_count, manifest_key, checksums FROM releases WHERE id = $1', [releaseId],
  );
  const r = rows[0]!;
  return { project: r.project_id, version: r.version, releaseId, sampleCount: r.sample_count, manifestKey: r.manifest_key, files: r.checksums };
}

/** The release of this version with the samples it claimed, locked for the transaction, if there is one. */
export async function existingSnapshot(c: PoolClient, project: string, version: string): Promise<Snapshot | undefined> {
  const existing = await c.query<{ id: string; status: string }>('SELECT id, status FROM releases WHERE project_id = $1 AND version = $2 FOR UPDATE', [project, version]);
  const row = existing.rows[0];
  if (!row) return undefined;
  const n = await c.query<{ n: string }>('SELECT count(*) AS n FROM samples WHERE release_id = $1', [row.id]);
  return { releaseId: row.id, sampleCount: Number(n.rows[0]!.n), published: row.status === 'published' };
}

/** What the manifest says about QC: statuses of the latest revisions, rejected lines, layer 1's most frequent rules. */
export async function projectQcSummary(c: Db, project: string): Promise<QcSummary> {
  const status = await c.query<{ status: string; n: string }>('SELECT status, count(*) AS n FROM samples WHERE project_id = $1 AND is_latest GROUP BY status', [project]);
  const rejectedLines = await c.query<{ n: string }>('SELECT count(*) AS n FROM ingest_rejections WHERE project_id = $1', [project]);
  const rules = await c.query<{ rule: string; n: string }>(
    `SELECT f->>'rule' AS rule, count(*) AS n FROM samples s JOIN qc_results q ON q.sample_id = s.id AND q.layer = 1,
            jsonb_array_elements(q.findings) f WHERE s.project_id = $1 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20`,
    [project],
  );
  return {
    statusCounts: Object.fromEntries(status.rows.map((r) => [r.status, Number(r.n)])),
    rejectedLines: Number(rejectedLines.rows[0]!.n),
    layer1TopRules: rules.rows.map((r) => ({ rule: r.rule, count: Number(r.n) })),
  };
}

/** A new release row and every releasable sample claimed for it (sampleCount 0: nothing to release). */
export async function claimRelease(c: PoolClient, project: string, version: string, qcSummary: QcSummary): Promise<Snapshot> {
  const ins = await c.query<{ id: string }>('INSERT INTO releases (project_id, version, qc_summary) VALUES ($1, $2, $3) RETURNING id', [project, version, JSON.stringify(qcSummary)]);
  const releaseId = ins.rows[0]!.id;
  const claimed = await c.query(`UPDATE samples SET release_id = $2 WHERE ${RELEASABLE}`, [project, releaseId]);
  return { releaseId, sampleCount: claimed.rowCount ?? 0, published: false };
}

export async function releaseHeader(db: Db, releaseId: string): Promise<{ project: string; version: string; createdAt: Date; qcSummary: QcSummary } | undefined> {
  const { rows } = await db.query<{ project_id: string; version: string; created_at: Date; qc_summary: QcSummary }>(
    'SELECT project_id, version, created_at, qc_summary FROM releases WHERE id = $1', [releaseId],
  );
  const r = rows[0];
  return r && { project: r.project_id, version: r.version, createdAt: r.created_at, qcSummary: r.qc_summary };
}

/** A page of a release's samples in id order after `after`, as the release files carry them. */
export async function releaseRowsPage(db: Db, releaseId: string, after: string, limit: number): Promise<ReleaseRow[]> {
  const page = await db.query<{
    id: string; external_id: string; revision: number; content_hash: string; payload: unknown; media: unknown;
    annotations: unknown; qc: unknown; decided_at: Date;
  }>(
    `SELECT s.id, s.external_id, s.revision, s.content_hash, s.payload, s.media, s.decided_at,
            COALESCE((SELECT jsonb_agg(jsonb_build_object('annotator', a.annotator, 'submittedAt', a.submitted_at,
                      'durationMs', a.duration_ms, 'labels', a.labels) ORDER BY a.ordinal) FROM annotations a WHERE a.sample_id = s.id), '[]'::jsonb) AS annotations,
            COALESCE((SELECT jsonb_object_agg('layer' || q.layer, jsonb_build_object('passed', q.passed, 'score', q.score)
                      -- Consumers train on the consensus, and want the model version that scored it.
                      || CASE WHEN q.layer = 2 THEN jsonb_build_object('consensus', q.details->'consensus') ELSE '{}'::jsonb END
                      || CASE WHEN q.model_version IS NOT NULL THEN jsonb_build_object('modelVersion', q.model_version) ELSE '{}'::jsonb END)
                      FROM qc_results q WHERE q.sample_id = s.id), '{}'::jsonb) AS qc
     FROM samples s WHERE s.release_id = $1 AND s.id > $2 ORDER BY s.id LIMIT $3`,
    [releaseId, after, limit],
  );
  return page.rows.map((p) => ({
    sampleId: p.id, externalId: p.external_id, revision: p.revision, contentHash: p.content_hash,
    payload: p.payload, media: p.media, annotations: p.annotations, qc: p.qc, acceptedAt: p.decided_at,
  }));
}

/** Marks a building release published with its files and its samples released, with an audit record; a second call changes nothing. */
export async function publishRelease(c: PoolClient, releaseId: string, files: ReleaseSummary['files']): Promise<void> {
  const upd = await c.query<{ project_id: string; version: string }>(
    `UPDATE releases SET status = 'published', manifest_key = $2, checksums = $3, published_at = now(),
       sample_count = (SELECT count(*) FROM samples WHERE release_id = $1)
     WHERE id = $1 AND status = 'building' RETURNING project_id, version`,
    [releaseId, files.manifest.key, JSON.stringify(files)],
  );
  await c.query(`UPDATE samples SET status = 'released', updated_at = now() WHERE release_id = $1 AND status = 'accepted'`, [releaseId]);
  const row = upd.rows[0];
  if (row) await audit(c, { actor: 'datasetRelease', action: 'release.publish', project: row.project_id, subject: row.version, details: { releaseId, manifest: files.manifest } });
}
