import { moveStage } from '../src/store/model-lifecycle';
import { createHash } from 'node:crypto';
import { getObjectBuffer, getObjectText, putObject } from '../src/clients/minio';
import { sha256Hex } from '../src/util/canonical-json';
import { decodeModel, encodeModel, OnnxFormatError } from '../src/onnx/proto';
import { registerModel } from '../src/models/register';
import { MetadataError } from '../src/models/metadata';
import { getModelVersion, type ModelVersionRow } from '../src/store/models';
import { analyzeModel, quantizeModel, quantizeModelCalibrated, quantizeModelStatic, rankSensitiveNodes } from '../src/quantize/quantize-model';
import type { CalibrationOptions } from '../src/quantize/calibrate';
import { parseGoldenJsonl, type EvaluationMetrics } from '../src/quantize/evaluate';
import { QuantizeError, type Method } from '../src/quantize/types';
import { OnnxruntimeCrashed, evaluateIsolated } from '../src/quantize/evaluate-isolated';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { type ActivityDeps, badInput, heartbeat } from './deps';

/** A quantized file waiting in MinIO for evaluation: ids and numbers only. */
export interface Candidate {
  method: Method;
  key: string;
  sha256: string;
  bytes: number;
  quantizedNodes: number;
  weightRatio: number;
  excludeNodes: string[];
  blockSize?: number;
  /** int4 with Convs in 4-bit blocks (`--int4-conv`). */
  int4Conv?: boolean;
  /** int4 with LSTM/GRU/RNN weights in 4-bit blocks (`--int4-recurrent`). */
  int4Recurrent?: boolean;
  /** What int8-static ranges or int4 GPTQ codes were fitted to: the version's calibration set, or (int8-static without one) its golden inputs. */
  fittedTo?: 'calibration' | 'golden';
  /** int4 fitted to a calibration set: whether GPTQ's codes were kept (false: rounding agreed better with fp32 on that set). */
  gptqUsed?: boolean;
}

export interface Budget {
  top1: number;
  cosine: number;
  /** The largest median latency over fp32's a candidate may have. */
  latencyRatio?: number;
}

/** The layers beyond MatMul an int4 job asks to put in 4 bits, as options (none for other methods). */
function int4Layers(input: { method: Method; int4Conv?: boolean; int4Recurrent?: boolean }): { int4Conv?: true; int4Recurrent?: true } {
  if (input.method !== 'int4') return {};
  return { ...(input.int4Conv === true ? { int4Conv: true } : {}), ...(input.int4Recurrent === true ? { int4Recurrent: true } : {}) };
}

async function requireModel(deps: Pick<ActivityDeps, 'pool'>, id: string): Promise<ModelVersionRow> {
  const m = await getModelVersion(deps.pool, id);
  if (!m) throw badInput(`model version ${id} is not registered; register it with: qcflow model register --name N --version V --file m.onnx --manifest manifest.json --golden golden.jsonl`);
  return m;
}

/** Quantizer and format errors are the input's fault: no retry can fix them. */
async function asBadInput<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof QuantizeError || err instanceof OnnxFormatError) throw badInput(err.message);
    throw err;
  }
}

/** Activities of the `models` queue: analysis, quantization and registration of quantized versions. */
export function modelActivities(deps: ActivityDeps) {
  return {
    async analyzeModelVersion(input: { modelId: string }): Promise<ReturnType<typeof analyzeModel> & { bytes: number; hasGolden: boolean }> {
      const m = await requireModel(deps, input.modelId);
      const onnx = await getObjectBuffer(deps.store, m.objectKey);
      return { ...(await asBadInput(() => analyzeModel(decodeModel(onnx)))), bytes: m.bytes, hasGolden: m.goldenKey !== null };
    },

    /**
     * Quantizes the version with one method (and exclusions) and stores the file under candidates/; idempotent
     * by content. int8-static ranges and int4 GPTQ codes are fitted to the version's calibration set when it
     * was registered with one, so the golden inputs only judge; without one int8-static calibrates on the
     * golden inputs and int4 rounds.
     */
    async quantizeCandidate(input: { modelId: string; method: Method; blockSize?: number; excludeNodes?: string[]; calibration?: CalibrationOptions['method']; int4Conv?: boolean; int4Recurrent?: boolean }): Promise<Candidate> {
      const m = await requireModel(deps, input.modelId);
      heartbeat({ stage: 'download' });
      const onnx = await getObjectBuffer(deps.store, m.objectKey);
      const wide = int4Layers(input);
      const { int4Conv, int4Recurrent } = wide;
      const options = { method: input.method, blockSize: input.blockSize, excludeNodes: input.excludeNodes, ...wide };
      const fitted = input.method === 'int8-static' || input.method === 'int4';
      const fittedTo = fitted && m.calibrationKey ? 'calibration' as const : input.method === 'int8-static' && m.goldenKey ? 'golden' as const : undefined;
      if (input.method === 'int8-static' && !fittedTo) throw badInput(`model version ${m.id} has no golden inputs to calibrate int8-static on; register it with --calibration calibration.jsonl or --golden golden.jsonl`);
      const samples = fittedTo ? parseGoldenJsonl(await getObjectText(deps.store, fittedTo === 'calibration' ? m.calibrationKey! : m.goldenKey!), fittedTo) : [];
      heartbeat({ stage: 'quantize', method: input.method, fittedTo });
      let gptqUsed: boolean | undefined;
      const { model, report } = await asBadInput(async () => {
        if (input.method === 'int8-static') return quantizeModelStatic(decodeModel(onnx), { ...options, method: 'int8-static' }, () => samples, { method: input.calibration ?? 'auto' });
        if (input.method === 'int4' && fittedTo) {
          const calibrated = await quantizeModelCalibrated(decodeModel(onnx), { ...options, method: 'int4' }, () => samples, { progress: (layer, of) => heartbeat({ stage: 'gptq', layer, of }) });
          gptqUsed = calibrated.report.gptq.used;
          return calibrated;
        }
        return quantizeModel(decodeModel(onnx), options);
      });
      const bytes = encodeModel(model);
      const tag = createHash('sha256').update(JSON.stringify({ m: input.method, b: input.blockSize ?? null, x: input.excludeNodes ?? [], c: input.calibration ?? null, ...(fittedTo === 'calibration' ? { f: m.calibrationKey } : {}), ...(int4Conv ? { v: true } : {}), ...(int4Recurrent ? { r: true } : {}) })).digest('hex').slice(0, 12);
      const key = `${m.objectKey.replace(/model\.onnx$/, '')}candidates/${input.method}-${tag}.onnx`;
      heartbeat({ stage: 'upload', key });
      await putObject(deps.store, key, Buffer.from(bytes), 'application/octet-stream');
      return {
        method: input.method, key, sha256: sha256Hex(bytes), bytes: bytes.length, quantizedNodes: report.quantized,
        weightRatio: report.quantizedWeights.ratio, excludeNodes: input.excludeNodes ?? [], blockSize: input.method === 'int4' ? input.blockSize ?? 32 : undefined,
        ...wide, ...(fittedTo ? { fittedTo } : {}), ...(gptqUsed === undefined ? {} : { gptqUsed }),
      };
    },

    /**
     * Ranks the nodes a method quantizes by what each costs: the agreement with fp32 the model regains
     * with that node alone kept float (rankSensitiveNodes, on the calibration samples, or the golden ones
     * without a calibration set), most harmful first.
     */
    async rankSensitiveNodes(input: { modelId: string; method: Method; int4Conv?: boolean; int4Recurrent?: boolean }): Promise<Array<{ node: string; cosineLoss: number }>> {
      const m = await requireModel(deps, input.modelId);
      const onnx = await getObjectBuffer(deps.store, m.objectKey);
      const samples = parseGoldenJsonl(await getObjectText(deps.store, m.calibrationKey ?? m.goldenKey ?? ''));
      const options = { method: input.method, ...int4Layers(input) };
      const { gains } = await asBadInput(() => rankSensitiveNodes(decodeModel(onnx), options, () => samples, (ranked, of) => heartbeat({ ranked, of })));
      return gains.map((g) => ({ node: g.node, cosineLoss: g.gain }));
    },

    /** Registers the chosen candidate as `{version}-{method}` with its parent, method, parameters and metrics; idempotent. */
    async registerQuantized(input: { modelId: string; candidate: Candidate; metrics: EvaluationMetrics; budget: Budget }): Promise<{ id: string; version: string }> {
      const parent = await requireModel(deps, input.modelId);
      const c = input.candidate;
      const onnx = await getObjectBuffer(deps.store, c.key);
      const version = `${parent.version}-${c.method}${c.int4Conv ? '-conv' : ''}${c.int4Recurrent ? '-rnn' : ''}${c.excludeNodes.length ? `-x${c.excludeNodes.length}` : ''}`;
      const golden = parent.goldenKey ? await getObjectText(deps.store, parent.goldenKey) : undefined;
      // The child is the parent's model at another precision: it inherits what the tenant records about it.
      const v = await registerModel(deps.pool, deps.store, {
        tenant: parent.tenant, name: parent.name, version, onnx, manifest: parent.manifest, golden,
        tokenizer: parent.tokenizerKey ? (JSON.parse(await getObjectText(deps.store, parent.tokenizerKey)) as Record<string, unknown>) : undefined,
        precision: c.method, parentId: parent.id, metadata: parent.metadata,
        metrics: { method: c.method, int4Conv: c.int4Conv, int4Recurrent: c.int4Recurrent, blockSize: c.blockSize, excludeNodes: c.excludeNodes, weightRatio: c.weightRatio, fittedTo: c.fittedTo, gptqUsed: c.gptqUsed, budget: input.budget, evaluation: input.metrics },
      }, 'quantization').catch((err: unknown) => {
        if (err instanceof MetadataError) throw badInput(`${err.message} (inherited from ${parent.id}: fix it with qcflow model metadata ${parent.id} --file metadata.json --reason …, then run the job again)`);
        throw err;
      });
      // It passed its parent's golden outputs within the budget: that is what `validated` means, and
      // what a rollout against the parent (modelRollout) starts from. A retry finds it validated already.
      if (v.stage === 'registered') await moveStage(deps.pool, v.id, 'validated', 'quantization', `golden outputs within budget (top-1 agreement ${input.metrics.top1Agreement.toFixed(4)}, mean cosine ${input.metrics.cosine.mean.toFixed(4)})`);
      return { id: v.id, version: v.version };
    },
  };
}

/** On the inference workers: evaluation runs where inference does (and on its execution providers). */
export function evaluationActivities(deps: Pick<ActivityDeps, 'pool' | 'store'> & { providers: string[] }) {
  return {
    async evaluateModelCandidate(input: { modelId: string; candidateKey: string }): Promise<EvaluationMetrics> {
      const m = await requireModel(deps, input.modelId);
      if (!m.goldenKey) throw badInput(`model version ${m.id} has no golden inputs; register it with --golden golden.jsonl`);
      const [reference, candidate, golden] = await Promise.all([getObjectBuffer(deps.store, m.objectKey), getObjectBuffer(deps.store, input.candidateKey), getObjectText(deps.store, m.goldenKey)]);
      // In a child process: a candidate that crashes onnxruntime is reported, and the worker lives on.
      // Heartbeats at each sample the child finishes, so a cancellation reaches it; a child that stops
      // finishing them is killed by evaluateIsolated's watchdog and reported as crashed.
      const ctx = Context.current();
      return asBadInput(() => evaluateIsolated(reference, candidate, golden, { runs: 10, providers: deps.providers, signal: ctx.cancellationSignal, progress: () => ctx.heartbeat() })).catch((err: unknown) => {
        if (err instanceof OnnxruntimeCrashed) throw ApplicationFailure.nonRetryable(err.message, 'CandidateCrashed');
        throw err;
      });
    },
  };
}

export type ModelActivities = ReturnType<typeof modelActivities>;
export type EvaluationActivities = ReturnType<typeof evaluationActivities>;
