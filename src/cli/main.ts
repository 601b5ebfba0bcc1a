import { Command, InvalidArgumentError } from 'commander';
import { ConfigError, loadConfig, embeddedDatabaseUrl, type Config } from '../clients/config';
import { getLogger } from '../clients/logger';
import { MissingToolError } from '../infra/binaries';
import { ProjectSpecError } from '../qc/compliance';
import { CliError, connectServices, createProject, formatCounts, formatResamples, ingest, release, resamples, status, type Services } from './commands';
import { runDemo, startDev, waitForInterrupt } from './demo';
import { registerModelFiles } from '../models/register';
import { listModelVersions } from '../store/models';

function config(): Config {
  const cfg = loadConfig();
  // Commands reach the embedded stack by default, exactly where `qcflow dev` starts it.
  return cfg.databaseUrl ? cfg : { ...cfg, databaseUrl: embeddedDatabaseUrl(cfg) };
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

async function withServices<T>(fn: (s: Services) => Promise<T>): Promise<T> {
  const s = await connectServices(config());
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

const program = new Command('qcflow').description('Data-QC and model-release pipeline on Temporal').showHelpAfterError();

program.command('dev').description('start the embedded stack (Temporal dev server + UI, MinIO, Postgres) with a qc-cpu and a qc-inference worker; Ctrl-C stops')
  .action(async () => {
    const cfg = loadConfig();
    const log = getLogger(cfg, 'cli');
    const dev = await startDev(cfg, log);
    process.stdout.write(`qcflow dev stack is up\n  Temporal UI: ${dev.stack.uiUrl}\n  Temporal:    ${dev.stack.cfg.temporal.address}\n  MinIO:       http://${dev.stack.cfg.minio.endPoint}:${dev.stack.cfg.minio.port} (console :${dev.stack.cfg.minio.consolePort})\n  Postgres:    ${dev.stack.databaseUrl}\npress Ctrl-C to stop\n`);
    await waitForInterrupt(log, dev);
  });

program.command('demo').description('run the main job end to end on the embedded stack and print a release summary')
  .option('--keep', 'leave the stack and worker running afterwards', false)
  .option('--samples <n>', 'number of generated samples', positiveInt, 3000)
  .action(async (o: { keep: boolean; samples: number }) => {
    const cfg = loadConfig();
    await runDemo(cfg, getLogger(cfg, 'demo'), o);
  });

const project = program.command('project').description('manage projects');
project.command('create').description('create or update a project from a JSON Schema (and optional rules, ontology, policy)')
  .requiredOption('--name <id>', 'project id (lower-case letters, digits, - and _)')
  .requiredOption('--schema <file>', 'JSON Schema (draft 2020-12) for sample payloads')
  .option('--rules <file>', 'regex rules: [{name, pointer, pattern, mode?, message?}]')
  .option('--ontology <file>', 'ontology: {classes, exclusive, attributes, multiLabel, entities}')
  .option('--policy <file>', 'QC policy overrides (thresholds, weights, audit share, plugins, webhook; see README)')
  .action((o: { name: string; schema: string; rules?: string; ontology?: string; policy?: string }) =>
    withServices(async (s) => {
      await createProject(s, o);
      process.stdout.write(`project ${o.name} saved\n`);
    }));

program.command('ingest').description('stage a JSONL file in MinIO and submit it to the project intake workflow')
  .requiredOption('--project <id>', 'project id')
  .argument('<file>', 'JSONL file, one sample per line')
  .option('--batch-size <n>', 'lines per qcBatch', positiveInt, 1000)
  .option('--no-wait', 'return once submitted instead of waiting for QC')
  .action((file: string, o: { project: string; batchSize: number; wait: boolean }) =>
    withServices(async (s) => {
      const r = await ingest(s, { project: o.project, file, batchSize: o.batchSize, wait: o.wait, progress: true });
      process.stdout.write(`${r.batches.length} batch(es) submitted${o.wait ? `: ${formatCounts({ ...r.counts })}` : ''}\n`);
      if (r.failedBatches.length) throw new CliError(`batches failed: ${r.failedBatches.join(', ')}; see the Temporal UI for the error`);
    }));

program.command('release').description('release accepted, unreleased samples as JSONL + Arrow + manifest in MinIO')
  .requiredOption('--project <id>', 'project id')
  .option('--version <v>', 'release version (default: next vN)')
  .action((o: { project: string; version?: string }) =>
    withServices(async (s) => {
      const r = await release(s, o);
      process.stdout.write(`release ${r.project}/${r.version}: ${r.sampleCount} samples\n`);
      for (const f of Object.values(r.files)) process.stdout.write(`  ${f.key}  ${f.bytes} bytes  sha256 ${f.sha256}\n`);
    }));

program.command('status').description('per-project sample counts, intake progress and releases')
  .option('--project <id>', 'only this project')
  .action((o: { project?: string }) =>
    withServices(async (s) => {
      process.stdout.write(`${await status(s, o.project)}\n`);
    }));

program.command('resamples').description('list resample requests (samples whose fused confidence fell below the review threshold)')
  .requiredOption('--project <id>', 'project id')
  .option('--batch <id>', 'only this batch')
  .option('--limit <n>', 'newest N requests', positiveInt, 50)
  .option('--json', 'print JSON instead of a table', false)
  .action((o: { project: string; batch?: string; limit: number; json: boolean }) =>
    withServices(async (s) => {
      const r = await resamples(s, o);
      process.stdout.write(`${o.json ? JSON.stringify(r, null, 2) : formatResamples(r)}\n`);
    }));

const model = program.command('model').description('layer-3 model versions (ONNX files in MinIO with their sha256)');
model.command('register').description('upload an ONNX model (and its tokenizer.json) and register it as a version')
  .requiredOption('--name <name>', 'model name, referenced from a project policy as layer3.models')
  .requiredOption('--version <v>', 'version; the same name and version with a different file is refused')
  .requiredOption('--file <model.onnx>', 'the ONNX file')
  .requiredOption('--manifest <manifest.json>', '{labels: [...], output?, adapter: {kind: text|image|features, ...}} (see README)')
  .option('--tokenizer <tokenizer.json>', 'Hugging Face tokenizer.json, for text models')
  .option('--tenant <t>', 'tenant', 'default')
  .action((o: { name: string; version: string; file: string; manifest: string; tokenizer?: string; tenant: string }) =>
    withServices(async (s) => {
      const v = await registerModelFiles(s.pool, s.store, o, { tenant: o.tenant, name: o.name, version: o.version }, 'cli').catch((err: Error) => { throw new CliError(err.message); });
      process.stdout.write(`registered ${v.id}  sha256 ${v.sha256}  ${v.bytes} bytes  s3://${s.cfg.minio.bucket}/${v.objectKey}\n`);
    }));
model.command('list').description('registered model versions')
  .option('--name <name>', 'only this model')
  .action((o: { name?: string }) =>
    withServices(async (s) => {
      const rows = await listModelVersions(s.pool, { name: o.name });
      if (rows.length === 0) process.stdout.write('no models registered: qcflow model register --name NAME --version V --file model.onnx --manifest manifest.json\n');
      for (const v of rows) process.stdout.write(`${v.id}\t${v.status}\t${v.precision}\t${v.manifest.adapter.kind}\t${v.manifest.labels.length} labels\t${v.sha256.slice(0, 12)}\t${v.createdAt.toISOString()}\n`);
    }));

program.parseAsync(process.argv).then(
  () => process.exit(0),
  (err: unknown) => {
    const known = err instanceof CliError || err instanceof ConfigError || err instanceof MissingToolError || err instanceof ProjectSpecError;
    process.stderr.write(`qcflow: ${known ? (err as Error).message : (err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
