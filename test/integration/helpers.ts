import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import { ingestFile } from '../../src/cli/ingest';
import * as path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { loadConfig, type Config } from '../../src/clients/config';
import { getLogger } from '../../src/clients/logger';
import { createObjectStore, getObjectText, type ObjectStore } from '../../src/clients/minio';
import { createPool, type Pool } from '../../src/clients/pg';
import { startStack, type Stack } from '../../src/infra/stack';
import { validateProjectDefinition } from '../../src/projects/definition';
import type { Ontology } from '../../src/projects/ontology';
import type { RegexRule } from '../../src/qc/compliance';
import { upsertProject } from '../../src/store/projects';
import { startCpuWorker, type RunningWorker } from '../../workers/cpu';
import { installRuntime } from '../../workers/runtime';
import { startInferenceWorker, type RunningInferenceWorker } from '../../workers/inference';
import { startReviewWorker } from '../../workers/review';
import { startModelsWorker } from '../../workers/models';
import { startReviewServer, type RunningServer } from '../../src/http/start';
import type { Client } from '@temporalio/client';

export const REPO = path.resolve(__dirname, '..', '..');
export const uid = (): string => randomBytes(4).toString('hex');

export interface Harness {
  cfg: Config;
  pool: Pool;
  store: ObjectStore;
  client: Client;
  env: TestWorkflowEnvironment;
  worker?: RunningWorker;
  inference?: RunningInferenceWorker;
  review?: RunningWorker;
  models?: RunningWorker;
  server?: RunningServer;
  close(): Promise<void>;
}

/**
 * Connects to the stack scripts/test.sh started (or starts a throwaway one when a file is run alone),
 * on a task queue of this file's own so files never steal each other's tasks.
 */
export async function harness(opts: { worker: boolean; inference?: boolean; review?: boolean; models?: boolean; server?: boolean }): Promise<Harness> {
  let stack: Stack | undefined;
  let cfg = loadConfig();
  if (!process.env.QCFLOW_TEST_STACK) {
    stack = await startStack(cfg, getLogger(cfg, 'test'), { ephemeral: true });
    cfg = stack.cfg;
  }
  cfg = { ...cfg, taskQueues: { cpu: `qc-cpu-test-${uid()}`, inference: `qc-inference-test-${uid()}`, review: `qc-review-test-${uid()}`, models: `models-test-${uid()}` }, worker: { ...cfg.worker, shutdownGraceMs: 2000 },
    // Each file signs its own tokens; port 0 lets several servers coexist.
    http: { ...cfg.http, port: 0, jwtSecret: randomBytes(32).toString('hex') } };
  await installRuntime(cfg);
  const env = await TestWorkflowEnvironment.createFromExistingServer({ address: cfg.temporal.address, namespace: cfg.temporal.namespace });
  const pool = createPool(cfg.databaseUrl!, 4);
  const h: Harness = { cfg, pool, store: createObjectStore(cfg.minio), client: env.client, env, close: async () => undefined };
  if (opts.worker) h.worker = await startCpuWorker(cfg);
  if (opts.inference) h.inference = await startInferenceWorker(cfg);
  if (opts.review) h.review = await startReviewWorker(cfg);
  if (opts.models) h.models = await startModelsWorker(cfg);
  if (opts.server) h.server = await startReviewServer(cfg, getLogger(cfg, 'test'));
  h.close = async () => {
    await h.server?.close();
    await h.review?.shutdown();
    await h.models?.shutdown();
    await h.worker?.shutdown();
    await h.inference?.shutdown();
    await env.teardown();
    await pool.end();
    await stack?.stop();
  };
  return h;
}

export const DEMO_SCHEMA = {
  type: 'object',
  required: ['text', 'lang'],
  properties: {
    text: { type: 'string', minLength: 1, maxLength: 200 },
    lang: { enum: ['en', 'de'] },
    contact: { type: 'string', format: 'email' },
  },
};

/** A project on the demo schema; no audit share unless asked, so counts in tests are exact. */
export async function createTestProject(pool: Pool, id = `t-${uid()}`, extra: { ontology?: Ontology; qcPolicy?: Record<string, unknown>; regexRules?: RegexRule[] } = {}): Promise<string> {
  await upsertProject(pool, validateProjectDefinition({
    id,
    jsonSchema: DEMO_SCHEMA,
    regexRules: extra.regexRules ?? [{ name: 'no-ssn', pointer: '/payload/text', pattern: '\\d{3}-\\d{2}-\\d{4}', mode: 'forbid' }],
    ontology: extra.ontology,
    qcPolicy: { auditShare: 0, ...extra.qcPolicy },
  }), 'test');
  return id;
}

/** Writes `lines` to a JSONL file of its own and ingests it, waiting for every batch (what most tests do). */
export function ingestLines(to: { cfg: Config; client: Client; store: ObjectStore }, project: string, lines: string[], batchSize = 1000): ReturnType<typeof ingestFile> {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'qcflow-it-')), 'in.jsonl');
  writeFileSync(file, lines.join('\n') + '\n');
  return ingestFile(to.cfg, to.client, to.store, { project, file, batchSize, wait: true });
}

export function validLine(i: number, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    externalId: `s-${i}`,
    payload: { text: `sample number ${i}`, lang: 'en', ...extra },
    annotations: [{ annotator: 'ann-1', labels: { classes: ['cat'] } }, { annotator: 'ann-2', labels: { classes: ['cat'] } }],
  });
}

export async function readRelease(store: ObjectStore, project: string, version: string): Promise<{ manifest: Record<string, unknown>; jsonl: string; arrow: Buffer }> {
  const prefix = `releases/${project}/${version}`;
  const manifest = JSON.parse(await getObjectText(store, `${prefix}/manifest.json`)) as Record<string, unknown>;
  const jsonl = await getObjectText(store, `${prefix}/data.jsonl`);
  const chunks: Buffer[] = [];
  for await (const c of await store.client.getObject(store.bucket, `${prefix}/data.arrow`)) chunks.push(c as Buffer);
  return { manifest, jsonl, arrow: Buffer.concat(chunks) };
}

export async function waitUntil(what: string, fn: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}
