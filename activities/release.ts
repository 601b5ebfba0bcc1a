import { mkdtempSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { withTransaction } from '../src/clients/pg';
import { putObject } from '../src/clients/minio';
import { releasePrefix } from '../src/ingest/keys';
import { RELEASABLE } from '../src/store/projects';
import { buildManifest, type QcSummary } from '../src/release/manifest';
import { ReleaseFileWriter, type ReleaseRow } from '../src/release/writers';
import { sha256Hex } from '../src/util/canonical-json';
import type { DatasetReleaseInput, ReleaseFileInfo, ReleaseSummary } from '../workflows/definitions';
import { type ActivityDeps, badInput, heartbeat, requireProject } from './deps';

const PAGE = 1000;

export interface Snapshot {
  releaseId: string;
  sampleCount: number;
  published: boolean;
}

export function releaseActivities(deps: ActivityDeps) {
  async function summaryOf(releaseId: string): Promise<ReleaseSummary> {
    const { rows } = await deps.pool.query<{ project_id: string; version: string; sample_count: number; manifest_key: string; checksums: ReleaseSummary['files'] }>(
      'SELECT project_id, version, sample_count, manifest_key, checksums FROM releases WHERE id = $1', [releaseId],
    );
    const r = rows[0]!;
    return { project: r.project_id, version: r.version, releaseId, sampleCount: r.sample_count, manifestKey: r.manifest_key, files: r.checksums };
  }

  return {
    /**
     * Creates the release row and claims every accepted, unreleased latest sample for it in one transaction.
     * A retry finds the row and its claimed samples and returns the same snapshot.
     */
    async snapshotRelease(input: DatasetReleaseInput): Promise<Snapshot> {
      await requireProject(deps, input.project);
      return withTransaction(deps.pool, async (c) => {
        const existing = await c.query<{ id: string; status: string }>(
          'SELECT id, status FROM releases WHERE project_id = $1 AND version = $2 FOR UPDATE', [input.project, input.version],
        );
        let releaseId = existing.rows[0]?.id;
        if (releaseId) {
          const n = await c.query<{ n: string }>('SELECT count(*) AS n FROM samples WHERE release_id = $1', [releaseId]);
          return { releaseId, sampleCount: Number(n.rows[0]!.n), published: existing.rows[0]!.status === 'published' };
        }
        const status = await c.query<{ status: string; n: string }>(
          'SELECT status, count(*) AS n FROM samples WHERE project_id = $1 AND is_latest GROUP BY status', [input.project],
        );
        const rejectedLines = await c.query<{ n: string }>('SELECT count(*) AS n FROM ingest_rejections WHERE project_id = $1', [input.project]);
        const rules = await c.query<{ rule: string; n: string }>(
          `SELECT f->>'rule' AS rule, count(*) AS n FROM samples s JOIN qc_results q ON q.sample_id = s.id AND q.layer = 1,
                  jsonb_array_elements(q.findings) f WHERE s.project_id = $1 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20`,
          [input.project],
        );
        const qcSummary: QcSummary = {
          statusCounts: Object.fromEntries(status.rows.map((r) => [r.status, Number(r.n)])),
          rejectedLines: Number(rejectedLines.rows[0]!.n),
          layer1TopRules: rules.rows.map((r) => ({ rule: r.rule, count: Number(r.n) })),
        };
        const ins = await c.query<{ id: string }>(
          'INSERT INTO releases (project_id, version, qc_summary) VALUES ($1, $2, $3) RETURNING id',
          [input.project, input.version, JSON.stringify(qcSummary)],
        );
        releaseId = ins.rows[0]!.id;
        const claimed = await c.query(
          `UPDATE samples SET release_id = $2 WHERE ${RELEASABLE}`,
          [input.project, releaseId],
        );
        if (!claimed.rowCount) {
          throw badInput(`project ${input.project} has no accepted, unreleased samples; ingest and QC some first (qcflow ingest), then release`);
        }
        return { releaseId, sampleCount: claimed.rowCount, published: false };
      });
    },

    /**
     * Streams the release's samples page by page into JSONL and Arrow files on local disk (hashing as it goes),
     * then uploads them and the manifest under deterministic keys. Same rows in the same order, so a retry
     * rewrites identical bytes.
     */
    async writeReleaseFiles(input: { releaseId: string }): Promise<ReleaseSummary['files']> {
      const rel = await deps.pool.query<{ project_id: string; version: string; created_at: Date; qc_summary: QcSummary }>(
        'SELECT project_id, version, created_at, qc_summary FROM releases WHERE id = $1', [input.releaseId],
      );
      const r = rel.rows[0];
      if (!r) throw badInput(`release ${input.releaseId} does not exist`);
      const dir = mkdtempSync(path.join(deps.tmpDir, 'release-'));
      try {
        const writer = new ReleaseFileWriter(path.join(dir, 'data.jsonl'), path.join(dir, 'data.arrow'));
        let after = '';
        let written = 0;
        for (;;) {
          const page = await deps.pool.query<{
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
            [input.releaseId, after, PAGE],
          );
          if (page.rows.length === 0) break;
          const rows: ReleaseRow[] = page.rows.map((p) => ({
            sampleId: p.id, externalId: p.external_id, revision: p.revision, contentHash: p.content_hash,
            payload: p.payload, media: p.media, annotations: p.annotations, qc: p.qc, acceptedAt: p.decided_at,
          }));
          await writer.writeChunk(rows);
          written += rows.length;
          after = page.rows[page.rows.length - 1]!.id;
          heartbeat({ written });
        }
        const files = await writer.finish();
        const prefix = releasePrefix(r.project_id, r.version);
        const jsonl: ReleaseFileInfo = { key: `${prefix}/data.jsonl`, sha256: files.jsonl.sha256, bytes: files.jsonl.bytes, rows: files.jsonl.rows };
        const arrow: ReleaseFileInfo = { key: `${prefix}/data.arrow`, sha256: files.arrow.sha256, bytes: files.arrow.bytes, rows: files.arrow.rows };
        await deps.store.client.fPutObject(deps.store.bucket, jsonl.key, files.jsonl.path, { 'Content-Type': 'application/x-ndjson' });
        await deps.store.client.fPutObject(deps.store.bucket, arrow.key, files.arrow.path, { 'Content-Type': 'application/vnd.apache.arrow.file' });
        const manifestText = JSON.stringify(buildManifest({
          project: r.project_id, version: r.version, releaseId: input.releaseId, createdAt: r.created_at,
          sampleCount: written, files: { jsonl, arrow }, qcSummary: r.qc_summary,
        }), null, 2);
        const manifest: ReleaseFileInfo = { key: `${prefix}/manifest.json`, sha256: sha256Hex(manifestText), bytes: Buffer.byteLength(manifestText) };
        await putObject(deps.store, manifest.key, manifestText, 'application/json');
        return { jsonl, arrow, manifest };
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },

    /** Marks the release published and its samples released; a second call finds nothing left to change. */
    async publishRelease(input: { releaseId: string; files: ReleaseSummary['files'] }): Promise<ReleaseSummary> {
      await withTransaction(deps.pool, async (c) => {
        const upd = await c.query<{ project_id: string; version: string }>(
          `UPDATE releases SET status = 'published', manifest_key = $2, checksums = $3, published_at = now(),
             sample_count = (SELECT count(*) FROM samples WHERE release_id = $1)
           WHERE id = $1 AND status = 'building' RETURNING project_id, version`,
          [input.releaseId, input.files.manifest.key, JSON.stringify(input.files)],
        );
        await c.query(`UPDATE samples SET status = 'released', updated_at = now() WHERE release_id = $1 AND status = 'accepted'`, [input.releaseId]);
        const row = upd.rows[0];
        if (row) {
          await c.query(
            `INSERT INTO audit_log (actor, action, project_id, subject, details) VALUES ('datasetRelease', 'release.publish', $1, $2, $3)`,
            [row.project_id, row.version, JSON.stringify({ releaseId: input.releaseId, manifest: input.files.manifest })],
          );
        }
      });
      return summaryOf(input.releaseId);
    },

    async getReleaseSummary(input: { releaseId: string }): Promise<ReleaseSummary> {
      return summaryOf(input.releaseId);
    },
  };
}
