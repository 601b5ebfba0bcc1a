import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import { ReleaseFileWriter, RELEASE_COLUMNS, type ReleaseRow } from '../../src/release/writers';
import { buildManifest } from '../../src/release/manifest';

const rows = (n: number, offset = 0): ReleaseRow[] => Array.from({ length: n }, (_, i) => ({
  sampleId: `id-${i + offset}`, externalId: `ext-${i + offset}`, revision: 1 + ((i + offset) % 3), contentHash: `h${i + offset}`,
  payload: { text: `ünïcode ${i + offset}`, n: i + offset }, media: [{ key: `raw/p/${i + offset}/0.png` }],
  annotations: [{ annotator: 'ann-1', labels: { classes: ['cat'] } }], qc: { layer1: { passed: true, score: 1 } },
  acceptedAt: new Date(Date.UTC(2026, 10, 21, 0, 0, i + offset)),
}));

function withDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-writers-'));
    try { await fn(dir); } finally { rmSync(dir, { recursive: true, force: true }); }
  };
}

test('JSONL and Arrow round-trip over several chunks, with checksums of the exact bytes', withDir(async (dir) => {
  const w = new ReleaseFileWriter(path.join(dir, 'd.jsonl'), path.join(dir, 'd.arrow'));
  const all = [...rows(700), ...rows(700, 700), ...rows(5, 1400)];
  await w.writeChunk(all.slice(0, 700));
  await w.writeChunk(all.slice(700, 1400));
  await w.writeChunk(all.slice(1400));
  const out = await w.finish();
  assert.equal(out.jsonl.rows, 1405);
  assert.equal(out.arrow.rows, 1405);

  const jsonlBytes = readFileSync(out.jsonl.path);
  assert.equal(out.jsonl.sha256, createHash('sha256').update(jsonlBytes).digest('hex'));
  assert.equal(out.jsonl.bytes, jsonlBytes.byteLength);
  const lines = jsonlBytes.toString('utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, 1405);
  assert.deepEqual(lines[1403], { ...JSON.parse(JSON.stringify(all[1403])), acceptedAt: all[1403]!.acceptedAt.toISOString() });

  const arrowBytes = readFileSync(out.arrow.path);
  assert.equal(out.arrow.sha256, createHash('sha256').update(arrowBytes).digest('hex'));
  const table = tableFromIPC(arrowBytes);
  assert.equal(table.batches.length, 3, 'one record batch per chunk: the writer never held the whole release');
  assert.equal(table.numRows, 1405);
  assert.deepEqual(table.schema.fields.map((f) => f.name), RELEASE_COLUMNS.map((c) => c.name));
  assert.ok(table.schema.fields.every((f) => !f.nullable));
  const row = table.get(1403)!.toJSON() as Record<string, unknown>;
  assert.equal(row.sample_id, 'id-1403');
  assert.equal(row.revision, all[1403]!.revision);
  assert.deepEqual(JSON.parse(row.payload_json as string), all[1403]!.payload);
  assert.equal(row.accepted_at, all[1403]!.acceptedAt.getTime());
}));

test('identical input gives byte-identical files (a retried release rewrites the same bytes)', withDir(async (dir) => {
  const write = async (name: string) => {
    const w = new ReleaseFileWriter(path.join(dir, `${name}.jsonl`), path.join(dir, `${name}.arrow`));
    await w.writeChunk(rows(50));
    return w.finish();
  };
  const a = await write('a');
  const b = await write('b');
  assert.equal(a.jsonl.sha256, b.jsonl.sha256);
  assert.equal(a.arrow.sha256, b.arrow.sha256);
}));

test('an empty release still has a readable Arrow file with the schema', withDir(async (dir) => {
  const w = new ReleaseFileWriter(path.join(dir, 'e.jsonl'), path.join(dir, 'e.arrow'));
  const out = await w.finish();
  assert.equal(out.jsonl.bytes, 0);
  const t = tableFromIPC(readFileSync(out.arrow.path));
  assert.equal(t.numRows, 0);
  assert.equal(t.schema.fields.length, RELEASE_COLUMNS.length);
}));

test('manifest lists files, the Arrow schema and the QC summary', () => {
  const m = buildManifest({
    project: 'p', version: 'v1', releaseId: '7', createdAt: new Date(0), sampleCount: 2,
    files: { jsonl: { key: 'releases/p/v1/data.jsonl', sha256: 'a', bytes: 1, rows: 2 }, arrow: { key: 'releases/p/v1/data.arrow', sha256: 'b', bytes: 2, rows: 2 } },
    qcSummary: { statusCounts: { accepted: 2 }, rejectedLines: 1, layer1TopRules: [] },
  });
  assert.equal(m.format, 'qcflow.release/v1');
  assert.equal(m.createdAt, '1970-01-01T00:00:00.000Z');
  assert.deepEqual(m.arrowSchema.map((f) => f.name), RELEASE_COLUMNS.map((c) => c.name));
  assert.equal(m.arrowSchema.find((f) => f.name === 'accepted_at')!.type, 'Timestamp<MILLISECOND>');
});
