import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ingestFile } from '../../src/cli/ingest';
import { datasetRelease } from '../../workflows';
import { batchProgressQuery, workflowIds } from '../../workflows/definitions';
import { MALFORMED_KINDS, malformedCorpus, mixedCorpus } from '../fixtures/malformed-lines';
import { createTestProject, harness, readRelease, validLine, type Harness } from './helpers';

let h: Harness;
before(async () => {
  h = await harness({ worker: true });
});
after(() => h.close());

/**
 * Lines an upstream system gets wrong in ways that used to fail their whole batch with a retryable
 * Postgres or stack error, forever. Each must become a rejection with its line number and reason.
 */
function poison(project: string): Array<{ line: string; rule: string }> {
  const s = (o: unknown): string => JSON.stringify(o);
  const ann = [{ annotator: 'ann-1', labels: { classes: ['cat'] } }];
  return [
    { line: s({ externalId: 'p-nul', payload: { text: 'a\u0000b', lang: 'en' }, annotations: ann }), rule: 'json.nul' },
    { line: s({ externalId: 'p-sur', payload: { text: 'a\ud800b', lang: 'en' }, annotations: ann }), rule: 'json.surrogate' },
    { line: '{"externalId":"p-raw","payload":{"text":"a\u0000b","lang":"en"}}', rule: 'json.syntax' },
    { line: s({ externalId: 'p-\u0000id', payload: { text: 'x', lang: 'en' } }), rule: 'json.nul' },
    { line: '{"externalId":"p-deep","payload":{"text":"x","lang":"en","meta":' + '['.repeat(10_000) + ']'.repeat(10_000) + '}}', rule: 'json.depth' },
    { line: s({ externalId: 'p-traverse', payload: { text: 'x', lang: 'en' }, media: [{ key: '../../etc/passwd' }] }), rule: 'media.key' },
    { line: s({ externalId: 'p-other', payload: { text: 'x', lang: 'en' }, media: [{ key: `releases/${project}-other/v1/data.jsonl` }] }), rule: 'media.key' },
  ];
}

test('poison lines become rejections with their line numbers; the rest of the batch goes through on the first attempt', async () => {
  const project = await createTestProject(h.pool);
  const bad = poison(project);
  const lines: string[] = [];
  const expected = new Map<number, string>();
  for (let i = 0; i < 200; i++) {
    lines.push(validLine(i));
    if (i % 25 === 0 && bad.length) {
      const b = bad.shift()!;
      lines.push(b.line);
      expected.set(lines.length, b.rule);
    }
  }
  // And one line of invalid UTF-8 (a lone 0xFF byte), which used to be stored with U+FFFD in its place.
  const invalidUtf8 = Buffer.concat([Buffer.from('{"externalId":"p-utf8","payload":{"text":"a'), Buffer.from([0xff]), Buffer.from('","lang":"en"}}')]);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-poison-'));
  writeFileSync(path.join(dir, 'in.jsonl'), Buffer.concat([Buffer.from(lines.join('\n') + '\n'), invalidUtf8, Buffer.from('\n')]));
  expected.set(lines.length + 1, 'utf8.invalid');
  const r = await ingestFile(h.cfg, h.client, h.store, { project, file: path.join(dir, 'in.jsonl'), batchSize: 1000, wait: true });
  assert.deepEqual(r.failedBatches, []);
  assert.equal(r.counts.staged, 200, JSON.stringify(r.counts));
  assert.equal(r.counts.malformed, 8);
  // Every line is counted once: staged ones reached a decision, refused ones are malformed, not rejected samples.
  assert.equal(r.counts.accepted + r.counts.review + r.counts.resample + r.counts.rejected, r.counts.staged);
  assert.equal(r.counts.staged + r.counts.malformed + r.counts.duplicates, r.counts.lines);
  // The batch's progress names each refused line with its field and rule.
  const progress = await h.client.workflow.getHandle(workflowIds.qcBatch(project, r.batches[0]!.batchId)).query(batchProgressQuery);
  assert.equal(progress.malformedLines?.length, 8);
  assert.match(progress.malformedLines.map((l) => `${l.lineNo}: ${l.reason}`).join('\n'), /utf8\.invalid/);
  assert.equal(r.counts.accepted, 200, JSON.stringify(r.counts));

  const rej = await h.pool.query<{ line_no: number; external_id: string | null; findings: Array<{ rule: string; message: string }> }>(
    'SELECT line_no, external_id, findings FROM ingest_rejections WHERE project_id = $1 ORDER BY line_no', [project]);
  assert.deepEqual(rej.rows.map((x) => [x.line_no, x.findings[0]!.rule]), [...expected].map(([n, rule]) => [n, rule]));
  assert.ok(rej.rows.every((x) => x.findings[0]!.message.length > 10));
  assert.ok(rej.rows.some((x) => x.external_id === 'p-\ufffdid'), 'an id with NUL is kept, made storable');

  // No retry loop: every activity of the batch ran once.
  const history = await h.client.workflow.getHandle(workflowIds.qcBatch(project, r.batches[0]!.batchId)).fetchHistory();
  const attempts = (history.events ?? []).flatMap((e) => (e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes.attempt ?? 1] : []));
  assert.ok(attempts.length >= 5);
  assert.deepEqual([...new Set(attempts)], [1]);
});

test('1,200 generated malformed lines of every kind among 3,000 good ones: each bad one refused with its rule, each good one released once, no retries', async () => {
  const project = await createTestProject(h.pool);
  const bad = malformedCorpus(1200, project);
  const corpus = mixedCorpus(3000, bad);
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'qcflow-corpus-')), 'in.jsonl');
  writeFileSync(file, corpus.bytes);
  const r = await ingestFile(h.cfg, h.client, h.store, { project, file, batchSize: 1000, wait: true });
  assert.deepEqual(r.failedBatches, []);
  const lineBad = corpus.badAt.filter((b) => b.bad.outcome === 'line');
  const sampleBad = corpus.badAt.filter((b) => b.bad.outcome === 'sample');
  assert.equal(r.counts.malformed, lineBad.length, JSON.stringify(r.counts));
  assert.equal(r.counts.accepted, 3000, JSON.stringify(r.counts));

  // Every line-level one is in ingest_rejections at its line number, with its rule and a reason.
  // line_no counts within the batch, which takes the file's lines 1000 at a time.
  const rej = await h.pool.query<{ batch_id: string; line_no: number; findings: Array<{ rule: string; message: string }> }>('SELECT batch_id, line_no, findings FROM ingest_rejections WHERE project_id = $1', [project]);
  const batchNo = new Map(r.batches.map((b, k) => [b.batchId, k]));
  const byLine = new Map(rej.rows.map((x) => [batchNo.get(x.batch_id)! * 1000 + x.line_no, x.findings[0]!]));
  const wrong = lineBad.filter((b) => { const f = byLine.get(b.lineNo); return !f || !f.rule.startsWith(b.bad.rule) || f.message.length < 10; });
  assert.deepEqual(wrong.slice(0, 5).map((b) => [b.lineNo, b.bad.kind, byLine.get(b.lineNo)]), []);
  assert.equal(rej.rows.length, lineBad.length);
  // Every sample-level one was staged and rejected by layer 1 with its rule.
  const l1 = await h.pool.query<{ external_id: string; status: string; rules: string[] }>(
    `SELECT s.external_id, s.status, ARRAY(SELECT f->>'rule' FROM jsonb_array_elements(q.findings) f) AS rules
     FROM samples s JOIN qc_results q ON q.sample_id = s.id AND q.layer = 1 WHERE s.project_id = $1 AND s.external_id LIKE 'm-%'`, [project]);
  const l1By = new Map(l1.rows.map((x) => [x.external_id, x]));
  const wrongSamples = sampleBad.filter((b) => { const x = l1By.get(b.bad.externalId!); return !x || x.status !== 'rejected' || !x.rules.some((rule) => rule.startsWith(b.bad.rule)); });
  assert.deepEqual(wrongSamples.slice(0, 5).map((b) => [b.bad.kind, l1By.get(b.bad.externalId!)]), []);
  assert.deepEqual(new Set(corpus.badAt.map((b) => b.bad.kind)), new Set(MALFORMED_KINDS), 'every kind is in the corpus');

  // No retry loop: every activity of every batch ran once.
  for (const b of r.batches) {
    const history = await h.client.workflow.getHandle(workflowIds.qcBatch(project, b.batchId)).fetchHistory();
    const attempts = (history.events ?? []).flatMap((e) => (e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes.attempt ?? 1] : []));
    assert.deepEqual([...new Set(attempts)], [1], b.batchId);
  }
  // Every good line is released exactly once, and nothing else is.
  await h.client.workflow.execute(datasetRelease, { workflowId: workflowIds.release(project, 'v1'), taskQueue: h.cfg.taskQueues.cpu, args: [{ project, version: 'v1' }] });
  const ids = (await readRelease(h.store, project, 'v1')).jsonl.trimEnd().split('\n').map((l) => (JSON.parse(l) as { externalId: string }).externalId);
  assert.equal(ids.length, 3000);
  assert.deepEqual([...new Set(ids)].sort(), [...corpus.goodIds].sort());
});
