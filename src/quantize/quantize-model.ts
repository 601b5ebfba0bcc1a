import { onnx } from '../onnx/proto';
import { dedupeTransposedInt8, foldWeightPaths } from '../onnx/fold-weights';
import { foldBatchNorms } from '../onnx/fold-batchnorm';
import { allGraphs, attr, compactNames, constantsToInitializers, GraphIndex, intAttr, intsAttr, moveInitializersIntoSubgraphs, nameBytes, nodeKey, nodeMetadataBytes, opHistogram, parentGraphs, removeUnusedInitializers, shareIdenticalInitializers, subgraphsOf, topologicalSort } from '../onnx/graph';
import { elementCount, hasNonFinite, tensorBytes } from '../onnx/tensor';
import { OpsetUpgradeError, upgradeOpset, type OpsetUpgrade } from '../onnx/opset-upgrade';
import { valueTypes } from '../onnx/value-types';
import { exposeLoopValues, iteratedGraphs, iteratedWeights, loopBodies, loopValues } from '../onnx/loop-values';
import { quantizableOps, quantizerFor } from './registry';
import { QuantizeError, RECURRENT_OPS, type Method, type NodeOutcome, type QuantizeContext, type QuantizeOptions } from './types';
import { convertToFloat16 } from './fp16';
import { agreementOn, agreementScorer, calibrate, calibrationFor, calibrationViews, collectHessiansOver, type CalibrationMethod, type CalibrationOptions, type CalibrationView, type Ranges } from './calibrate';
import type { HessianTarget } from './hessian-graph';
import { hessianFactor, pooledHessian, solveRequested, type ConvGeometry, type GptqLayer } from './gptq';
import { doubleMatMul } from './double-matmul';
import { keepSensitiveFloat, rankByFloatGain, type SensitivityReport } from './sensitivity';
import { ACTIVATION_OPS, MOVES_VALUES, staticCalibrationTensors } from './int8-static';
import { biasCorrections as measureBiasCorrections } from './bias-correction';
import type { GoldenSample } from './evaluate';
import './int8-dynamic';
import './int8-static';
import { fourBitConvs, INT4_CAST_OPSET } from './int4';
import './gather';
import './recurrent';
import './conv-transpose';

export interface QuantizeReport {
  method: Method;
  options: QuantizeOptions;
  /** Constant nodes turned into initializers first (exporters that store weights as Constant nodes). */
  constantsMoved: number;
  /** Nodes between a weight and its quantized node folded into the weight first (Transpose, Reshape, Cast, …). */
  foldedWeightPaths: number;
  /** BatchNormalizations folded into the Conv before them first (int8-dynamic, int4), so their parameters do not stay float. */
  foldedBatchNorms: number;
  /** The model's default-domain opset raised first, to what the method's operators need (old exporters write 9 or 10). */
  opsetUpgrade?: OpsetUpgrade;
  nodes: NodeOutcome[];
  quantized: number;
  /** Bytes of all initializers before and after. */
  weightBytes: { before: number; after: number; ratio: number };
  /** Bytes of the weights that were replaced, and of what replaced them (quantized values, scales, zero points). */
  quantizedWeights: { before: number; after: number; ratio: number };
  /** The whole model serialised (graph, every initializer), before and after: what a file weighs. */
  modelBytes: { before: number; after: number; ratio: number };
  /** Of those, the nodes' metadata_props (exporters' debug entries) in the output: see dropNodeMetadata. */
  nodeMetadataBytes: number;
  /** Of those, the names of nodes, values and initializers in the output: see compactNames. */
  nameBytes: number;
  /** int8-static: quantized Convs whose bias was corrected for their output's mean shift (bias-correction.ts); 0 where the correction was measured and not kept. */
  biasCorrected?: number;
  /** int8-static: the weakest output's agreement with fp32 on the bias-correction samples, corrected and not; the correction is kept only where it is higher. */
  biasCorrectionAgreement?: { corrected: number; uncorrected: number };
}

/** Lowest default-domain opset each method's ops need (MatMulInteger 10, DynamicQuantizeLinear 11, per-axis QDQ 13). */
const MIN_OPSET: Record<Method, number> = { 'int8-dynamic': 11, 'int8-static': 13, fp16: 7, int4: 7 };

/** The search for nodes to keep float (see keepSensitiveFloat): off unless a target is given. */
export interface AccuracyTarget {
  /** Mean cosine against fp32, on the first SENSITIVITY_SAMPLES calibration samples (of each group taking the same If branches), to reach. */
  minCosine: number;
  /** At most this many nodes kept float; default a quarter of those quantized (at least one): PaddleOCR's recogniser needed 11 of 47 for 0.97. */
  maxFloat?: number;
  /** After each batch of candidates: evaluations so far, and the most the search can take. */
  progress?: (evaluations: number, atMost: number) => void;
}

/** Samples the sensitivity search runs each candidate on: the first of the calibration set (see scorer). */
export const SENSITIVITY_SAMPLES = 8;

/**
 * One method's quantization of a model with chosen nodes kept float, built on demand: what the sensitivity
 * search varies. `reference` is the fp32 model as prepared (Constants made initializers, opset raised) and
 * `nodes` those quantized when none is kept float.
 */
interface FloatKeeping {
  reference: onnx.ModelProto;
  nodes: string[];
  build(keptFloat: string[]): { model: onnx.ModelProto; report: QuantizeReport };
}

/**
 * int8 static: finds the nodes the QDQ quantizers would take, calibrates their inputs and outputs on the
 * samples (streamed, see calibrate), then quantizes with those ranges. With `accuracy`, the nodes that cost
 * most agreement are then kept float until the target is met.
 */
export async function quantizeModelStatic(input: onnx.IModelProto, options: QuantizeOptions & { method: 'int8-static' }, samples: () => Iterable<GoldenSample> | AsyncIterable<GoldenSample>, calibration: CalibrationOptions, accuracy?: AccuracyTarget): Promise<{ model: onnx.ModelProto; report: QuantizeReport & { calibration: CalibrationOptions; sensitivity?: SensitivityReport } }> {
  const { keeping, method, floatBytes, inputBytes, views, correctBiases } = await staticKeeping(input, options, samples, calibration);
  let sensitivity: SensitivityReport | undefined;
  if (accuracy) {
    sensitivity = await keepSensitiveFloat(keeping.nodes, scorer(keeping, views), {
      target: accuracy.minCosine, maxKept: accuracy.maxFloat ?? Math.max(1, Math.ceil(keeping.nodes.length / 4)), progress: accuracy.progress,
      // Gain per √bytes: per byte took many small nodes of little gain and missed 0.97 on PaddleOCR's
      // recogniser (0.967 on held-out lines, file ×0.29); gain alone met it, keeping big necks float
      // (0.975, ×0.41); per √bytes 0.983 at ×0.355.
      cost: (n: string) => Math.sqrt(Math.max(1, floatBytes(n))),
    });
  }
  const kept = sensitivity?.kept.map((k) => k.node) ?? [];
  // The Convs next to those kept float see other inputs than when every node was quantized.
  if (kept.length) await correctBiases(kept);
  const result = keeping.build(kept);
  // What was asked, for the report: bias correction on or off, not the progress callback.
  const { progress: _progress, ...asked } = { ...method, biasCorrection: method.biasCorrection !== false };
  const why = new Map(sensitivity?.kept.map((k) => [k.node, `kept float by the sensitivity search (agreement ${k.cosine.toFixed(4)} with it float)`]) ?? []);
  const nodes = result.report.nodes.map((n) => (why.has(n.node) ? { ...n, reason: why.get(n.node)! } : n));
  return { model: result.model, report: { ...againstInput(result.report, inputBytes), nodes, options: { ...result.report.options, excludeNodes: options.excludeNodes }, calibration: asked, ...(sensitivity ? { sensitivity } : {}) } };
}

/**
 * `report` with its whole-file sizes taken against the caller's model (`before`: its bytes), not the prepared copy (Constants
 * moved, BatchNorms folded) that was quantized: PaddleOCR's classifier's int4 file is ×0.252 of the user's,
 * ×0.274 of the copy.
 */
function againstInput<R extends QuantizeReport>(report: R, before: number): R {
  return { ...report, modelBytes: { before, after: report.modelBytes.after, ratio: report.modelBytes.after / before } };
}

/**
 * The nodes a method quantizes, each with the agreement with fp32 the model regains when that node alone
 * is kept float (everything else quantized), largest first: what costs most. On the first
 * SENSITIVITY_SAMPLES samples; int8-static calibrated once on them all, int4 rounded.
 */
export async function rankSensitiveNodes(input: onnx.IModelProto, options: QuantizeOptions, samples: () => Iterable<GoldenSample> | AsyncIterable<GoldenSample>, progress?: (evaluations: number, of: number) => void): Promise<{ start: number; gains: { node: string; gain: number }[] }> {
  const { keeping, views } = options.method === 'int8-static'
    ? await staticKeeping(input, { ...options, method: 'int8-static' }, samples, { method: 'auto' })
    : { keeping: methodKeeping(input, options), views: (await calibrationViews(input, samples))(input) };
  return rankByFloatGain(keeping.nodes, scorer(keeping, views), progress);
}

/**
 * Mean cosine with fp32 of each kept-float set's model, on the first SENSITIVITY_SAMPLES samples of each
 * calibration view: every If branch the set takes is weighed (silero-vad's first 8 samples were all 16 kHz,
 * and its 8 kHz branch's nodes scored no gain). Spread over the set instead, the samples were easier than
 * the first 8 of PaddleOCR's recogniser, and the search stopped at 0.964 on held-out lines, not 0.983.
 */
function scorer(keeping: FloatKeeping, views: CalibrationView[]): (sets: string[][]) => Promise<number[]> {
  const score = agreementScorer(keeping.reference, async function* () {
    for (const v of views) yield* take(v.samples(), SENSITIVITY_SAMPLES);
  });
  return (sets) => score(sets.map((k) => keeping.build(k).model));
}

/** `options` with `keptFloat` added to the nodes it excludes. */
function withKeptFloat(options: QuantizeOptions, keptFloat: string[]): QuantizeOptions {
  return keptFloat.length ? { ...options, excludeNodes: [...(options.excludeNodes ?? []), ...keptFloat] } : options;
}

function methodKeeping(input: onnx.IModelProto, options: QuantizeOptions): FloatKeeping {
  const build = (keptFloat: string[]): ReturnType<typeof quantizeModel> => quantizeModel(input, withKeptFloat(options, keptFloat));
  const reference = onnx.ModelProto.decode(onnx.ModelProto.encode(input).finish());
  return { reference, nodes: build([]).report.nodes.filter((n) => n.action === 'quantized').map((n) => n.node), build };
}

/**
 * int8-static's FloatKeeping: calibrated once (keeping a node float only drops tensors from what is needed).
 * Nodes inside If branches are chosen and calibrated in the views that inline them (calibrationViews): a
 * tensor's range spans every view that holds it; a node no calibration sample reaches stays float.
 */
async function staticKeeping(input: onnx.IModelProto, options: QuantizeOptions & { method: 'int8-static' }, samples: () => Iterable<GoldenSample> | AsyncIterable<GoldenSample>, calibration: CalibrationOptions): Promise<{ keeping: FloatKeeping; method: CalibrationOptions & { method: CalibrationMethod }; floatBytes: (node: string) => number; inputBytes: number; views: CalibrationView[]; correctBiases: (keptFloat: string[]) => Promise<void> }> {
  const encoded = onnx.ModelProto.encode(input).finish();
  const model = onnx.ModelProto.decode(encoded);
  const g = model.graph!;
  const constantsMoved = allGraphs(g).reduce((n, x) => n + constantsToInitializers(x), 0);
  const opsetUpgrade = upgradeFor(model, 'int8-static');
  // Folded first, so weights behind a Transpose get their activations calibrated too.
  const foldedWeightPaths = foldWeightPaths(g, weightInputs(g, 'int8-static'));
  const views = (await calibrationViews(model, samples))(model);
  for (const v of views) if (v.model !== model) foldWeightPaths(v.model.graph!, weightInputs(v.model.graph!, 'int8-static'));
  // Loop and Scan bodies are chosen in, indexed and costed as a graph is, their weights moved in first (as
  // quantizeModel does).
  for (const v of views) if (loopBodies(v.model.graph!).length) moveInitializersIntoSubgraphs(v.model.graph!);
  const graphs = views.flatMap((v) => [v.model.graph!, ...loopBodies(v.model.graph!)]);
  const choose = (o: QuantizeOptions): ReturnType<typeof staticChoice> => {
    const each = graphs.map((graph) => staticChoice(graph, o));
    return { tensors: new Set(each.flatMap((c) => [...c.tensors])), staticNodes: new Set(each.flatMap((c) => [...c.staticNodes])), weighted: [...new Set(each.flatMap((c) => c.weighted))] };
  };
  const { tensors, staticNodes, weighted } = choose(options);
  if (!tensors.size) {
    const inBodies = allGraphs(g).slice(1).some((x) => (x.node ?? []).some((n) => quantizerFor('int8-static', n.opType!)));
    throw new QuantizeError(`int8-static finds nothing to calibrate: no node it quantizes reads a constant weight${inBodies ? ' outside If branches the calibration samples do not take (int8-dynamic and int4 quantize those)' : ''}`);
  }
  const method = calibrationFor(g, calibration);
  const ranges: Ranges = new Map();
  for (const v of views) {
    const values = new Set([...(v.model.graph!.input ?? []).map((x) => x.name!), ...(v.model.graph!.node ?? []).flatMap((n) => n.output ?? [])]);
    const here = [...tensors].filter((t) => values.has(t));
    const inLoops = loopValues(v.model.graph!);
    const iterated = [...tensors].filter((t) => !values.has(t) && inLoops.has(t));
    for (const [t, r] of await calibrateWithLoops(v, here, iterated, method)) {
      const known = ranges.get(t);
      ranges.set(t, known ? { min: Math.min(known.min, r.min), max: Math.max(known.max, r.max) } : r);
    }
  }
  // A Relu alone reading its producer's output: that output is quantized with the Relu's range (from 0), so
  // its Q clamps as the Relu would, the Relu's own pair is the same, and onnxruntime drops both.
  const indexes = graphs.map((graph) => new GraphIndex(graph));
  for (const index of indexes) {
    for (const n of index.graph.node ?? []) {
      const x = n.input?.[0];
      if (n.opType === 'Relu' && x && ranges.has(x) && ranges.has(n.output![0]!) && index.consumers.get(x)?.length === 1) ranges.set(x, ranges.get(n.output![0]!)!);
    }
  }
  let biasCorrections: Map<string, Float32Array> | undefined;
  let biasAgreement: { corrected: number; uncorrected: number } | undefined;
  // `of`: a calibration view's model (If branches inlined), which bias correction measures; else the model.
  const build = (keptFloat: string[], of: onnx.IModelProto = model): ReturnType<typeof quantizeModel> => {
    const o = withKeptFloat(options, keptFloat);
    const result = quantizeModel(of, { ...o, ranges, staticNodes: keptFloat.length ? choose(o).staticNodes : staticNodes, biasCorrections });
    const biasCorrected = result.report.nodes.filter((n) => n.action === 'quantized' && biasCorrections?.has(n.node)).length;
    return { model: result.model, report: { ...result.report, constantsMoved, foldedWeightPaths, ...(opsetUpgrade ? { opsetUpgrade } : {}), ...(biasAgreement ? { biasCorrected, biasCorrectionAgreement: biasAgreement } : {}), options: { ...result.report.options, ranges: undefined, staticNodes: undefined, biasCorrections: undefined } } };
  };
  // Measured on the model with `keptFloat` float: every node quantized first, which the sensitivity
  // search's candidates keep; then again for the nodes it keeps (quantizeModelStatic).
  // In each view, on its own samples: a Conv inside an If branch is measured where the samples that take
  // the branch run it (silero-vad's, per sample rate). A Conv in more than one view takes the mean.
  const correctBiases = async (keptFloat: string[]): Promise<void> => {
    if (calibration.biasCorrection === false) return;
    [biasCorrections, biasAgreement] = [undefined, undefined];
    const measured = new Map<string, Float32Array[]>();
    const spread = new Map<CalibrationView, GoldenSample[]>();
    for (const v of views) spread.set(v, await spreadSamples(v.samples, BIAS_SAMPLES));
    // A model without If branches is its own one view: its uncorrected build is the one judged below.
    let uncorrected: onnx.IModelProto | undefined;
    for (const v of views) {
      const vg = v.model.graph!;
      const convs = new Map((vg.node ?? []).filter((n) => n.opType === 'Conv' && !n.domain).map((n) => [nodeKey(n), n.output![0]!]));
      const first = build(keptFloat, v.model);
      if (v.model === model) uncorrected = first.model;
      const quantizedOutputs = new Map((first.model.graph!.node ?? []).map((n) => [nodeKey(n), n.output![0]!]));
      const targets = first.report.nodes.filter((n) => n.action === 'quantized' && convs.has(n.node) && quantizedOutputs.has(n.node)).map((n) => ({ node: n.node, reference: convs.get(n.node)!, quantized: quantizedOutputs.get(n.node)! }));
      if (!targets.length) continue;
      for (const [k, b] of await measureBiasCorrections(v.model, first.model, targets, spread.get(v)!, calibration.progress)) measured.set(k, [...(measured.get(k) ?? []), b]);
    }
    if (!measured.size) return;
    const corrections = new Map([...measured].map(([k, bs]) => [k, Float32Array.from(bs[0]!, (_, c) => bs.reduce((sum, b) => sum + b[c]!, 0) / bs.length)]));
    // Kept only where the whole model agrees better with fp32 for it, as GPTQ is kept or not: silero-vad's
    // Convs moved its speech probabilities by 0.069 corrected against 0.048 as they were.
    uncorrected ??= build(keptFloat).model;
    biasCorrections = corrections;
    // Judged as onnxruntime runs them (fused int8 kernels), as the correction was measured: unfused,
    // PicoDet's calibration pages scored the correction 0.784 against 0.812, where on held-out pages run
    // as deployed it is 0.901 against 0.837.
    const [without, withIt] = await agreementOn(model, [uncorrected, build(keptFloat).model], () => [...spread.values()].flat(), true);
    biasAgreement = { corrected: withIt!, uncorrected: without! };
    if (!(withIt! > without!)) biasCorrections = undefined;
  };
  await correctBiases([]);
  // What keeping a node float keeps: its float weights' bytes (Constants are initializers and weight paths
  // folded by now). Counted only when the search asks.
  let bytes: Map<string, number> | undefined;
  const floatBytes = (node: string): number => (bytes ??= new Map(indexes.flatMap((index) => (index.graph.node ?? []).map((n) => [nodeKey(n), (n.input ?? []).reduce((sum, t) => { const w = index.floatInitializer(t); return sum + (w ? tensorBytes(w).length : 0); }, 0)] as const)))).get(node) ?? 0;
  return { keeping: { reference: model, nodes: weighted, build }, method, floatBytes, inputBytes: encoded.length, views, correctBiases };
}

/**
 * Ranges of `here` (values of the view's main graph) and of `iterated` (values inside its Loop and Scan
 * bodies, fetched stacked over their iterations: exposeLoopValues). Where a body value changes shape from
 * one iteration to the next onnxruntime cannot stack it and refuses the run; the main graph's values are
 * then calibrated alone and the body's nodes stay float, NOT_CALIBRATED.
 */
async function calibrateWithLoops(v: CalibrationView, here: string[], iterated: string[], method: CalibrationOptions & { method: CalibrationMethod }): Promise<Ranges> {
  if (iterated.length) {
    const exposed = exposeLoopValues(v.model, new Set(iterated));
    try {
      const ranges = await calibrate(exposed.model, [...here, ...exposed.fetched.keys()], v.samples, method);
      return new Map([...ranges].map(([t, r]) => [exposed.fetched.get(t) ?? t, r]));
    } catch (err) {
      if (!(err instanceof QuantizeError)) throw err;
    }
  }
  return here.length ? calibrate(v.model, here, v.samples, method) : new Map();
}

/** Samples bias correction measures on: spread over the calibration set, as a mean needs. */
const BIAS_SAMPLES = 32;

/** Up to `k` samples spread evenly over a stream (read twice: to count, then to pick). */
async function spreadSamples(samples: () => Iterable<GoldenSample> | AsyncIterable<GoldenSample>, k: number): Promise<GoldenSample[]> {
  let n = 0;
  for await (const _ of samples()) n++;
  const picked = new Set(Array.from({ length: Math.min(k, n) }, (_, i) => Math.floor((i * n) / Math.min(k, n))));
  const out: GoldenSample[] = [];
  let i = 0;
  for await (const s of samples()) if (picked.has(i++)) out.push(s);
  return out;
}

/** The first `k` of a sample stream (the rest are not read). */
async function* take(source: Iterable<GoldenSample> | AsyncIterable<GoldenSample>, k: number): AsyncIterable<GoldenSample> {
  if (k <= 0) return;
  let n = 0;
  for await (const s of source) {
    yield s;
    if (++n >= k) return;
  }
}

/**
 * What int8-static puts in QDQ: the weighted nodes (names, for the sensitivity search), the weightless
 * ones chosen with them (staticNodes), and every tensor to calibrate for both.
 */
function staticChoice(graph: onnx.IGraphProto, options: QuantizeOptions): { tensors: Set<string>; staticNodes: Set<string>; weighted: string[] } {
  const index = new GraphIndex(graph);
  const excluded = new Set(options.excludeNodes ?? []);
  const tensors = new Set<string>();
  const types = valueTypes(graph);
  const chosen = new Set<onnx.INodeProto>();
  const staticNodes = new Set<string>();
  const weightedNames: string[] = [];
  const isConstant = (t: string): boolean => index.initializers.has(t);
  const skipped = (n: onnx.INodeProto): boolean => !quantizerFor('int8-static', n.opType!) || excluded.has(nodeKey(n)) || (options.excludeOps ?? []).includes(n.opType!);
  const weighted = (n: onnx.INodeProto): boolean => !skipped(n) && ACTIVATION_OPS[n.opType!] === undefined && index.floatInitializer(n.input?.[1]) !== undefined && !isConstant(n.input![0]!);
  // Whether tensor t comes out of a MatMul or Gemm int8-static quantizes (or a bias Add on one), through
  // ops that only move values (onnxruntime carries the uint8 tensor through them).
  const fromProduct = (t: string): boolean => {
    let p = index.producers.get(t);
    while (p && !p.domain && MOVES_VALUES.has(p.opType!)) p = index.producers.get(p.input![0]!);
    if (!p || p.domain) return false;
    if (p.opType === 'MatMul' || p.opType === 'Gemm') return weighted(p);
    return p.opType === 'Add' && !skipped(p) && (p.input ?? []).some((i) => isConstant(i)) && (p.input ?? []).some((i) => !isConstant(i) && fromProduct(i));
  };
  // Last node first, so an activation op (Add, Relu) knows whether everything reading it stays int8: one
  // whose output goes on to a float op (LayerNorm, Resize, a graph output) would only requantize there —
  // PaddleOCR's detector ran ×1.11 of fp32 with all its Adds in QDQ, ×0.85 without, its recogniser lost 0.014.
  // An Add on a MatMul's or Gemm's product (nn.Linear's bias, a transformer's residual) is taken whatever
  // reads it: that product is quantized anyway, and with them onnxruntime runs QLinearAdd after
  // QLinearMatMul — the d256 transformer ×0.55 → ×0.37 of fp32's latency (quantize_static ×0.39).
  for (const n of topologicalSort(graph).reverse()) {
    if (skipped(n)) continue;
    const calibrated = staticCalibrationTensors(n, isConstant);
    const activation = ACTIVATION_OPS[n.opType!] !== undefined;
    const readers = index.consumers.get(n.output![0]!) ?? [];
    const floats = (n.input ?? []).every((t) => (isConstant(t) ? index.floatInitializer(t) !== undefined : types.get(t) === onnx.TensorProto.DataType.FLOAT));
    const computed = !(n.input ?? []).some(isConstant) && readers.length > 0 && readers.every((r) => chosen.has(r));
    const onProduct = n.opType === 'Add' && (n.input ?? []).filter(isConstant).length <= 1 && (n.input ?? []).some((t) => !isConstant(t) && fromProduct(t));
    const eligible = activation ? floats && !index.isGraphOutput(n.output![0]!) && (computed || onProduct) : weighted(n);
    if (!eligible) continue;
    chosen.add(n);
    if (activation) staticNodes.add(nodeKey(n));
    else weightedNames.push(nodeKey(n));
    for (const t of calibrated) tensors.add(t);
  }
  return { tensors, staticNodes, weighted: weightedNames.reverse() };
}

/** GPTQ's calibration runs once a pass (up to four layers): it reads the first `maxSamples` of the set (default 128, as GPTQ's authors used). */
export interface GptqOptions {
  maxSamples?: number;
  progress?: (layer: number, of: number) => void;
}

export const DEFAULT_GPTQ_SAMPLES = 128;

/** int4 block length along K when `blockSize` is not given. */
const DEFAULT_BLOCK_SIZE = 32;

/** Weights whose Hessians one calibration pass collects (quantizeModelCalibrated). */
const LAYERS_PER_PASS = 4;

/**
 * 8-bit weights wider than this are rounded, not solved by GPTQ: solving costs k² per output (k³ to factor H)
 * and gains little at 8 bits. PaddleOCR's recogniser's two 8-bit convolutions of 1,440 and 2,880 inputs took
 * 2.7 of its 7.5 s of calibration (9.4 of 14.3 s before H was factored with onnxruntime's products), for
 * cosine 0.9765 with them against 0.9770 rounded; the detector's widest (864) gain: its 8-bit convolutions
 * took it from rounding's 0.993 to 0.999.
 */
const MAX_EIGHT_BIT_GPTQ_K = 1024;

async function* firstOf<T>(items: Iterable<T> | AsyncIterable<T>, max: number): AsyncIterable<T> {
  let n = 0;
  for await (const x of items) {
    yield x;
    if (++n >= max) return;
  }
}

/** What calibration did: layers calibrated, samples, and which codes were kept (the closer on the samples). */
export interface GptqReport {
  layers: number;
  samples: number;
  /** Layers whose input correlations were mostly sampling noise: their Hessian shrunk toward its diagonal (shrinkTowardDiagonal). */
  shrunk: number;
  /** Whether the GPTQ codes were kept; false when rounding agreed better with fp32 on the calibration samples. */
  used: boolean;
  calibrationCosine: { gptq: number; rounded: number };
  /** Nodes quantized inside Loop/Scan bodies or If branches the calibration samples split on: rounded (GPTQ reads the main graph and the branches every sample takes). */
  roundedInBodies: number;
}

/**
 * int4 with a calibration set: runs the model on the samples to collect, for every MatMul, Gemm and ungrouped
 * Conv (4-bit or 8-bit weights), the Hessian of the input its weight multiplies, then quantizes those weights with GPTQ
 * (gptq.ts) instead of rounding each to its nearest level, and keeps whichever of the two agrees better
 * with fp32 on the samples. Preparation (Constant nodes, opset, folded BatchNorms and weight paths) is done
 * first so the calibrated graph is the one quantized.
 */
export async function quantizeModelCalibrated(input: onnx.IModelProto, options: QuantizeOptions & { method: 'int4' }, source: () => Iterable<GoldenSample> | AsyncIterable<GoldenSample>, o: GptqOptions = {}): Promise<{ model: onnx.ModelProto; report: QuantizeReport & { gptq: GptqReport } }> {
  if (options.symmetric === false) throw new QuantizeError('int4 with --calibration (GPTQ) takes symmetric blocks: drop --asymmetric');
  const max = o.maxSamples ?? DEFAULT_GPTQ_SAMPLES;
  if (!Number.isInteger(max) || max < 1) throw new QuantizeError(`--calibration-samples ${max}: give a whole number of samples, 1 or more`);
  const samples = (): AsyncIterable<GoldenSample> => firstOf(source(), max);
  const progress = o.progress;
  const encoded = onnx.ModelProto.encode(input).finish();
  const model = onnx.ModelProto.decode(encoded);
  const g = model.graph!;
  const constantsMoved = constantsToInitializers(g);
  const opsetUpgrade = upgradeFor(model, 'int4') ?? raiseForInt4Casts(model, options);
  const foldedBatchNorms = foldBatchNorms(g);
  const foldedWeightPaths = foldWeightPaths(g, weightInputs(g, 'int4'));
  removeUnusedInitializers(g);
  // GPTQ reads the layers of the main graph and of the If branches calibration samples take (silero-vad
  // keeps all its weights in branches chosen by its sample rate and state); Loop and Scan bodies are rounded.
  const views = await calibrationViews(model, samples);
  const excluded = new Set(options.excludeNodes ?? []);
  // Rounded first: it is what GPTQ has to beat, and what it quantizes is all that is worth a calibration
  // pass (not an excluded node, a Gemm with transA, a weight the quantizer leaves float).
  const rounded = quantizeModel(model, options);
  const quantized = new Set(rounded.report.nodes.filter((n) => n.action === 'quantized').map((n) => n.node));
  const reached = new Set<string>();
  // `weight`: the initializer and how it is read; targets with the same one are solved as one.
  const targets: Array<HessianTarget & { weight: string }> = [];
  for (const { model: viewed } of views(model)) {
    const index = new GraphIndex(viewed.graph!);
    const fourBit = fourBitConvs(index, defaultOpset(model), { ...options, blockSize: options.blockSize ?? DEFAULT_BLOCK_SIZE });
    for (const n of viewed.graph!.node ?? []) {
      const name = nodeKey(n);
      if (reached.has(name)) continue;
      reached.add(name);
      const w = index.floatInitializer(n.input?.[1]);
      if (n.domain || !w || !quantized.has(name)) continue;
      const dims = (w.dims ?? []).map(Number);
      if ((n.opType === 'MatMul' || n.opType === 'Gemm') && dims.length === 2) {
        const k = n.opType === 'Gemm' && intAttr(n, 'transB', 0) === 1 ? dims[1]! : dims[0]!;
        targets.push({ node: name, input: n.input![0]!, k, weight: `${w.name}:${n.opType}:${k}` });
      } else if (n.opType === 'Conv' && dims.length >= 3 && intAttr(n, 'group', 1) === 1 && (options.int4Conv || options.perChannel !== false)) {
        // 4-bit blocks with int4Conv, else 8-bit weight-only channels: GPTQ either way (not grouped ones,
        // whose filters each see their own channels, nor one 8-bit scale for a whole tensor), but not 8 bits
        // over more than MAX_EIGHT_BIT_GPTQ_K inputs.
        const geometry = convGeometry(n, dims);
        const k = elementCount(dims.slice(1));
        if (geometry && (fourBit.has(name) || k <= MAX_EIGHT_BIT_GPTQ_K)) targets.push({ node: name, input: n.input![0]!, k, conv: geometry, weight: `${w.name}:${n.opType}:${k}` });
      }
    }
  }
  // Sequential, as GPTQ is meant to run, a few layers a pass: each pass's Hessians come from the model with
  // every layer before them already quantized, so they compensate the errors they will actually receive
  // (all but those of the pass's own earlier layers). One layer a pass ran the model 33 times for
  // PaddleOCR's recogniser; LAYERS_PER_PASS at a time is ≈ 2.5× faster there and no less accurate on the
  // bench's models (detector 0.9964 → 0.9989, recogniser 0.9770 → 0.9765, the rest within ±0.0005).
  // A weight several nodes share (TorchScript stores a TransformerEncoder's identical layers once) is
  // stored once, so it is solved once against the sum of their Hessians: its error summed over every
  // input it multiplies. Solved for its first user alone it fitted layer 0's inputs and was worse than
  // rounding in the other three.
  const layers = new Map<string, GptqLayer>();
  const done = new Set<string>();
  let count = 0;
  let shrunk = 0;
  // The passes' models are run and tapped by the original value names: compacted only at the end.
  const uncompacted = { ...options, compactNames: false };
  const { matmul, release } = await doubleMatMul();
  try {
    while (done.size < targets.length) {
      const pending = targets.filter((x) => !done.has(x.node));
      const weights = [...new Set(pending.map((x) => x.weight))].slice(0, LAYERS_PER_PASS);
      const pass = pending.filter((x) => weights.includes(x.weight));
      const partial = layers.size ? quantizeModel(model, { ...uncompacted, gptq: layers, excludeNodes: [...excluded, ...pending.map((x) => x.node)] }).model : model;
      const got = await collectHessiansOver(views(partial), pass);
      for (const weight of weights) {
        const users = pass.filter((x) => x.weight === weight);
        const { hessian, shrinkage } = pooledHessian(users.flatMap((x) => got.sums.get(x.node)!), users[0]!.k);
        const layer: GptqLayer = { factor: await hessianFactor(hessian, users[0]!.k, matmul) };
        for (const x of users) {
          layers.set(x.node, layer);
          done.add(x.node);
        }
        if (shrinkage > 0) shrunk += users.length;
      }
      // The pass's weights as their quantizers lay them out (noted by codesOf), then solved.
      const passNodes = new Set(pass.map((x) => x.node));
      quantizeModel(model, { ...uncompacted, gptq: layers, excludeNodes: allGraphs(g).flatMap((x) => x.node ?? []).map(nodeKey).filter((x) => !passNodes.has(x)) });
      await solveRequested(layers.values(), matmul);
      count = got.samples;
      progress?.(done.size, targets.length);
    }
  } finally {
    await release();
  }
  const result = quantizeModel(model, { ...options, gptq: layers });
  if ([...layers.values()].some((l) => l.request)) throw new Error('internal: a GPTQ layer was requested after its pass and never solved');
  // Never worse than rounding on the user's own samples: a smaller error per layer need not add up to a
  // closer model (it did not, before shared weights were solved against all their inputs, above).
  const [gptq, nearest] = targets.length ? await agreementOn(model, [result.model, rounded.model], samples) : [1, 1];
  const chosen = gptq! >= nearest! ? result : rounded;
  return {
    model: chosen.model,
    report: { ...againstInput(chosen.report, encoded.length), constantsMoved, foldedWeightPaths, foldedBatchNorms, ...(opsetUpgrade ? { opsetUpgrade } : {}), options: { ...chosen.report.options, gptq: undefined },
      gptq: { layers: targets.length, samples: count, shrunk, used: chosen === result, calibrationCosine: { gptq: gptq!, rounded: nearest! }, roundedInBodies: rounded.report.nodes.filter((n) => n.action === 'quantized' && !reached.has(n.node)).length } },
  };
}

/** A Conv's geometry from its attributes; undefined for auto_pad other than NOTSET (those layers are rounded). */
function convGeometry(n: onnx.INodeProto, dims: number[]): ConvGeometry | undefined {
  const autoPad = attr(n, 'auto_pad')?.s;
  if (autoPad && autoPad.length && new TextDecoder().decode(autoPad) !== 'NOTSET') return undefined;
  const kernel = dims.slice(2);
  const each = (name: string, fallback: number, count = kernel.length): number[] => {
    const v = intsAttr(n, name);
    return Array.from({ length: count }, (_, i) => v?.[i] ?? fallback);
  };
  return { kernel, strides: each('strides', 1), pads: each('pads', 0, 2 * kernel.length), dilations: each('dilations', 1) };
}

/** Raises the model's opset in place to what `method` needs; a model the upgrader cannot take is refused by name. */
function upgradeFor(model: onnx.IModelProto, method: Method): OpsetUpgrade | undefined {
  if (defaultOpset(model) >= MIN_OPSET[method]) return undefined;
  try {
    return upgradeOpset(model, MIN_OPSET[method]);
  } catch (err) {
    if (err instanceof OpsetUpgradeError) throw new QuantizeError(`${method} needs opset ${MIN_OPSET[method]} or later; the model imports opset ${defaultOpset(model)} and ${err.message}`);
    throw err;
  }
}

/**
 * int4 with `int4Conv` (`int4Recurrent`) stores Conv and ConvTranspose (LSTM/GRU/RNN) weights as int4 tensors, which Cast
 * reads from opset 21: a model with such nodes is raised to opset 21 when the upgrader can take it; when it
 * cannot, they keep 8-bit weights.
 */
function raiseForInt4Casts(model: onnx.IModelProto, options: QuantizeOptions): OpsetUpgrade | undefined {
  const ops = new Set([...(options.int4Conv ? ['Conv', 'ConvTranspose'] : []), ...(options.int4Recurrent ? RECURRENT_OPS : [])]);
  if (options.method !== 'int4' || defaultOpset(model) >= INT4_CAST_OPSET || !allGraphs(model.graph!).some((g) => (g.node ?? []).some((n) => ops.has(n.opType!) && !n.domain))) return undefined;
  try {
    return upgradeOpset(model, INT4_CAST_OPSET);
  } catch (err) {
    if (err instanceof OpsetUpgradeError) return undefined;
    throw err;
  }
}

/** The inputs the method's quantizers would replace: where weight paths are folded to. */
function weightInputs(g: onnx.IGraphProto, method: Method): Set<string> {
  return new Set((g.node ?? []).filter((n) => !n.domain).flatMap((n) => {
    const q = quantizerFor(method, n.opType!);
    return q ? (q.weightInputs ?? [1]).map((i) => n.input?.[i]) : [];
  }).filter((x): x is string => !!x));
}

export function defaultOpset(model: onnx.IModelProto): number {
  return Number((model.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx')?.version ?? 0);
}

function initializerBytes(g: onnx.IGraphProto): number {
  return (g.initializer ?? []).reduce((s, t) => s + tensorBytes(t).length, 0);
}

/** `g` and the branches of its Ifs, theirs in turn: what inlining branches brings into one graph. */
function ifReachable(g: onnx.IGraphProto): onnx.IGraphProto[] {
  return [g, ...(g.node ?? []).filter((n) => n.opType === 'If' && !n.domain).flatMap((n) => subgraphsOf(n).flatMap(ifReachable))];
}

/** What the analyze step reports: op histogram, parameters, opset, and which methods have something to do. */
export function analyzeModel(input: onnx.IModelProto): { ops: Record<string, number>; parameters: number; weightBytes: number; opset: number; applicable: Method[]; iteratedWeights: number } {
  const model = onnx.ModelProto.decode(onnx.ModelProto.encode(input).finish());
  const g = model.graph!;
  // Ops and weights of every graph (If/Loop/Scan bodies too): int8-dynamic and int4 quantize inside them.
  const graphs = allGraphs(g);
  for (const x of graphs) constantsToInitializers(x);
  const ops: Record<string, number> = {};
  for (const x of graphs) for (const [op, n] of Object.entries(opHistogram(x))) ops[op] = (ops[op] ?? 0) + n;
  // int8-static calibrates the main graph, the If branches samples take (calibrationViews) and the Loop/Scan bodies in them.
  const calibratedOps: Record<string, number> = {};
  for (const x of ifReachable(g).flatMap((y) => [y, ...loopBodies(y)])) for (const [op, n] of Object.entries(opHistogram(x))) calibratedOps[op] = (calibratedOps[op] ?? 0) + n;
  const parameters = graphs.flatMap((x) => x.initializer ?? []).reduce((s, t) => s + (t.dims ?? []).map(Number).reduce((a, b) => a * b, 1), 0);
  const opset = defaultOpset(model);
  // A method whose operators need a newer opset applies when the upgrader can take the model (tried on a copy).
  const upgradable = (m: Method): boolean => {
    if (opset >= MIN_OPSET[m]) return true;
    try {
      upgradeFor(onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish()), m);
      return true;
    } catch (err) {
      if (err instanceof QuantizeError) return false;
      throw err;
    }
  };
  const applicable = (['int4', 'int8-static', 'int8-dynamic', 'fp16'] as Method[]).filter((m) => (m === 'fp16' || quantizableOps(m).some((op) => (m === 'int8-static' ? calibratedOps : ops)[op])) && upgradable(m));
  // Loop- and Scan-body MatMuls on constant weights (iteratedWeights): the quantization workflow tries int4Recurrent for them.
  return { ops, parameters, weightBytes: graphs.reduce((n, x) => n + initializerBytes(x), 0), opset, applicable, iteratedWeights: iteratedWeights(g) };
}

/**
 * Quantizes a model with one method. Per-node methods walk the graph in topological order and hand each
 * node to its op's registered quantizer (nodes of other ops, excluded nodes, and nodes a quantizer declines
 * stay as they are, with the reason in the report). The input model is not modified.
 */
export function quantizeModel(input: onnx.IModelProto, options: QuantizeOptions): { model: onnx.ModelProto; report: QuantizeReport } {
  const inputBytes = onnx.ModelProto.encode(input).finish();
  const model = onnx.ModelProto.decode(inputBytes);
  const g = model.graph!;
  // Subgraphs' Constant nodes too: every method quantizes inside them (below).
  const constantsMoved = allGraphs(g).reduce((n, x) => n + constantsToInitializers(x), 0);
  const opsetUpgrade = upgradeFor(model, options.method) ?? raiseForInt4Casts(model, options);
  const opset = defaultOpset(model);
  if (options.method === 'int8-static' && !options.ranges) throw new QuantizeError('int8-static needs a calibration set: pass --calibration samples.jsonl (named input tensors, like golden inputs)');
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  if (options.method === 'int4' && (blockSize < 16 || blockSize > 256 || (blockSize & (blockSize - 1)) !== 0)) {
    throw new QuantizeError(`--block-size ${blockSize}: MatMulNBits needs a power of two from 16 to 256`);
  }
  const bytesByName = (): Map<string, number> => new Map(allGraphs(g).flatMap((x) => x.initializer ?? []).map((t) => [t.name!, tensorBytes(t).length]));
  const sum = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);
  const initialBytes = bytesByName();
  const before = sum(initialBytes);
  const excludedNodes = new Set(options.excludeNodes ?? []);
  const excludedOps = new Set(options.excludeOps ?? []);
  let nodes: NodeOutcome[];
  let foldedWeightPaths = 0;
  let foldedBatchNorms = 0;
  const domains = new Set<string>();
  if (options.method === 'fp16') {
    // A weight one body alone reads is halved there, with no Cast at its edge.
    if (allGraphs(g).length > 1) moveInitializersIntoSubgraphs(g);
    nodes = convertToFloat16(g, { excludeNodes: excludedNodes, excludeOps: excludedOps });
  } else {
    // Weights inside If/Loop/Scan bodies are quantized in the graph that reads them (int8-static where its
    // calibration reached them): each graph is prepared and walked as the main one, with names unique
    // across all of them.
    const names = new Set<string>();
    const graphs = allGraphs(g);
    if (graphs.length > 1) moveInitializersIntoSubgraphs(g);
    const parents = parentGraphs(g);
    const outer = (x: onnx.IGraphProto): onnx.ITensorProto[] => {
      const p = parents.get(x);
      return p ? [...outer(p), ...(p.initializer ?? [])] : [];
    };
    nodes = [];
    const iterated = iteratedGraphs(g);
    // Counted before any is quantized: an output layer's share of the whole model's weights (a Loop body's
    // weights moved into it are the model's too).
    const modelFloatBytes = graphs.flatMap((x) => x.initializer ?? []).filter((t) => t.dataType === onnx.TensorProto.DataType.FLOAT).reduce((s, t) => s + 4 * elementCount((t.dims ?? []).map(Number)), 0);
    for (const graph of graphs) {
      // Not for int8-static: its QDQ pairs quantize a Conv's output per tensor, and after BatchNormalization
      // that range is set by a few channels (PaddleOCR's classifier: cosine 0.88 folded, ≥ 0.94 not).
      if (options.method !== 'int8-static') foldedBatchNorms += foldBatchNorms(graph, names);
      foldedWeightPaths += foldWeightPaths(graph, weightInputs(graph, options.method), outer(graph));
      nodes.push(...quantizeNodes(graph, new GraphIndex(graph, names), { ...options, perChannel: options.perChannel ?? true, symmetric: options.symmetric ?? true, reduceRange: options.reduceRange ?? true, blockSize }, opset, domains, excludedNodes, excludedOps, { iterated: iterated.has(graph), modelFloatBytes }));
      dedupeTransposedInt8(graph);
    }
    if (graphs.length > 1) shareIdenticalInitializers(g);
  }
  // Innermost first: a subgraph's own initializers go before the graph around it counts what it reads.
  for (const graph of allGraphs(g).reverse()) removeUnusedInitializers(graph);
  for (const d of domains) if (!(model.opsetImport ?? []).some((o) => o.domain === d)) model.opsetImport = [...(model.opsetImport ?? []), { domain: d, version: 1 }];
  if (options.dropNodeMetadata) for (const graph of allGraphs(g)) for (const n of graph.node ?? []) delete n.metadataProps;
  // Counted by name before the names change.
  const finalBytes = bytesByName();
  if (options.compactNames) compactNames(g);
  model.producerName = 'qcflow';
  model.metadataProps = [...(model.metadataProps ?? []).filter((p) => p.key !== 'qcflow.quantization'), { key: 'qcflow.quantization', value: JSON.stringify({ method: options.method, blockSize: options.method === 'int4' ? blockSize : undefined }) }];
  const after = sum(finalBytes);
  // fp16 converts in place (same names): every float initializer that changed size counts as replaced.
  const replaced = [...initialBytes].filter(([name, b]) => finalBytes.get(name) !== b);
  const added = [...finalBytes].filter(([name, b]) => initialBytes.get(name) !== b);
  const qBefore = replaced.reduce((s, [, b]) => s + b, 0);
  const qAfter = added.reduce((s, [, b]) => s + b, 0);
  const outputBytes = onnx.ModelProto.encode(model).finish().length;
  const done = options.method === 'fp16' || nodes.some((n) => n.action === 'quantized') ? '' : quantizedOps(input);
  if (done) throw new QuantizeError(`the model is already quantized (${done}): nothing is left in float for ${options.method} to quantize; start from the float model it was made from`);
  return {
    model,
    report: { method: options.method, options, constantsMoved, foldedWeightPaths, foldedBatchNorms, ...(opsetUpgrade ? { opsetUpgrade } : {}), nodes, quantized: nodes.filter((n) => n.action === 'quantized').length, weightBytes: { before, after, ratio: before ? after / before : 1 }, quantizedWeights: { before: qBefore, after: qAfter, ratio: qBefore ? qAfter / qBefore : 1 },
      modelBytes: { before: inputBytes.length, after: outputBytes, ratio: outputBytes / inputBytes.length }, nodeMetadataBytes: nodeMetadataBytes(g), nameBytes: nameBytes(g) },
  };
}

/** Values a float constant must hold to count as a weight a node of an op no quantizer takes leaves float. */
const REPORTED_WEIGHT = 4096;

/**
 * The largest float initializer `n` reads, when it is a weight — REPORTED_WEIGHT values or more, along at
 * least two axes (a bias or a scale vector is no weight: nobody quantizes them): an op without a quantizer
 * is named in the report rather than passed over in silence (a ViT's position table in an Add, a custom
 * layer's weight), so what is left float is listed with the reason.
 */
function floatWeightOf(n: onnx.INodeProto, index: GraphIndex): { name: string; values: number } | undefined {
  const weights = (n.input ?? []).map((i) => index.floatInitializer(i)).filter((w): w is onnx.ITensorProto => !!w && (w.dims ?? []).filter((d) => Number(d) > 1).length >= 2)
    .map((w) => ({ name: w.name!, values: elementCount((w.dims ?? []).map(Number)) }))
    .sort((a, b) => b.values - a.values);
  return weights[0] && weights[0].values >= REPORTED_WEIGHT ? weights[0] : undefined;
}

/**
 * Why a node whose weight holds NaN or ±Inf stays float: no scale represents them (absmax would be Inf or
 * NaN, every other weight rounded to 0 or NaN), and the float node computes what the model always did.
 */
function nonFiniteWeight(n: onnx.INodeProto, inputs: number[], index: GraphIndex): string | undefined {
  for (const i of inputs) {
    const w = index.floatInitializer(n.input?.[i]);
    if (w && hasNonFinite(w)) return `its weight ${w.name} holds NaN or infinite values (a damaged or diverged model): kept as it is`;
  }
  return undefined;
}

/** Operators that only a quantized model holds (onnxruntime's tool writes the first ones), as "ConvInteger ×21, …"; '' when none. */
const QUANTIZED_OPS = new Set(['DynamicQuantizeLinear', 'QuantizeLinear', 'DequantizeLinear', 'MatMulInteger', 'ConvInteger', 'QLinearConv', 'QLinearMatMul', 'MatMulNBits', 'DynamicQuantizeMatMul', 'DynamicQuantizeLSTM', 'QAttention', 'QGemm', 'GatherBlockQuantized']);

function quantizedOps(m: onnx.IModelProto): string {
  const counts = new Map<string, number>();
  for (const x of allGraphs(m.graph!)) for (const n of x.node ?? []) if (QUANTIZED_OPS.has(n.opType!)) counts.set(n.opType!, (counts.get(n.opType!) ?? 0) + 1);
  // qcflow's weight-only layers (a Conv's 8-bit weight restored by Cast and Mul) hold no such op: its own mark says so.
  const ours = (m.metadataProps ?? []).find((p) => p.key === 'qcflow.quantization')?.value;
  const method = ours == null ? undefined : /"method":"([\w-]+)"/.exec(ours)?.[1] ?? 'a method it did not record';
  return [...(method ? [`by qcflow, ${method}`] : []), ...[...counts].map(([op, k]) => `${op} ×${k}`)].join(', ');
}

/**
 * Hands each node of `graph`, in topological order, to its op's registered quantizer (nodes of other ops,
 * excluded nodes, and nodes a quantizer declines stay as they are, with the reason in the outcome).
 */
function quantizeNodes(graph: onnx.IGraphProto, index: GraphIndex, options: QuantizeContext['options'], opset: number, domains: Set<string>, excludedNodes: Set<string>, excludedOps: Set<string>, where: Pick<QuantizeContext, 'iterated' | 'modelFloatBytes'>): NodeOutcome[] {
  // Restored weights are shared within a graph only: a subgraph's nodes are not visible in its siblings.
  const shared = new Map<string, unknown>();
  const ctx: QuantizeContext = {
    index,
    opset,
    options,
    ...where,
    addInitializer: (t) => {
      graph.initializer = [...(graph.initializer ?? []), t];
      index.initializers.set(t.name!, t);
    },
    dynamicQuantized: new Map(),
    domains,
    qdq: new Map(),
    once<T>(key: string, make: () => T) {
      if (shared.has(key)) return { value: shared.get(key) as T, first: false };
      const value = make();
      shared.set(key, value);
      return { value, first: true };
    },
  };
  const out: onnx.INodeProto[] = [];
  const nodes: NodeOutcome[] = [];
  for (const n of topologicalSort(graph)) {
    const q = quantizerFor(options.method, n.opType!);
    const name = nodeKey(n);
    if (!q || (q.applies && !q.applies(n, ctx))) {
      const unread = q ? undefined : floatWeightOf(n, index);
      if (unread) nodes.push({ node: name, op: n.opType!, action: 'kept', reason: `no ${options.method} quantizer for ${n.opType}: its weight ${unread.name} (${unread.values} values) stays float` });
      out.push(n);
      continue;
    }
    const why = excludedNodes.has(name) ? 'excluded by name' : excludedOps.has(n.opType!) ? 'excluded by op type' : (q.check(n, ctx) ?? nonFiniteWeight(n, q.weightInputs ?? [1], ctx.index));
    if (why) {
      nodes.push({ node: name, op: n.opType!, action: 'kept', reason: why });
      out.push(n);
      continue;
    }
    // Nodes a quantizer writes carry no metadata_props, as onnxruntime's quantizer writes them (a node that
    // only reads a restored weight keeps its own): torch.export's entries are ≈ 1.4 KB a node.
    out.push(...q.quantize(n, ctx));
    nodes.push({ node: name, op: n.opType!, action: 'quantized' });
  }
  graph.node = out;
  return nodes;
}
