import type { onnx } from '../onnx/proto';
import { node } from '../onnx/build';
import { intAttr, nodeKey } from '../onnx/graph';
import { DT, floatValues, makeTensor } from '../onnx/tensor';
import { computeScaleZeroPoint, quantizeValue, type QParams } from './params';
import { registerQuantizer } from './registry';
import { dequantizedWeight, sharedWeight } from './dequantized-weight';
import { NOT_CALIBRATED, type QuantizeContext } from './types';

/**
 * int8 static quantization in QDQ form: QuantizeLinear/DequantizeLinear pairs on each quantized node's
 * activation input and output (uint8, ranges from calibration) and a DequantizeLinear on its int8
 * per-channel symmetric weight (7-bit by default, since onnxruntime runs the fused QLinear kernels as u8·s8). The float ops stay, so the model runs anywhere; onnxruntime fuses
 * DQ → op → Q into QLinear kernels where it has them. Residual Adds and Relus between such nodes get pairs
 * too (ACTIVATION_OPS), so the tensors between them stay int8.
 */

/** uint8 parameters of `name` over [min, max] (0 included): their scalar initializers' names and the values. */
function uint8Params(ctx: QuantizeContext, name: string, min: number, max: number): { scale: string; zp: string; p: QParams } {
  const p = computeScaleZeroPoint(min, max, 0, 255, false);
  const [scale, zp] = [ctx.index.uniqueName(`${name}_scale`), ctx.index.uniqueName(`${name}_zero_point`)];
  ctx.addInitializer(makeTensor(scale, DT.FLOAT, [], Float32Array.of(p.scale)));
  ctx.addInitializer(makeTensor(zp, DT.UINT8, [], Uint8Array.of(p.zeroPoint)));
  return { scale, zp, p };
}

/** Q → DQ of an activation with its calibrated range; one pair per tensor, shared by every reader. */
function qdq(ctx: QuantizeContext, name: string, into?: string): { nodes: onnx.INodeProto[]; output: string } {
  const known = ctx.qdq.get(name);
  if (known && !into) return { nodes: [], output: known };
  const r = ctx.options.ranges!.get(name)!;
  const { scale, zp } = uint8Params(ctx, name, r.min, r.max);
  const q = ctx.index.uniqueName(`${name}_QuantizeLinear`);
  const dq = into ?? ctx.index.uniqueName(`${name}_DequantizeLinear`);
  if (!into) ctx.qdq.set(name, dq);
  return {
    output: dq,
    nodes: [
      node('QuantizeLinear', [name, scale, zp], [q], {}, ctx.index.uniqueName(`${name}_Q`)),
      node('DequantizeLinear', [q, scale, zp], [dq], {}, ctx.index.uniqueName(`${name}_DQ`)),
    ],
  };
}

/**
 * Ops with no weight that int8-static still puts between Q/DQ pairs, so onnxruntime keeps their tensors in
 * int8 (a residual Add becomes QLinearAdd, a Relu after it folds into the next Q) instead of converting
 * back to float around each: ResNet's residual Adds and their Relus stayed float before, ×0.90 of fp32's
 * latency against onnxruntime's quantize_static ×0.74 (bench/README). Their inputs are float values
 * computed by the graph, but for an Add's one constant (a bias), stored as uint8 (quantizedConstant).
 */
export const ACTIVATION_OPS: Record<string, number> = { Add: 2, Relu: 1 };

/** Ops that only move or reshape values: onnxruntime carries a quantized tensor through them in uint8. */
export const MOVES_VALUES = new Set(['Reshape', 'Transpose', 'Squeeze', 'Unsqueeze', 'Flatten', 'Identity']);

/** Tensors a node needs calibrated: its activation inputs and its output (none for recurrent layers: their weights are weight-only, recurrent.ts). */
export function staticCalibrationTensors(n: onnx.INodeProto, isConstant: (name: string) => boolean): string[] {
  if (['LSTM', 'GRU', 'RNN'].includes(n.opType!)) return [];
  return [...(n.input ?? []).slice(0, ACTIVATION_OPS[n.opType!] ?? 1), n.output![0]!].filter((t) => !isConstant(t));
}

/** The node computes in float into a fresh name; Q → DQ restores the original output for its readers. */
function quantizedOutput(ctx: QuantizeContext, n: onnx.INodeProto): { raw: string; nodes: onnx.INodeProto[] } {
  const y = n.output![0]!;
  const raw = ctx.index.uniqueName(`${y}_float`);
  ctx.options.ranges!.set(raw, ctx.options.ranges!.get(y)!);
  const out = qdq(ctx, raw, y);
  // y is now a DequantizeLinear output: a later node reading it needs no second pair.
  ctx.qdq.set(y, y);
  return { raw, nodes: out.nodes };
}

/**
 * A constant an activation op reads (a bias Add's bias) as uint8 over its own range and a DequantizeLinear,
 * as quantize_static stores it: onnxruntime needs every input of a QLinearAdd quantized.
 */
function quantizedConstant(ctx: QuantizeContext, name: string): { nodes: onnx.INodeProto[]; output: string } {
  return sharedWeight(ctx, `u8:${name}`, () => {
    const t = ctx.index.initializers.get(name)!;
    const values = floatValues(t);
    let [lo, hi] = [0, 0];
    for (const v of values) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
    const { scale, zp, p } = uint8Params(ctx, name, lo, hi);
    const [q, out] = [ctx.index.uniqueName(`${name}_quantized`), ctx.index.uniqueName(`${name}_dequantized`)];
    ctx.addInitializer(makeTensor(q, DT.UINT8, (t.dims ?? []).map(Number), Uint8Array.from(values, (v) => quantizeValue(v, p.scale, p.zeroPoint, 0, 255))));
    return { output: out, nodes: [node('DequantizeLinear', [q, scale, zp], [out], {}, ctx.index.uniqueName(`${name}_DQ`))] };
  });
}

/** Whether quantizeModelStatic chose this weightless node (staticNodes). */
const chosen = (n: onnx.INodeProto, ctx: QuantizeContext): boolean => ctx.options.staticNodes?.has(nodeKey(n)) ?? false;

/** The node's bias input, or a corrected copy of it where bias correction measured one (bias-correction.ts). */
function bias(ctx: QuantizeContext, n: onnx.INodeProto): string[] {
  const corrected = ctx.options.biasCorrections?.get(nodeKey(n));
  if (!corrected) return (n.input ?? []).slice(2);
  // A bias of this node's own takes the corrected values in place: the file holds one bias, as before.
  const own = n.input?.[2] ? ctx.index.initializers.get(n.input[2]) : undefined;
  if (own && ctx.index.consumers.get(n.input![2]!)?.length === 1) {
    Object.assign(own, makeTensor(own.name!, DT.FLOAT, [corrected.length], corrected), { floatData: [] });
    return [own.name!];
  }
  const name = ctx.index.uniqueName(`${nodeKey(n)}_bias_corrected`);
  ctx.addInitializer(makeTensor(name, DT.FLOAT, [corrected.length], corrected));
  return [name];
}

function weightAxis(n: onnx.INodeProto): number {
  if (n.opType === 'Conv') return 0;
  if (n.opType === 'Gemm') return intAttr(n, 'transB', 0) === 1 ? 0 : 1;
  return 1;
}

for (const opType of ['MatMul', 'Gemm', 'Conv']) {
  registerQuantizer({
    method: 'int8-static',
    opType,
    check(n, ctx) {
      const w = ctx.index.floatInitializer(n.input?.[1]);
      if (!w) return 'the weight is not a constant float initializer';
      if (opType === 'MatMul' && (w.dims ?? []).length !== 2) return 'only 2-D MatMul weights are quantized';
      if (ctx.index.initializers.has(n.input![0]!)) return 'both inputs are constants (fold them instead)';
      if (!ctx.options.ranges?.has(n.input![0]!) || !ctx.options.ranges.has(n.output![0]!)) return NOT_CALIBRATED;
      return undefined;
    },
    quantize(n, ctx) {
      const x = qdq(ctx, n.input![0]!);
      const w = dequantizedWeight(ctx, n.input![1]!, weightAxis(n), ctx.options.reduceRange);
      const out = quantizedOutput(ctx, n);
      // Named by its key, so the quantized node is found again (bias correction measures it).
      return [...x.nodes, ...w.nodes, { ...n, name: nodeKey(n), input: [x.output, w.output, ...bias(ctx, n)], output: [out.raw, ...(n.output ?? []).slice(1)] }, ...out.nodes];
    },
  });
}

for (const [opType, inputs] of Object.entries(ACTIVATION_OPS)) {
  registerQuantizer({
    method: 'int8-static',
    opType,
    // Only those the calibration chose (float values computed by the graph): a bias Add or a shape's Add is
    // no quantization left undone, so it is not reported as kept.
    applies: (n, ctx) => (n.input ?? []).length === inputs && chosen(n, ctx),
    check: () => undefined,
    quantize(n, ctx) {
      const y = n.output![0]!;
      // Its producer's output was quantized with this Relu's range (quantizeModelStatic): that Q already
      // clamps at 0, so the Relu is an Identity onnxruntime removes, and no requantizing pair is left.
      if (opType === 'Relu' && ctx.qdq.get(n.input![0]!) === n.input![0]! && ctx.options.ranges!.get(n.input![0]!) === ctx.options.ranges!.get(y)) {
        ctx.qdq.set(y, y);
        return [node('Identity', [n.input![0]!], [y], {}, n.name || undefined)];
      }
      const ins = n.input!.map((i) => (ctx.index.initializers.has(i) ? quantizedConstant(ctx, i) : qdq(ctx, i)));
      const out = quantizedOutput(ctx, n);
      return [...ins.flatMap((x) => x.nodes), { ...n, input: ins.map((x) => x.output), output: [out.raw] }, ...out.nodes];
    },
  });
}
