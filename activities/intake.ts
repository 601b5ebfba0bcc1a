import { createInterface } from 'node:readline';
import { withTransaction } from '../src/clients/pg';
import { getObjectStream, putObject } from '../src/clients/minio';
import { contentHash, parseLine, sampleId, type Annotation, type IngestSample, type ParsedLine } from '../src/ingest/envelope';
import { insertAnnotations, insertRejection, insertSampleRevision } from '../src/store/samples';
import { BATCH_ID, extensionFor, inlineMediaKey, mediaKeyProblem, stagingKey } from '../src/ingest/keys';
import { decodeUtf8Line, safeText } from '../src/ingest/storable';
import type { Finding } from '../src/qc/findings';
import type { BatchCounts, BatchRef, QcBatchInput } from '../workflows/definitions';
import { type ActivityDeps, type BatchKey, badInput, heartbeat, lastHeartbeat, policyOf, requireProject } from './deps';
import { insertBatch, malformedLines, markBatchStaged, stagedCounts, type MalformedLine } from '../src/store/batches';

const CHUNK = 500;

type ParsedRow =
  | { kind: 'sample'; lineNo: number; sample: IngestSample }
  | { kind: 'rejected'; lineNo: number; externalId: string | undefined; excerpt: string; findings: Finding[] };

/** The batch's line counts, and its first refused lines with why (all of them: `qcflow status`, the API). */
export type StageResult = Pick<BatchCounts, 'lines' | 'staged' | 'duplicates' | 'malformed'> & { malformedLines: MalformedLine[] };

/** Refused lines a batch's progress shows; a batch can have thousands, and workflow payloads stay small. */
const MALFORMED_IN_PROGRESS = 20;

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

  async function writeChunk(project: string, batchId: string, rows: ParsedRow[]): Promise<void> {
    await withTransaction(deps.pool, async (c) => {
      const annotations: Array<{ sampleId: string; ordinal: number; annotation: Annotation }> = [];
      for (const r of rows) {
        if (r.kind === 'rejected') {
          await insertRejection(c, { project, batchId, lineNo: r.lineNo, externalId: r.externalId, excerpt: r.excerpt, findings: r.findings });
          continue;
        }
        // The id hashes the inline content so re-sending the same bytes maps to the same row before media is moved.
        const hash = contentHash(r.sample);
        const id = sampleId(project, r.sample.externalId, hash);
        const stored = await externalizeMedia(project, r.sample, id);
        const isNew = await insertSampleRevision(c, { id, project, externalId: r.sample.externalId, contentHash: hash, payload: r.sample.payload, media: stored.media ?? [], batchId, lineNo: r.lineNo });
        if (isNew) (r.sample.annotations ?? []).forEach((annotation, ordinal) => annotations.push({ sampleId: id, ordinal, annotation }));
      }
      await insertAnnotations(c, annotations);
    });
  }

  return {
    /** The intake's project exists; refused (not retried) with the command that creates it. */
    async requireIntakeProject(input: { project: string }): Promise<void> {
      await requireProject(deps, input.project);
    },

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
      const project = await requireProject(deps, input.project);
      // The batch is judged by the policy as it is now, whatever edits come while it runs.
      await insertBatch(deps.pool, { project: input.project, batchId: input.batchId, stagingKey: input.stagingKey, policy: policyOf(project) });
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
      const { staged, malformed } = await stagedCounts(deps.pool, input.project, input.batchId);
      await markBatchStaged(deps.pool, input.project, input.batchId, nonEmpty);
      deps.log.info({ project: input.project, batchId: input.batchId, lines: nonEmpty, staged, malformed }, 'batch staged');
      const refused = await malformedLines(deps.pool, input.project, { batchId: input.batchId, limit: MALFORMED_IN_PROGRESS });
      return { lines: nonEmpty, staged, malformed, duplicates: nonEmpty - staged - malformed, malformedLines: refused.lines };
    },
  };
}
