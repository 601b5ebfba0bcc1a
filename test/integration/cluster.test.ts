import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { loadConfig } from '../../src/clients/config';
import { getLogger } from '../../src/clients/logger';
import { createObjectStore } from '../../src/clients/minio';
import { createPool, type Pool } from '../../src/clients/pg';
import { startCluster, type Cluster } from '../../src/infra/cluster';
import { datasetRelease } from '../../workflows';
import { workflowIds } from '../../workflows/definitions';
import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';
import { dataConverterOf } from '../../src/clients/temporal';
import { issueToken, resolveJwtSecret } from '../../src/http/auth';
import { createTestProject, ingestLines, readRelease, REPO, validLine, waitUntil } from './helpers';

// The cluster seals every payload (its processes inherit this), so both tests also run the production shape encrypted.
process.env.QCFLOW_PAYLOAD_KEYS = `cluster-test:${randomBytes(32).toString('base64')}`;

/**
 * The production-shaped run: the real Temporal server on Postgres, its UI, and every worker its own process,
 * with payloads sealed. A 20k-sample ingest spreads over both qc-cpu workers; one of them is killed (SIGKILL)
 * mid-run, and every sample still ends up judged once and released once. The UI, in Chromium, shows a
 * batch's input decoded by the review server's codec endpoint for a signed-in operator, and not without one.
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
  client = new Client({ connection, namespace: cluster.cfg.temporal.namespace, dataConverter: dataConverterOf(cluster.cfg) });
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
  const store = createObjectStore(cluster.cfg.minio);
  const ingest = ingestLines({ cfg: cluster.cfg, client, store }, project, Array.from({ length: N }, (_, i) => validLine(i)), 500);

  const doneBatches = async (): Promise<number> => Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM batches WHERE project_id = $1 AND status = 'done'`, [project])).rows[0]!.n);
  // Which worker polls first is up to the matching service (a batch's activities tend to follow its workflow's sticky
  // worker), so the spread is waited for, not sampled at one moment; it must show before the run is over.
  let before = { one: 0, two: 0 };
  await waitUntil('a quarter of the batches done, and activities run on both cpu workers', async () => {
    before = { one: await activitiesRun('qc-cpu-1'), two: await activitiesRun('qc-cpu-2') };
    const done = await doneBatches();
    assert.ok(done < N / 500, `the run ended before both cpu workers ran activities (${before.one}, ${before.two})`);
    return before.one > 0 && before.two > 0 && done >= N / 500 / 4;
  }, 300_000);
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

test('the Temporal UI shows a sealed batch input in clear for a signed-in operator, through the review server\'s codec endpoint', async () => {
  const CHROMIUM = process.env.QCFLOW_CHROMIUM ?? '/usr/bin/chromium';
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium, or set QCFLOW_CHROMIUM`);
  const project = await createTestProject(pool);
  const r = await ingestLines({ cfg: cluster.cfg, client, store: createObjectStore(cluster.cfg.minio) }, project, Array.from({ length: 5 }, (_, i) => validLine(i)));
  const batchPage = `${cluster.uiUrl}/namespaces/${cluster.cfg.temporal.namespace}/workflows/${encodeURIComponent(workflowIds.qcBatch(project, r.batches[0]!.batchId))}`;
  // Only the decoded input holds the staging key; the workflow id alone shows the project.
  const stagingKey = r.batches[0]!.stagingKey;
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  try {
    // Without a session the codec endpoint refuses (401) and the UI has only the sealed bytes to show.
    const anonymous = await (await browser.newContext()).newPage();
    const refused = anonymous.waitForResponse((res) => res.url().endsWith('/codec/decode') && res.request().method() === 'POST');
    await anonymous.goto(batchPage);
    assert.equal((await refused).status(), 401);
    await anonymous.getByText('Result', { exact: true }).first().waitFor({ timeout: 30_000 });
    assert.equal(await anonymous.getByText(stagingKey, { exact: false }).count(), 0, 'without a session the UI cannot open the input');

    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${cluster.reviewUrl}/login`);
    await page.locator('summary', { hasText: 'Sign in with a token instead' }).click();
    await page.locator('#token').fill(issueToken(resolveJwtSecret(cluster.cfg), { user: 'olga', role: 'operator', ttlSeconds: 600 }));
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/queue/);
    await page.goto(batchPage);
    await page.getByText(stagingKey, { exact: false }).first().waitFor({ timeout: 30_000 });
    const artifacts = process.env.QCFLOW_TEST_ARTIFACTS ?? path.join(REPO, 'test-artifacts');
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: path.join(artifacts, 'temporal-ui-decoded.png') });
  } finally {
    await browser.close();
  }
});
