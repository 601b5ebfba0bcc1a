/**
 * `npm run bench -- e2e [--samples N]`: N samples (default 100k) through layers 1–5 with the fixture
 * bag-of-words layer-3 model, end to end through Temporal, with every worker its own process:
 *  1. on the embedded stack (Temporal dev server; one qc-cpu, one qc-inference, one qc-review process), at
 *     20k and at N samples, so worker RSS can be compared across N;
 *  2. the baseline: the same activity functions called directly in this one process on the same data, with
 *     the intake's batch concurrency; samples/s of (1) over (2) is what Temporal costs (the ratio);
 *  3. on `qcflow cluster`'s production shape (the real Temporal server on Postgres, two qc-cpu processes).
 * Each run gets a project of its own. Prints one JSON line per run, then a summary line with the targets.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { Client, Connection } from '@temporalio/client';
import { loadConfig, type Config } from '../src/clients/config';
import { createObjectStore, putObject, type ObjectStore } from '../src/clients/minio';
import { createPool, type Pool } from '../src/clients/pg';
import { SessionCache } from '../src/clients/onnx-sessions';
import { ingestFile } from '../src/cli/ingest';
import { startQcflowProcesses, startCluster, type ClusterMember } from '../src/infra/cluster';
import { startStack } from '../src/infra/stack';
import { stagingKey } from '../src/ingest/keys';
import { DEMO_CUES, prng } from '../src/demo/dataset';
import { registerModel } from '../src/models/register';
import { bagOfWordsTextModel } from '../src/onnx/reference-models';
import { validateProjectDefinition } from '../src/projects/definition';
import { upsertProject } from '../src/store/projects';
import { createActivities } from '../activities';
import { inferenceActivities } from '../activities/inference';

const log = pino({ level: 'silent' });
const BATCH = 1000;
const CUES = { positive: [...DEMO_CUES.positive], negative: [...DEMO_CUES.negative], neutral: [...DEMO_CUES.neutral] };
const MODEL = 'e2e-bow';

/** Clean samples: a cue-word text the fixture model reads, three annotators who agree with it. */
function writeSamples(n: number, prefix: string): string {
  const rnd = prng(5);
  const labels = Object.keys(CUES) as Array<keyof typeof CUES>;
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const label = labels[i % 3]!;
    const words = Array.from({ length: 12 }, () => (rnd() < 0.5 ? CUES[label][Math.floor(rnd() * CUES[label].length)] : 'the'));
    lines.push(JSON.stringify({
      externalId: `${prefix}-${i}`, payload: { text: words.join(' '), lang: 'en' },
      annotations: [0, 1, 2].map((k) => ({ annotator: `ann-${(i + k) % 12}`, labels: { classes: [label] }, durationMs: 4000 + Math.floor(rnd() * 3000) })),
    }));
  }
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'qcflow-e2e-')), `${prefix}.jsonl`);
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

async function project(pool: Pool, id: string): Promise<void> {
  await upsertProject(pool, validateProjectDefinition({
    id,
    jsonSchema: { type: 'object', required: ['text', 'lang'], properties: { text: { type: 'string', minLength: 1, maxLength: 400 }, lang: { enum: ['en', 'de'] } } },
    regexRules: [{ name: 'no-ssn', pointer: '/payload/text', pattern: '\\d{3}-\\d{2}-\\d{4}', mode: 'forbid' }],
    ontology: { classes: Object.keys(CUES) },
    qcPolicy: { auditShare: 0, layer3: { models: [MODEL] } },
  }), 'bench');
}

/** A process's resident memory now, in MiB (VmRSS from /proc; throws once the process has exited). */
export function rssMiB(pid: number | undefined): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

/** Peak VmRSS of each process while `work` runs, sampled every 250 ms from /proc. */
async function withPeakRss<T>(members: ClusterMember[], work: () => Promise<T>): Promise<{ result: T; peakRssMiB: Record<string, number> }> {
  const peak: Record<string, number> = {};
  const sample = (): void => {
    for (const m of members) {
      try {
        peak[m.name] = Math.max(peak[m.name] ?? 0, Math.round(rssMiB(m.proc.child.pid)));
      } catch { /* exited */ }
    }
  };
  const timer = setInterval(sample, 250);
  try {
    const result = await work();
    sample();
    return { result, peakRssMiB: peak };
  } finally {
    clearInterval(timer);
  }
}

/**
 * Each worker's RSS and V8 heap in use 5 s after a run: what it holds once the run's burst is over (peak RSS
 * also counts the heap V8 grew to absorb the burst; heap in use still counts garbage not yet collected —
 * `npm run bench -- heap` measures what is retained).
 */
async function settled(members: ClusterMember[]): Promise<{ rssAfterMiB: Record<string, number>; heapUsedAfterMiB: Record<string, number> }> {
  await new Promise((r) => setTimeout(r, 5000));
  const rssAfterMiB: Record<string, number> = {};
  const heapUsedAfterMiB: Record<string, number> = {};
  for (const m of members) {
    try {
      rssAfterMiB[m.name] = Math.round(rssMiB(m.proc.child.pid));
    } catch { /* exited */ }
    if (!m.metricsUrl) continue;
    const text = await (await fetch(`${m.metricsUrl}/metrics`)).text().catch(() => '');
    const v = /^qcflow_nodejs_heap_size_used_bytes (\S+)$/m.exec(text)?.[1];
    if (v) heapUsedAfterMiB[m.name] = Math.round(Number(v) / 2 ** 20);
  }
  return { rssAfterMiB, heapUsedAfterMiB };
}

/** p50 and p95 of the project's batches from staging to done, in ms (the batches table's own clock). */
async function batchLatency(pool: Pool, projectId: string): Promise<{ p50: number; p95: number }> {
  const { rows } = await pool.query<{ p50: number; p95: number }>(
    `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50, percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) AS p95
     FROM (SELECT extract(epoch FROM finished_at - created_at) * 1000 AS ms FROM batches WHERE project_id = $1 AND status = 'done') b`, [projectId]);
  return { p50: Math.round(rows[0]!.p50), p95: Math.round(rows[0]!.p95) };
}

/** Through Temporal: ingest (stage + signal) until every batch has finished. */
async function throughTemporal(cfg: Config, client: Client, store: ObjectStore, pool: Pool, projectId: string, file: string): Promise<{ seconds: number; accepted: number }> {
  await project(pool, projectId);
  const t0 = process.hrtime.bigint();
  const r = await ingestFile(cfg, client, store, { project: projectId, file, batchSize: BATCH, wait: true });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.failedBatches.length) throw new Error(`e2e: ${r.failedBatches.length} batches failed`);
  return { seconds, accepted: r.counts.accepted };
}

/**
 * The baseline: the qcBatch workflow's activity sequence called directly, `concurrency` batches at a time
 * (the intake's maxConcurrentBatches), on the same lines staged to MinIO the same way.
 */
async function direct(cfg: Config, client: Client, store: ObjectStore, pool: Pool, projectId: string, file: string): Promise<{ seconds: number; accepted: number }> {
  await project(pool, projectId);
  const sessions = new SessionCache({ providers: ['cpu'], intraOpThreads: cfg.inference.intraOpThreads, maxSessions: 2, maxBytes: 1e9, log });
  const deps = { pool, store, log, tmpDir: os.tmpdir(), inferenceQueue: cfg.taskQueues.inference };
  const acts = createActivities({ ...deps, temporal: client, reviewQueue: cfg.taskQueues.review });
  const inf = inferenceActivities({ ...deps, sessions, batchSize: cfg.inference.batchSize });
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
  const t0 = process.hrtime.bigint();
  const batches: string[] = [];
  for (let i = 0; i < lines.length; i += BATCH) {
    const batchId = `direct-${String(i / BATCH).padStart(5, '0')}`;
    await putObject(store, stagingKey(projectId, batchId), Buffer.from(lines.slice(i, i + BATCH).join('\n') + '\n'), 'application/x-ndjson');
    batches.push(batchId);
  }
  let accepted = 0;
  const plan = await acts.pinLayer3Models({ project: projectId });
  const runBatch = async (batchId: string): Promise<void> => {
    const key = { project: projectId, batchId };
    const { malformedLines: _, ...staged } = await acts.stageBatch({ ...key, stagingKey: stagingKey(projectId, batchId), layer3: plan });
    await acts.runCompliance(key);
    await acts.runConsistency(key);
    if (plan) await inf.scorePlausibility({ ...key, plan });
    await acts.trackQualityDecay(key);
    const routed = await acts.fuseAndDispose(key);
    accepted += routed.counts.accepted;
    await acts.finishBatch({ ...key, counts: { ...staged, ...routed.counts } });
  };
  const queue = [...batches];
  await Promise.all(Array.from({ length: cfg.intake.maxConcurrentBatches }, async () => {
    for (let b = queue.shift(); b; b = queue.shift()) await runBatch(b);
  }));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await sessions.close();
  return { seconds, accepted };
}

/** This process's clients of a stack, with the fixture model registered there. */
export async function connect(cfg: Config, databaseUrl: string): Promise<{ pool: Pool; store: ObjectStore; client: Client; close(): Promise<void> }> {
  const pool = createPool(databaseUrl, 8);
  const store = createObjectStore(cfg.minio);
  const connection = await Connection.connect({ address: cfg.temporal.address });
  const m = bagOfWordsTextModel({ cues: CUES, maxLength: 32 });
  await registerModel(pool, store, { name: MODEL, version: '1', onnx: m.onnx, manifest: m.manifest, tokenizer: m.tokenizer }, 'bench');
  return {
    pool, store, client: new Client({ connection, namespace: cfg.temporal.namespace }),
    async close() {
      await connection.close();
      await pool.end();
    },
  };
}

export async function e2eBench(n: number): Promise<void> {
  const base = loadConfig();
  const out: Record<string, unknown> = { bench: 'e2e', samples: n, batchSize: BATCH, layer3: 'bag-of-words text (fixture)', cpus: os.cpus().length };
  const small = Math.min(20_000, n);
  const files = { small: small < n ? writeSamples(small, 's') : '', large: writeSamples(n, 'l') };

  // 1 + 2: the embedded stack, workers as processes, and the direct baseline in this process.
  {
    const stack = await startStack(base, log, { ephemeral: true });
    const members: ClusterMember[] = [];
    const { pool, store, client, close } = await connect(stack.cfg, stack.databaseUrl);
    try {
      await startQcflowProcesses(stack.cfg, stack.databaseUrl, [{ name: 'qc-cpu', role: 'cpu' }, { name: 'qc-inference', role: 'inference' }, { name: 'qc-review', role: 'review' }], log, (x) => members.push(x));
      const runs = small < n ? [['small', files.small, small], ['large', files.large, n]] as const : [['large', files.large, n]] as const;
      for (const [label, file, count] of runs) {
        const { result, peakRssMiB } = await withPeakRss(members, () => throughTemporal(stack.cfg, client, store, pool, `e2e-${label}`, file));
        const after = await settled(members);
        console.log(JSON.stringify({
          bench: 'e2e.embedded', samples: count, samplesPerSec: Math.round(count / result.seconds), seconds: +result.seconds.toFixed(1), accepted: result.accepted,
          batchLatencyMs: await batchLatency(pool, `e2e-${label}`), peakRssMiB, ...after,
        }));
        out[`embedded${label === 'small' ? 'Small' : ''}`] = { samplesPerSec: Math.round(count / result.seconds), peakRssMiB, rssAfterMiB: after.rssAfterMiB };
      }
      const d = await direct(stack.cfg, client, store, pool, 'e2e-direct', files.large);
      const samplesPerSec = Math.round(n / d.seconds);
      console.log(JSON.stringify({ bench: 'e2e.direct', samples: n, samplesPerSec, seconds: +d.seconds.toFixed(1), accepted: d.accepted, batchLatencyMs: await batchLatency(pool, 'e2e-direct'), process: 'this one (activities called directly)' }));
      out.direct = { samplesPerSec };
    } finally {
      await close();
      for (const m of members.reverse()) await m.proc.stop();
      await stack.stop();
    }
  }

  // 3: the production shape, two qc-cpu processes.
  {
    const cluster = await startCluster(base, log, { ephemeral: true });
    const { pool, store, client, close } = await connect(cluster.cfg, cluster.stack.databaseUrl);
    try {
      const workers = cluster.members.filter((x) => x.name.startsWith('qc-'));
      const { result, peakRssMiB } = await withPeakRss(workers, () => throughTemporal(cluster.cfg, client, store, pool, 'e2e-cluster', files.large));
      console.log(JSON.stringify({
        bench: 'e2e.cluster', samples: n, samplesPerSec: Math.round(n / result.seconds), seconds: +result.seconds.toFixed(1), accepted: result.accepted,
        batchLatencyMs: await batchLatency(pool, 'e2e-cluster'), peakRssMiB, ...(await settled(workers)), temporal: 'server 1.29.1 on Postgres', cpuWorkers: 2,
      }));
      out.cluster = { samplesPerSec: Math.round(n / result.seconds), peakRssMiB };
    } finally {
      await close();
      await cluster.stop();
    }
  }

  const embedded = out.embedded as { samplesPerSec: number; peakRssMiB: Record<string, number>; rssAfterMiB: Record<string, number> };
  const smallRun = (out.embeddedSmall ?? out.embedded) as { peakRssMiB: Record<string, number>; rssAfterMiB: Record<string, number> };
  const ratio = embedded.samplesPerSec / (out.direct as { samplesPerSec: number }).samplesPerSec;
  console.log(JSON.stringify({
    bench: 'e2e.summary', samples: n, samplesPerSec: embedded.samplesPerSec, baseline: 'the same activities called directly in one process', baselineSamplesPerSec: (out.direct as { samplesPerSec: number }).samplesPerSec,
    ratio: +ratio.toFixed(3), clusterSamplesPerSec: (out.cluster as { samplesPerSec: number }).samplesPerSec,
    cpuWorkerPeakRssMiB: { [`at${small / 1000}k`]: smallRun.peakRssMiB['qc-cpu'], [`at${n / 1000}k`]: embedded.peakRssMiB['qc-cpu'] },
    cpuWorkerRssAfterMiB: { [`at${small / 1000}k`]: smallRun.rssAfterMiB['qc-cpu'], [`at${n / 1000}k`]: embedded.rssAfterMiB['qc-cpu'] },
    targets: { samplesPerSec: 1000, ratio: 0.7 }, meetsTargets: { samplesPerSec: embedded.samplesPerSec >= 1000, ratio: ratio >= 0.7 },
  }));
}
