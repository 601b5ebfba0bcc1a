import * as ort from 'onnxruntime-node';
import { onnx } from '../onnx/proto';
import { encodeModel } from '../onnx/proto';
import { feedsOf, type GoldenSample } from './evaluate';
import { outputsAgreement } from './agreement';
import { QuantizeError } from './types';
import type { HessianSum } from './gptq';
import { fetchesOf, gramModel, withHessianOutputs, type HessianTarget } from './hessian-graph';
import { inlineBranches } from '../onnx/inline-branches';
import { allGraphs, constantsToInitializers, nodeKey } from '../onnx/graph';

export type CalibrationMethod = 'minmax' | 'percentile' | 'entropy';

export interface CalibrationOptions {
  /** 'auto' (the default): calibrationFor's choice for the model. */
  method: CalibrationMethod | 'auto';
  /** percentile: share of values kept inside the range, in percent (both tails clipped equally). */
  percentile?: number;
  /** Histogram bins for percentile and entropy. */
  bins?: number;
  /** int8-static: correct each quantized Conv's bias for the mean shift of its output (bias-correction.ts); default on. */
  biasCorrection?: boolean;
  /** int8-static's bias correction: after each level of Convs corrected. */
  progress?: (level: number, of: number) => void;
}

export type Ranges = Map<string, { min: number; max: number }>;

/**
 * The method 'auto' stands for: percentile (99.999%) for a model with convolutions, min-max otherwise.
 * Min-max lets a conv net's rare large activations (BatchNorm folded in, no normalisation after) coarsen
 * every step, while a transformer's few large features are the ones that matter (Dettmers et al.,
 * LLM.int8()). In the bench, percentile took PaddleOCR's recogniser 0.886 → 0.941, its detector 0.941 →
 * 0.975, RapidAI's PicoDet 0.860 → 0.907 and lost 0.006 on ddddocr's YOLOX; on the torch transformers it
 * lost 0.0001–0.0002 (d768 0.99856 → 0.99832: under onnxruntime's min-max cosine less the 0.001 allowed).
 */
export function calibrationFor(graph: onnx.IGraphProto, o: CalibrationOptions): CalibrationOptions & { method: CalibrationMethod } {
  if (o.method !== 'auto') return { ...o, method: o.method };
  return { ...o, method: allGraphs(graph).some((x) => (x.node ?? []).some((n) => n.opType === 'Conv' && !n.domain)) ? 'percentile' : 'minmax' };
}

/**
 * Collects activation ranges of `tensors` by running the model on each calibration sample in turn. Only
 * running statistics are kept (min/max, then one histogram per tensor), never a sample's intermediates
 * after its run: memory is bins × tensors, whatever the dataset size. Percentile and entropy need a second
 * pass over the samples, with histograms spanning the first pass's range.
 */
export async function calibrate(model: onnx.IModelProto, tensors: string[], samples: () => Iterable<GoldenSample> | AsyncIterable<GoldenSample>, o: CalibrationOptions & { method: CalibrationMethod }): Promise<Ranges> {
  return withIntermediates(model, tensors, samples, async (runAll) => {
    const ranges: Ranges = new Map(tensors.map((t) => [t, { min: Infinity, max: -Infinity }]));
    const count = await runAll((name, data) => {
      const r = ranges.get(name)!;
      for (let i = 0; i < data.length; i++) {
        const v = data[i]!;
        if (v < r.min) r.min = v;
        if (v > r.max) r.max = v;
      }
    });
    if (count === 0) throw new QuantizeError('the calibration set is empty');
    if (o.method === 'minmax') return ranges;
    const bins = o.bins ?? 2048;
    const hists = new Map(tensors.map((t) => [t, new Float64Array(bins)]));
    // Percentile: values over [min, max]. Entropy: magnitudes over [0, absmax] (TensorRT's formulation).
    await runAll((name, data) => {
      const r = ranges.get(name)!;
      const h = hists.get(name)!;
      const lo = o.method === 'entropy' ? 0 : r.min;
      const hi = o.method === 'entropy' ? Math.max(Math.abs(r.min), Math.abs(r.max)) : r.max;
      const width = (hi - lo) / bins || 1;
      for (let i = 0; i < data.length; i++) {
        const v = o.method === 'entropy' ? Math.abs(data[i]!) : data[i]!;
        h[Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / width)))]! += 1;
      }
    });
    const out: Ranges = new Map();
    for (const t of tensors) {
      const r = ranges.get(t)!;
      const h = hists.get(t)!;
      if (o.method === 'percentile') {
        const tail = (100 - (o.percentile ?? 99.999)) / 200;
        const [a, b] = [quantileOfHistogram(h, r.min, r.max, tail), quantileOfHistogram(h, r.min, r.max, 1 - tail)];
        out.set(t, { min: Math.min(a, 0), max: Math.max(b, 0) });
      } else {
        const absmax = Math.max(Math.abs(r.min), Math.abs(r.max));
        const threshold = entropyThreshold(h, absmax);
        out.set(t, { min: r.min >= 0 ? 0 : -threshold, max: r.max <= 0 ? 0 : threshold });
      }
    }
    return out;
  });
}

/**
 * Σ x·xᵀ of each target's input over the calibration samples (GPTQ's H, up to a constant) with the rows'
 * moments, for pooledHessian to finish: a Conv's per sample from onnxruntime (withHessianOutputs), a
 * MatMul's from its rows gathered up to max(k, ROW_BLOCK) at a time (gramModel); float32 products, summed
 * in float64. Memory is about 1.5·k² doubles per target, whatever the dataset size.
 */
export async function collectHessians(model: onnx.IModelProto, targets: HessianTarget[], samples: () => Iterable<GoldenSample> | AsyncIterable<GoldenSample>): Promise<{ sums: Map<string, HessianSum>; samples: number }> {
  const { model: augmented, outputs } = withHessianOutputs(model, targets);
  // One sum per computation: targets reading the same rows share it, and get copies at the end.
  const sums = new Map([...new Set(outputs.values())].map((o) => [o, { sum: { h: new Float64Array(o.k * o.k), rows: 0, crossFourth: 0 }, pending: o.kind === 'rows' ? rowBlock(o.k) : undefined }]));
  const fetches = [...new Set([...sums.keys()].flatMap(fetchesOf))];
  const session = await openSession(augmented, fetches);
  // Opened at the first MatMul's rows: a conv net's passes need none.
  let gramSession: ort.InferenceSession | undefined;
  const gram = async (x: Float32Array, n: number, k: number): Promise<Float32Array> => {
    gramSession ??= await ort.InferenceSession.create(encodeModel(gramModel()));
    return (await gramSession.run({ x: new ort.Tensor('float32', x, [n, k]) })).h!.data as Float32Array;
  };
  try {
    let count = 0;
    for await (const s of samples()) {
      const out = await runSample(session, s, count, fetches);
      for (const [o, { sum, pending }] of sums) {
        if (o.kind === 'rows') {
          await addRows(sum, pending!, out[o.rows]!.data as Float32Array, gram);
          continue;
        }
        // The upper triangle: pooledHessian mirrors it (half the adds of a k² sum per sample).
        const h = out[o.h]!.data as Float32Array;
        for (let i = 0; i < o.k; i++) for (let at = i * o.k + i; at < (i + 1) * o.k; at++) sum.h[at] = sum.h[at]! + h[at]!;
        // Σ over patches of Σ_{i≠j} x_i²·x_j² = ‖x‖⁴ − Σ x_i⁴, in float64.
        const squares = out[o.rowSquares]!.data as Float32Array;
        const fourths = out[o.rowFourths]!.data as Float32Array;
        for (let r = 0; r < squares.length; r++) sum.crossFourth += squares[r]! * squares[r]! - fourths[r]!;
        sum.rows += squares.length;
      }
      count++;
    }
    if (count === 0) throw new QuantizeError('the calibration set is empty');
    for (const { sum, pending } of sums.values()) if (pending) await flushRows(sum, pending, gram);
    const copy = (x: HessianSum): HessianSum => ({ ...x, h: Float64Array.from(x.h) });
    return { sums: new Map(targets.map((t) => [t.node, copy(sums.get(outputs.get(t.node)!)!.sum)])), samples: count };
  } finally {
    await session.release();
    await gramSession?.release();
  }
}

/** Rows gathered at least this many at a time (or k, if more) before they are multiplied into H. */
const ROW_BLOCK = 1024;

type Gram = (x: Float32Array, n: number, k: number) => Promise<Float32Array>;

interface PendingRows {
  k: number;
  data: Float32Array;
  count: number;
}

function rowBlock(k: number): PendingRows {
  return { k, data: new Float32Array(Math.max(k, ROW_BLOCK) * k), count: 0 };
}

/** Adds `rows` (each of `pending.k` values) to `sum`'s moments and to the rows waiting for its H. */
async function addRows(sum: HessianSum, pending: PendingRows, rows: Float32Array, gram: Gram): Promise<void> {
  const { k } = pending;
  for (let at = 0; at < rows.length; at += k) {
    let squares = 0;
    let fourths = 0;
    for (let i = at; i < at + k; i++) {
      const v2 = rows[i]! * rows[i]!;
      squares += v2;
      fourths += v2 * v2;
    }
    pending.data.set(rows.subarray(at, at + k), pending.count * k);
    sum.crossFourth += squares * squares - fourths;
    sum.rows++;
    if (++pending.count * k === pending.data.length) await flushRows(sum, pending, gram);
  }
}

/** H += Xᵀ·X over the rows waiting. */
async function flushRows(sum: HessianSum, pending: PendingRows, gram: Gram): Promise<void> {
  const { k, count } = pending;
  if (count === 0) return;
  const h = await gram(pending.data.slice(0, count * k), count, k);
  for (let i = 0; i < sum.h.length; i++) sum.h[i] = sum.h[i]! + h[i]!;
  pending.count = 0;
}

/**
 * outputsAgreement of each candidate with the reference over the samples: how quantizeModelCalibrated
 * chooses between GPTQ and rounding on the calibration set itself.
 */
export async function agreementOn(reference: onnx.IModelProto, candidates: onnx.IModelProto[], samples: () => Iterable<GoldenSample> | AsyncIterable<GoldenSample>, optimized = false): Promise<number[]> {
  const sessions: ort.InferenceSession[] = [];
  try {
    // All open at once and run sample by sample: no model's outputs are held beyond one sample.
    for (const m of [reference, ...candidates]) sessions.push(await openSession(m, [], optimized));
    const sums = candidates.map(() => outputsAgreement());
    let n = 0;
    for await (const s of samples()) {
      const outs: ort.InferenceSession.ReturnType[] = [];
      for (const session of sessions) outs.push(await runSample(session, s, n, session.outputNames));
      for (let i = 0; i < candidates.length; i++) sums[i]!.add(outs[0]!, outs[i + 1]!);
      n++;
    }
    return sums.map((x) => x.weakest().mean);
  } finally {
    for (const session of sessions) await session.release();
  }
}

/**
 * agreementOn for many calls on the same few samples (the sensitivity search's): the reference runs once,
 * its outputs held, not once a batch (PaddleOCR's recogniser searched in 42 s instead of 57). Candidates
 * run with graph optimizations off, as agreementOn's do: with onnxruntime's int8 kernels the search was
 * slower there (75 s, its optimizer) and scored the recogniser otherwise (start 0.922, not 0.898), so it
 * kept other nodes and ended at 0.961 on held-out lines instead of 0.983.
 */
export function agreementScorer(reference: onnx.IModelProto, samples: () => Iterable<GoldenSample> | AsyncIterable<GoldenSample>): (candidates: onnx.IModelProto[]) => Promise<number[]> {
  let referenceRun: Promise<{ sample: GoldenSample; out: ort.InferenceSession.ReturnType }[]> | undefined;
  const referenceOutputs = async (): Promise<{ sample: GoldenSample; out: ort.InferenceSession.ReturnType }[]> => {
    const session = await openSession(reference, []);
    try {
      const out: { sample: GoldenSample; out: ort.InferenceSession.ReturnType }[] = [];
      let n = 0;
      for await (const sample of samples()) out.push({ sample, out: await runSample(session, sample, n++, session.outputNames) });
      return out;
    } finally {
      await session.release();
    }
  };
  return async (candidates) => {
    const ref = await (referenceRun ??= referenceOutputs());
    const sessions: ort.InferenceSession[] = [];
    try {
      for (const m of candidates) sessions.push(await openSession(m, []));
      const sums = candidates.map(() => outputsAgreement());
      for (const [n, r] of ref.entries()) {
        for (const [i, session] of sessions.entries()) sums[i]!.add(r.out, await runSample(session, r.sample, n, session.outputNames));
      }
      return sums.map((x) => x.weakest().mean);
    } finally {
      for (const session of sessions) await session.release();
    }
  };
}

type RunAll = (visit: (name: string, data: Float32Array, dims: readonly number[]) => void) => Promise<number>;

/**
 * Runs `use` with a pass over the samples that hands it `tensors` (intermediate values made extra outputs,
 * so one run yields them all) sample by sample; nothing of a sample is kept after its run. `optimized`: run
 * as onnxruntime runs the model (its fusions), not as the graph is written.
 */
export async function withIntermediates<T>(model: onnx.IModelProto, tensors: string[], samples: () => Iterable<GoldenSample> | AsyncIterable<GoldenSample>, use: (runAll: RunAll) => Promise<T>, optimized = false): Promise<T> {
  const session = await openSession(model, tensors, optimized);
  const runAll: RunAll = async (visit) => {
    let n = 0;
    for await (const s of samples()) {
      const out = await runSample(session, s, n, tensors);
      for (const name of tensors) visit(name, out[name]!.data as Float32Array, out[name]!.dims);
      n++;
    }
    return n;
  };
  try {
    return await use(runAll);
  } finally {
    await session.release();
  }
}

/** A session over `model` with `tensors` made extra outputs (one run yields every intermediate wanted). */
export async function openSession(model: onnx.IModelProto, tensors: string[], optimized = false): Promise<ort.InferenceSession> {
  const augmented = onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish());
  const g = augmented.graph!;
  const present = new Set((g.output ?? []).map((v) => v.name!));
  for (const t of tensors) if (!present.has(t)) g.output = [...(g.output ?? []), { name: t }];
  try {
    return await ort.InferenceSession.create(encodeModel(augmented), { graphOptimizationLevel: optimized ? 'all' : 'disabled' });
  } catch (err) {
    throw new QuantizeError(`onnxruntime cannot load the model for calibration: ${(err as Error).message}`);
  }
}

export async function runSample(session: ort.InferenceSession, sample: GoldenSample, n: number, fetches: readonly string[]): Promise<ort.InferenceSession.ReturnType> {
  try {
    return await session.run(feedsOf(sample), fetches);
  } catch (err) {
    throw new QuantizeError(`calibration sample ${n + 1} does not fit the model (${(err as Error).message}); check its input names and shapes`);
  }
}

/** The value below which a share `q` of the histogram's mass lies (linear within a bin). */
export function quantileOfHistogram(h: Float64Array, lo: number, hi: number, q: number): number {
  const total = h.reduce((s, x) => s + x, 0);
  const width = (hi - lo) / h.length;
  let acc = 0;
  for (let i = 0; i < h.length; i++) {
    if (acc + h[i]! >= q * total) return lo + width * (i + (h[i]! ? (q * total - acc) / h[i]! : 0));
    acc += h[i]!;
  }
  return hi;
}

/**
 * TensorRT's entropy calibration: the clipping threshold of a magnitude histogram that minimises the KL
 * divergence between the clipped distribution P and its 128-level quantization Q.
 */
export function entropyThreshold(h: Float64Array, absmax: number, levels = 128): number {
  const bins = h.length;
  if (absmax === 0) return 0;
  let best = bins;
  let bestKl = Infinity;
  for (let i = levels; i <= bins; i++) {
    const p = Array.from(h.subarray(0, i));
    // Mass beyond the threshold is clipped into the last bin.
    for (let j = i; j < bins; j++) p[i - 1]! += h[j]!;
    const nonZero = p.map((x) => (x > 0 ? 1 : 0));
    const q = new Array<number>(i).fill(0);
    const merge = i / levels;
    for (let k = 0; k < levels; k++) {
      const start = Math.floor(k * merge);
      const end = k === levels - 1 ? i : Math.floor((k + 1) * merge);
      let sum = 0;
      let count = 0;
      for (let j = start; j < end; j++) {
        sum += h[j]!;
        count += nonZero[j]!;
      }
      for (let j = start; j < end; j++) if (nonZero[j]) q[j] = sum / count;
    }
    const ps = p.reduce((s, x) => s + x, 0);
    const qs = q.reduce((s, x) => s + x, 0);
    if (ps === 0 || qs === 0) continue;
    let kl = 0;
    for (let j = 0; j < i; j++) {
      const pj = p[j]! / ps;
      const qj = q[j]! / qs;
      if (pj > 0) kl += qj > 0 ? pj * Math.log(pj / qj) : Infinity;
    }
    if (kl < bestKl) {
      bestKl = kl;
      best = i;
    }
  }
  return (best / bins) * absmax;
}

/**
 * collectHessians over calibration views (a copy of the model per group of If branches taken, with the
 * samples that take them): each target's sums from every view that holds it, for pooledHessian to add up.
 */
export async function collectHessiansOver(views: CalibrationView[], targets: HessianTarget[]): Promise<{ sums: Map<string, HessianSum[]>; samples: number }> {
  const sums = new Map<string, HessianSum[]>();
  let count = 0;
  for (const view of views) {
    const names = new Set((view.model.graph!.node ?? []).map(nodeKey));
    const here = targets.filter((t) => names.has(t.node));
    if (!here.length) continue;
    const got = await collectHessians(view.model, here, view.samples);
    count += got.samples;
    for (const [node, s] of got.sums) sums.set(node, [...(sums.get(node) ?? []), s]);
  }
  return { sums, samples: count };
}

/** A group of calibration samples taking the same If branches: the Ifs decided (by nodeKey), and the samples' places in the set. */
export interface BranchGroup {
  taken: Map<string, boolean>;
  indices: number[];
}

/**
 * `samples` grouped by the If branches they take: in each group, the Ifs with the branch every sample of
 * it takes — the main graph's first, then those that inlining them brings up (nested Ifs), a run over the
 * group per level. What calibration inlines (inlineBranches) to reach the layers inside branches:
 * silero-vad's samples at 16 and 8 kHz make two groups, one for each rate's branch. The samples stream
 * (a pass per level); a group keeps their indices, not the samples.
 */
export async function branchGroups(model: onnx.IModelProto, samples: () => Iterable<GoldenSample> | AsyncIterable<GoldenSample>): Promise<BranchGroup[]> {
  const done: BranchGroup[] = [];
  const open: Array<{ taken: Map<string, boolean>; indices?: number[] }> = [{ taken: new Map() }];
  for (let group = open.pop(); group; group = open.pop()) {
    const view = inlineBranches(model, group.taken);
    const ifs = (view.graph!.node ?? []).filter((n) => n.opType === 'If' && !n.domain && !group.taken.has(nodeKey(n)));
    const bySide = new Map<string, BranchGroup>();
    const seen: number[] = [];
    if (ifs.length) {
      const conditions = [...new Set(ifs.map((n) => n.input![0]!))];
      const session = await openSession(view, conditions);
      try {
        for await (const [i, s] of indexed(samples, group.indices)) {
          const out = await runSample(session, s, i, conditions);
          const side = ifs.map((n) => Boolean((out[n.input![0]!]!.data as ArrayLike<number | boolean>)[0]));
          const key = side.map(Number).join('');
          if (!bySide.has(key)) bySide.set(key, { taken: new Map([...group.taken, ...ifs.map((n, j) => [nodeKey(n), side[j]!] as const)]), indices: [] });
          bySide.get(key)!.indices.push(i);
        }
      } finally {
        await session.release();
      }
    } else {
      for await (const [i] of indexed(samples, group.indices)) seen.push(i);
    }
    if (bySide.size) open.push(...bySide.values());
    else done.push({ taken: group.taken, indices: group.indices ?? seen });
  }
  return done;
}

/** The samples at `indices` (all where undefined), each with its index in the set. */
async function* indexed(samples: () => Iterable<GoldenSample> | AsyncIterable<GoldenSample>, indices?: number[]): AsyncIterable<[number, GoldenSample]> {
  const wanted = indices && new Set(indices);
  let i = 0;
  for await (const s of samples()) {
    if (!wanted || wanted.has(i)) yield [i, s];
    i++;
  }
}

/** The samples at `indices`, in order. */
async function* only(samples: () => Iterable<GoldenSample> | AsyncIterable<GoldenSample>, indices: number[]): AsyncIterable<GoldenSample> {
  for await (const [, s] of indexed(samples, indices)) yield s;
}

/** A model as calibration runs it, with the samples it runs it on. */
export interface CalibrationView {
  model: onnx.IModelProto;
  samples: () => Iterable<GoldenSample> | AsyncIterable<GoldenSample>;
}

/**
 * How calibration reaches values inside If branches, which cannot be fetched as outputs: a view per group
 * of samples taking the same branches (branchGroups), those branches inlined into a copy run on that group
 * alone. A model without an If is its own one view, on every sample. Values keep their names in every
 * view, so what is measured in one applies to the model itself. The function views any model of the same
 * structure (GPTQ views each pass's partly quantized model). Loop and Scan bodies are not views: int8-static
 * fetches their values stacked over iterations (src/onnx/loop-values.ts); GPTQ rounds them.
 */
export async function calibrationViews(model: onnx.IModelProto, samples: () => Iterable<GoldenSample> | AsyncIterable<GoldenSample>): Promise<(m: onnx.IModelProto) => CalibrationView[]> {
  // Without an If in the main graph there is nothing to inline: the samples stream, as for any model.
  if (!(model.graph!.node ?? []).some((n) => n.opType === 'If' && !n.domain)) return (m) => [{ model: m, samples }];
  const groups = await branchGroups(model, samples);
  return (m) => groups.map((group) => {
    const inlined = group.taken.size ? inlineBranches(m, group.taken) : m;
    if (inlined !== m) constantsToInitializers(inlined.graph!);
    return { model: inlined, samples: () => only(samples, group.indices) };
  });
}
