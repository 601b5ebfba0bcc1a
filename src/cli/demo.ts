import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Config } from '../clients/config';
import type { Logger } from '../clients/logger';
import { DEMO_CUES, generateDemoLines } from '../demo/dataset';
import { registerModel } from '../models/register';
import { bagOfWordsTextModel } from '../onnx/reference-models';
import { startStack, type Stack } from '../infra/stack';
import { startCpuWorker, type RunningWorker } from '../../workers/cpu';
import { startInferenceWorker } from '../../workers/inference';
import { connectServices, createProject, formatCounts, ingest, release, status, CliError } from './commands';

const DEMO_DIR = path.resolve(__dirname, '..', '..', 'demo');

export interface StackWithWorkers {
  stack: Stack;
  stop(): Promise<void>;
}

/** Starts (or reuses) the embedded stack and runs a qc-cpu and a qc-inference worker in this process. */
export async function startDev(cfg: Config, log: Logger): Promise<StackWithWorkers> {
  const stack = await startStack(cfg, log);
  const workers: RunningWorker[] = [];
  const stopWorkers = async (): Promise<void> => {
    for (const w of workers) await w.shutdown();
  };
  try {
    workers.push(await startCpuWorker(stack.cfg));
    workers.push(await startInferenceWorker(stack.cfg));
  } catch (err) {
    await stopWorkers();
    await stack.stop();
    throw err;
  }
  return {
    stack,
    async stop() {
      await stopWorkers();
      await stack.stop();
    },
  };
}

export async function waitForInterrupt(log: Logger, dev: StackWithWorkers): Promise<void> {
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  log.info('stopping: draining workers, then the services this process started');
  await dev.stop();
}

/** The main job end to end: project → ingest a generated dataset with defects → QC → release → summary. */
export async function runDemo(cfg: Config, log: Logger, o: { keep: boolean; samples: number }): Promise<void> {
  const dev = await startDev(cfg, log);
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
    await s.close();
    await dev.stop();
    throw err;
  }
  await s.close();
  if (o.keep) {
    process.stdout.write('stack and worker keep running (--keep); press Ctrl-C to stop\n');
    await waitForInterrupt(log, dev);
  } else {
    await dev.stop();
  }
}
