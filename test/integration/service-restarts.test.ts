import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { configToEnv, loadConfig } from '../../src/clients/config';
import { getLogger } from '../../src/clients/logger';
import { createObjectStore } from '../../src/clients/minio';
import { createPool } from '../../src/clients/pg';
import { createTemporalClient } from '../../src/clients/temporal';
import { startStack } from '../../src/infra/stack';
import { ingestFile } from '../../src/cli/ingest';
import { upsertProject } from '../../src/store/projects';
import { validateProjectDefinition } from '../../src/projects/definition';
import { datasetRelease } from '../../workflows';
import { workflowIds } from '../../workflows/definitions';
import { goodLine } from '../fixtures/malformed-lines';
import { readRelease, REPO } from './helpers';

/**
 * Postgres stopped with an immediate shutdown mid-ingest, then MinIO killed, each back after 3 s, on a
 * stack of this test's own (the shared one must not go down under other files): the worker process lives
 * through both, its in-flight activities retry, and every line is released once.
 */
test('a worker process survives Postgres (-m immediate) and MinIO restarts mid-ingest; nothing is lost or duplicated', async () => {
  const base = loadConfig();
  const stack = await startStack(base, getLogger(base, 'test'), { ephemeral: true });
  const cfg = stack.cfg;
  const pool = createPool(stack.databaseUrl, 2);
  const { client, connection } = await createTemporalClient(cfg);
  const worker = spawn(process.execPath, ['--import', 'tsx', path.join(REPO, 'workers', 'cpu.ts')], {
    cwd: REPO, env: { ...process.env, ...configToEnv(cfg, stack.databaseUrl), QCFLOW_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'inherit'],
  });
  let exited: number | string | null = null;
  worker.once('exit', (code, signal) => { exited = code ?? signal; });
  try {
    const project = 'restarts';
    await upsertProject(pool, validateProjectDefinition({ id: project, jsonSchema: { type: 'object', required: ['text'] }, regexRules: [], qcPolicy: { auditShare: 0 } }), 'test');
    const total = 4000;
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'qcflow-restarts-')), 'in.jsonl');
    writeFileSync(file, Array.from({ length: total }, (_, i) => goodLine(`r-${i}`)).join('\n') + '\n');
    let faults: Promise<void> | undefined;
    let batchesDone = 0;
    let doneAtCrash = -1;
    const r = await ingestFile(cfg, client, createObjectStore(cfg.minio), {
      project, file, batchSize: 500, wait: true,
      onProgress: (p) => {
        if (p.phase !== 'qc') return;
        batchesDone = p.done;
        if (faults) return;
        faults = (async () => {
          await new Promise((res) => setTimeout(res, 1500));
          doneAtCrash = batchesDone;
          await stack.restart('postgres', 3000);
          await stack.restart('minio', 3000);
        })();
      },
    });
    await faults;
    assert.ok(doneAtCrash >= 0 && doneAtCrash < r.batches.length, `Postgres went down mid-ingest (${doneAtCrash} of ${r.batches.length} batches done)`);
    assert.equal(exited, null, 'the worker process is still running');
    assert.deepEqual(r.failedBatches, []);
    assert.equal(r.counts.accepted, total, JSON.stringify(r.counts));
    await client.workflow.execute(datasetRelease, { workflowId: workflowIds.release(project, 'v1'), taskQueue: cfg.taskQueues.cpu, args: [{ project, version: 'v1' }] });
    const ids = (await readRelease(createObjectStore(cfg.minio), project, 'v1')).jsonl.trimEnd().split('\n').map((l) => (JSON.parse(l) as { externalId: string }).externalId);
    assert.equal(ids.length, total);
    assert.equal(new Set(ids).size, total);
  } finally {
    worker.kill('SIGTERM');
    await connection.close();
    await pool.end().catch(() => undefined);
    await stack.stop();
  }
});
