import { withTransaction } from '../src/clients/pg';
import { objectExists } from '../src/clients/minio';
import { checkCompliance, compiledFor, ProjectSpecError } from '../src/qc/compliance';
import { decideDisposition } from '../src/qc/disposition';
import type { IngestSample, MediaRef, Annotation } from '../src/ingest/envelope';
import type { BatchCounts } from '../workflows/definitions';
import { type ActivityDeps, badInput, heartbeat, requireProject } from './deps';

const PAGE = 500;

interface BatchKey {
  project: string;
  batchId: string;
}

export function qcActivities(deps: ActivityDeps) {
  async function missingMediaKeys(media: MediaRef[]): Promise<string[]> {
    const keys = media.flatMap((m) => ('key' in m ? [m.key] : []));
    const exists = await Promise.all(keys.map((k) => objectExists(deps.store, k)));
    return keys.filter((_, i) => !exists[i]);
  }

  return {
    /** Layer 1 on every not-yet-checked sample of the batch, a page per transaction; re-runs skip checked ones. */
    async runCompliance(input: BatchKey): Promise<{ passed: number; failed: number }> {
      const project = await requireProject(deps, input.project);
      let compiled;
      try {
        compiled = compiledFor({ jsonSchema: project.jsonSchema, regexRules: project.regexRules });
      } catch (err) {
        if (err instanceof ProjectSpecError) throw badInput(`project ${input.project}: ${err.message}`);
        throw err;
      }
      let done = 0;
      for (;;) {
        const { rows } = await deps.pool.query<{ id: string; external_id: string; payload: Record<string, unknown>; media: MediaRef[]; annotations: Annotation[] }>(
          `SELECT s.id, s.external_id, s.payload, s.media,
                  COALESCE((SELECT jsonb_agg(jsonb_build_object('annotator', a.annotator, 'labels', a.labels) ORDER BY a.ordinal)
                            FROM annotations a WHERE a.sample_id = s.id), '[]'::jsonb) AS annotations
           FROM samples s WHERE s.project_id = $1 AND s.batch_id = $2 AND s.status = 'received' ORDER BY s.id LIMIT $3`,
          [input.project, input.batchId, PAGE],
        );
        if (rows.length === 0) break;
        const results = await Promise.all(rows.map(async (r) => {
          const sample: IngestSample = { externalId: r.external_id, payload: r.payload, media: r.media, annotations: r.annotations };
          return { id: r.id, ...checkCompliance(sample, compiled, await missingMediaKeys(r.media)) };
        }));
        await withTransaction(deps.pool, async (c) => {
          for (const r of results) {
            await c.query(
              `INSERT INTO qc_results (sample_id, layer, passed, score, findings) VALUES ($1, 1, $2, $3, $4)
               ON CONFLICT (sample_id, layer) DO UPDATE SET passed = EXCLUDED.passed, score = EXCLUDED.score, findings = EXCLUDED.findings`,
              [r.id, r.passed, r.passed ? 1 : 0, JSON.stringify(r.findings)],
            );
            await c.query(`UPDATE samples SET status = 'qc', updated_at = now() WHERE id = $1 AND status = 'received'`, [r.id]);
          }
        });
        done += rows.length;
        heartbeat({ checked: done });
      }
      const { rows } = await deps.pool.query<{ passed: string; failed: string }>(
        `SELECT count(*) FILTER (WHERE q.passed) AS passed, count(*) FILTER (WHERE NOT q.passed) AS failed
         FROM samples s JOIN qc_results q ON q.sample_id = s.id AND q.layer = 1 WHERE s.project_id = $1 AND s.batch_id = $2`,
        [input.project, input.batchId],
      );
      return { passed: Number(rows[0]!.passed), failed: Number(rows[0]!.failed) };
    },

    /** Routes every checked sample of the batch to its disposition and returns the batch's counts per status. */
    async applyDispositions(input: BatchKey): Promise<Pick<BatchCounts, 'accepted' | 'rejected' | 'review' | 'resample'>> {
      for (;;) {
        const { rows } = await deps.pool.query<{ id: string; l1: boolean }>(
          `SELECT s.id, q.passed AS l1 FROM samples s JOIN qc_results q ON q.sample_id = s.id AND q.layer = 1
           WHERE s.project_id = $1 AND s.batch_id = $2 AND s.status = 'qc' ORDER BY s.id LIMIT $3`,
          [input.project, input.batchId, PAGE],
        );
        if (rows.length === 0) break;
        await withTransaction(deps.pool, async (c) => {
          for (const r of rows) {
            const disposition = decideDisposition({ layer1Passed: r.l1 });
            await c.query(`UPDATE samples SET status = $2, decided_at = now(), updated_at = now() WHERE id = $1 AND status = 'qc'`, [r.id, disposition]);
          }
        });
        heartbeat();
      }
      const { rows } = await deps.pool.query<{ status: string; n: string }>(
        `SELECT status, count(*) AS n FROM samples WHERE project_id = $1 AND batch_id = $2 GROUP BY status`,
        [input.project, input.batchId],
      );
      const by = Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
      // Samples released meanwhile were accepted by this batch.
      return { accepted: (by.accepted ?? 0) + (by.released ?? 0), rejected: by.rejected ?? 0, review: by.review ?? 0, resample: by.resample ?? 0 };
    },

    async finishBatch(input: BatchKey & { counts: BatchCounts }): Promise<void> {
      await deps.pool.query(
        `UPDATE batches SET status = 'done', counts = $3, finished_at = COALESCE(finished_at, now()) WHERE project_id = $1 AND id = $2`,
        [input.project, input.batchId, JSON.stringify(input.counts)],
      );
    },
  };
}
