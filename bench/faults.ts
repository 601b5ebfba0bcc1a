/**
 * `npm run bench -- faults`: a 20,000-line ingest (1,500 of them malformed, every kind of
 * test/fixtures/malformed-lines.ts) through two cpu worker processes while the bench SIGKILLs a random
 * worker every few seconds (restarting it a second later), crashes Postgres (immediate shutdown) and then
 * MinIO, each back after a few seconds. The baseline is the same corpus in the same run with no faults.
 * Prints one JSON line, and the figures as a table on stderr: lines, rejected, retries, crashes (worker
 * processes that died without being killed), lost (good lines missing from the release), duplicated.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { configToEnv, loadConfig, type Config } from '../src/clients/config';
import { getLogger } from '../src/clients/logger';
import { createObjectStore, getObjectText } from '../src/clients/minio';
import { createPool, type Pool } from '../src/clients/pg';
import { createTemporalClient } from '../src/clients/temporal';
import { startStack, type Stack } from '../src/infra/stack';
import { ingestFile } from '../src/cli/ingest';
import { validateProjectDefinition } from '../src/projects/definition';
import { upsertProject } from '../src/store/projects';
import { datasetRelease } from '../workflows';
import { workflowIds } from '../workflows/definitions';
import { malformedCorpus, mixedCorpus } from '../test/fixtures/malformed-lines';
import type { Client } from '@temporalio/client';

const log = getLogger(loadConfig(), 'bench.faults');
const REPO = path.resolve(__dirname, '..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const SCHEMA = { type: 'object', required: ['text', 'lang'], properties: { text: { type: 'string', minLength: 1, maxLength: 200 }, lang: { enum: ['en', 'de'] } } };

interface Workers {
  /** Worker processes that exited without the bench killing them. */
  crashes: number;
  kills: number;
  killOne(): Promise<void>;
  stop(): Promise<void>;
}

/** Two cpu worker processes; a killed one is replaced a second later, one that dies on its own is counted and replaced too. */
function startWorkers(cfg: Config): Workers {
  const env = { ...process.env, ...configToEnv(cfg, cfg.databaseUrl!), QCFLOW_LOG_LEVEL: 'warn', QCFLOW_SHUTDOWN_GRACE_MS: '2000' };
  const procs: Array<ChildProcess | undefined> = [];
  const killed = new Set<ChildProcess>();
  let stopping = false;
  const w: Workers = { crashes: 0, kills: 0, killOne: async () => undefined, stop: async () => undefined };
  const spawnAt = (slot: number): void => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO, 'workers', 'cpu.ts')], { cwd: REPO, env, stdio: ['ignore', 'ignore', 'inherit'] });
    procs[slot] = child;
    child.once('exit', (code, signal) => {
      if (stopping) return;
      if (!killed.has(child)) {
        w.crashes++;
        log.error({ slot, code, signal }, 'a worker process died on its own');
      }
      setTimeout(() => { if (!stopping) spawnAt(slot); }, 1000);
    });
  };
  spawnAt(0);
  spawnAt(1);
  w.killOne = async () => {
    const slot = Math.floor(Math.random() * procs.length);
    const child = procs[slot];
    if (!child || child.exitCode !== null) return;
    killed.add(child);
    w.kills++;
    child.kill('SIGKILL');
  };
  w.stop = async () => {
    stopping = true;
    await Promise.all(procs.map((c) => (c && c.exitCode === null ? new Promise((r) => { c.once('exit', r); c.kill('SIGTERM'); }) : undefined)));
  };
  return w;
}

interface RunFigures {
  lines: number;
  goodLines: number;
  badLines: number;
  rejectedLines: number;
  rejectedSamples: number;
  accepted: number;
  failedBatches: number;
  /** Activity attempts beyond the first, over every batch's history; and the most any one activity took. */
  retries: number;
  maxAttempt: number;
  crashes: number;
  workerKills: number;
  serviceRestarts: string[];
  lost: number;
  duplicated: number;
  /** Lines released that were not good lines (a bad line let through). */
  leaked: number;
  seconds: number;
}

async function run(stack: Stack, pool: Pool, client: Client, project: string, file: string, corpus: ReturnType<typeof mixedCorpus>, faults: boolean): Promise<RunFigures> {
  const cfg = stack.cfg;
  await upsertProject(pool, validateProjectDefinition({ id: project, jsonSchema: SCHEMA, regexRules: [{ name: 'no-ssn', pointer: '/payload/text', pattern: '\\d{3}-\\d{2}-\\d{4}', mode: 'forbid' }], qcPolicy: { auditShare: 0 } }), 'bench');
  const workers = startWorkers(cfg);
  const restarts: string[] = [];
  let chaos: Promise<void> | undefined;
  let done = false;
  const t0 = Date.now();
  try {
    const result = await ingestFile(cfg, client, createObjectStore(cfg.minio), {
      project, file, batchSize: 1000, wait: true,
      onProgress: (p) => {
        // Faults start once every batch is staged: the CLI's own upload is not what is under test.
        if (!faults || chaos || p.phase !== 'qc') return;
        chaos = (async () => {
          const plan: Array<[number, () => Promise<void>]> = [
            [3000, async () => { await stack.restart('postgres', 3000); restarts.push('postgres'); }],
            [9000, async () => { await stack.restart('minio', 3000); restarts.push('minio'); }],
          ];
          let elapsed = 0;
          for (const [at, fault] of plan) {
            while (elapsed < at && !done) { await sleep(1500); elapsed += 1500; if (elapsed % 4500 === 0) await workers.killOne(); }
            if (done) return;
            await fault();
          }
          while (!done) { await sleep(4500); if (!done) await workers.killOne(); }
        })();
      },
    });
    done = true;
    await chaos;
    const seconds = (Date.now() - t0) / 1000;
    await client.workflow.execute(datasetRelease, { workflowId: workflowIds.release(project, 'v1'), taskQueue: cfg.taskQueues.cpu, args: [{ project, version: 'v1' }] });
    const released = (await getObjectText(createObjectStore(cfg.minio), `releases/${project}/v1/data.jsonl`)).trimEnd().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { externalId: string }).externalId);
    const good = new Set(corpus.goodIds);
    const seen = new Map<string, number>();
    for (const id of released) seen.set(id, (seen.get(id) ?? 0) + 1);
    let retries = 0;
    let maxAttempt = 1;
    for (const b of result.batches) {
      const history = await client.workflow.getHandle(workflowIds.qcBatch(project, b.batchId)).fetchHistory();
      for (const e of history.events ?? []) {
        const a = e.activityTaskStartedEventAttributes?.attempt;
        if (a) { retries += a - 1; maxAttempt = Math.max(maxAttempt, a); }
      }
    }
    const count = async (sql: string): Promise<number> => Number((await pool.query<{ n: string }>(sql, [project])).rows[0]!.n);
    return {
      lines: corpus.goodIds.length + corpus.badAt.length, goodLines: corpus.goodIds.length, badLines: corpus.badAt.length,
      rejectedLines: await count('SELECT count(*) AS n FROM ingest_rejections WHERE project_id = $1'),
      rejectedSamples: await count(`SELECT count(*) AS n FROM samples WHERE project_id = $1 AND status = 'rejected'`),
      accepted: result.counts.accepted, failedBatches: result.failedBatches.length, retries, maxAttempt,
      crashes: workers.crashes, workerKills: workers.kills, serviceRestarts: restarts,
      lost: corpus.goodIds.filter((id) => !seen.has(id)).length,
      duplicated: [...seen.values()].filter((n) => n > 1).length,
      leaked: released.filter((id) => !good.has(id)).length,
      seconds: +seconds.toFixed(1),
    };
  } finally {
    done = true;
    await workers.stop();
  }
}

export async function faultsBench(): Promise<void> {
  const good = Number(process.env.QCFLOW_BENCH_FAULTS_GOOD ?? 18_500);
  const badCount = Number(process.env.QCFLOW_BENCH_FAULTS_BAD ?? 1_500);
  const base = loadConfig();
  const stack = await startStack(base, log, { ephemeral: true });
  const pool = createPool(stack.databaseUrl, 2);
  const { client, connection } = await createTemporalClient(stack.cfg);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-faults-'));
  try {
    const figures: Record<string, RunFigures> = {};
    for (const [name, faults] of [['baseline', false], ['faults', true]] as const) {
      const project = `faults-${name}`;
      const corpus = mixedCorpus(good, malformedCorpus(badCount, project));
      const file = path.join(dir, `${name}.jsonl`);
      writeFileSync(file, corpus.bytes);
      figures[name] = await run(stack, pool, client, project, file, corpus, faults);
      log.info({ run: name, ...figures[name] }, 'faults bench run done');
    }
    const f = figures.faults!;
    const b = figures.baseline!;
    console.log(JSON.stringify({
      bench: 'faults.ingest', lines: f.lines, faults: f, baseline: b,
      survived: f.crashes === 0 && f.lost === 0 && f.duplicated === 0 && f.leaked === 0 && f.failedBatches === 0 && f.rejectedLines === b.rejectedLines && f.rejectedSamples === b.rejectedSamples,
    }));
    const rows: Array<[string, keyof RunFigures]> = [['lines', 'lines'], ['bad lines in the corpus', 'badLines'], ['rejected lines', 'rejectedLines'], ['rejected samples (layer 1)', 'rejectedSamples'],
      ['accepted', 'accepted'], ['activity retries (max attempt)', 'retries'], ['worker kills', 'workerKills'], ['worker crashes', 'crashes'], ['service restarts', 'serviceRestarts'],
      ['lost', 'lost'], ['duplicated', 'duplicated'], ['bad lines released', 'leaked'], ['failed batches', 'failedBatches'], ['seconds', 'seconds']];
    const cell = (r: RunFigures, k: keyof RunFigures): string => (k === 'retries' ? `${r.retries} (${r.maxAttempt})` : Array.isArray(r[k]) ? (r[k] as string[]).join(', ') || '—' : String(r[k]));
    process.stderr.write(`\n| | with faults | baseline |\n|---|---|---|\n${rows.map(([label, k]) => `| ${label} | ${cell(f, k)} | ${cell(b, k)} |`).join('\n')}\n`);
  } finally {
    await connection.close();
    await pool.end().catch(() => undefined);
    await stack.stop();
  }
}
