import type { onnx } from '../onnx/proto';
import { node } from '../onnx/build';
import { DT, floatValues, makeTensor } from '../onnx/tensor';
import { quantizeWeight8, type QuantizedWeight } from './weights';
import type { QuantizeContext } from './types';
import { codesOf, INT8_GRID, type GptqLayer } from './gptq';

/**
 * A weight stored as symmetric int8 per channel along `axis` behind a DequantizeLinear (per-axis needs
 * opset 13, which int8-static requires), so the node that reads it keeps its float input and onnxruntime
 * can fuse the QDQ group into an integer kernel. `reduceRange`: that kernel reads the int8 values directly.
 */
export function dequantizedWeight(ctx: QuantizeContext, name: string, axis: number, reduceRange: boolean): { nodes: onnx.INodeProto[]; output: string } {
  return sharedWeight(ctx, `dq:${name}:${axis}:${reduceRange}`, () => dequantizedWeightOnce(ctx, name, axis, reduceRange));
}

/** `n` reading its weight input `at` from `w` (a restored weight), after the nodes that restore it. */
export function readingWeight(n: onnx.INodeProto, at: number, w: { nodes: onnx.INodeProto[]; output: string }): onnx.INodeProto[] {
  return [...w.nodes, { ...n, input: (n.input ?? []).map((x, i) => (i === at ? w.output : x)) }];
}

/** The first reader of a shared weight gets the nodes that restore it; later readers only its name. */
export function sharedWeight(ctx: QuantizeContext, key: string, make: () => { nodes: onnx.INodeProto[]; output: string }): { nodes: onnx.INodeProto[]; output: string } {
  const { value, first } = ctx.once(key, make);
  return first ? value : { ...value, nodes: [] };
}

function dequantizedWeightOnce(ctx: QuantizeContext, name: string, axis: number, reduceRange: boolean): { nodes: onnx.INodeProto[]; output: string } {
  const w = ctx.index.initializers.get(name)!;
  const { q, wq } = storeInt8(ctx, name, floatValues(w), (w.dims ?? []).map(Number), axis, ctx.options.perChannel, reduceRange);
  const perChannel = q.scales.length > 1;
  const ws = ctx.index.uniqueName(`${name}_scale`);
  const wz = ctx.index.uniqueName(`${name}_zero_point`);
  ctx.addInitializer(makeTensor(ws, DT.FLOAT, perChannel ? [q.scales.length] : [], q.scales));
  ctx.addInitializer(makeTensor(wz, DT.INT8, perChannel ? [q.scales.length] : [], q.zeroPoints));
  const out = ctx.index.uniqueName(`${name}_dequantized`);
  return { output: out, nodes: [node('DequantizeLinear', [wq, ws, wz], [out], perChannel ? { axis } : {}, ctx.index.uniqueName(`${name}_DQ`))] };
}

/**
 * Weight-only int8: the values as int8 per channel along `axis`, restored to float by Cast and a Mul by
 * the channel scales. Both have constant inputs, so onnxruntime folds them when it loads the model: the
 * file keeps a quarter of the bytes and the node computes in float at float speed, on any opset and CPU.
 */
export function weightOnlyInt8(ctx: QuantizeContext, name: string, axis: number, reduceRange = false, gptq?: GptqLayer): { nodes: onnx.INodeProto[]; output: string } {
  const w = ctx.index.initializers.get(name)!;
  return weightOnlyInt8Values(ctx, `w8:${name}:${axis}:${reduceRange}`, name, () => floatValues(w), (w.dims ?? []).map(Number), axis, reduceRange, gptq);
}

/** weightOnlyInt8 of values not stored as they are read (a Gemm's weight transposed), shared under `key`. */
export function weightOnlyInt8Values(ctx: QuantizeContext, key: string, name: string, values: () => Float32Array, dims: number[], axis: number, reduceRange: boolean, gptq?: GptqLayer): { nodes: onnx.INodeProto[]; output: string } {
  return sharedWeight(ctx, key, () => weightOnlyInt8Once(ctx, name, values(), dims, axis, reduceRange, gptq));
}

function weightOnlyInt8Once(ctx: QuantizeContext, name: string, values: Float32Array, dims: number[], axis: number, reduceRange: boolean, gptq?: GptqLayer): { nodes: onnx.INodeProto[]; output: string } {
  const { q, wq } = storeInt8(ctx, name, values, dims, axis, ctx.options.perChannel, reduceRange, gptq);
  const ws = ctx.index.uniqueName(`${name}_scale`);
  // Scales shaped to broadcast along `axis`: [C, 1, 1, 1] for a Conv weight [C, …].
  const shape = dims.map((d, i) => (i === axis && q.scales.length > 1 ? d : 1));
  ctx.addInitializer(makeTensor(ws, DT.FLOAT, q.scales.length > 1 ? shape : [], q.scales));
  const cast = ctx.index.uniqueName(`${name}_float`);
  const out = ctx.index.uniqueName(`${name}_dequantized`);
  return {
    output: out,
    nodes: [
      node('Cast', [wq], [cast], { to: DT.FLOAT }, ctx.index.uniqueName(`${name}_Cast`)),
      node('Mul', [cast, ws], [out], {}, ctx.index.uniqueName(`${name}_scale_Mul`)),
    ],
  };
}

function storeInt8(ctx: QuantizeContext, name: string, values: Float32Array, dims: number[], axis: number, perChannel: boolean, reduceRange: boolean, gptq?: GptqLayer): { q: QuantizedWeight; wq: string } {
  // A calibrated Conv (axis 0, one channel a row of C·kh·kw) takes GPTQ codes, one group per channel.
  const calibrated = gptq && axis === 0 && perChannel && !reduceRange;
  const q = calibrated ? gptqInt8(values, dims, gptq) : quantizeWeight8(values, dims, { axis, perChannel, symmetric: true, qtype: 'int8', reduceRange });
  const wq = ctx.index.uniqueName(`${name}_quantized`);
  ctx.addInitializer(makeTensor(wq, DT.INT8, dims, q.values));
  return { q, wq };
}

/** quantizeWeight8's symmetric per-channel int8 (axis 0), with GPTQ codes: one group a channel. */
function gptqInt8(values: Float32Array, dims: number[], gptq: GptqLayer): QuantizedWeight {
  const cols = values.length / dims[0]!;
  const { codes, scales } = codesOf(gptq, values, dims[0]!, cols, cols, INT8_GRID);
  return { values: codes, scales, zeroPoints: new Int8Array(dims[0]!) };
}
