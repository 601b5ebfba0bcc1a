import { mkdtempSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { withTransaction } from '../src/clients/pg';
import { putObject } from '../src/clients/minio';
import { releasePrefix } from '../src/ingest/keys';
import { claimRelease, existingSnapshot, projectQcSummary, publishRelease, releaseHeader, releaseRowsPage, releaseSummary, type Snapshot } from '../src/store/releases';
import { buildManifest } from '../src/release/manifest';
import { ReleaseFileWriter } from '../src/release/writers';
import { sha256Hex } from '../src/util/canonical-json';
import type { DatasetReleaseInput, ReleaseFileInfo, ReleaseSummary } from '../workflows/definitions';
import { type ActivityDeps, badInput, heartbeat, requireProject } from './deps';

const PAGE = 1000;

export function releaseActivities(deps: ActivityDeps) {
  return {
    /**
     * Creates the release row and claims every accepted, unreleased latest sample for it in one transaction.
     * A retry finds the row and its claimed samples and returns the same snapshot.
     */
    async snapshotRelease(input: DatasetReleaseInput): Promise<Snapshot> {
      await requireProject(deps, input.project);
      return withTransaction(deps.pool, async (c) => {
        const existing = await existingSnapshot(c, input.project, input.version);
        if (existing) return existing;
        const snapshot = await claimRelease(c, input.project, input.version, await projectQcSummary(c, input.project));
        if (snapshot.sampleCount === 0) {
          // Thrown inside the transaction, so the empty release row goes with it.
          throw badInput(`project ${input.project} has no accepted, unreleased samples; ingest and QC some first (qcflow ingest), then release`);
        }
        return snapshot;
      });
    },

    /**
     * Streams the release's samples page by page into JSONL and Arrow files on local disk (hashing as it goes),
     * then uploads them and the manifest under deterministic keys. Same rows in the same order, so a retry
     * rewrites identical bytes.
     */
    async writeReleaseFiles(input: { releaseId: string }): Promise<ReleaseSummary['files']> {
      const r = await releaseHeader(deps.pool, input.releaseId);
      if (!r) throw badInput(`release ${input.releaseId} does not exist`);
      const dir = mkdtempSync(path.join(deps.tmpDir, 'release-'));
      try {
        const writer = new ReleaseFileWriter(path.join(dir, 'data.jsonl'), path.join(dir, 'data.arrow'));
        let after = '';
        let written = 0;
        for (;;) {
          const rows = await releaseRowsPage(deps.pool, input.releaseId, after, PAGE);
          if (rows.length === 0) break;
          await writer.writeChunk(rows);
          written += rows.length;
          after = rows[rows.length - 1]!.sampleId;
          heartbeat({ written });
        }
        const files = await writer.finish();
        const prefix = releasePrefix(r.project, r.version);
        const jsonl: ReleaseFileInfo = { key: `${prefix}/data.jsonl`, sha256: files.jsonl.sha256, bytes: files.jsonl.bytes, rows: files.jsonl.rows };
        const arrow: ReleaseFileInfo = { key: `${prefix}/data.arrow`, sha256: files.arrow.sha256, bytes: files.arrow.bytes, rows: files.arrow.rows };
        await deps.store.client.fPutObject(deps.store.bucket, jsonl.key, files.jsonl.path, { 'Content-Type': 'application/x-ndjson' });
        await deps.store.client.fPutObject(deps.store.bucket, arrow.key, files.arrow.path, { 'Content-Type': 'application/vnd.apache.arrow.file' });
        const manifestText = JSON.stringify(buildManifest({
          project: r.project, version: r.version, releaseId: input.releaseId, createdAt: r.createdAt,
          sampleCount: written, files: { jsonl, arrow }, qcSummary: r.qcSummary,
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
      await withTransaction(deps.pool, (c) => publishRelease(c, input.releaseId, input.files));
      return releaseSummary(deps.pool, input.releaseId);
    },

    async getReleaseSummary(input: { releaseId: string }): Promise<ReleaseSummary> {
      return releaseSummary(deps.pool, input.releaseId);
    },
  };
}
