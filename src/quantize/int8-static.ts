import type { onnx } from '../onnx/proto';
import { node } from '../onnx/build';
import { intAttr } from '../onnx/graph';
import { DT, makeTensor } from '../onnx/tensor';
import { computeScaleZeroPoint } from './params';
import { registerQuantizer } from './registry';
import { dequantizedWeight } from './dequantized-weight';
import type { QuantizeContext } from './types';

/**
 * int8 static quantization in QDQ form: QuantizeLinear/DequantizeLinear pairs on each quantized node's
 * activation input and output (uint8, ranges from calibration) and a DequantizeLinear on its int8
 * per-channel symmetric weight (7-bit by default, since onnxruntime runs the fused QLinear kernels as u8·s8). The float ops stay, so the model runs anywhere; onnxruntime fuses
 * DQ → op → Q into QLinear kernels where it has them.
 */

/** Q → DQ of an activation with its calibrated range; one pair per tensor, shared by every reader. */
function qdq(ctx: QuantizeContext, name: string, into?: string): { nodes: onnx.INodeProto[]; output: string } {
  const known = ctx.qdq.get(name);
  if (known && !into) return { nodes: [], output: known };
  const r = ctx.options.ranges!.get(name)!;
  const p = computeScaleZeroPoint(r.min, r.max, 0, 255, false);
  const scale = ctx.index.uniqueName(`${name}_scale`);
  const zp = ctx.index.uniqueName(`${name}_zero_point`);
  ctx.addInitializer(makeTensor(scale, DT.FLOAT, [], Float32Array.of(p.scale)));
  ctx.addInitializer(makeTensor(zp, DT.UINT8, [], Uint8Array.of(p.zeroPoint)));
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

/** Tensors a node needs calibrated: its activation input and its output (none for recurrent layers: their weights are weight-only, recurrent.ts). */
export function staticCalibrationTensors(n: onnx.INodeProto): string[] {
  return ['LSTM', 'GRU', 'RNN'].includes(n.opType!) ? [] : [n.input![0]!, n.output![0]!];
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
      if (!ctx.options.ranges?.has(n.input![0]!) || !ctx.options.ranges.has(n.output![0]!)) return 'no calibrated range for its input or output';
      return undefined;
    },
    quantize(n, ctx) {
      const x = qdq(ctx, n.input![0]!);
      const w = dequantizedWeight(ctx, n.input![1]!, weightAxis(n), ctx.options.reduceRange);
      // The node computes in float into a fresh name; Q → DQ restores the original output for its readers.
      const y = n.output![0]!;
      const raw = ctx.index.uniqueName(`${y}_float`);
      ctx.options.ranges!.set(raw, ctx.options.ranges!.get(y)!);
      const out = qdq(ctx, raw, y);
      // y is now a DequantizeLinear output: a later node reading it needs no second pair.
      ctx.qdq.set(y, y);
      return [...x.nodes, ...w.nodes, { ...n, input: [x.output, w.output, ...(n.input ?? []).slice(2)], output: [raw, ...(n.output ?? []).slice(1)] }, ...out.nodes];
    },
  });
}
