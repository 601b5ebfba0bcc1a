import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import { WorkflowFailedError } from '@temporalio/client';
import { failureMessage } from '../../src/util/errors';
import { ingestFile } from '../../src/cli/ingest';
import { migrate } from '../../src/store/migrations';
import { datasetRelease, projectIntake, qcBatch } from '../../workflows';
import { intakeStatsQuery, submitBatchSignal, submitSamplesSignal, workflowIds } from '../../workflows/definitions';
import { createTestProject, harness, readRelease, uid, validLine, waitUntil, type Harness } from './helpers';

let h: Harness;
before(async () => {
  h = await harness({ worker: true });
});
after(() => h.close());

const tmpFile = (lines: string[]): string => {
  const f = path.join(mkdtempSync(path.join(os.tmpdir(), 'qcflow-it-')), 'in.jsonl');
  writeFileSync(f, lines.join('\n') + '\n');
  return f;
};

const count = async (sql: string, params: unknown[]): Promise<number> => Number((await h.pool.query<{ n: string }>(sql, params)).rows[0]!.n);

test('ingest → layer 1 → release end to end; invalid lines are recorded and do not stop the batch', async () => {
  const project = await createTestProject(h.pool);
  const lines: string[] = [];
  for (let i = 0; i < 120; i++) lines.push(validLine(i));
  lines.splice(10, 0, '{"externalId": "broken", ');                                            // line 11: malformed JSON
  lines.splice(20, 0, JSON.stringify({ payload: { text: 'no id', lang: 'en' } }));               // line 21: no externalId
  lines.push(validLine(500, { lang: 'fr' }));                                                      // enum
  lines.push(validLine(501, { contact: 'nope' }));                                                 // email format
  lines.push(validLine(502, { text: 'ssn 078-05-1120' }));                                         // regex rule
  lines.push(JSON.stringify({ externalId: 's-503', payload: { lang: 'en' } }));                    // required
  const file = tmpFile(lines);

  const r = await ingestFile(h.cfg, h.client, h.store, { project, file, batchSize: 50, wait: true });
  assert.equal(r.failedBatches.length, 0);
  assert.equal(r.batches.length, 3);
  assert.deepEqual(r.counts, { lines: 126, staged: 124, duplicates: 0, malformed: 2, accepted: 120, rejected: 4, review: 0, resample: 0 });

  const rejections = await h.pool.query<{ line_no: number; findings: Array<{ rule: string; pointer: string }> }>(
    'SELECT line_no, findings FROM ingest_rejections WHERE project_id = $1 ORDER BY batch_id, line_no', [project],
  );
  assert.deepEqual(rejections.rows.map((x) => [x.line_no, x.findings[0]!.rule, x.findings[0]!.pointer]), [[11, 'json.syntax', ''], [21, 'schema.required', '/externalId']]);

  const findings = await h.pool.query<{ external_id: string; status: string; findings: Array<{ rule: string; pointer: string }> }>(
    `SELECT s.external_id, s.status, q.findings FROM samples s JOIN qc_results q ON q.sample_id = s.id AND q.layer = 1
     WHERE s.project_id = $1 AND NOT q.passed ORDER BY s.external_id`, [project],
  );
  assert.deepEqual(findings.rows.map((x) => [x.external_id, x.status, x.findings.map((f) => `${f.pointer} ${f.rule}`).join(',')]), [
    ['s-500', 'rejected', '/payload/lang schema.enum'],
    ['s-501', 'rejected', '/payload/contact schema.format.email'],
    ['s-502', 'rejected', '/payload/text regex.no-ssn'],
    ['s-503', 'rejected', '/payload/text schema.required'],
  ]);

  const summary = await h.client.workflow.execute(datasetRelease, {
    workflowId: workflowIds.release(project, 'v1'), taskQueue: h.cfg.taskQueues.cpu, args: [{ project, version: 'v1' }],
  });
  assert.equal(summary.sampleCount, 120);
  const rel = await readRelease(h.store, project, 'v1');
  const files = rel.manifest.files as Record<string, { sha256: string; rows: number }>;
  assert.equal(createHash('sha256').update(rel.jsonl).digest('hex'), files.jsonl!.sha256);
  assert.equal(createHash('sha256').update(rel.arrow).digest('hex'), files.arrow!.sha256);
  assert.equal(summary.files.manifest.sha256, createHash('sha256').update(JSON.stringify(rel.manifest, null, 2)).digest('hex'));
  const ids = rel.jsonl.trimEnd().split('\n').map((l) => (JSON.parse(l) as { externalId: string }).externalId);
  assert.equal(ids.length, 120);
  assert.equal(new Set(ids).size, 120);
  assert.equal(tableFromIPC(rel.arrow).numRows, 120);
  assert.deepEqual((rel.manifest.qcSummary as { rejectedLines: number }).rejectedLines, 2);
  assert.equal(await count(`SELECT count(*) AS n FROM samples WHERE project_id = $1 AND status = 'released'`, [project]), 120);

  // Re-running the same release id returns the published release and changes nothing.
  const again = await h.client.workflow.execute(datasetRelease, {
    workflowId: `${workflowIds.release(project, 'v1')}-again`, taskQueue: h.cfg.taskQueues.cpu, args: [{ project, version: 'v1' }],
  });
  assert.deepEqual(again.files, summary.files);

  // Nothing left to release: a clear, non-retried failure.
  await assert.rejects(
    h.client.workflow.execute(datasetRelease, { workflowId: workflowIds.release(project, 'v2'), taskQueue: h.cfg.taskQueues.cpu, args: [{ project, version: 'v2' }] }),
    (err: unknown) => err instanceof WorkflowFailedError && /no accepted, unreleased samples/.test(failureMessage(err)),
  );
});

test('duplicate signals, re-ingested files and resubmitted samples never double-insert; changed payloads become revisions', async () => {
  const project = await createTestProject(h.pool);
  const file = tmpFile(Array.from({ length: 30 }, (_, i) => validLine(i)));
  const first = await ingestFile(h.cfg, h.client, h.store, { project, file, batchSize: 100, wait: true });
  assert.equal(first.counts.staged, 30);
  // The same file again: same batch ids, so the intake drops them.
  const second = await ingestFile(h.cfg, h.client, h.store, { project, file, batchSize: 100, wait: true });
  assert.equal(second.batches[0]!.batchId, first.batches[0]!.batchId);
  const handle = h.client.workflow.getHandle(workflowIds.intake(project));
  // The same batch signalled twice more, and the same samples inline twice (new batch ids, same content).
  await handle.signal(submitBatchSignal, first.batches[0]!);
  const inline = [JSON.parse(validLine(3)), JSON.parse(validLine(4))];
  await handle.signal(submitSamplesSignal, { samples: inline });
  await handle.signal(submitSamplesSignal, { samples: inline });
  // A changed payload under an existing external id.
  await handle.signal(submitSamplesSignal, { samples: [JSON.parse(validLine(5, { text: 'revised text' }))] });
  await waitUntil('inline batches to finish', async () => {
    const s = await handle.query(intakeStatsQuery);
    return s.completed === 4 && s.running === 0 && s.queued === 0;
  });
  const stats = await handle.query(intakeStatsQuery);
  assert.equal(stats.duplicateBatches, 2);
  assert.equal(stats.counts.duplicates, 4);
  assert.equal(await count('SELECT count(*) AS n FROM samples WHERE project_id = $1', [project]), 31);
  assert.equal(await count('SELECT count(*) AS n FROM annotations a JOIN samples s ON s.id = a.sample_id WHERE s.project_id = $1', [project]), 62);
  const revs = await h.pool.query<{ revision: number; is_latest: boolean; text: string }>(
    `SELECT revision, is_latest, payload->>'text' AS text FROM samples WHERE project_id = $1 AND external_id = 's-5' ORDER BY revision`, [project],
  );
  assert.deepEqual(revs.rows, [{ revision: 1, is_latest: false, text: 'sample number 5' }, { revision: 2, is_latest: true, text: 'revised text' }]);
});

test('projectIntake continues as new with its counts and queue intact', async () => {
  const project = await createTestProject(h.pool);
  const handle = await h.client.workflow.start(projectIntake, {
    workflowId: workflowIds.intake(project), taskQueue: h.cfg.taskQueues.cpu, args: [{ project, maxHistoryEvents: 40 }],
  });
  for (let b = 0; b < 6; b++) {
    await handle.signal(submitSamplesSignal, { samples: Array.from({ length: 5 }, (_, i) => JSON.parse(validLine(b * 100 + i))) });
  }
  await waitUntil('all inline batches', async () => {
    const s = await h.client.workflow.getHandle(workflowIds.intake(project)).query(intakeStatsQuery);
    return s.completed === 6 && s.running === 0;
  }, 90_000);
  const s = await h.client.workflow.getHandle(workflowIds.intake(project)).query(intakeStatsQuery);
  assert.ok(s.generation >= 1, `expected at least one continue-as-new, got generation ${s.generation}`);
  assert.equal(s.counts.accepted, 30);
  assert.equal(await count(`SELECT count(*) AS n FROM samples WHERE project_id = $1 AND status = 'accepted'`, [project]), 30);
});

test('a qcBatch started for a project that does not exist fails with a message saying how to create it', async () => {
  // (An intake for such a project fails at its start: workflow-inputs.test.ts.)
  const project = `missing-${uid()}`;
  const run = h.client.workflow.execute(qcBatch, {
    workflowId: workflowIds.qcBatch(project, 'b1'), taskQueue: h.cfg.taskQueues.cpu, args: [{ project, batchId: 'b1', stagingKey: `staging/${project}/b1.jsonl` }], workflowExecutionTimeout: '60s',
  });
  await assert.rejects(run, (err: Error & { cause?: Error & { cause?: Error } }) => /does not exist; create it first with: qcflow project create/.test(String(err.cause?.cause?.message ?? err.cause?.message)));
});

test('migrations are idempotent and refuse an edited applied file', async () => {
  assert.deepEqual(await migrate(h.pool), []);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-mig-'));
  const name = `999_t${uid()}.sql`;
  writeFileSync(path.join(dir, name), `CREATE TABLE IF NOT EXISTS mig_probe_${uid()} (x int);`);
  assert.deepEqual(await migrate(h.pool, dir), [name]);
  writeFileSync(path.join(dir, name), 'SELECT 1;');
  await assert.rejects(migrate(h.pool, dir), /was changed after it was applied/);
  await h.pool.query('DELETE FROM schema_migrations WHERE name = $1', [name]);
});

test('inline media moves into MinIO under a deterministic key; a missing media key is a layer-1 finding', async () => {
  const project = await createTestProject(h.pool);
  const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
  const file = tmpFile([
    JSON.stringify({ externalId: 'm-1', payload: { text: 'with image', lang: 'en' }, media: [{ contentType: 'image/png', base64: png.toString('base64') }] }),
    JSON.stringify({ externalId: 'm-2', payload: { text: 'dangling', lang: 'en' }, media: [{ key: `raw/${project}/nowhere.png` }] }),
  ]);
  const r = await ingestFile(h.cfg, h.client, h.store, { project, file, batchSize: 10, wait: true });
  assert.equal(r.counts.accepted, 1);
  assert.equal(r.counts.rejected, 1);
  const rows = await h.pool.query<{ id: string; external_id: string; media: Array<{ key: string }>; findings: Array<{ pointer: string; rule: string }> }>(
    `SELECT s.id, s.external_id, s.media, q.findings FROM samples s JOIN qc_results q ON q.sample_id = s.id AND q.layer = 1
     WHERE s.project_id = $1 ORDER BY s.external_id`, [project],
  );
  const [withImage, dangling] = rows.rows;
  assert.deepEqual(withImage!.media, [{ key: `raw/${project}/${withImage!.id}/0.png` }]);
  const stored: Buffer[] = [];
  for await (const c of await h.store.client.getObject(h.store.bucket, withImage!.media[0]!.key)) stored.push(c as Buffer);
  assert.deepEqual(Buffer.concat(stored), png);
  assert.deepEqual(dangling!.findings.map((f) => `${f.pointer} ${f.rule}`), ['/media/0/key media.exists']);
});
