import { readFile } from 'node:fs/promises';
import type { Pool } from 'pg';
import { putObject, type ObjectStore } from '../clients/minio';
import { sha256Hex } from '../util/canonical-json';
import { decodeModel } from '../onnx/proto';
import { parseModelManifest, type ModelManifest } from '../qc/inference/manifest';
import { insertModelVersion, modelVersionId, type ModelVersionRow } from '../store/models';
import { parseGoldenJsonl, type GoldenSample } from '../quantize/evaluate';
import { outputDrift, parseGoldenOutput, type Drift, type GoldenOutput } from '../quantize/golden-outputs';
import { OnnxruntimeCrashed, goldenOutputsIsolated } from '../quantize/evaluate-isolated';
import { calibrationJsonl } from '../quantize/calibration-data';
import { getObjectBuffer, getObjectText } from '../clients/minio';
import { getModelVersion } from '../store/models';
import { metadataSchemaOf } from '../store/model-metadata';
import { checkMetadata } from './metadata';

export interface RegisterModelInput {
  tenant?: string;
  name: string;
  version: string;
  onnx: Uint8Array;
  manifest: unknown;
  tokenizer?: Record<string, unknown>;
  precision?: string;
  parentId?: string;
  /** Golden inputs as JSONL (see `qcflow model evaluate`), kept beside the model. */
  golden?: string;
  /**
   * Calibration inputs as JSONL (golden format), kept beside the model for the quantization workflow to fit
   * to (int8-static ranges, int4 GPTQ) so that the golden inputs only judge.
   */
  calibration?: string;
  metrics?: Record<string, unknown>;
  /** Checked against the tenant's metadata schema before anything is uploaded. */
  metadata?: unknown;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Uploads a model file (and its tokenizer.json) under models/{tenant}/{name}/{version}/ and records the
 * version with its sha256. The file is parsed first, so a truncated or non-ONNX upload is refused here
 * rather than at the first batch.
 */
export async function registerModel(pool: Pool, store: ObjectStore, input: RegisterModelInput, actor: string): Promise<ModelVersionRow> {
  const tenant = input.tenant ?? 'default';
  for (const [field, v] of [['tenant', tenant], ['name', input.name], ['version', input.version]] as const) {
    if (!NAME.test(v)) throw new Error(`model ${field} ${JSON.stringify(v)} must match ${NAME.source}`);
  }
  const metadata = checkMetadata(input.metadata ?? {}, await metadataSchemaOf(pool, tenant), tenant);
  const manifest: ModelManifest = parseModelManifest(input.manifest);
  if (manifest.adapter.kind === 'text' && !input.tokenizer) throw new Error('a text model needs its tokenizer.json (--tokenizer)');
  const graph = decodeModel(input.onnx).graph!;
  const outputs = (graph.output ?? []).map((o) => o.name);
  if (manifest.output && !outputs.includes(manifest.output)) throw new Error(`manifest output ${JSON.stringify(manifest.output)} is not an output of the model (it has ${outputs.join(', ')})`);
  // The version's own outputs on its golden inputs, so `qcflow model check` can tell later if they drift;
  // computed before anything is stored. Malformed lines are refused by line and field before any model runs;
  // the model runs in a child process, so one that crashes onnxruntime is refused and this process (the API,
  // the CLI, a worker) lives on.
  let ownOutputs: GoldenOutput[] | undefined;
  const golden = input.golden === undefined ? undefined : parseGoldenJsonl(input.golden);
  if (input.calibration !== undefined) checkCalibration(input.calibration, golden?.[0]);
  if (input.golden !== undefined) {
    ownOutputs = await goldenOutputsIsolated(input.onnx, input.golden).catch((err: unknown) => {
      if (err instanceof OnnxruntimeCrashed) throw new Error(`golden inputs: ${err.message}; re-export the model (another opset or precision) and register it again`);
      throw err;
    });
  }
  const prefix = `models/${tenant}/${input.name}/${input.version}`;
  const sha256 = sha256Hex(input.onnx);
  await putObject(store, `${prefix}/model.onnx`, Buffer.from(input.onnx), 'application/octet-stream');
  let tokenizerKey: string | null = null;
  let tokenizerSha256: string | null = null;
  if (input.tokenizer) {
    const body = Buffer.from(JSON.stringify(input.tokenizer));
    tokenizerKey = `${prefix}/tokenizer.json`;
    tokenizerSha256 = sha256Hex(body);
    await putObject(store, tokenizerKey, body, 'application/json');
  }
  let goldenKey: string | null = null;
  if (input.golden !== undefined && ownOutputs) {
    goldenKey = `${prefix}/golden.jsonl`;
    await putObject(store, goldenKey, input.golden, 'application/x-ndjson');
    await putObject(store, goldenOutputsKey(goldenKey), ownOutputs.map((o) => JSON.stringify(o)).join('\n') + '\n', 'application/x-ndjson');
  }
  let calibrationKey: string | null = null;
  if (input.calibration !== undefined) {
    calibrationKey = `${prefix}/calibration.jsonl`;
    await putObject(store, calibrationKey, input.calibration, 'application/x-ndjson');
  }
  return insertModelVersion(pool, {
    id: modelVersionId(tenant, input.name, input.version), tenant, name: input.name, version: input.version, sha256,
    objectKey: `${prefix}/model.onnx`, bytes: input.onnx.byteLength, manifest, tokenizerKey, tokenizerSha256,
    precision: input.precision ?? 'fp32', parentId: input.parentId ?? null, goldenKey, calibrationKey, metrics: input.metrics ?? {}, metadata,
  }, actor);
}

/** A calibration set is refused by line and field as golden inputs are, and must feed the inputs the golden ones (`first`) do. */
function checkCalibration(calibration: string, first: GoldenSample | undefined): void {
  const samples = parseGoldenJsonl(calibration, 'calibration');
  if (samples.length === 0) throw new Error('calibration: no samples; give at least one line, or leave --calibration out');
  const names = (s: GoldenSample): string => Object.keys(s.inputs).sort().join(', ');
  if (first && names(samples[0]!) !== names(first)) throw new Error(`calibration: line 1 feeds inputs ${names(samples[0]!)}; the golden inputs feed ${names(first)}: both must feed the model's same inputs`);
}

export async function registerModelFiles(pool: Pool, store: ObjectStore, files: { file: string; manifest: string; tokenizer?: string; golden?: string; calibration?: string; metadata?: string }, meta: Omit<RegisterModelInput, 'onnx' | 'manifest' | 'tokenizer' | 'metadata'>, actor: string): Promise<ModelVersionRow> {
  const readJson = async (p: string): Promise<Record<string, unknown>> => {
    try {
      return JSON.parse(await readFile(p, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new Error(`${p}: ${(err as Error).message}`);
    }
  };
  return registerModel(pool, store, {
    ...meta,
    onnx: await readFile(files.file),
    manifest: await readJson(files.manifest),
    tokenizer: files.tokenizer ? await readJson(files.tokenizer) : undefined,
    golden: files.golden ? await readFile(files.golden, 'utf8') : undefined,
    calibration: files.calibration ? await calibrationJsonl(files.calibration) : undefined,
    metadata: files.metadata ? await readJson(files.metadata) : undefined,
  }, actor);
}

export const goldenOutputsKey = (goldenKey: string): string => goldenKey.replace(/golden\.jsonl$/, 'golden-outputs.jsonl');

/**
 * Regression check of a registered version: its file still has its sha256, and its outputs on its golden
 * inputs still match those stored at registration (another onnxruntime, provider or machine may differ).
 */
export async function checkModelVersion(pool: Pool, store: ObjectStore, id: string, o: { providers?: string[] } = {}): Promise<{ id: string; sha256: 'ok'; samples: number; outputs: Record<string, Drift> } & Drift> {
  const v = await getModelVersion(pool, id);
  if (!v) throw new Error(`model version ${id} is not registered`);
  if (!v.goldenKey) throw new Error(`model version ${id} has no golden inputs to check against; re-register it with --golden golden.jsonl`);
  const onnx = await getObjectBuffer(store, v.objectKey);
  if (sha256Hex(onnx) !== v.sha256) throw new Error(`model file of ${id} has sha256 ${sha256Hex(onnx)}, registered ${v.sha256}: the stored object was changed`);
  const golden = await getObjectText(store, v.goldenKey);
  const stored = (await getObjectText(store, goldenOutputsKey(v.goldenKey))).split('\n').filter(Boolean).map(parseGoldenOutput);
  // Another onnxruntime or provider may crash where the registering one did not: that is a finding, not a dead CLI.
  const fresh = await goldenOutputsIsolated(onnx, golden, { outputs: Object.keys(stored[0]?.outputs ?? {}), providers: o.providers }).catch((err: unknown) => {
    if (err instanceof OnnxruntimeCrashed) throw new Error(`${id}: ${err.message}`);
    throw err;
  });
  return { id, sha256: 'ok', ...outputDrift(stored, fresh) };
}
