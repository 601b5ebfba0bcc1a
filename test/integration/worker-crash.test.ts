import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { configToEnv } from '../../src/clients/config';
import { ingestFile } from '../../src/cli/ingest';
import { datasetRelease } from '../../workflows';
import { workflowIds } from '../../workflows/definitions';
import { createTestProject, harness, readRelease, REPO, validLine, waitUntil, type Harness } from './helpers';

let h: Harness;
before(async () => {
  // No in-process worker: the work runs in a separate worker process this test kills.
  h = await harness({ worker: false });
});
after(() => h.close());

function spawnWorker(): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', path.join(REPO, 'workers', 'cpu.ts')], {
    cwd: REPO,
    env: { ...process.env, ...configToEnv(h.cfg, h.cfg.databaseUrl!), QCFLOW_LOG_LEVEL: 'warn', QCFLOW_SHUTDOWN_GRACE_MS: '2000' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
}

test('a worker killed with SIGKILL mid-batch and restarted loses nothing and duplicates nothing', async () => {
  const project = await createTestProject(h.pool);
  const total = 4000;
  const lines = Array.from({ length: total }, (_, i) => validLine(i));
  for (let i = 0; i < total; i += 97) lines[i] = validLine(i, { lang: 'xx' }); // some rejects along the way
  const rejected = lines.filter((l) => l.includes('"xx"')).length;
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'qcflow-kill-')), 'in.jsonl');
  writeFileSync(file, lines.join('\n') + '\n');

  let worker = spawnWorker();
  const ingesting = ingestFile(h.cfg, h.client, h.store, { project, file, batchSize: 1000, wait: true });
  await waitUntil('the first samples of a batch to be written', async () =>
    Number((await h.pool.query<{ n: string }>('SELECT count(*) AS n FROM samples WHERE project_id = $1', [project])).rows[0]!.n) > 0, 120_000);
  worker.kill('SIGKILL');
  await new Promise((r) => worker.once('exit', r));
  const atKill = Number((await h.pool.query<{ n: string }>('SELECT count(*) AS n FROM samples WHERE project_id = $1', [project])).rows[0]!.n);
  assert.ok(atKill < total, `the kill should land mid-ingest (had ${atKill} of ${total})`);

  worker = spawnWorker();
  try {
    const r = await ingesting;
    assert.deepEqual(r.failedBatches, []);
    assert.equal(r.counts.lines, total);
    assert.equal(r.counts.staged, total);
    assert.equal(r.counts.accepted, total - rejected);
    assert.equal(r.counts.rejected, rejected);

    const summary = await h.client.workflow.execute(datasetRelease, {
      workflowId: workflowIds.release(project, 'v1'), taskQueue: h.cfg.taskQueues.cpu, args: [{ project, version: 'v1' }],
    });
    assert.equal(summary.sampleCount, total - rejected);
    const rel = await readRelease(h.store, project, 'v1');
    const ids = rel.jsonl.trimEnd().split('\n').map((l) => (JSON.parse(l) as { externalId: string }).externalId);
    assert.equal(ids.length, total - rejected, 'every accepted sample is in the release');
    assert.equal(new Set(ids).size, ids.length, 'no sample is in the release twice');
    const counts = await h.pool.query<{ status: string; n: string }>('SELECT status, count(*) AS n FROM samples WHERE project_id = $1 GROUP BY status ORDER BY status', [project]);
    assert.deepEqual(counts.rows.map((c) => [c.status, Number(c.n)]), [['rejected', rejected], ['released', total - rejected]]);
    const anns = await h.pool.query<{ n: string }>('SELECT count(*) AS n FROM annotations a JOIN samples s ON s.id = a.sample_id WHERE s.project_id = $1', [project]);
    assert.equal(Number(anns.rows[0]!.n), total * 2);
  } finally {
    worker.kill('SIGTERM');
    await new Promise((r) => worker.once('exit', r));
  }
});
