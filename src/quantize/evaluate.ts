import * as ort from 'onnxruntime-node';
import { readFileSync } from 'node:fs';
import { QuantizeError } from './types';
import { outputsAgreement } from './agreement';

/** One golden sample: named input tensors, and optionally the true class. */
export interface GoldenSample {
  /** float32 inputs; int64 ones (token ids) as BigInt64Array, int32 ones (bytes, ids: Google's Magika) as Int32Array. */
  inputs: Record<string, { dims: number[]; data: Float32Array | BigInt64Array | Int32Array }>;
  label?: number;
}

export interface EvaluationMetrics {
  samples: number;
  output: string;
  /** Share of samples whose arg-max class is the same (classification outputs). */
  top1Agreement: number;
  /**
   * Cosine similarity of candidate and reference outputs per sample, mean and worst, of the weakest float
   * output (every output is judged unless one is named: a detector's heads all matter); for an output of one
   * value a sample, 1 − its relative L2 error instead (src/quantize/agreement.ts).
   */
  cosine: { mean: number; min: number };
  /** Each float output's cosine, where the model has more than one. */
  outputs?: Record<string, { mean: number; min: number }>;
  maxAbsError: number;
  /** Against the golden labels, when every sample has one. */
  accuracy?: { reference: number; candidate: number };
  /** Median wall time of one single-sample run, over `runs` runs after a warm-up. */
  latencyMs: { reference: number; candidate: number; ratio: number };
  bytes?: { reference: number; candidate: number; ratio: number };
}

/**
 * Parses golden JSONL: one `{"<input>": {"dims": [...], "data": [...]}, ..., "label"?: k}` per line; `what`
 * names the set in errors (golden inputs, a calibration set).
 */
export function parseGoldenJsonl(text: string, what = 'golden'): GoldenSample[] {
  return text.split('\n').filter((l) => l.trim()).map((line, i) => {
    let obj: Record<string, unknown>;
    try {
      obj = JSON.parse(line) as Record<string, unknown>;
    } catch (err) {
      throw new QuantizeError(`${what} line ${i + 1}: not valid JSON (${(err as Error).message})`);
    }
    const inputs: GoldenSample['inputs'] = {};
    for (const [name, v] of Object.entries(obj)) {
      if (name === 'label') continue;
      const t = v as { dims?: unknown; data?: unknown; type?: unknown };
      if (!Array.isArray(t.dims) || !Array.isArray(t.data)) throw new QuantizeError(`${what} line ${i + 1}: input ${name} needs {"dims": [...], "data": [...]}`);
      const n = (t.dims as number[]).reduce((a, b) => a * b, 1);
      if (n !== t.data.length) throw new QuantizeError(`${what} line ${i + 1}: input ${name} has ${t.data.length} values for dims [${(t.dims as number[]).join(', ')}]`);
      if (t.type !== undefined && t.type !== 'float32' && t.type !== 'int64' && t.type !== 'int32') throw new QuantizeError(`${what} line ${i + 1}: input ${name} has type ${JSON.stringify(t.type)}; use "float32" (the default), "int64" (token ids) or "int32"`);
      if ((t.type === 'int64' || t.type === 'int32') && !(t.data as unknown[]).every((x) => Number.isInteger(x))) throw new QuantizeError(`${what} line ${i + 1}: input ${name} is ${t.type} but holds a value that is not an integer`);
      if (t.type === 'int32' && !(t.data as number[]).every((x) => x >= -(2 ** 31) && x < 2 ** 31)) throw new QuantizeError(`${what} line ${i + 1}: input ${name} is int32 but holds a value outside its range`);
      const data = t.data as number[];
      inputs[name] = { dims: t.dims as number[], data: t.type === 'int64' ? BigInt64Array.from(data, BigInt) : t.type === 'int32' ? Int32Array.from(data) : Float32Array.from(data) };
    }
    return { inputs, label: typeof obj.label === 'number' ? obj.label : undefined };
  });
}

export function goldenToJsonl(samples: GoldenSample[]): string {
  return samples.map((s) => JSON.stringify({ ...Object.fromEntries(Object.entries(s.inputs).map(([k, v]) => [k, { dims: v.dims, data: Array.from(v.data, Number), ...(v.data instanceof BigInt64Array ? { type: 'int64' } : v.data instanceof Int32Array ? { type: 'int32' } : {}) }])), ...(s.label === undefined ? {} : { label: s.label }) })).join('\n') + '\n';
}

/** A model as bytes or as a file path. */
export type ModelSource = Uint8Array | string;

export async function session(m: ModelSource, providers: string[]): Promise<ort.InferenceSession> {
  const opts: ort.InferenceSession.SessionOptions = { executionProviders: providers, graphOptimizationLevel: 'all' };
  try {
    return typeof m === 'string' ? await ort.InferenceSession.create(m, opts) : await ort.InferenceSession.create(m, opts);
  } catch (err) {
    throw new QuantizeError(`onnxruntime cannot load the model: ${(err as Error).message}`);
  }
}

/** A sample as onnxruntime feeds it: float32, int64 and int32 tensors. */
export function feedsOf(sample: GoldenSample): Record<string, ort.Tensor> {
  return Object.fromEntries(Object.entries(sample.inputs).map(([name, t]) => [name, t.data instanceof BigInt64Array ? new ort.Tensor('int64', t.data, t.dims) : t.data instanceof Int32Array ? new ort.Tensor('int32', t.data, t.dims) : new ort.Tensor('float32', t.data, t.dims)]));
}

async function run(s: ort.InferenceSession, sample: GoldenSample, i: number, output: string): Promise<Float32Array> {
  return (await runOutputs(s, sample, i, [output]))[output]!.data as Float32Array;
}

export async function runOutputs(s: ort.InferenceSession, sample: GoldenSample, i: number, outputs: readonly string[]): Promise<ort.InferenceSession.ReturnType> {
  try {
    return await s.run(feedsOf(sample), outputs);
  } catch (err) {
    throw new QuantizeError(`golden sample ${i + 1} does not fit the model (${(err as Error).message}); check its input names and shapes`);
  }
}

const argmax = (v: Float32Array): number => v.reduce((best, x, i, a) => (x > a[best]! ? i : best), 0);

/** Timed runs go on until each model has had this many milliseconds (and `runs` runs), at most MAX_TIMED_RUNS. */
const MIN_TIMED_MS = 100;
const MAX_TIMED_RUNS = 2000;

/**
 * Median latency of the reference and the candidate on one sample. Their runs alternate, so the CPU's drift
 * (boost clocks, a neighbour's load) falls on both alike, and a fast model is timed for a tenth of a second,
 * not five runs: timed one after the other, five runs each, models of 0.01–0.3 ms measured 0.3× to 1.9× of
 * themselves (0.96× to 1.02× now; scratch runs of evaluateCandidate(m, m), 2026-12-01).
 */
async function medianLatencies(ref: ort.InferenceSession, cand: ort.InferenceSession, sample: GoldenSample, output: string, runs: number, progress?: () => void): Promise<[number, number]> {
  const times: [number[], number[]] = [[], []];
  const spent = [0, 0];
  for (const s of [ref, cand]) await run(s, sample, 0, output);
  while ((times[0].length < runs || Math.min(...spent) < MIN_TIMED_MS) && times[0].length < MAX_TIMED_RUNS) {
    for (const [i, s] of [ref, cand].entries()) {
      const t0 = process.hrtime.bigint();
      await run(s, sample, 0, output);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      times[i]!.push(ms);
      spent[i]! += ms;
    }
    progress?.();
  }
  const median = (t: number[]): number => t.sort((x, y) => x - y)[Math.floor(t.length / 2)]!;
  return [median(times[0]), median(times[1])];
}

/**
 * Median single-sample latency of both models on `sample` (medianLatencies: runs alternating), for a
 * quantizer to say whether its result is faster here without a golden set: int8-static with BatchNorms
 * left unfolded runs PaddleOCR's classifier at ×1.5 the time of fp32 on this CPU.
 */
export async function latencies(reference: ModelSource, candidate: ModelSource, sample: GoldenSample, runs = 5): Promise<EvaluationMetrics['latencyMs']> {
  const [ref, cand] = [await session(reference, ['cpu']), await session(candidate, ['cpu'])];
  try {
    const [a, b] = await medianLatencies(ref, cand, sample, ref.outputNames[0]!, runs);
    return { reference: a, candidate: b, ratio: b / a };
  } finally {
    await ref.release();
    await cand.release();
  }
}

/** Why onnxruntime refuses to load `model` (its message), or undefined when it loads. */
export async function loadError(model: Uint8Array): Promise<string | undefined> {
  try {
    await (await ort.InferenceSession.create(model, { graphOptimizationLevel: 'disabled' })).release();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * Runs the fp32 reference and a candidate on the same golden samples with onnxruntime-node and compares
 * the first output (or `output`): top-1 agreement, max absolute error, accuracy against labels; cosine
 * similarity on every float output (or `output` alone), the weakest reported; median latency and file size.
 * Judged on its first head alone, RapidAI's PicoDet's int8-static scored 0.907 while two of its eight
 * heads were at 0.84.
 */
export async function evaluateCandidate(reference: ModelSource, candidate: ModelSource, golden: GoldenSample[], o: { output?: string; runs?: number; providers?: string[]; progress?: () => void } = {}): Promise<EvaluationMetrics> {
  if (golden.length === 0) throw new QuantizeError('no golden samples to evaluate on');
  const providers = o.providers ?? ['cpu'];
  const [ref, cand] = [await session(reference, providers), await session(candidate, providers)];
  try {
    const judged = o.output ? [o.output] : ref.outputNames;
    const lost = judged.filter((n) => !cand.outputNames.includes(n));
    if (lost.length) throw new QuantizeError(`the candidate has no output ${lost.join(', ')} (it has ${cand.outputNames.join(', ')})`);
    // Top-1, labels and max-abs are read on one output: the named one, else the first float one (a
    // classifier's int64 label output comes first in some exports).
    let output = o.output ?? '';
    let agree = 0;
    let refCorrect = 0;
    let candCorrect = 0;
    let maxAbs = 0;
    const agreement = outputsAgreement();
    for (let i = 0; i < golden.length; i++) {
      const [ra, rb] = [await runOutputs(ref, golden[i]!, i, judged), await runOutputs(cand, golden[i]!, i, judged)];
      output ||= judged.find((n) => ra[n]!.data instanceof Float32Array) ?? '';
      const a = ra[output]?.data;
      if (!(a instanceof Float32Array)) throw new QuantizeError(output ? `output ${output} is ${ra[output]!.type}, not float; name a float output with --output-name` : 'the model has no float output to compare by cosine; name one with --output-name');
      const b = rb[output]!.data as Float32Array;
      let e = 0;
      for (let j = 0; j < a.length; j++) e = Math.max(e, Math.abs(a[j]! - b[j]!));
      maxAbs = Math.max(maxAbs, e);
      agreement.add(ra, rb);
      o.progress?.();
      if (argmax(a) === argmax(b)) agree++;
      const label = golden[i]!.label;
      if (label !== undefined) {
        if (argmax(a) === label) refCorrect++;
        if (argmax(b) === label) candCorrect++;
      }
    }
    const outputs = agreement.each();
    const runs = o.runs ?? 20;
    const [latRef, latCand] = await medianLatencies(ref, cand, golden[0]!, output, runs, o.progress);
    const labelled = golden.every((g) => g.label !== undefined);
    const size = (m: ModelSource): number => (typeof m === 'string' ? readFileSync(m).length : m.length);
    return {
      samples: golden.length, output,
      top1Agreement: agree / golden.length,
      cosine: agreement.weakest(),
      ...(Object.keys(outputs).length > 1 ? { outputs } : {}),
      maxAbsError: maxAbs,
      ...(labelled ? { accuracy: { reference: refCorrect / golden.length, candidate: candCorrect / golden.length } } : {}),
      latencyMs: { reference: latRef, candidate: latCand, ratio: latCand / latRef },
      bytes: { reference: size(reference), candidate: size(candidate), ratio: size(candidate) / size(reference) },
    };
  } finally {
    await ref.release();
    await cand.release();
  }
}


