import * as ort from 'onnxruntime-node';
import { encodeModel, type onnx } from './proto';
import { prng } from '../util/prng';
import type { GoldenSample } from '../quantize/evaluate';
import { F32, floatTensor, int64Tensor, model, node, valueInfo } from './build';

/**
 * Seeded fixture models for the quantizers: an MLP, a CNN with Conv/BatchNorm, and a transformer block
 * (MatMul, Softmax, LayerNormalization, Gelu). Weights are pseudo-random but fixed by the seed, with the
 * scale of a trained network (Xavier-like), so quantization error behaves as it would on a real model.
 */

/** Fixtures and golden inputs are identical on every run. */
export const rng = prng;

/** Approximately normal values (sum of uniforms), mean 0, standard deviation `std`. */
export function normal(r: () => number, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() + r() + r() + r() - 2) * std * Math.sqrt(3);
  return out;
}

const weight = (r: () => number, name: string, fanIn: number, fanOut: number): onnx.ITensorProto => floatTensor(name, [fanIn, fanOut], normal(r, fanIn * fanOut, Math.sqrt(2 / (fanIn + fanOut))));

export interface FixtureModel {
  name: string;
  onnx: Uint8Array;
  /** Input name and shape of one sample (batch 1; the batch dimension is dynamic in the model). */
  input: { name: string; shape: number[] };
  /** One input per class; golden samples are a prototype plus noise, labelled with its class. */
  prototypes: Float32Array[];
  /** Standard deviation of the golden samples' noise, chosen so the fp32 model is mostly but not always right. */
  noise: number;
}

const CLASSES = 10;

interface Body {
  name: string;
  opset: number;
  input: { name: string; shape: number[] };
  nodes: onnx.INodeProto[];
  initializers: onnx.ITensorProto[];
  /** The [batch, dim] feature the head reads. */
  feature: string;
  featureDim: number;
  /** `gemm`: a Gemm with transB (PyTorch Linear export); `matmul`: MatMul + Add. */
  head: 'gemm' | 'matmul';
  noise: number;
}

/**
 * Random weights classify noise with razor-thin margins, unlike a trained network. So each fixture gets a
 * nearest-centroid head: the body's features of ten random prototypes become the class directions, and
 * prototype-plus-noise inputs are then classified with margins like a trained model's, with true labels.
 */
async function withCentroidHead(b: Body, r: () => number): Promise<FixtureModel> {
  const size = b.input.shape.reduce((x, y) => x * y, 1);
  const prototypes = Array.from({ length: CLASSES }, () => normal(r, size, 1));
  const io = (outputs: onnx.IValueInfoProto[], nodes: onnx.INodeProto[], initializers: onnx.ITensorProto[]) => model({
    name: b.name, opset: b.opset, inputs: [valueInfo(b.input.name, F32, ['batch', ...b.input.shape.slice(1)])], outputs, nodes, initializers,
  });
  const body = await ort.InferenceSession.create(encodeModel(io([valueInfo(b.feature, F32, ['batch', b.featureDim])], b.nodes, b.initializers)));
  const feats: Float32Array[] = [];
  for (const p of prototypes) feats.push((await body.run({ [b.input.name]: new ort.Tensor('float32', p, b.input.shape) }))[b.feature]!.data as Float32Array);
  await body.release();
  const mean = new Float32Array(b.featureDim);
  for (const f of feats) f.forEach((v, i) => (mean[i]! += v / CLASSES));
  const w = new Float32Array(b.featureDim * CLASSES);
  const bias = new Float32Array(CLASSES);
  feats.forEach((f, c) => {
    const dir = f.map((v, i) => v - mean[i]!);
    const norm = Math.sqrt(dir.reduce((s, v) => s + v * v, 0)) || 1;
    dir.forEach((v, i) => (w[i * CLASSES + c] = (4 * v) / norm));
    bias[c] = -dir.reduce((s, v, i) => s + (4 * v * mean[i]!) / norm, 0);
  });
  const head = b.head === 'gemm'
    ? { nodes: [node('Gemm', [b.feature, 'head.weight', 'head.bias'], ['logits'], { transB: 1 }, 'head')], inits: [floatTensor('head.weight', [CLASSES, b.featureDim], transposeRows(w, b.featureDim, CLASSES)), floatTensor('head.bias', [CLASSES], bias)] }
    : { nodes: [node('MatMul', [b.feature, 'head.weight'], ['head_mm'], {}, 'head'), node('Add', ['head_mm', 'head.bias'], ['logits'], {}, 'head_bias')], inits: [floatTensor('head.weight', [b.featureDim, CLASSES], w), floatTensor('head.bias', [CLASSES], bias)] };
  const full = io([valueInfo('logits', F32, ['batch', CLASSES])], [...b.nodes, ...head.nodes], [...b.initializers, ...head.inits]);
  return { name: b.name, onnx: encodeModel(full), input: b.input, prototypes, noise: b.noise };
}

function transposeRows(v: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(v.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = v[i * cols + j]!;
  return out;
}

/** input [batch, 64] → Gemm 256 (transB, as PyTorch exports Linear) → Relu → MatMul+Add 128 → Relu → MatMul+Add 10 (sizes adjustable for benchmarks). */
export function mlpModel(seed = 1, dims: { input: number; hidden1: number; hidden2: number } = { input: 64, hidden1: 256, hidden2: 128 }): Promise<FixtureModel> {
  const r = rng(seed);
  const { input, hidden1, hidden2 } = dims;
  return withCentroidHead({
    name: 'mlp', opset: 17, input: { name: 'input', shape: [1, input] }, feature: 'a2', featureDim: hidden2, head: 'matmul', noise: 0.6,
    initializers: [
      floatTensor('fc1.weight', [hidden1, input], normal(r, hidden1 * input, Math.sqrt(2 / (hidden1 + input)))), floatTensor('fc1.bias', [hidden1], normal(r, hidden1, 0.05)),
      weight(r, 'fc2.weight', hidden1, hidden2), floatTensor('fc2.bias', [hidden2], normal(r, hidden2, 0.05)),
    ],
    nodes: [
      node('Gemm', ['input', 'fc1.weight', 'fc1.bias'], ['h1'], { transB: 1 }, 'fc1'),
      node('Relu', ['h1'], ['a1'], {}, 'relu1'),
      node('MatMul', ['a1', 'fc2.weight'], ['h2m'], {}, 'fc2'),
      node('Add', ['h2m', 'fc2.bias'], ['h2'], {}, 'fc2_bias'),
      node('Relu', ['h2'], ['a2'], {}, 'relu2'),
    ],
  }, r);
}

/** image [batch, 3, 16, 16] → Conv 16 3×3 → BatchNorm → Relu → Conv 32 3×3 stride 2 → Relu → GlobalAveragePool → Flatten → Gemm 10. */
export function cnnModel(seed = 2): Promise<FixtureModel> {
  const r = rng(seed);
  const conv = (name: string, out: number, inC: number, k: number) => floatTensor(name, [out, inC, k, k], normal(r, out * inC * k * k, Math.sqrt(2 / (inC * k * k))));
  return withCentroidHead({
    name: 'cnn', opset: 17, input: { name: 'image', shape: [1, 3, 16, 16] }, feature: 'flat', featureDim: 32, head: 'gemm', noise: 0.2,
    initializers: [
      conv('conv1.weight', 16, 3, 3), floatTensor('conv1.bias', [16], normal(r, 16, 0.05)),
      floatTensor('bn1.scale', [16], Array.from({ length: 16 }, () => 0.8 + 0.4 * r())), floatTensor('bn1.bias', [16], normal(r, 16, 0.1)),
      floatTensor('bn1.mean', [16], normal(r, 16, 0.1)), floatTensor('bn1.var', [16], Array.from({ length: 16 }, () => 0.5 + r())),
      conv('conv2.weight', 32, 16, 3), floatTensor('conv2.bias', [32], normal(r, 32, 0.05)),
    ],
    nodes: [
      node('Conv', ['image', 'conv1.weight', 'conv1.bias'], ['c1'], { pads: [1, 1, 1, 1], kernel_shape: [3, 3] }, 'conv1'),
      node('BatchNormalization', ['c1', 'bn1.scale', 'bn1.bias', 'bn1.mean', 'bn1.var'], ['b1'], {}, 'bn1'),
      node('Relu', ['b1'], ['r1'], {}, 'relu1'),
      node('Conv', ['r1', 'conv2.weight', 'conv2.bias'], ['c2'], { pads: [1, 1, 1, 1], kernel_shape: [3, 3], strides: [2, 2] }, 'conv2'),
      node('Relu', ['c2'], ['r2'], {}, 'relu2'),
      node('GlobalAveragePool', ['r2'], ['pooled'], {}, 'pool'),
      node('Flatten', ['pooled'], ['flat'], { axis: 1 }, 'flatten'),
    ],
  }, r);
}

/**
 * One pre-norm transformer encoder block over [batch, 8 tokens, 64] with a single attention head, then
 * mean pooling and a 10-class head: LayerNormalization, Q/K/V MatMuls, scaled Softmax attention, Gelu MLP
 * (opset 20's Gelu), residuals.
 */
export function transformerModel(seed = 3): Promise<FixtureModel> {
  const r = rng(seed);
  const d = 64;
  const ff = 128;
  return withCentroidHead({
    name: 'transformer', opset: 20, input: { name: 'tokens', shape: [1, 8, d] }, feature: 'pooled', featureDim: d, head: 'matmul', noise: 0.6,
    initializers: [
      floatTensor('ln1.scale', [d], new Array(d).fill(1)), floatTensor('ln1.bias', [d], new Array(d).fill(0)),
      weight(r, 'wq', d, d), weight(r, 'wk', d, d), weight(r, 'wv', d, d), weight(r, 'wo', d, d),
      floatTensor('attn_scale', [], [1 / Math.sqrt(d)]),
      floatTensor('ln2.scale', [d], new Array(d).fill(1)), floatTensor('ln2.bias', [d], new Array(d).fill(0)),
      weight(r, 'w1', d, ff), floatTensor('b1', [ff], normal(r, ff, 0.02)), weight(r, 'w2', ff, d), floatTensor('b2', [d], normal(r, d, 0.02)),
      int64Tensor('pool_axes', [1], [1]),
    ],
    nodes: [
      node('LayerNormalization', ['tokens', 'ln1.scale', 'ln1.bias'], ['n1'], { axis: -1 }, 'ln1'),
      node('MatMul', ['n1', 'wq'], ['q'], {}, 'q_proj'),
      node('MatMul', ['n1', 'wk'], ['k'], {}, 'k_proj'),
      node('MatMul', ['n1', 'wv'], ['v'], {}, 'v_proj'),
      node('Transpose', ['k'], ['kt'], { perm: [0, 2, 1] }, 'k_t'),
      node('MatMul', ['q', 'kt'], ['scores_raw'], {}, 'scores'),
      node('Mul', ['scores_raw', 'attn_scale'], ['scores_scaled'], {}, 'scale'),
      node('Softmax', ['scores_scaled'], ['attn'], { axis: -1 }, 'softmax'),
      node('MatMul', ['attn', 'v'], ['ctx'], {}, 'context'),
      node('MatMul', ['ctx', 'wo'], ['attn_out'], {}, 'o_proj'),
      node('Add', ['tokens', 'attn_out'], ['res1'], {}, 'residual1'),
      node('LayerNormalization', ['res1', 'ln2.scale', 'ln2.bias'], ['n2'], { axis: -1 }, 'ln2'),
      node('MatMul', ['n2', 'w1'], ['f1m'], {}, 'ff1'),
      node('Add', ['f1m', 'b1'], ['f1'], {}, 'ff1_bias'),
      node('Gelu', ['f1'], ['g1'], {}, 'gelu'),
      node('MatMul', ['g1', 'w2'], ['f2m'], {}, 'ff2'),
      node('Add', ['f2m', 'b2'], ['f2'], {}, 'ff2_bias'),
      node('Add', ['res1', 'f2'], ['res2'], {}, 'residual2'),
      node('ReduceMean', ['res2', 'pool_axes'], ['pooled'], { keepdims: 0 }, 'pool'),
    ],
  }, r);
}

/** Golden samples: `n` labelled inputs, each a class prototype plus noise of standard deviation `noise`. */
export function fixtureGolden(f: FixtureModel, n: number, o: { seed?: number; noise?: number } = {}): GoldenSample[] {
  const r = rng(o.seed ?? 99);
  return Array.from({ length: n }, (_, i) => {
    const label = i % f.prototypes.length;
    const p = f.prototypes[label]!;
    const noise = normal(r, p.length, o.noise ?? f.noise);
    return { inputs: { [f.input.name]: { dims: f.input.shape, data: p.map((v, j) => v + noise[j]!) } }, label };
  });
}
