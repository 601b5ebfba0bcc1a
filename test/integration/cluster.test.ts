import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { loadConfig } from '../../src/clients/config';
import { getLogger } from '../../src/clients/logger';
import { createObjectStore } from '../../src/clients/minio';
import { createPool, type Pool } from '../../src/clients/pg';
import { ingestFile } from '../../src/cli/ingest';
import { startCluster, type Cluster } from '../../src/infra/cluster';
import { datasetRelease } from '../../workflows';
import { workflowIds } from '../../workflows/definitions';
import { createTestProject, readRelease, validLine, waitUntil } from './helpers';

/**
 * The production-shaped run: the real Temporal server on Postgres and every worker its own process. A
 * 20k-sample ingest spreads over both qc-cpu workers; one of them is killed (SIGKILL) mid-run, and every
 * sample still ends up judged once and released once.
 */
let cluster: Cluster;
let pool: Pool;
let connection: Connection;
let client: Client;
before(async () => {
  const cfg = loadConfig();
  cluster = await startCluster(cfg, getLogger(cfg, 'test'), { ephemeral: true });
  pool = createPool(cluster.stack.databaseUrl, 4);
  connection = await Connection.connect({ address: cluster.cfg.temporal.address });
  client = new Client({ connection, namespace: cluster.cfg.temporal.namespace });
});
after(async () => {
  await connection?.close();
  await pool?.end();
  await cluster?.stop();
});

const N = 20_000;

/** Activities this process has completed, from its own /metrics. */
async function activitiesRun(name: string): Promise<number> {
  const text = await (await fetch(`${cluster.member(name).metricsUrl}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith('qcflow_activity_duration_seconds_count{')).reduce((a, l) => a + Number(l.split(' ').pop()), 0);
}

test('a 20k-sample ingest spreads over both cpu workers and survives one of them being killed mid-run', async () => {
  const project = await createTestProject(pool);
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'qcflow-cluster-')), 'in.jsonl');
  writeFileSync(file, Array.from({ length: N }, (_, i) => validLine(i)).join('\n') + '\n');
  const store = createObjectStore(cluster.cfg.minio);
  const ingest = ingestFile(cluster.cfg, client, store, { project, file, batchSize: 500, wait: true });

  const doneBatches = async (): Promise<number> => Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM batches WHERE project_id = $1 AND status = 'done'`, [project])).rows[0]!.n);
  await waitUntil('a quarter of the batches done', async () => (await doneBatches()) >= N / 500 / 4, 300_000);
  const before = { one: await activitiesRun('qc-cpu-1'), two: await activitiesRun('qc-cpu-2') };
  assert.ok(before.one > 0 && before.two > 0, `both cpu workers ran activities (${before.one}, ${before.two})`);
  await cluster.kill('qc-cpu-2', 'SIGKILL');

  const r = await ingest;
  assert.equal(r.failedBatches.length, 0);
  assert.deepEqual([r.counts.staged, r.counts.accepted, r.counts.duplicates], [N, N, 0]);
  assert.ok((await activitiesRun('qc-cpu-1')) > before.one, 'the surviving worker took over');

  // Nothing lost or doubled: one sample row and one layer-1 result per line, all accepted, then released once each.
  const { rows: [c] } = await pool.query<{ samples: string; distinct_ids: string; l1: string; accepted: string }>(
    `SELECT count(*) AS samples, count(DISTINCT external_id) AS distinct_ids,
            (SELECT count(*) FROM qc_results q JOIN samples s2 ON s2.id = q.sample_id WHERE s2.project_id = $1 AND q.layer = 1) AS l1,
            count(*) FILTER (WHERE status = 'accepted') AS accepted
     FROM samples WHERE project_id = $1`, [project],
  );
  assert.deepEqual([c!.samples, c!.distinct_ids, c!.l1, c!.accepted].map(Number), [N, N, N, N]);
  const summary = await client.workflow.execute(datasetRelease, {
    workflowId: workflowIds.release(project, 'v1'), taskQueue: cluster.cfg.taskQueues.cpu, args: [{ project, version: 'v1' }],
  });
  assert.equal(summary.sampleCount, N);
  const ids = (await readRelease(store, project, 'v1')).jsonl.trimEnd().split('\n').map((l) => (JSON.parse(l) as { externalId: string }).externalId);
  assert.equal(new Set(ids).size, N);
});
