import type { onnx } from '../onnx/proto';
import { int64Tensor, node } from '../onnx/build';
import { DT, elementCount, floatValues, makeTensor, scalesTensor, transpose } from '../onnx/tensor';
import { codesOf, INT4_CONV_GRID, NBITS_GRID, roundToNearest, type GptqLayer } from './gptq';
import { computeScaleZeroPoint, quantizeValue } from './params';
import { registerMatMulAndGemm } from './matmul-like';
import { registerQuantizer } from './registry';
import { readingWeight, sharedWeight, weightOnlyInt8, weightOnlyInt8Values } from './dequantized-weight';
import { type GraphIndex, intAttr, nodeKey, topologicalSort } from '../onnx/graph';
import { tiedToATable } from './tied-weights';
import type { QuantizeContext } from './types';

export interface Int4Weight {
  /** [N, blocks, blockSize/2] bytes, two values per byte, the first in the low nibble. */
  packed: Uint8Array;
  /** [N * blocks] scales. */
  scales: Float32Array;
  /** [N * ceil(blocks/2)] packed zero points; absent when symmetric (MatMulNBits then uses 8). */
  zeroPoints?: Uint8Array;
}

/**
 * Block-wise 4-bit quantization of a MatMul weight W [K, N] in MatMulNBits' layout: each column is split
 * into blocks of `blockSize` along K (the last padded with zeros), each block with its own scale and, when
 * asymmetric, zero point. Stored as unsigned nibbles; symmetric blocks are centred on 8. With the Hessian
 * of the MatMul's input (a calibrated layer) the symmetric codes come from GPTQ instead of rounding.
 */
export function quantizeInt4(w: Float32Array, k: number, n: number, blockSize: number, symmetric: boolean, gptq?: GptqLayer): Int4Weight {
  if (!symmetric) return quantizeInt4Asymmetric(w, k, n, blockSize);
  // Symmetric: the weight of largest magnitude onto −8 exactly (NBITS_GRID), as onnxruntime's own
  // blockwise quantizer does: a step of absmax/8 instead of absmax/7.
  const rows = transpose(w, [k, n], [1, 0]);
  const { codes, scales } = gptq ? codesOf(gptq, rows, n, k, blockSize, NBITS_GRID) : roundToNearest(rows, n, k, blockSize, NBITS_GRID);
  const blocks = Math.ceil(k / blockSize);
  const blob = blockSize / 2;
  // Padding past K is code 0 (nibble 8). A block at a time, two codes a byte.
  const packed = new Uint8Array(n * blocks * blob).fill(0x88);
  for (let col = 0; col < n; col++) {
    const src = col * k;
    for (let b = 0; b < blocks; b++) {
      const [from, to, at] = [b * blockSize, Math.min(k, (b + 1) * blockSize), (col * blocks + b) * blob];
      for (let r = from; r < to; r += 2) packed[at + ((r - from) >> 1)] = (codes[src + r]! + 8) | ((r + 1 < to ? codes[src + r + 1]! + 8 : 8) << 4);
    }
  }
  return { packed, scales };
}

/** Asymmetric blocks: [min, max] onto 0…15 with a zero point per block, packed two per byte. */
function quantizeInt4Asymmetric(w: Float32Array, k: number, n: number, blockSize: number): Int4Weight {
  const blocks = Math.ceil(k / blockSize);
  const blob = blockSize / 2;
  const packed = new Uint8Array(n * blocks * blob);
  const scales = new Float32Array(n * blocks);
  const zeroPoints = new Uint8Array(n * Math.ceil(blocks / 2));
  const q = new Uint8Array(blockSize);
  for (let col = 0; col < n; col++) {
    for (let b = 0; b < blocks; b++) {
      let lo = 0;
      let hi = 0;
      for (let i = 0; i < blockSize; i++) {
        const r = b * blockSize + i;
        if (r >= k) break;
        const v = w[r * n + col]!;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      const p = computeScaleZeroPoint(lo, hi, 0, 15, false);
      scales[col * blocks + b] = p.scale;
      for (let i = 0; i < blockSize; i++) {
        const r = b * blockSize + i;
        q[i] = r < k ? quantizeValue(w[r * n + col]!, p.scale, p.zeroPoint, 0, 15) : p.zeroPoint;
      }
      const base = (col * blocks + b) * blob;
      for (let i = 0; i < blob; i++) packed[base + i] = (q[2 * i]! & 0x0f) | ((q[2 * i + 1]! & 0x0f) << 4);
      const at = col * Math.ceil(blocks / 2) + (b >> 1);
      zeroPoints[at] = b & 1 ? (zeroPoints[at]! & 0x0f) | (p.zeroPoint << 4) : (zeroPoints[at]! & 0xf0) | p.zeroPoint;
    }
  }
  return { packed, scales, zeroPoints };
}

/** The float weight MatMulNBits computes with: (nibble − zero point) · scale, back in [K, N] layout. */
export function dequantizeInt4(q: Int4Weight, k: number, n: number, blockSize: number): Float32Array {
  const blocks = Math.ceil(k / blockSize);
  const out = new Float32Array(k * n);
  for (let col = 0; col < n; col++) {
    for (let r = 0; r < k; r++) {
      const b = Math.floor(r / blockSize);
      const i = r % blockSize;
      const byte = q.packed[(col * blocks + b) * (blockSize / 2) + (i >> 1)]!;
      const nib = i & 1 ? byte >> 4 : byte & 0x0f;
      const zpByte = q.zeroPoints ? q.zeroPoints[col * Math.ceil(blocks / 2) + (b >> 1)]! : 0x88;
      const zp = q.zeroPoints ? (b & 1 ? zpByte >> 4 : zpByte & 0x0f) : 8;
      out[r * n + col] = (nib - zp) * q.scales[col * blocks + b]!;
    }
  }
  return out;
}

/**
 * MatMulNBits(A, W) → `output`, W [K, N] quantized in blocks of the configured size; an output layer
 * (see outputLayers) keeps 8 bits unless `int4Head` asks for 4, and a weight read inside a Loop or Scan
 * body unless `int4Recurrent` does (its error is applied again every iteration, as an LSTM's R's is).
 */
function matMulNBits(ctx: QuantizeContext, base: string, input: string, weight: () => Float32Array, k: number, cols: number, output: string, weightKey: string): onnx.INodeProto[] {
  if (headKeepsEightBits(ctx, base, weight, k, cols) || (ctx.iterated && !ctx.options.int4Recurrent)) return matMulInt8Weight(ctx, base, input, weight, k, cols, output, weightKey);
  const bs = ctx.options.blockSize;
  const stored = ctx.once(`int4:${weightKey}`, () => {
    const q = quantizeInt4(weight(), k, cols, bs, ctx.options.symmetric, ctx.options.gptq?.get(base));
    const blocks = Math.ceil(k / bs);
    const b = ctx.index.uniqueName(`${base}_weight_int4`);
    const s = ctx.index.uniqueName(`${base}_weight_scales`);
    ctx.addInitializer(makeTensor(b, DT.UINT8, [cols, blocks, bs / 2], q.packed));
    ctx.addInitializer(makeTensor(s, DT.FLOAT, [cols * blocks], q.scales));
    if (!q.zeroPoints) return [b, s];
    const z = ctx.index.uniqueName(`${base}_weight_zero_points`);
    ctx.addInitializer(makeTensor(z, DT.UINT8, [cols * Math.ceil(blocks / 2)], q.zeroPoints));
    return [b, s, z];
  }).value;
  const inputs = [input, ...stored];
  ctx.domains.add('com.microsoft');
  return [{ ...node('MatMulNBits', inputs, [output], { K: k, N: cols, bits: 4, block_size: bs }, ctx.index.uniqueName(`${base}_MatMulNBits`)), domain: 'com.microsoft' }];
}

registerMatMulAndGemm('int4', matMulNBits);

/**
 * The nodes (by name) whose weight is the last a graph output passes through: MatMul or Gemm with a
 * constant weight reached from an output with no other weighted node (MatMul, Gemm, Conv) between.
 * Their errors reach the output unmixed: on the torch text transformer a 4-bit head of 256 weights took
 * cosine from 0.9986 to 0.9964, on the BERT-like model the LM head from 0.9993 to 0.9958.
 */
function outputLayers(ctx: QuantizeContext): Set<string> {
  return ctx.once('output-layers', () => {
    const heads = new Set<string>();
    const seen = new Set<string>();
    const stack = (ctx.index.graph.output ?? []).map((o) => o.name!);
    while (stack.length) {
      const producer = ctx.index.producers.get(stack.pop()!);
      if (!producer || seen.has(nodeKey(producer))) continue;
      const name = nodeKey(producer);
      seen.add(name);
      const weighted = ['MatMul', 'Gemm', 'Conv'].includes(producer.opType!) && !producer.domain && !!ctx.index.floatInitializer(producer.input?.[1]);
      if (weighted) {
        if (producer.opType !== 'Conv') heads.add(name);
        continue;
      }
      stack.push(...(producer.input ?? []).filter((i) => i && !ctx.index.initializers.has(i)));
    }
    return heads;
  }).value;
}

/** An output layer at most this share of the model's float weights keeps 8 bits under int4. */
const HEAD_SHARE = 0.1;

/**
 * Whether int4 keeps this node's weight at 8 bits (as llama.cpp keeps its output tensor at 6): an output
 * layer that is a small share of the weights (most classifiers' heads: 0.1–6% here), or one tied to an
 * embedding table, which then costs nothing (the table keeps 8 bits and is stored once with it). A large
 * untied head takes 4 bits — PaddleOCR's recogniser's 6,625-character one is 30% of its file, where 8 bits
 * would leave int4 (×0.257) barely under int8 (×0.266). `int4Head` puts every head in 4 bits.
 */
function headKeepsEightBits(ctx: QuantizeContext, base: string, weight: () => Float32Array, k: number, cols: number): boolean {
  if (ctx.options.int4Head || !outputLayers(ctx).has(base)) return false;
  return 4 * k * cols <= HEAD_SHARE * ctx.modelFloatBytes || tiedToATable(ctx, weight(), k, cols);
}

/**
 * `output = input · W` with W [K, N] int8 per output column, restored by Cast and Mul (folded at load, as
 * weight-only Conv weights are). Full 8 bits: no integer kernel reads them. A table tied to this head is
 * quantized the same way per row under int4 (gather.ts), so dedupeTransposedInt8 stores it once.
 */
function matMulInt8Weight(ctx: QuantizeContext, base: string, input: string, weight: () => Float32Array, k: number, cols: number, output: string, weightKey: string): onnx.INodeProto[] {
  const w = weightOnlyInt8Values(ctx, `int8-head:${weightKey}`, `${base}_weight`, weight, [k, cols], 1, false);
  return [...w.nodes, node('MatMul', [input, w.output], [output], {}, ctx.index.uniqueName(`${base}_MatMul`))];
}

/** ONNX's INT4 element type (22; newer than the generated enum): two per byte, the first in the low nibble. */
const INT4 = 22 as onnx.TensorProto.DataType;

/** Opset whose Cast reads int4 tensors (Cast-21), which restores 4-bit Conv weights. */
export const INT4_CAST_OPSET = 21;

/**
 * Blocked symmetric int4 of a weight [rows, cols], `cols` a multiple of `blockSize`: one scale per block,
 * values −7…7 packed in element order, so [rows, blocks, blockSize] times scales [rows, blocks, 1]
 * restores it. GPTQ codes for a calibrated layer (the Hessian of what the rows multiply, cols × cols).
 */
export function quantizeBlockedInt4(w: Float32Array, rows: number, cols: number, blockSize: number, gptq?: GptqLayer): { packed: Uint8Array; scales: Float32Array; blocks: number } {
  const { codes, scales } = gptq ? codesOf(gptq, w, rows, cols, blockSize, INT4_CONV_GRID) : roundToNearest(w, rows, cols, blockSize, INT4_CONV_GRID);
  const packed = new Uint8Array(Math.ceil(w.length / 2));
  for (let at = 0; at < codes.length; at++) packed[at >> 1]! |= at & 1 ? (codes[at]! & 0x0f) << 4 : codes[at]! & 0x0f;
  return { packed, scales, blocks: cols / blockSize };
}

/**
 * The block length for a filter of `k` weights: `k` split evenly into as few blocks as allows none longer
 * than `blockSize`, so blocks need no padding (88 weights in 4 of 22 rather than 32, 32 and 24); none
 * when that would take blocks shorter than half of `blockSize` (a prime `k`), and the Conv keeps 8 bits.
 */
export function evenBlockLength(k: number, blockSize: number): number | undefined {
  if (k <= blockSize) return k;
  for (let blocks = Math.ceil(k / blockSize); k / blocks >= blockSize / 2; blocks++) if (k % blocks === 0) return k / blocks;
  return undefined;
}

/** Weights per output channel under which a Conv keeps 8 bits even with `int4Conv` (stem convolutions). */
const MIN_INT4_CONV_K = 64;

/**
 * Whether a Conv takes 4 bits: only when asked (`int4Conv`), and not a grouped (depthwise) or narrow one,
 * whose few weights per filter share scales badly. By default a Conv keeps 8 bits, weight-only: one
 * 4-bit pointwise convolution alone took PaddleOCR's recogniser from cosine 0.990 to 0.930, all of them
 * to 0.86, while 8-bit weights keep it at 0.97 (real-model-quantize.test.ts).
 */
function int4Conv(n: onnx.INodeProto, ctx: QuantizeContext): boolean {
  return ctx.once('four-bit-convs', () => fourBitConvs(ctx.index, ctx.opset, ctx.options)).value.has(nodeKey(n));
}

/**
 * The share of a graph's 4-bit-able Conv weights, counted from its inputs, that keep 8 bits: the stem. Its
 * filters are a fraction of a percent of the bytes, but every later layer works on what they see: at 4
 * bits, ddddocr's YOLOX detector's first Conv alone took the output's cosine from 0.9995 to 0.955 (every
 * Conv at 4 bits: 0.919; all but the stem: 0.992), RapidAI's PicoDet layout detector's from 1.000 to 0.874
 * (bench/README.md).
 */
const STEM_SHARE = 0.005;

/** The Convs of `index.graph` that take 4 bits: convTakesFourBits's, less the stem (STEM_SHARE), by node name. */
export function fourBitConvs(index: GraphIndex, opset: number, options: { int4Conv?: boolean; blockSize: number }): Set<string> {
  const convs = topologicalSort(index.graph).flatMap((n) => {
    const w = n.opType === 'Conv' && !n.domain ? index.floatInitializer(n.input?.[1]) : undefined;
    const dims = (w?.dims ?? []).map(Number);
    return w && dims.length >= 3 && convTakesFourBits(dims, intAttr(n, 'group', 1), opset, options) ? [{ name: nodeKey(n), size: elementCount(dims) }] : [];
  });
  const total = convs.reduce((s, c) => s + c.size, 0);
  let seen = 0;
  const out = new Set<string>();
  for (const c of convs) {
    seen += c.size;
    if (seen > STEM_SHARE * total) out.add(c.name);
  }
  return out;
}

/** int4Conv's rule for a Conv weight [M, C/group, …kernel] (1-, 2- or 3-D) in a model of `opset`. */
export function convTakesFourBits(dims: number[], group: number, opset: number, options: { int4Conv?: boolean; blockSize: number }): boolean {
  if (!options.int4Conv || opset < INT4_CAST_OPSET) return false;
  const k = elementCount(dims.slice(1));
  return group === 1 && k >= MIN_INT4_CONV_K && evenBlockLength(k, options.blockSize) !== undefined;
}

// Conv: MatMulNBits covers MatMul only. A Conv keeps int8 weights (weight-only, any opset) unless int4Conv
// asks for 4-bit blocks, blocked as the GEMM a convolution is: [M, C/groups·kh·kw], blocks of at most
// `blockSize` along each output channel's K (as MatMulNBits blocks K; evenBlockLength). A depthwise
// filter's 9 weights would thus share one scale of their own; blocks across 32 output channels at one
// kernel position mix filters of very different sizes. The blocks are restored by Cast and Mul, then
// reshaped, all from constants, so onnxruntime folds them into a float weight at load and convolves at
// float speed. A DequantizeLinear-21 with `block_size` says the same in one node, but onnxruntime keeps
// every DequantizeLinear for its QDQ fusions, so it dequantized on each run and the Conv lost its
// prepacked kernel: PaddleOCR's detector took 105 ms a run that way against fp32's 95 ms; 94 ms as now.
registerQuantizer({
  method: 'int4',
  opType: 'Conv',
  check(n, ctx) {
    const w = ctx.index.floatInitializer(n.input?.[1]);
    if (!w) return 'the weight is not a constant float initializer';
    return undefined;
  },
  quantize(n, ctx) {
    const name = n.input![1]!;
    if (!int4Conv(n, ctx)) return readingWeight(n, 1, weightOnlyInt8(ctx, name, 0, false, ctx.options.gptq?.get(nodeKey(n))));
    const w = ctx.index.initializers.get(name)!;
    const dims = (w.dims ?? []).map(Number);
    const w4 = sharedWeight(ctx, `int4-conv:${name}`, () => blockedInt4Weight(ctx, name, floatValues(w), dims, dims[0]!, ctx.options.gptq?.get(nodeKey(n))));
    return readingWeight(n, 1, w4);
  },
});

/**
 * A weight of shape `dims` as `m` rows of 4-bit blocks (a Conv's [M, C, …kernel]: a row a filter; an
 * LSTM's [directions, gates·hidden, inputs]: a row a gate unit), and the nodes that restore it.
 */
export function blockedInt4Weight(ctx: QuantizeContext, name: string, values: Float32Array, dims: number[], m: number, gptq?: GptqLayer): { nodes: onnx.INodeProto[]; output: string } {
  const k = elementCount(dims) / m;
  const bs = evenBlockLength(k, ctx.options.blockSize)!;
  const q = quantizeBlockedInt4(values, m, k, bs, gptq);
  const wq = ctx.index.uniqueName(`${name}_int4`);
  const ws = ctx.index.uniqueName(`${name}_block_scales`);
  const shape = ctx.index.uniqueName(`${name}_shape`);
  ctx.addInitializer({ name: wq, dataType: INT4, dims: [m, q.blocks, bs], rawData: q.packed });
  ctx.addInitializer(int64Tensor(shape, [dims.length], dims));
  const float = ctx.index.uniqueName(`${name}_float`);
  const blocks = ctx.index.uniqueName(`${name}_blocks`);
  const output = ctx.index.uniqueName(`${name}_dequantized`);
  // Scales in float16 where they fit (as llama.cpp's Q4_0 keeps them): a block of 22–32 weights takes
  // 11–16 bytes of codes, so 4-byte scales were a fifth of the 4-bit bytes. The Cast folds at load too.
  const stored = scalesTensor(ws, [m, q.blocks, 1], q.scales);
  ctx.addInitializer(stored);
  const half = stored.dataType === DT.FLOAT16;
  const scales = half ? ctx.index.uniqueName(`${name}_block_scales_float`) : ws;
  return {
    output,
    nodes: [
      ...(half ? [node('Cast', [ws], [scales], { to: DT.FLOAT }, ctx.index.uniqueName(`${ws}_Cast`))] : []),
      node('Cast', [wq], [float], { to: DT.FLOAT }, ctx.index.uniqueName(`${name}_Cast`)),
      node('Mul', [float, scales], [blocks], {}, ctx.index.uniqueName(`${name}_scale_Mul`)),
      node('Reshape', [blocks, shape], [output], {}, ctx.index.uniqueName(`${name}_Reshape`)),
    ],
  };
}
