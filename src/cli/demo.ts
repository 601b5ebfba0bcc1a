import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Config } from '../clients/config';
import type { Logger } from '../clients/logger';
import { DEMO_CUES, generateDemoLines } from '../demo/dataset';
import { registerModel } from '../models/register';
import { bagOfWordsTextModel } from '../onnx/reference-models';
import { startStack, type Stack } from '../infra/stack';
import { stopOnSignal } from '../infra/process';
import { startCpuWorker, type RunningWorker } from '../../workers/cpu';
import { startInferenceWorker } from '../../workers/inference';
import { startReviewWorker } from '../../workers/review';
import { startModelsWorker } from '../../workers/models';
import { startReviewServer, type RunningServer } from '../http/start';
import { connectServices, createProject, formatCounts, ingest, release, status } from './commands';
import { CliError } from './input';
import { issueToken, resolveJwtSecret } from '../http/auth';
import { decidedCount, openTaskCount, reviewCoverage, setMember } from '../store/review';
import { ReviewApiClient } from './review';

const DEMO_DIR = path.resolve(__dirname, '..', '..', 'demo');

export interface StackWithWorkers {
  stack: Stack;
  server: RunningServer;
  stop(): Promise<void>;
}

/** Starts (or reuses) the embedded stack and runs the qc-cpu, qc-inference and qc-review workers and the review server in this process. */
export async function startDev(cfg: Config, log: Logger): Promise<StackWithWorkers> {
  const stack = await startStack(cfg, log);
  const workers: RunningWorker[] = [];
  let server: RunningServer | undefined;
  const stopWorkers = async (): Promise<void> => {
    await server?.close();
    for (const w of workers) await w.shutdown();
  };
  try {
    workers.push(await startCpuWorker(stack.cfg));
    workers.push(await startInferenceWorker(stack.cfg));
    workers.push(await startReviewWorker(stack.cfg));
    workers.push(await startModelsWorker(stack.cfg));
    server = await startReviewServer(stack.cfg, log);
  } catch (err) {
    await stopWorkers();
    await stack.stop();
    throw err;
  }
  return {
    stack,
    server,
    async stop() {
      await stopWorkers();
      await stack.stop();
    },
  };
}

/** Holds a foreground command (dev, cluster up, serve) until Ctrl-C or SIGTERM, then stops what it started. */
export async function waitForInterrupt(log: Logger, running: { stop(): Promise<void> }): Promise<void> {
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  log.info('stopping: workers drain first, then the services this command started');
  await running.stop();
}

/**
 * Shows the review loop: the first reviewer approves a few of their tasks through the JSON API (as the
 * CLI would), the humanReview workflows apply the decisions, and the rest wait for a person.
 */
async function demoReviews(dev: StackWithWorkers, project: string): Promise<void> {
  const secret = resolveJwtSecret(dev.stack.cfg);
  const reviewer = new ReviewApiClient(dev.server.url, issueToken(secret, { user: 'demo-reviewer', role: 'reviewer', ttlSeconds: 3600 }));
  const s = await connectServices(dev.stack.cfg);
  try {
    // The review workflows record their tasks moments after the batch ends.
    let deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const c = await reviewCoverage(s.pool, project);
      if (c.waiting === c.recorded) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const { tasks } = await reviewer.list({ project });
    const mine = tasks.filter((t) => t.assignee === 'demo-reviewer' && t.status === 'open').slice(0, 3);
    for (const t of mine) await reviewer.decide(t.id, { decision: 'approve', comment: 'approved by the demo' });
    deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (await decidedCount(s.pool, mine.map((t) => t.id)) === mine.length) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    process.stdout.write(`review: demo-reviewer approved ${mine.length} task(s) through the API; ${await openTaskCount(s.pool, project)} wait for a reviewer\n`);
    process.stdout.write(`  web page: ${dev.server.url}  (token: qcflow token issue --user demo-reviewer --role reviewer)\n`);
    process.stdout.write('  CLI:      QCFLOW_TOKEN=$(npm run -s qcflow -- token issue --user demo-reviewer --role reviewer) npm run -s qcflow -- review list\n');
  } finally {
    await s.close();
  }
}

/** The main job end to end: project → ingest a generated dataset with defects → QC → release → summary. */
export async function runDemo(cfg: Config, log: Logger, o: { keep: boolean; samples: number }): Promise<void> {
  const dev = await startDev(cfg, log);
  const releaseSignals = stopOnSignal(() => dev.stop(), log);
  const s = await connectServices(dev.stack.cfg);
  try {
    const project = 'demo';
    // The demo's layer-3 model: a bag-of-words sentiment classifier built on the words the texts are drawn from.
    const model = bagOfWordsTextModel({ cues: { positive: [...DEMO_CUES.positive], negative: [...DEMO_CUES.negative], neutral: [...DEMO_CUES.neutral] } });
    await registerModel(s.pool, s.store, { name: 'demo-sentiment', version: '1', onnx: model.onnx, manifest: model.manifest, tokenizer: model.tokenizer }, 'demo');
    await createProject(s, {
      name: project, schema: path.join(DEMO_DIR, 'schema.json'), rules: path.join(DEMO_DIR, 'rules.json'), ontology: path.join(DEMO_DIR, 'ontology.json'),
      policy: path.join(DEMO_DIR, 'policy.json'),
    });
    // Reviewers of the demo project: review tasks are assigned round-robin between them.
    for (const user of ['demo-reviewer', 'demo-reviewer-2']) await setMember(s.pool, { project, user, role: 'reviewer' }, 'demo');
    await setMember(s.pool, { project, user: 'demo-lead', role: 'lead' }, 'demo');
    const file = path.join(dev.stack.cfg.stateDir, 'demo', 'reviews.jsonl');
    mkdirSync(path.dirname(file), { recursive: true });
    const lines = generateDemoLines(o.samples);
    writeFileSync(file, lines.map((l) => l.line).join('\n') + '\n');
    const defects = lines.filter((l) => l.defect).length;
    const conflicts = lines.filter((l) => l.conflict).length;
    const mislabeled = lines.filter((l) => l.mislabeled).length;
    process.stdout.write(`demo dataset: ${lines.length} lines (${defects} with injected defects, ${conflicts} with annotator conflicts, ${mislabeled} unanimously mislabelled, ann-3 rushing in the last third, resubmissions included) → ${file}\n`);
    const result = await ingest(s, { project, file, batchSize: 1000, wait: true, progress: true });
    process.stdout.write(`ingested: ${formatCounts({ ...result.counts })}\n`);
    if (result.failedBatches.length) throw new CliError(`batches failed: ${result.failedBatches.join(', ')}`);
    await demoReviews(dev, project);
    try {
      const rel = await release(s, { project });
      process.stdout.write(`release ${rel.version}: ${rel.sampleCount} samples\n`);
      for (const f of Object.values(rel.files)) process.stdout.write(`  s3://${cfg.minio.bucket}/${f.key}  ${f.bytes} bytes  sha256 ${f.sha256}\n`);
    } catch (err) {
      // Re-running the demo on the same state re-submits the same file: every sample is a duplicate.
      if (!(err instanceof CliError) || !/no accepted, unreleased samples/.test(err.message)) throw err;
      process.stdout.write('nothing new to release (the demo data was already ingested and released on this state dir)\n');
    }
    process.stdout.write(`\n${await status(s, project)}\n\nTemporal UI: ${dev.stack.uiUrl}  (filter: QcProject="${project}")\n`);
  } catch (err) {
    releaseSignals();
    await s.close();
    await dev.stop();
    throw err;
  }
  await s.close();
  releaseSignals();
  if (o.keep) {
    process.stdout.write('stack and worker keep running (--keep); press Ctrl-C to stop\n');
    await waitForInterrupt(log, dev);
  } else {
    await dev.stop();
  }
}
