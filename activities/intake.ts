import { createInterface } from 'node:readline';
import type { PoolClient } from 'pg';
import { withTransaction } from '../src/clients/pg';
import { getObjectStream, putObject } from '../src/clients/minio';
import { contentHash, parseLine, sampleId, type IngestSample, type ParsedLine } from '../src/ingest/envelope';
import { BATCH_ID, extensionFor, inlineMediaKey, mediaKeyProblem, stagingKey } from '../src/ingest/keys';
import { decodeUtf8Line, safeText } from '../src/ingest/storable';
import type { Finding } from '../src/qc/findings';
import type { BatchCounts, BatchRef, QcBatchInput } from '../workflows/definitions';
import { type ActivityDeps, type BatchKey, badInput, heartbeat, lastHeartbeat, requireProject } from './deps';

const CHUNK = 500;

type ParsedRow =
  | { kind: 'sample'; lineNo: number; sample: IngestSample }
  | { kind: 'rejected'; lineNo: number; externalId: string | undefined; excerpt: string; findings: Finding[] };

export type StageResult = Pick<BatchCounts, 'lines' | 'staged' | 'duplicates' | 'malformed'>;

export function intakeActivities(deps: ActivityDeps) {
  /** Moves inline base64 media into MinIO under deterministic keys and returns the sample with key refs. */
  async function externalizeMedia(project: string, sample: IngestSample, id: string): Promise<IngestSample> {
    if (!sample.media?.some((m) => 'base64' in m)) return sample;
    const media = await Promise.all(
      sample.media.map(async (m, i) => {
        if (!('base64' in m)) return m;
        const key = inlineMediaKey(project, id, i, extensionFor(m.contentType));
        await putObject(deps.store, key, Buffer.from(m.base64, 'base64'), m.contentType);
        return { key };
      }),
    );
    return { ...sample, media };
  }

  /** Inserts one sample (a new revision when its externalId has others) and returns it when it is new. */
  async function insertSample(c: PoolClient, project: string, batchId: string, lineNo: number, s: IngestSample): Promise<{ id: string; sample: IngestSample } | undefined> {
    // The id hashes the inline content so re-sending the same bytes maps to the same row before media is moved.
    const hash = contentHash(s);
    const id = sampleId(project, s.externalId, hash);
    const stored = await externalizeMedia(project, s, id);
    const inserted = await c.query<{ revision: number }>(
      `INSERT INTO samples (id, project_id, external_id, revision, content_hash, payload, media, batch_id, line_no)
       SELECT $1, $2, $3, COALESCE(max(revision), 0) + 1, $4, $5, $6, $7, $8 FROM samples WHERE project_id = $2 AND external_id = $3
       ON CONFLICT (project_id, external_id, content_hash) DO NOTHING RETURNING revision`,
      [id, project, s.externalId, hash, JSON.stringify(s.payload), JSON.stringify(stored.media ?? []), batchId, lineNo],
    );
    if (inserted.rowCount === 0) return undefined;
    // A first revision has no earlier one to retire.
    if (inserted.rows[0]!.revision > 1) {
      await c.query('UPDATE samples SET is_latest = false WHERE project_id = $1 AND external_id = $2 AND id <> $3 AND is_latest', [project, s.externalId, id]);
    }
    return { id, sample: s };
  }

  /** Every new sample's annotations of a chunk in one statement (a round trip per annotation dominated staging). */
  async function insertAnnotations(c: PoolClient, fresh: Array<{ id: string; sample: IngestSample }>): Promise<void> {
    const rows = fresh.flatMap(({ id, sample }) => (sample.annotations ?? []).map((a, i) => ({ id, i, a })));
    if (rows.length === 0) return;
    await c.query(
      `INSERT INTO annotations (sample_id, ordinal, annotator, labels, submitted_at, duration_ms)
       SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::jsonb[], $5::timestamptz[], $6::int[])
       ON CONFLICT (sample_id, ordinal) DO NOTHING`,
      [rows.map((r) => r.id), rows.map((r) => r.i), rows.map((r) => r.a.annotator), rows.map((r) => JSON.stringify(r.a.labels)),
        rows.map((r) => r.a.submittedAt ?? null), rows.map((r) => r.a.durationMs ?? null)],
    );
  }

  async function writeChunk(project: string, batchId: string, rows: ParsedRow[]): Promise<void> {
    await withTransaction(deps.pool, async (c) => {
      const fresh: Array<{ id: string; sample: IngestSample }> = [];
      for (const r of rows) {
        if (r.kind === 'sample') {
          const added = await insertSample(c, project, batchId, r.lineNo, r.sample);
          if (added) fresh.push(added);
        } else {
          await c.query(
            `INSERT INTO ingest_rejections (project_id, batch_id, line_no, external_id, excerpt, findings) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (project_id, batch_id, line_no) DO NOTHING`,
            [project, batchId, r.lineNo, r.externalId ?? null, r.excerpt, JSON.stringify(r.findings)],
          );
        }
      }
      await insertAnnotations(c, fresh);
    });
  }

  return {
    /** Writes a small inline submission to a staged JSONL so it flows through the same path as files. */
    async stageInlineSamples(args: BatchKey & { samples: IngestSample[] }): Promise<BatchRef> {
      const key = stagingKey(args.project, args.batchId);
      await putObject(deps.store, key, args.samples.map((s) => JSON.stringify(s)).join('\n') + '\n', 'application/x-ndjson');
      return { batchId: args.batchId, stagingKey: key };
    },

    /**
     * Parses a staged JSONL line by line, records unparseable/invalid lines with their line numbers, and upserts
     * valid samples. Resumes after the last committed chunk on retry; inserts are keyed so replays change nothing.
     */
    async stageBatch(input: QcBatchInput): Promise<StageResult> {
      if (!BATCH_ID.test(input.batchId)) throw badInput(`batchId ${JSON.stringify(input.batchId)} must match ${BATCH_ID}`);
      await requireProject(deps, input.project);
      await deps.pool.query(
        `INSERT INTO batches (project_id, id, staging_key) VALUES ($1, $2, $3) ON CONFLICT (project_id, id) DO NOTHING`,
        [input.project, input.batchId, input.stagingKey],
      );
      const resumeAfter = lastHeartbeat<{ committedLine: number }>()?.committedLine ?? 0;
      const stream = await getObjectStream(deps.store, input.stagingKey);
      // Bytes, not text: each line is decoded strictly (decodeUtf8Line), so invalid UTF-8 is refused, not replaced.
      stream.setEncoding('latin1');
      const lines = createInterface({ input: stream, crlfDelay: Infinity });
      let lineNo = 0;
      let nonEmpty = 0;
      let pending: ParsedRow[] = [];
      for await (const bytes of lines) {
        lineNo++;
        const decoded = decodeUtf8Line(bytes);
        const line = decoded.text.trim();
        if (line === '') continue;
        nonEmpty++;
        if (lineNo <= resumeAfter) continue;
        const parsed: ParsedLine = decoded.finding ? { ok: false, externalId: undefined, findings: [decoded.finding] } : parseLine(line);
        const keyFindings: Finding[] = parsed.ok
          ? (parsed.sample.media ?? []).flatMap((m, i) => {
            if (!('key' in m)) return [];
            const why = mediaKeyProblem(input.project, m.key);
            return why ? [{ layer: 1 as const, pointer: `/media/${i}/key`, rule: 'media.key', message: `${JSON.stringify(m.key)} ${why}` }] : [];
          })
          : [];
        pending.push(parsed.ok && keyFindings.length === 0
          ? { kind: 'sample', lineNo, sample: parsed.sample }
          : { kind: 'rejected', lineNo, externalId: parsed.ok ? parsed.sample.externalId : parsed.externalId, excerpt: safeText(line.slice(0, 500)), findings: parsed.ok ? keyFindings : parsed.findings });
        if (pending.length >= CHUNK) {
          await writeChunk(input.project, input.batchId, pending);
          pending = [];
          heartbeat({ committedLine: lineNo });
        }
      }
      await writeChunk(input.project, input.batchId, pending);
      heartbeat({ committedLine: lineNo });
      const { rows } = await deps.pool.query<{ staged: string; malformed: string }>(
        `SELECT (SELECT count(*) FROM samples WHERE project_id = $1 AND batch_id = $2) AS staged,
                (SELECT count(*) FROM ingest_rejections WHERE project_id = $1 AND batch_id = $2) AS malformed`,
        [input.project, input.batchId],
      );
      const staged = Number(rows[0]!.staged);
      const malformed = Number(rows[0]!.malformed);
      await deps.pool.query(`UPDATE batches SET status = 'qc', lines_total = $3 WHERE project_id = $1 AND id = $2`, [input.project, input.batchId, nonEmpty]);
      deps.log.info({ project: input.project, batchId: input.batchId, lines: nonEmpty, staged, malformed }, 'batch staged');
      return { lines: nonEmpty, staged, malformed, duplicates: nonEmpty - staged - malformed };
    },
  };
}
