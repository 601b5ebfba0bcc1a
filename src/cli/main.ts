import { Command, InvalidArgumentError } from 'commander';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { ConfigError, loadConfig, databaseUrlOf, type Config } from '../clients/config';
import { getLogger } from '../clients/logger';
import { MissingToolError } from '../infra/binaries';
import { CliError, readJsonFile } from './input';
import { formatPrecision, formatTask, formatTasks, ReviewApiClient } from './review';
import type { Services } from './commands';
import type { ModelRegistryService } from '../models/registry-service';
import type { Actor } from '../review/decisions';
import { isStage, STAGES, type Stage } from '../models/lifecycle';
import { AuthError, issueToken, parseModelRole, parseRole, resolveJwtSecret, USER_ID } from '../http/auth';
import { OnnxFormatError } from '../onnx/proto';
import { TensorDataError } from '../onnx/tensor';
import { METHODS, NOT_CALIBRATED, QuantizeError, RECURRENT_OPS, type Method } from '../quantize/types';
import type { CalibrationOptions } from '../quantize/calibrate';
import type { SensitivityReport } from '../quantize/sensitivity';

/*
 * Each command imports the modules that do its work when it runs (`await import`), not at start: all of
 * qcflow takes 2 s to load here and 16 s on an emulated CPU, where `model quantize` and `model evaluate`
 * need a fifth of it. What is imported above is light: option parsing, the error handler, the review
 * server's HTTP client.
 */

function config(): Config {
  const cfg = loadConfig();
  // Commands reach the embedded stack by default, exactly where `qcflow dev` starts it.
  return { ...cfg, databaseUrl: databaseUrlOf(cfg) };
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

async function withServices<T>(fn: (s: Services) => Promise<T>): Promise<T> {
  const { connectServices } = await import('./commands');
  const s = await connectServices(config());
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

const program = new Command('qcflow').description('Data-QC and model-release pipeline on Temporal').showHelpAfterError();

program.command('dev').description('start the embedded stack (Temporal dev server + UI, MinIO, Postgres) with qc-cpu, qc-inference and qc-review workers and the review server; Ctrl-C stops')
  .action(async () => {
    const cfg = loadConfig();
    const log = getLogger(cfg, 'cli');
    const { startDev, waitForInterrupt } = await import('./demo');
    const dev = await startDev(cfg, log);
    process.stdout.write(`qcflow dev stack is up\n  Temporal UI: ${dev.stack.uiUrl}\n  Temporal:    ${dev.stack.cfg.temporal.address}\n  MinIO:       http://${dev.stack.cfg.minio.endPoint}:${dev.stack.cfg.minio.port} (console :${dev.stack.cfg.minio.consolePort})\n  Postgres:    ${dev.stack.databaseUrl}\n  Review:      ${dev.server.url}  (sign in with a token from: qcflow token issue --user <you> --role reviewer)\npress Ctrl-C to stop\n`);
    await waitForInterrupt(log, dev);
  });

const cluster = program.command('cluster').description('qcflow as in production, on this machine: the real Temporal server on Postgres, its UI, and every worker as its own process');
cluster.command('up').description('start the Temporal server (Postgres), UI, MinIO, Postgres, N qc-cpu workers, qc-inference, qc-review, models and the review server; Ctrl-C or `cluster down` stops')
  .option('--cpu-workers <n>', 'qc-cpu worker processes', positiveInt, 2)
  .action(async (o: { cpuWorkers: number }) => {
    const cfg = loadConfig();
    const { clusterUp } = await import('./cluster');
    await clusterUp(cfg, getLogger(cfg, 'cluster'), o.cpuWorkers);
  });
cluster.command('down').description('stop the running cluster (workers drain first)').action(async () => {
  const { clusterDown } = await import('./cluster');
  process.stdout.write(await clusterDown(loadConfig()));
});
cluster.command('status').description('where each process of the running cluster answers, and its /health').action(async () => {
  const { clusterStatus } = await import('./cluster');
  process.stdout.write(await clusterStatus(loadConfig()));
});

program.command('demo').description('run the main job end to end on the embedded stack and print a release summary')
  .option('--keep', 'leave the stack and worker running afterwards', false)
  .option('--samples <n>', 'number of generated samples', positiveInt, 3000)
  .action(async (o: { keep: boolean; samples: number }) => {
    const cfg = loadConfig();
    const { runDemo } = await import('./demo');
    await runDemo(cfg, getLogger(cfg, 'demo'), o);
  });

const project = program.command('project').description('manage projects');
project.command('create').description('create or update a project from a JSON Schema (and optional rules, ontology, policy)')
  .requiredOption('--name <id>', 'project id (lower-case letters, digits, - and _)')
  .requiredOption('--schema <file>', 'JSON Schema (draft 2020-12) for sample payloads')
  .option('--rules <file>', 'regex rules: [{name, pointer, pattern, mode?, message?}]')
  .option('--ontology <file>', 'ontology: {classes, exclusive, attributes, multiLabel, entities}')
  .option('--policy <file>', 'QC policy overrides (thresholds, weights, audit share, plugins, webhook; see docs/pipeline.md)')
  .action((o: { name: string; schema: string; rules?: string; ontology?: string; policy?: string }) =>
    withServices(async (s) => {
      const { createProject } = await import('./commands');
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
      const { formatCounts, ingest } = await import('./commands');
      const r = await ingest(s, { project: o.project, file, batchSize: o.batchSize, wait: o.wait, progress: true });
      process.stdout.write(`${r.batches.length} batch(es) submitted${o.wait ? `: ${formatCounts({ ...r.counts })}` : ''}\n`);
      if (r.failedBatches.length) throw new CliError(`batches failed: ${r.failedBatches.join(', ')}; see the Temporal UI for the error`);
    }));

program.command('release').description('release accepted, unreleased samples as JSONL + Arrow + manifest in MinIO')
  .requiredOption('--project <id>', 'project id')
  .option('--version <v>', 'release version (default: next vN)')
  .action((o: { project: string; version?: string }) =>
    withServices(async (s) => {
      const { release } = await import('./commands');
      const r = await release(s, o);
      process.stdout.write(`release ${r.project}/${r.version}: ${r.sampleCount} samples\n`);
      for (const f of Object.values(r.files)) process.stdout.write(`  ${f.key}  ${f.bytes} bytes  sha256 ${f.sha256}\n`);
    }));

program.command('status').description('per-project sample counts, intake progress and releases')
  .option('--project <id>', 'only this project')
  .action((o: { project?: string }) =>
    withServices(async (s) => {
      const { status } = await import('./commands');
      process.stdout.write(`${await status(s, o.project)}\n`);
    }));

program.command('resamples').description('list resample requests (samples whose fused confidence fell below the review threshold)')
  .requiredOption('--project <id>', 'project id')
  .option('--batch <id>', 'only this batch')
  .option('--limit <n>', 'newest N requests', positiveInt, 50)
  .option('--json', 'print JSON instead of a table', false)
  .action((o: { project: string; batch?: string; limit: number; json: boolean }) =>
    withServices(async (s) => {
      const { formatResamples, resamples } = await import('./commands');
      const r = await resamples(s, o);
      process.stdout.write(`${o.json ? JSON.stringify(r, null, 2) : formatResamples(r)}\n`);
    }));

const model = program.command('model').description('layer-3 model versions (ONNX files in MinIO with their sha256)');
model.command('register').description('upload an ONNX model (and its tokenizer.json) and register it as a version')
  .requiredOption('--name <name>', 'model name, referenced from a project policy as layer3.models')
  .requiredOption('--version <v>', 'version; the same name and version with a different file is refused')
  .requiredOption('--file <model.onnx>', 'the ONNX file')
  .requiredOption('--manifest <manifest.json>', '{labels: [...], output?, adapter: {kind: text|image|features, ...}} (see docs/pipeline.md, layer 3)')
  .option('--tokenizer <tokenizer.json>', 'Hugging Face tokenizer.json, for text models')
  .option('--golden <golden.jsonl>', 'golden inputs kept with the version (needed by the quantization workflow)')
  .option('--calibration <file>', 'calibration inputs apart from the golden ones, JSONL (golden format) or Arrow IPC (list<float32> column per input): the quantization workflow fits int8-static ranges and int4 GPTQ to them instead of to the golden inputs that judge')
  .option('--metadata <metadata.json>', 'what the tenant records about the version (a JSON object), checked against its metadata schema')
  .option('--tenant <t>', 'tenant', 'default')
  .action((o: { name: string; version: string; file: string; manifest: string; tokenizer?: string; golden?: string; calibration?: string; metadata?: string; tenant: string }) =>
    registryCommand(async (s, registry, actor) => {
      registry.mayPublish(actor, o.tenant);
      const { registerModelFiles } = await import('../models/register');
      const v = await registerModelFiles(s.pool, s.store, o, { tenant: o.tenant, name: o.name, version: o.version }, actor.user).catch((err: Error) => { throw new CliError(err.message); });
      process.stdout.write(`registered ${v.id}  sha256 ${v.sha256}  ${v.bytes} bytes  s3://${s.cfg.minio.bucket}/${v.objectKey}\n`);
    }));
model.command('list').description('registered model versions')
  .option('--name <name>', 'only this model').option('--tenant <tenant>', 'only this tenant')
  .option('--stage <stage>', `only this stage (${STAGES.join(', ')})`, (v) => stageOf(v)).option('--alias <alias>', 'only the version an alias names (production, candidate, …)')
  .action((o: { name?: string; tenant?: string; stage?: Stage; alias?: string }) =>
    registryCommand(async (_s, registry, actor) => {
      const rows = await registry.list(actor, o);
      if (rows.length === 0) process.stdout.write('no model versions match: qcflow model register --name NAME --version V --file model.onnx --manifest manifest.json\n');
      for (const v of rows) process.stdout.write(`${v.id}\t${v.stage}\t${v.status}\t${v.precision}\t${v.manifest.adapter.kind}\t${v.manifest.labels.length} labels\t${v.sha256.slice(0, 12)}\t${v.createdAt.toISOString()}\n`);
    }));

function stageOf(v: string): Stage {
  if (!isStage(v)) throw new InvalidArgumentError(`must be one of ${STAGES.join(', ')}`);
  return v;
}

/**
 * A registry command runs as the registry's API would for the same principal (cliRegistryActor): another
 * tenant's models are not found, roles limit what moves. A refusal becomes the CLI's error, fields named.
 */
const registryCommand = (fn: (s: Services, registry: ModelRegistryService, actor: Actor) => Promise<void>) => withServices(async (s) => {
  const [{ cliRegistryActor }, { ModelRegistryService, RegistryError }] = await Promise.all([import('./commands'), import('../models/registry-service')]);
  const actor = cliRegistryActor(s.cfg);
  try {
    await fn(s, new ModelRegistryService(s.pool), actor);
  } catch (err) {
    if (err instanceof RegistryError) throw new CliError(`${err.message}${err.status === 404 && actor.tenant ? ` (QCFLOW_TOKEN limits this CLI to tenant ${actor.tenant})` : ''}`);
    throw err;
  }
});

model.command('show').description('a version with its stage, aliases of its model and its lifecycle events, as JSON')
  .argument('<id>', 'tenant/name/version')
  .action((id: string) => registryCommand(async (_s, registry, actor) => {
    process.stdout.write(`${JSON.stringify(await registry.show(actor, id), null, 2)}\n`);
  }));
model.command('promote').description('move a version to its next stage (registered → validated → canary → production; production moves the production alias)')
  .argument('<id>', 'tenant/name/version').requiredOption('--to <stage>', STAGES.join(', '), (v) => stageOf(v)).requiredOption('--reason <text>', 'why, for the event log')
  .action((id: string, o: { to: Stage; reason: string }) => registryCommand(async (_s, registry, actor) => {
    const r = await registry.moveStage(actor, id, o.to, o.reason);
    process.stdout.write(`${id}: ${r.from} → ${r.to}\n`);
  }));
model.command('archive').description('archive a version (its aliases are removed; nothing returns from archived)')
  .argument('<id>', 'tenant/name/version').requiredOption('--reason <text>', 'why, for the event log')
  .action((id: string, o: { reason: string }) => registryCommand(async (_s, registry, actor) => {
    const r = await registry.moveStage(actor, id, 'archived', o.reason);
    process.stdout.write(`${id}: ${r.from} → archived\n`);
  }));
model.command('alias').description('point an alias of the version\'s model at it (moves atomically)')
  .argument('<id>', 'tenant/name/version').requiredOption('--alias <alias>', 'production, candidate, or any name').requiredOption('--reason <text>', 'why, for the event log')
  .action((id: string, o: { alias: string; reason: string }) => registryCommand(async (_s, registry, actor) => {
    await registry.setAlias(actor, id, o.alias, o.reason);
    process.stdout.write(`${o.alias} → ${id}\n`);
  }));
model.command('metadata').description('replace a version\'s metadata (checked against its tenant\'s metadata schema; recorded as a model event)')
  .argument('<id>', 'tenant/name/version').requiredOption('--file <metadata.json>', 'a JSON object').requiredOption('--reason <text>', 'why, for the event log')
  .action((id: string, o: { file: string; reason: string }) => registryCommand(async (_s, registry, actor) => {
    await registry.setMetadata(actor, id, readJsonFile(o.file, 'metadata'), o.reason);
    process.stdout.write(`${id}: metadata replaced\n`);
  }));
const schema = model.command('schema').description('the JSON Schema (draft 2020-12) a tenant requires of its versions\' metadata');
schema.command('show').requiredOption('--tenant <t>', 'tenant')
  .action((o: { tenant: string }) => registryCommand(async (_s, registry, actor) => {
    const r = await registry.metadataSchema(actor, o.tenant);
    process.stdout.write(r.schema ? `${JSON.stringify(r.schema, null, 2)}\n` : `tenant ${o.tenant} has no metadata schema: any JSON object is taken (set one with qcflow model schema set --tenant ${o.tenant} --file schema.json)\n`);
  }));
schema.command('set').description('set the tenant\'s schema (admin); versions already registered keep their metadata, and those that do not fit are listed')
  .requiredOption('--tenant <t>', 'tenant').option('--file <schema.json>', 'a JSON Schema with "type": "object"').option('--remove', 'remove the schema: any object is taken again', false)
  .action((o: { tenant: string; file?: string; remove: boolean }) => registryCommand(async (_s, registry, actor) => {
    if (!o.file === !o.remove) throw new CliError('give either --file schema.json or --remove');
    const r = await registry.setMetadataSchema(actor, o.tenant, o.file ? readJsonFile(o.file, 'schema') as Record<string, unknown> : null);
    process.stdout.write(`tenant ${o.tenant}: metadata schema ${o.file ? 'set' : 'removed'}\n`);
    if (r.nonConforming.length) process.stdout.write(`${r.nonConforming.length} registered version(s) do not fit it (fix with qcflow model metadata ID --file …): ${r.nonConforming.join(', ')}\n`);
  }));
model.command('rollout').description('start the modelRollout workflow: ramp a validated candidate against a project\'s control through its layer-3 flag; promote or roll back on its own')
  .argument('<candidate>', 'candidate version id, tenant/name/version').requiredOption('--project <id>', 'project whose qcPolicy.layer3.rollout.flag splits the samples')
  .option('--steps <shares>', 'candidate shares, ending at 1', (v) => v.split(',').map(Number), [0.05, 0.25, 0.5, 1])
  .option('--min-per-arm <n>', 'outcomes each arm needs before a verdict', positiveInt, 200)
  .option('--margin <m>', 'how far below the control the candidate may be (agreement)', Number, 0.01)
  .action((candidate: string, o: { project: string; steps: number[]; minPerArm: number; margin: number }) => registryCommand(async (s, registry, actor) => {
    // The rollout ends by moving production: whoever starts it must be allowed to.
    registry.mayPromote(actor, (await registry.show(actor, candidate)).tenant, candidate);
    const [{ getProject }, { resolvePolicy }, { modelRollout }, { workflowIds }, { rolloutMetadata }] = await Promise.all([
      import('../store/projects'), import('../qc/policy'), import('../../workflows'), import('../../workflows/definitions'), import('../../workflows/metadata'),
    ]);
    const project = await getProject(s.pool, o.project);
    const flag = project && resolvePolicy(project.qcPolicy).layer3.rollout?.flag;
    if (!flag) throw new CliError(`project ${o.project} has no layer-3 rollout flag: set qcPolicy.layer3.rollout.flag first`);
    const workflowId = workflowIds.rollout(candidate);
    await s.client.workflow.start(modelRollout, {
      workflowId, taskQueue: s.cfg.taskQueues.cpu, args: [{ project: o.project, flag, candidate, steps: o.steps, minPerArm: o.minPerArm, margin: o.margin }],
      ...rolloutMetadata(o.project, candidate, flag),
    });
    process.stdout.write(`started ${workflowId}: watch it with qcflow model rollout-status --project ${o.project} or in the Temporal UI (query rolloutState)\n`);
  }));
model.command('rollout-status').description('a project\'s gray release: per-arm layer-3 outcomes, the sample-ratio check and the sequential verdict (promote / rollback / continue)')
  .requiredOption('--project <id>', 'project id').option('--json', 'print JSON', false)
  .action((o: { project: string; json: boolean }) => withServices(async (s) => {
    const [{ getProject }, { resolvePolicy }, { rolloutStatus }] = await Promise.all([import('../store/projects'), import('../qc/policy'), import('../store/rollout')]);
    const project = await getProject(s.pool, o.project);
    if (!project) throw new CliError(`project ${o.project} does not exist`);
    const flag = resolvePolicy(project.qcPolicy).layer3.rollout?.flag;
    if (!flag) throw new CliError(`project ${o.project} has no gray release: set qcPolicy.layer3.rollout.flag`);
    const r = await rolloutStatus(s.pool, o.project, flag);
    if (o.json) return void process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    const pct = (k: number, n: number): string => (n ? `${((k / n) * 100).toFixed(1)}%` : '–');
    for (const a of r.arms) {
      process.stdout.write(`${a.variant}\t${a.models.join('+')}\tjudged ${a.n}\tagreed ${pct(a.agreed, a.n)}\tfailed ${a.failed}\treviewed ${a.reviewed}\toverturned ${pct(a.overturned, a.reviewed)}\tp95 ${a.latencyP95Ms === null ? '–' : `${a.latencyP95Ms.toFixed(3)} ms`} per sample\n`);
    }
    process.stdout.write(`sample ratio: ${r.srm ? `p ${r.srm.p.toExponential(2)}${r.srm.p < 0.001 ? ' — MISMATCH: the split is broken; hold the rollout' : ''}` : 'n/a'}\n`);
    process.stdout.write(`verdict: ${r.verdict ? `${r.verdict.decision} (${r.verdict.why})` : 'needs a control and a candidate arm with outcomes'}\n`);
  }));
model.command('lineage').description('ancestors and descendants of a version (quantized from, fine-tuned from) and the projects and releases it scored, as JSON')
  .argument('<id>', 'tenant/name/version')
  .action((id: string) => registryCommand(async (_s, registry, actor) => {
    process.stdout.write(`${JSON.stringify(await registry.lineage(actor, id), null, 2)}\n`);
  }));

const list = (v: string): string[] => v.split(',').map((x) => x.trim()).filter(Boolean);

/** A quantized model this much slower than fp32 on a calibration sample is worth a note (timing noise stays under it). */
const SLOWER = 1.2;

model.command('quantize').description('quantize an ONNX file locally (no server): int8-dynamic, int8-static (with --calibration), fp16 or int4; prints the report as JSON')
  .requiredOption('--input <m.onnx>', 'fp32 model (external data beside it is read, never outside its folder)')
  .requiredOption('--method <method>', 'int8-dynamic | int8-static | fp16 | int4', (v) => {
    if (!(METHODS as readonly string[]).includes(v)) throw new InvalidArgumentError(`must be one of ${METHODS.join(', ')}`);
    return v as Method;
  })
  .requiredOption('--output <out.onnx>', 'where to write the quantized model')
  .option('--block-size <n>', 'int4 block size along K (16…256, power of two)', positiveInt, 32)
  .option('--int4-conv', 'int4: Conv and ConvTranspose weights in 4-bit blocks too (raises the model to opset 21); default 8-bit weight-only', false)
  .option('--int4-recurrent', 'int4: LSTM, GRU and RNN weights, and MatMul/Gemm weights inside Loop or Scan bodies, in 4 bits too (LSTMs raise the model to opset 21); default 8 bits, as an error in them recurs at every time step', false)
  .option('--int4-head', 'int4: output layers in 4 bits too; default small or tied ones keep 8 bits', false)
  .option('--asymmetric', 'store zero points (int4 per block; int8 weights per channel)', false)
  .option('--per-tensor', 'one scale per weight tensor instead of per output channel (int8)', false)
  .option('--full-range', 'int8: 8-bit weights for integer kernels (default 7-bit, so the output is the same on CPUs without VNNI); only for targets with VNNI or ARM dot products', false)
  .option('--exclude-nodes <names>', 'comma-separated node names kept in fp32', list, [])
  .option('--exclude-ops <ops>', 'comma-separated op types kept in fp32 (fp16: the op block list)', list, [])
  .option('--drop-node-metadata', 'drop the nodes\' metadata_props (torch.export\'s stack traces and FX nodes, often a fifth of its files); kept by default', false)
  .option('--compact-names', 'rename every value and node but the graph\'s inputs and outputs to short ids (exporters\' module-path names are a third of a small int4 transformer\'s file); keep the original to debug with', false)
  .option('--external-data <mode>', 'auto (only past 2 GB), always, never', 'auto')
  .option('--calibration <file>', 'int8-static: calibration samples (required); int4: with them weights take GPTQ codes (error-compensating) instead of rounding. JSONL (golden format) or Arrow IPC (list<float32> column per input); use samples apart from the golden set that judges the result')
  .option('--calibrate <method>', 'int8-static: auto (percentile for a model with convolutions, else minmax), minmax, percentile or entropy', 'auto')
  .option('--calibration-samples <n>', 'int4 with --calibration: how many of its first samples GPTQ reads (once a pass, up to four layers a pass)', positiveInt, 128)
  .option('--percentile <p>', 'int8-static with percentile: share of values kept, in percent', Number, 99.999)
  .option('--no-bias-correction', 'int8-static: leave each quantized Conv\'s bias as it is (by default it is corrected for the shift quantization makes in the Conv\'s mean output per channel, measured on up to 32 calibration samples spread over the set, and kept where the model then agrees better with fp32 on them)')
  .option('--min-cosine <c>', 'int8-static: keep the convolutions and matmuls that cost most in float until the mean cosine with fp32 on the first 8 calibration samples reaches c (one quantization per node scored: minutes on a deep net)', Number)
  .option('--max-float <n>', 'with --min-cosine: at most n nodes kept float (default a quarter of those quantized)', positiveInt)
  .action(async (o: { input: string; method: Method; output: string; blockSize: number; int4Conv: boolean; int4Recurrent: boolean; int4Head: boolean; asymmetric: boolean; perTensor: boolean; fullRange: boolean; excludeNodes: string[]; excludeOps: string[]; dropNodeMetadata: boolean; compactNames: boolean; externalData: 'auto' | 'always' | 'never'; calibration?: string; calibrate: string; calibrationSamples: number; percentile: number; biasCorrection: boolean; minCosine?: number; maxFloat?: number }) => {
    const t0 = performance.now();
    const options = { method: o.method, blockSize: o.blockSize, int4Conv: o.int4Conv, int4Recurrent: o.int4Recurrent, int4Head: o.int4Head, symmetric: !o.asymmetric, perChannel: !o.perTensor, reduceRange: !o.fullRange, excludeNodes: o.excludeNodes, excludeOps: o.excludeOps, dropNodeMetadata: o.dropNodeMetadata, compactNames: o.compactNames };
    if (!['auto', 'minmax', 'percentile', 'entropy'].includes(o.calibrate)) throw new CliError(`--calibrate ${o.calibrate}: use auto, minmax, percentile or entropy`);
    const int4Only = [['--int4-conv', o.int4Conv], ['--int4-recurrent', o.int4Recurrent], ['--int4-head', o.int4Head]].filter(([, on]) => on).map(([flag]) => flag);
    if (int4Only.length && o.method !== 'int4') throw new CliError(`${int4Only.join(', ')} ${int4Only.length > 1 ? 'are' : 'is'} for --method int4; ${o.method} would ignore ${int4Only.length > 1 ? 'them' : 'it'}`);
    if (o.calibration && o.method !== 'int8-static' && o.method !== 'int4') throw new CliError(`--calibration is for int8-static (activation ranges) and int4 (GPTQ); ${o.method} would not read it: drop it or pick one of those methods`);
    if (o.minCosine !== undefined && !(o.minCosine > 0 && o.minCosine <= 1)) throw new CliError(`--min-cosine ${o.minCosine}: a cosine between 0 and 1, e.g. 0.97`);
    if ((o.minCosine !== undefined || o.maxFloat !== undefined) && (o.method !== 'int8-static' || !o.calibration)) throw new CliError('--min-cosine and --max-float are for int8-static with --calibration (the search scores on those samples); for other methods the quantize-job workflow keeps sensitive nodes float against its budget');
    if (o.maxFloat !== undefined && o.minCosine === undefined) throw new CliError('--max-float bounds the search --min-cosine starts: pass --min-cosine too');
    const [{ readModelFile, writeModelFile }, { encodeModel }, { quantizeModel, quantizeModelCalibrated, quantizeModelStatic }, { calibrationSource }, { latencies, loadError }, { iteratedWeights }] = await Promise.all([
      import('../onnx/io'), import('../onnx/proto'), import('../quantize/quantize-model'), import('../quantize/calibration-data'), import('../quantize/evaluate'), import('../onnx/loop-values'),
    ]);
    let told = 0;
    const accuracy = o.minCosine === undefined ? undefined : {
      minCosine: o.minCosine, maxFloat: o.maxFloat,
      progress: (done: number, atMost: number): void => {
        if (done < told + atMost / 10 && done < atMost) return;
        told = done;
        process.stderr.write(`sensitivity: ${done} of at most ${atMost} candidates scored\n`);
      },
    };
    // Read once: the quantizers work on copies, and the load check below may need it again.
    const input = readModelFile(o.input);
    const { model: q, report } = o.method === 'int8-static' && o.calibration
      ? await quantizeModelStatic(input, { ...options, method: 'int8-static' }, calibrationSource(o.calibration), { method: o.calibrate as CalibrationOptions['method'], percentile: o.percentile, biasCorrection: o.biasCorrection, progress: (level, of) => process.stderr.write(`bias correction: level ${level} of ${of} of convolutions\n`) }, accuracy)
      : o.method === 'int4' && o.calibration
        ? await quantizeModelCalibrated(input, { ...options, method: 'int4' }, calibrationSource(o.calibration), { maxSamples: o.calibrationSamples, progress: (layer, of) => process.stderr.write(`gptq: calibrated layer ${layer} of ${of}\n`) })
        : quantizeModel(input, options);
    // A quantized model larger than its input helps nobody: say why instead of writing it.
    if (report.modelBytes.ratio > 1) {
      const kept = report.nodes.filter((n) => n.action === 'kept');
      throw new CliError(`${o.method} would make ${o.input} larger (×${report.modelBytes.ratio.toFixed(3)}), so nothing was written: ${report.quantized} nodes quantized, ${kept.length} kept in float${kept.length ? ` (${[...new Set(kept.map((n) => n.reason))].slice(0, 3).join('; ')})` : ''}. Try another --method`);
    }
    // A model onnxruntime cannot load is worse than none (qcflow once wrote one: a weight only an If's
    // branches read was dropped), so it is loaded first, when it fits in one buffer (protobuf's 2 GB).
    if (report.modelBytes.after < 2 ** 31) {
      const why = await loadError(encodeModel(q));
      // A model that was broken already is the input's fault, not the quantizer's.
      const before = why ? await loadError(encodeModel(input)) : undefined;
      if (before) throw new CliError(`${o.input} does not load in onnxruntime (${before.slice(0, 300)}), so it was not quantized: fix or re-export the model`);
      if (why) throw new CliError(`the ${o.method} model made from ${o.input} does not load in onnxruntime, so nothing was written (${why.slice(0, 300)}). That is a qcflow defect: please report it with the model; meanwhile --exclude-nodes the node named there, or try another --method`);
    }
    const written = writeModelFile(o.output, q, { externalData: o.externalData });
    const seconds = (performance.now() - t0) / 1000;
    // With samples at hand, whether the result is faster here: integer kernels need not pay on every CPU
    // and graph (int8-static ran PaddleOCR's classifier at ×1.5 the time of fp32 on a rendered line, its BatchNorms unfolded).
    let latency: Awaited<ReturnType<typeof latencies>> | undefined;
    if (o.calibration && report.modelBytes.after < 2 ** 31) {
      for await (const first of calibrationSource(o.calibration)()) {
        latency = await latencies(o.input, o.output, first);
        break;
      }
    }
    // Rounded 4-bit filters are where quantization loses most (bench/README: PicoDet 0.83, PaddleOCR's recogniser 0.91; calibrated 0.99 and 0.98).
    if (o.int4Conv && !o.calibration && report.nodes.some((n) => n.op === 'Conv' && n.action === 'quantized')) process.stderr.write(`note: --int4-conv without --calibration rounds each 4-bit filter to its nearest levels, which costs some conv nets much of their accuracy; check the result with \`qcflow model evaluate\`, or pass --calibration samples.jsonl (GPTQ)\n`);
    const { sensitivity } = report as { sensitivity?: SensitivityReport };
    if (sensitivity && !sensitivity.met) process.stderr.write(`note: keeping ${sensitivity.kept.length} node(s) float took the agreement from ${sensitivity.start.toFixed(4)} to ${sensitivity.reached.toFixed(4)}, under --min-cosine ${sensitivity.target}: the error is spread over many nodes; raise --max-float, try --calibrate minmax or percentile, or use int8-dynamic\n`);
    const unreached = report.nodes.filter((n) => n.reason === NOT_CALIBRATED).length;
    if (unreached) process.stderr.write(`note: ${unreached} node(s) stayed float because no calibration sample reached them (an If branch none of the samples takes, or a Loop/Scan body whose values change shape each iteration); add samples that take every branch the model will run (silero-vad: both sample rates)\n`);
    const recurrent = report.nodes.filter((n) => RECURRENT_OPS.includes(n.op) && n.action === 'quantized').length;
    // A Loop or Scan body's MatMuls keep 8 bits under int4 for the same reason (counted on the input).
    const looped = o.method === 'int4' && !o.int4Recurrent ? iteratedWeights(input.graph!) : 0;
    if (looped) process.stderr.write(`note: ${looped} MatMul/Gemm node(s) inside Loop or Scan bodies kept 8-bit weights (an error there recurs every iteration); --int4-recurrent puts them in 4-bit blocks (a scripted torch RNN: ×0.72 of the file at cosine 0.998): check the result with \`qcflow model evaluate\`\n`);
    if (o.method === 'int4' && !o.int4Recurrent && recurrent) process.stderr.write(`note: ${recurrent} recurrent layer(s) (LSTM, GRU, RNN) kept 8-bit weights; --int4-recurrent puts them in 4-bit blocks (silero-vad: ×0.29 → ×0.20 with --compact-names, its speech decisions 98% the same): check the result with \`qcflow model evaluate\`\n`);
    if (!o.compactNames && report.nameBytes > 0.2 * written.bytes) process.stderr.write(`note: ${Math.round((100 * report.nameBytes) / written.bytes)}% of ${o.output} is the names of its nodes and values (an exporter's module paths); --compact-names renames them to short ids, keeping the graph's inputs and outputs\n`);
    if (report.nodeMetadataBytes > 0.1 * written.bytes) process.stderr.write(`note: ${Math.round((100 * report.nodeMetadataBytes) / written.bytes)}% of ${o.output} is the nodes' metadata (exporter stack traces and the like); --drop-node-metadata leaves it out\n`);
    if (latency && latency.ratio > SLOWER) process.stderr.write(`note: on this CPU the ${o.method} model takes ×${latency.ratio.toFixed(2)} the time of the fp32 one on the first calibration sample (${latency.candidate.toFixed(2)} ms against ${latency.reference.toFixed(2)}, median of alternating runs)${o.method === 'int8-static' ? ': its Q/DQ pairs around unfused nodes (BatchNormalization kept apart for accuracy, activations) cost more than the integer kernels save here' : ''}; int8-dynamic or int4 may run faster here: compare them with \`qcflow model evaluate\`\n`);
    process.stdout.write(`${JSON.stringify({ output: o.output, ...written, seconds, ...(latency ? { latencyMs: latency } : {}), ...report }, null, 2)}\n`);
  });

model.command('evaluate').description('compare a candidate with the fp32 reference on golden inputs with onnxruntime-node; prints metrics as JSON')
  .requiredOption('--reference <m.onnx>', 'the fp32 model').requiredOption('--candidate <q.onnx>', 'the quantized model')
  .requiredOption('--inputs <golden.jsonl>', 'one {"<input>": {"dims": [...], "data": [...]}, "label"?: k} per line')
  .option('--output-name <name>', 'compare this output alone (default: cosine on every float output, the weakest reported; top-1 and labels on the first)')
  .option('--runs <n>', 'timed runs for the median latency', positiveInt, 20)
  .option('--providers <list>', 'execution providers, e.g. cuda,cpu', list, ['cpu'])
  .option('--in-process', 'evaluate in this process, not a child (under an emulator such as qemu-user, which does not follow children)')
  .action(async (o: { reference: string; candidate: string; inputs: string; outputName?: string; runs: number; providers: string[]; inProcess?: boolean }) => {
    let text: string;
    try {
      text = readFileSync(o.inputs, 'utf8');
    } catch (err) {
      throw new CliError(`cannot read ${o.inputs}: ${(err as Error).message}`);
    }
    const [{ evaluateCandidate, parseGoldenJsonl }, { OnnxruntimeCrashed, evaluateIsolated }] = await Promise.all([import('../quantize/evaluate'), import('../quantize/evaluate-isolated')]);
    // In a child process, so a candidate that crashes onnxruntime gets a sentence instead of a bare segfault.
    const opts = { output: o.outputName, runs: o.runs, providers: o.providers };
    const evaluation = o.inProcess ? evaluateCandidate(o.reference, o.candidate, parseGoldenJsonl(text), opts) : evaluateIsolated(o.reference, o.candidate, text, opts);
    const metrics = await evaluation.catch((err: unknown) => {
      if (err instanceof OnnxruntimeCrashed) throw new CliError(`${o.candidate}: ${err.message}; quantize with another --method, or --exclude-nodes the node it crashes on`);
      throw err;
    });
    process.stdout.write(`${JSON.stringify(metrics, null, 2)}\n`);
  });

model.command('quantize-job').description('run the modelQuantization workflow on a registered version: every applicable method, evaluated on its golden inputs, the smallest within budget registered')
  .requiredOption('--model <tenant/name/version>', 'a registered fp32 version with golden inputs')
  .option('--top1 <x>', 'budget: top-1 agreement with fp32', Number, 0.99)
  .option('--cosine <x>', 'budget: mean cosine similarity with fp32', Number, 0.99)
  .option('--latency-ratio <x>', 'budget: median latency at most x times fp32\'s on the golden inputs', Number, 2)
  .option('--methods <list>', 'only these methods (comma-separated)', list)
  .option('--block-size <n>', 'int4 block size', positiveInt, 32)
  .option('--priority <1-5>', 'Temporal priority key: 1 runs before queued background jobs (default 3)', positiveInt, 3)
  .option('--no-wait', 'return once started')
  .action((o: { model: string; top1: number; cosine: number; latencyRatio: number; methods?: string[]; blockSize: number; priority: number; wait: boolean }) =>
    registryCommand(async (s, registry, actor) => {
      // The job registers children in the version's tenant.
      registry.mayPublish(actor, (await registry.show(actor, o.model)).tenant);
      if (o.priority > 5) throw new CliError('--priority must be 1 (most urgent) to 5');
      if (!(o.latencyRatio > 0)) throw new CliError(`--latency-ratio ${o.latencyRatio}: a positive number (2: at most twice as slow as fp32; a large one to ignore latency)`);
      const bad = (o.methods ?? []).filter((m) => !(METHODS as readonly string[]).includes(m));
      if (bad.length) throw new CliError(`--methods ${bad.join(', ')}: use ${METHODS.join(', ')}`);
      const [{ statusLine }, { modelQuantization }, { quantizationProgressQuery, workflowIds }, { quantizationMetadata }, { failureMessage }] = await Promise.all([
        import('./commands'), import('../../workflows'), import('../../workflows/definitions'), import('../../workflows/metadata'), import('../util/errors'),
      ]);
      const workflowId = workflowIds.quantize(o.model);
      const handle = await s.client.workflow.start(modelQuantization, {
        workflowId, taskQueue: s.cfg.taskQueues.cpu, priority: { priorityKey: o.priority },
        ...quantizationMetadata(o.model, o.methods ?? METHODS, { top1: o.top1, cosine: o.cosine, latencyRatio: o.latencyRatio }),
        args: [{ modelId: o.model, budget: { top1: o.top1, cosine: o.cosine, latencyRatio: o.latencyRatio }, methods: o.methods as Method[] | undefined, blockSize: o.blockSize, modelsQueue: s.cfg.taskQueues.models, inferenceQueue: s.cfg.taskQueues.inference }],
      }).catch((err: Error) => {
        if (err.name === 'WorkflowExecutionAlreadyStartedError') throw new CliError(`${workflowId} is already running: watch it in the Temporal UI or wait for it`);
        throw err;
      });
      process.stdout.write(`started ${workflowId} (priority ${o.priority})\n`);
      if (!o.wait) return;
      const line = statusLine('quantize');
      const ticker = setInterval(() => {
        void handle.query(quantizationProgressQuery).then((p) => line.update(`${p.stage}: ${p.candidates.map((c) => `${c.method}${c.int4Conv ? ' --int4-conv' : ''}${c.int4Recurrent ? ' --int4-recurrent' : ''}${c.excludeNodes.length ? `-x${c.excludeNodes.length}` : ''} ${c.failure ? 'crashed onnxruntime' : `cos ${c.cosine.toFixed(4)}${c.fits ? ' ✓' : ''}`}`).join(', ')}`), () => undefined);
      }, 1000);
      try {
        const r = await handle.result();
        clearInterval(ticker);
        line.stop();
        process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      } catch (err) {
        throw new CliError(failureMessage(err));
      } finally {
        clearInterval(ticker);
        line.stop();
      }
    }));

model.command('check').description('regression check of a registered version: sha256 of its file, and its outputs on its golden inputs against those stored at registration')
  .requiredOption('--model <tenant/name/version>', 'a registered version with golden inputs')
  .option('--tolerance <x>', 'largest absolute output difference accepted', Number, 1e-4)
  .option('--providers <list>', 'execution providers, e.g. cuda,cpu', list, ['cpu'])
  .action((o: { model: string; tolerance: number; providers: string[] }) =>
    registryCommand(async (s, registry, actor) => {
      await registry.show(actor, o.model);
      const { checkModelVersion } = await import('../models/register');
      const r = await checkModelVersion(s.pool, s.store, o.model, { providers: o.providers }).catch((err: Error) => { throw new CliError(err.message); });
      process.stdout.write(`${JSON.stringify({ ...r, tolerance: o.tolerance, ok: r.maxAbsError <= o.tolerance }, null, 2)}\n`);
      const drifted = Object.entries(r.outputs).filter(([, d]) => d.maxAbsError > o.tolerance).map(([name, d]) => `${name} by up to ${d.maxAbsError}`);
      if (drifted.length) throw new CliError(`${o.model}: outputs drifted from those stored at registration (tolerance ${o.tolerance}): ${drifted.join('; ')}`);
    }));

model.command('fixture').description('write one of the built-in fixture models (mlp, cnn, transformer) and labelled golden inputs, to try quantization on')
  .requiredOption('--name <name>', 'mlp | cnn | transformer').requiredOption('--dir <folder>', 'where to write model.onnx and golden.jsonl')
  .option('--samples <n>', 'golden samples', positiveInt, 200)
  .action(async (o: { name: string; dir: string; samples: number }) => {
    const [{ cnnModel, fixtureGolden, mlpModel, transformerModel }, { goldenToJsonl }] = await Promise.all([import('../onnx/fixture-models'), import('../quantize/evaluate')]);
    const build = { mlp: mlpModel, cnn: cnnModel, transformer: transformerModel }[o.name];
    if (!build) throw new CliError(`--name ${o.name}: use mlp, cnn or transformer`);
    const f = await build();
    mkdirSync(o.dir, { recursive: true });
    writeFileSync(path.join(o.dir, 'model.onnx'), f.onnx);
    writeFileSync(path.join(o.dir, 'golden.jsonl'), goldenToJsonl(fixtureGolden(f, o.samples)));
    process.stdout.write(`${path.join(o.dir, 'model.onnx')}  ${path.join(o.dir, 'golden.jsonl')} (${o.samples} samples)\n`);
  });

function duration(v: string): number {
  const m = /^(\d+)(s|m|h|d)?$/.exec(v);
  if (!m) throw new InvalidArgumentError('must be a duration like 90s, 30m, 8h or 7d');
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
}

const token = program.command('token').description('reviewer / operator / admin tokens (JWT, HS256)');
token.command('issue').description('sign a token with the configured secret (QCFLOW_JWT_SECRET, or the one kept in the state dir) and print it')
  .requiredOption('--user <id>', 'who the token is for (also their id in project membership)')
  .requiredOption('--role <role>', 'reviewer, operator or admin', (v) => parseRole(v))
  .option('--ttl <duration>', 'how long it is valid (90s, 30m, 8h, 7d)', duration, 8 * 3600)
  .option('--tenant <tenant>', 'limit the token\'s model-registry access to this tenant (other tenants\' models are invisible)')
  .option('--model-role <role>', 'model registry role: viewer, publisher or admin', (v) => parseModelRole(v))
  .action((o: { user: string; role: ReturnType<typeof parseRole>; ttl: number; tenant?: string; modelRole?: ReturnType<typeof parseModelRole> }) => {
    process.stdout.write(`${issueToken(resolveJwtSecret(loadConfig()), { user: o.user, role: o.role, ttlSeconds: o.ttl, tenant: o.tenant, modelRole: o.modelRole })}\n`);
  });

const users = program.command('user').description('people who sign in to the review pages with a name and password (scripts use tokens)');
users.command('set').description('add a user or change their role and password; the password is read from standard input (first line) or QCFLOW_PASSWORD')
  .requiredOption('--user <id>', 'their name (also their id in project membership)')
  .requiredOption('--role <role>', 'reviewer, operator or admin', (v) => parseRole(v))
  .action((o: { user: string; role: ReturnType<typeof parseRole> }) =>
    withServices(async (s) => {
      if (!USER_ID.test(o.user)) throw new CliError(`--user ${JSON.stringify(o.user)} must match ${USER_ID.source}`);
      const [{ hashPassword, passwordProblem }, { upsertUser }, { cliActor }] = await Promise.all([import('../http/passwords'), import('../store/users'), import('./commands')]);
      const password = process.env.QCFLOW_PASSWORD ?? (await readFirstLine(process.stdin));
      const problem = passwordProblem(password);
      if (problem) throw new CliError(`${problem}; pipe it in (echo … | qcflow user set …) or set QCFLOW_PASSWORD`);
      await upsertUser(s.pool, { user: o.user, role: o.role, passwordHash: await hashPassword(password) }, cliActor());
      process.stdout.write(`user ${o.user} (${o.role}) can sign in at the review server\n`);
    }));
users.command('disable').description('stop a user signing in with their password (their tokens still expire on their own)')
  .requiredOption('--user <id>', 'their name')
  .action((o: { user: string }) =>
    withServices(async (s) => {
      const [{ disableUser }, { cliActor }] = await Promise.all([import('../store/users'), import('./commands')]);
      process.stdout.write(`${(await disableUser(s.pool, o.user, cliActor())) ? `user ${o.user} disabled` : `no active user ${o.user}`}\n`);
    }));

/** The first line of a stream (a piped password), without its newline. */
async function readFirstLine(input: NodeJS.ReadableStream): Promise<string> {
  for await (const line of createInterface({ input })) return line;
  return '';
}

program.command('serve').description('run the review server (web page + JSON API) against a running stack; Ctrl-C stops')
  .action(async () => {
    const cfg = config();
    const log = getLogger(cfg, 'serve');
    const [{ startReviewServer }, { waitForInterrupt }] = await Promise.all([import('../http/start'), import('./demo')]);
    const server = await startReviewServer(cfg, log);
    process.stdout.write(`review server: ${server.url}  (API document: ${server.url}/openapi.json)\n`);
    await waitForInterrupt(log, { stop: () => server.close() });
    // Keep-alive sockets of the Temporal client can hold the loop open; the server is closed, so leave.
    process.exit(0);
  });

const review = program.command('review').description('human review through the review server (QCFLOW_SERVER_URL, QCFLOW_TOKEN)');
const reviewApi = (): ReviewApiClient => ReviewApiClient.fromConfig(loadConfig());
const print = (json: boolean, value: unknown, text: () => string): void => {
  process.stdout.write(`${json ? JSON.stringify(value, null, 2) : text()}\n`);
};
review.command('list').description('my queue: tasks I hold, then tasks I may claim (operators: all open tasks)')
  .option('--project <id>', 'only this project').option('--limit <n>', 'at most N', positiveInt, 100).option('--json', 'print JSON', false)
  .action(async (o: { project?: string; limit: number; json: boolean }) => {
    const r = await reviewApi().list(o);
    print(o.json, r, () => formatTasks(r.tasks));
  });
review.command('show').description('a task: sample, annotations, findings of every layer').argument('<id>', 'task id').option('--json', 'print JSON', false)
  .action(async (id: string, o: { json: boolean }) => {
    const d = await reviewApi().show(id);
    print(o.json, d, () => formatTask(d));
  });
review.command('next').description('the next task to work on (claims one if you hold none)').option('--project <id>', 'only this project').option('--json', 'print JSON', false)
  .action(async (o: { project?: string; json: boolean }) => {
    const r = await reviewApi().next(o.project);
    print(o.json, r, () => (r.task ? formatTasks([r.task]) : 'nothing to review right now'));
  });
review.command('claim').description('claim a task from the queue').argument('<id>', 'task id')
  .action(async (id: string) => {
    const r = await reviewApi().claim(id);
    process.stdout.write(`task ${r.task.id} is yours until ${r.task.claimExpiresAt ?? 'decided'}\n`);
  });
for (const decision of ['approve', 'reject', 'resample'] as const) {
  review.command(decision).description(`${decision} a task you hold`).argument('<id>', 'task id').option('--comment <text>', 'note for the audit log')
    .action(async (id: string, o: { comment?: string }) => {
      process.stdout.write(`${(await reviewApi().decide(id, { decision, comment: o.comment })).message}\n`);
    });
}
review.command('correct').description('replace the labels of a task you hold; they must pass layer 1 and the ontology').argument('<id>', 'task id')
  .requiredOption('--labels <file.json>', 'the final labels, e.g. {"classes": ["dog"]}').option('--comment <text>', 'note for the audit log')
  .action(async (id: string, o: { labels: string; comment?: string }) => {
    const labels = readJsonFile(o.labels, 'labels');
    process.stdout.write(`${(await reviewApi().decide(id, { decision: 'correct', labels, comment: o.comment })).message}\n`);
  });
review.command('members').description('reviewers and leads of a project (operator, admin)').requiredOption('--project <id>', 'project id')
  .action(async (o: { project: string }) => {
    const r = await reviewApi().members(o.project);
    process.stdout.write(`${r.members.map((m) => `${m.user}\t${m.role}`).join('\n') || 'no members yet: qcflow review add-member --project P --user U --role reviewer'}\n`);
  });
review.command('add-member').description('add a reviewer or lead to a project (operator, admin)')
  .requiredOption('--project <id>', 'project id').requiredOption('--user <id>', 'user id (the `sub` of their token)')
  .option('--role <role>', 'reviewer or lead', 'reviewer')
  .action(async (o: { project: string; user: string; role: string }) => {
    await reviewApi().setMember(o.project, o.user, o.role);
    process.stdout.write(`${o.user} is a ${o.role} of ${o.project}\n`);
  });
review.command('remove-member').description('remove a member (operator, admin)').requiredOption('--project <id>', 'project id').requiredOption('--user <id>', 'user id')
  .action(async (o: { project: string; user: string }) => {
    const r = await reviewApi().removeMember(o.project, o.user);
    process.stdout.write(r.removed ? `${o.user} removed from ${o.project}\n` : `${o.user} was not a member of ${o.project}\n`);
  });
review.command('backfill').description('start reviews for samples waiting in review without one (routed there before human review existed); idempotent')
  .requiredOption('--project <id>', 'project id')
  .action((o: { project: string }) =>
    withServices(async (s) => {
      const [{ getProject }, { resolvePolicy }, { statusLine }, { startReviewWorkflows }] = await Promise.all([import('../store/projects'), import('../qc/policy'), import('./commands'), import('../review/start')]);
      const p = await getProject(s.pool, o.project);
      if (!p) throw new CliError(`project ${o.project} does not exist`);
      const line = statusLine('reviews');
      const r = await startReviewWorkflows(
        { pool: s.pool, temporal: s.client, workflowQueue: s.cfg.taskQueues.cpu, reviewQueue: s.cfg.taskQueues.review },
        { project: o.project, review: resolvePolicy(p.qcPolicy).review }, { after: '', started: 0, existing: 0 },
        (pr) => line.update(`${pr.started} started, ${pr.existing} already running`),
      );
      line.stop();
      process.stdout.write(`${r.started} review(s) started, ${r.existing} already running\n`);
    }));
review.command('precision').description('QC precision: how often reviewers uphold samples the machine would have accepted (operator, admin)')
  .requiredOption('--project <id>', 'project id').option('--json', 'print JSON', false)
  .action(async (o: { project: string; json: boolean }) => {
    const r = await reviewApi().precision(o.project);
    print(o.json, r, () => formatPrecision(o.project, r));
  });

program.parseAsync(process.argv).then(
  () => process.exit(0),
  async (err: unknown) => {
    // Only a command that loaded the project checks can have failed one.
    const { ProjectSpecError } = await import('../qc/compliance');
    const known = err instanceof CliError || err instanceof ConfigError || err instanceof MissingToolError || err instanceof ProjectSpecError || err instanceof AuthError
      || err instanceof QuantizeError || err instanceof OnnxFormatError || err instanceof TensorDataError;
    process.stderr.write(`qcflow: ${known ? err.message : (err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
