import { createHash } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import {
  Field, Int32, makeData, RecordBatch, RecordBatchFileWriter, Schema, Struct, TimestampMillisecond, Utf8, vectorFromArray,
  type DataType,
} from 'apache-arrow';

/** One released sample as it leaves qcflow. Nested, project-specific parts travel as JSON text. */
export interface ReleaseRow {
  sampleId: string;
  externalId: string;
  revision: number;
  contentHash: string;
  payload: unknown;
  media: unknown;
  annotations: unknown;
  qc: unknown;
  acceptedAt: Date;
}

/** Arrow schema of `data.arrow`; JSON columns keep a stable schema across projects whose payloads differ. */
export const RELEASE_COLUMNS: Array<{ name: string; type: DataType; nullable: boolean; pick: (r: ReleaseRow) => unknown; doc: string }> = [
  { name: 'sample_id', type: new Utf8(), nullable: false, pick: (r) => r.sampleId, doc: 'qcflow sample id (stable across releases)' },
  { name: 'external_id', type: new Utf8(), nullable: false, pick: (r) => r.externalId, doc: 'upstream id' },
  { name: 'revision', type: new Int32(), nullable: false, pick: (r) => r.revision, doc: '1 for the first content seen under external_id' },
  { name: 'content_hash', type: new Utf8(), nullable: false, pick: (r) => r.contentHash, doc: 'sha256 of canonical {payload, media, annotations}' },
  { name: 'payload_json', type: new Utf8(), nullable: false, pick: (r) => JSON.stringify(r.payload), doc: 'payload as JSON text' },
  { name: 'media_json', type: new Utf8(), nullable: false, pick: (r) => JSON.stringify(r.media), doc: 'media object keys as JSON text' },
  { name: 'annotations_json', type: new Utf8(), nullable: false, pick: (r) => JSON.stringify(r.annotations), doc: 'annotations as JSON text' },
  { name: 'qc_json', type: new Utf8(), nullable: false, pick: (r) => JSON.stringify(r.qc), doc: 'per-layer QC results as JSON text' },
  { name: 'accepted_at', type: new TimestampMillisecond(), nullable: false, pick: (r) => r.acceptedAt, doc: 'when QC accepted the sample (UTC)' },
];

export function releaseArrowSchema(): Schema {
  return new Schema(RELEASE_COLUMNS.map((c) => new Field(c.name, c.type, c.nullable)));
}

/** The JSONL form: one object per line, keys in a fixed order so identical releases are byte-identical. */
export function jsonlLine(r: ReleaseRow): string {
  return `${JSON.stringify({
    sampleId: r.sampleId,
    externalId: r.externalId,
    revision: r.revision,
    contentHash: r.contentHash,
    payload: r.payload,
    media: r.media,
    annotations: r.annotations,
    qc: r.qc,
    acceptedAt: r.acceptedAt.toISOString(),
  })}\n`;
}

export interface WrittenFile {
  path: string;
  bytes: number;
  sha256: string;
  rows: number;
}

/** A file being written on local disk with its sha256 computed on the way, honouring back-pressure. */
class HashedFile {
  private readonly hash = createHash('sha256');
  private readonly out: WriteStream;
  bytes = 0;
  constructor(readonly path: string) {
    this.out = createWriteStream(path);
  }
  async write(chunk: Uint8Array | string): Promise<void> {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    this.hash.update(buf);
    this.bytes += buf.byteLength;
    if (!this.out.write(buf)) await once(this.out, 'drain');
  }
  async close(): Promise<{ bytes: number; sha256: string }> {
    this.out.end();
    await once(this.out, 'finish');
    return { bytes: this.bytes, sha256: this.hash.digest('hex') };
  }
}

const ARROW_QUEUE_BYTES = 4 * 2 ** 20;

/**
 * Writes a release's rows to JSONL and Arrow IPC (file format) side by side, one chunk at a time,
 * so memory holds one chunk, never the whole release.
 */
export class ReleaseFileWriter {
  private readonly jsonl: HashedFile;
  private readonly arrow: HashedFile;
  private readonly arrowWriter = new RecordBatchFileWriter();
  private rows = 0;
  private readonly pump: Promise<void>;
  /** Arrow bytes the pump has written to the file, and who waits for it to catch up. */
  private drained = 0;
  private waiting: (() => void) | undefined;
  private pumpDone = false;

  constructor(jsonlPath: string, arrowPath: string) {
    this.jsonl = new HashedFile(jsonlPath);
    const arrow = new HashedFile(arrowPath);
    const arrowWriter = this.arrowWriter;
    this.arrow = arrow;
    this.pump = (async () => {
      for await (const chunk of arrowWriter) {
        await arrow.write(chunk);
        this.drained += chunk.byteLength;
        this.waiting?.();
      }
    })().finally(() => { this.pumpDone = true; });
  }

  async writeChunk(rows: ReleaseRow[]): Promise<void> {
    if (rows.length === 0) return;
    await this.jsonl.write(rows.map(jsonlLine).join(''));
    this.arrowWriter.write(rowsToBatch(rows));
    this.rows += rows.length;
    await this.arrowCaughtUp();
  }

  /**
   * The Arrow writer queues its bytes without back-pressure; a release read faster than the disk takes it
   * queued the difference (52 MiB at 200k rows). Each chunk now waits until at most ARROW_QUEUE_BYTES are
   * still queued. The writer's byte position is internal to apache-arrow (the offset its file footer
   * records); without it, chunks do not wait, as before.
   */
  private async arrowCaughtUp(): Promise<void> {
    const produced = (this.arrowWriter as unknown as { _position?: number })._position;
    if (typeof produced !== 'number') return;
    while (produced - this.drained > ARROW_QUEUE_BYTES && !this.pumpDone) {
      // A pump that failed (a full disk) ends the wait with its error rather than leaving it hanging.
      await Promise.race([new Promise<void>((resolve) => { this.waiting = resolve; }), this.pump]);
      this.waiting = undefined;
    }
  }

  async finish(): Promise<{ jsonl: WrittenFile; arrow: WrittenFile }> {
    if (this.rows === 0) this.arrowWriter.reset(undefined, releaseArrowSchema());
    this.arrowWriter.finish();
    await this.pump;
    const j = await this.jsonl.close();
    const a = await this.arrow.close();
    return {
      jsonl: { path: this.jsonl.path, rows: this.rows, ...j },
      arrow: { path: this.arrow.path, rows: this.rows, ...a },
    };
  }
}

export function rowsToBatch(rows: ReleaseRow[]): RecordBatch {
  const schema = releaseArrowSchema();
  const children = RELEASE_COLUMNS.map((c) => vectorFromArray(rows.map(c.pick), c.type).data[0]!);
  // Built from the declared schema (not inferred) so every chunk's batch has identical, non-null fields.
  const data = makeData({ type: new Struct(schema.fields), length: rows.length, nullCount: 0, children });
  return new RecordBatch(schema, data);
}
