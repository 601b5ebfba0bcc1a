import { onnx } from '../onnx/proto';
import { node } from '../onnx/build';
import { DT, floatValues, makeTensor } from '../onnx/tensor';
import { registerQuantizer } from './registry';
import { registerMatMulAndGemm } from './matmul-like';
import { quantizeWeight8 } from './weights';
import type { QuantizeContext } from './types';

/**
 * int8 dynamic quantization in onnxruntime's QOperator form: activations are quantized at run time by
 * DynamicQuantizeLinear, weights ahead of time; MatMulInteger / ConvInteger compute in integers, and a
 * Cast plus scale Muls bring the result back to float. onnxruntime fuses this pattern when it loads the model.
 */

/** The activation's DynamicQuantizeLinear, shared by every node that reads it. */
function dynamicQuantize(ctx: QuantizeContext, input: string): { q: string; scale: string; zeroPoint: string; nodes: onnx.INodeProto[] } {
  const known = ctx.dynamicQuantized.get(input);
  if (known) return { ...known, nodes: [] };
  const q = ctx.index.uniqueName(`${input}_quantized`);
  const scale = ctx.index.uniqueName(`${input}_scale`);
  const zeroPoint = ctx.index.uniqueName(`${input}_zero_point`);
  const nodes = [node('DynamicQuantizeLinear', [input], [q, scale, zeroPoint], {}, ctx.index.uniqueName(`${input}_DynamicQuantizeLinear`))];
  ctx.dynamicQuantized.set(input, { q, scale, zeroPoint, nodes });
  return { q, scale, zeroPoint, nodes };
}

/** MatMulInteger(A, W) → Cast → × (A scale · W scale) → `output`, with W [K, N] quantized per column or per tensor. */
function matMulInteger(ctx: QuantizeContext, base: string, input: string, weight: Float32Array, k: number, n: number, output: string): onnx.INodeProto[] {
  const w = quantizeWeight8(weight, [k, n], { axis: 1, perChannel: ctx.options.perChannel, symmetric: ctx.options.symmetric, qtype: 'int8' });
  const perChannel = w.scales.length > 1;
  const wq = ctx.index.uniqueName(`${base}_weight_quantized`);
  const ws = ctx.index.uniqueName(`${base}_weight_scale`);
  const wz = ctx.index.uniqueName(`${base}_weight_zero_point`);
  ctx.addInitializer(makeTensor(wq, DT.INT8, [k, n], w.values));
  ctx.addInitializer(makeTensor(ws, DT.FLOAT, perChannel ? [n] : [], w.scales));
  ctx.addInitializer(makeTensor(wz, DT.INT8, perChannel ? [n] : [], w.zeroPoints));
  const a = dynamicQuantize(ctx, input);
  return [...a.nodes, ...integerOp(ctx, base, 'MatMulInteger', [a.q, wq, a.zeroPoint, wz], [], a.scale, ws, output)];
}

/** The integer op, then Cast to float and a Mul by (activation scale · weight scale) into `output`. */
function integerOp(ctx: QuantizeContext, base: string, opType: string, inputs: string[], attribute: onnx.IAttributeProto[], xScale: string, wScale: string, output: string): onnx.INodeProto[] {
  const acc = ctx.index.uniqueName(`${base}_output_int32`);
  const accF = ctx.index.uniqueName(`${base}_output_float`);
  const scale = ctx.index.uniqueName(`${base}_scales_mul`);
  return [
    { ...node(opType, inputs, [acc], {}, ctx.index.uniqueName(`${base}_${opType}`)), attribute },
    node('Cast', [acc], [accF], { to: DT.FLOAT }, ctx.index.uniqueName(`${base}_Cast`)),
    node('Mul', [xScale, wScale], [scale], {}, ctx.index.uniqueName(`${base}_scales_Mul`)),
    node('Mul', [accF, scale], [output], {}, ctx.index.uniqueName(`${base}_output_Mul`)),
  ];
}

registerMatMulAndGemm('int8-dynamic', matMulInteger);

registerQuantizer({
  method: 'int8-dynamic',
  opType: 'Conv',
  check(n, ctx) {
    const w = ctx.index.floatInitializer(n.input?.[1]);
    if (!w) return 'the weight is not a constant float initializer';
    if (n.input?.[2] && !ctx.index.floatInitializer(n.input[2])) return 'the bias is not a constant float initializer';
    return undefined;
  },
  // onnxruntime's CPU ConvInteger takes uint8 weights with one zero point for the whole tensor, so Conv
  // weights are asymmetric uint8 per tensor whatever perChannel says.
  quantize(n, ctx) {
    const wt = ctx.index.floatInitializer(n.input![1])!;
    const dims = (wt.dims ?? []).map(Number);
    const out = dims[0]!;
    const w = quantizeWeight8(floatValues(wt), dims, { axis: 0, perChannel: false, symmetric: false, qtype: 'uint8' });
    const perChannel = w.scales.length > 1;
    const base = n.name || n.output![0]!;
    const wq = ctx.index.uniqueName(`${base}_weight_quantized`);
    const ws = ctx.index.uniqueName(`${base}_weight_scale`);
    const wz = ctx.index.uniqueName(`${base}_weight_zero_point`);
    ctx.addInitializer(makeTensor(wq, DT.UINT8, dims, w.values));
    // Per-channel scales broadcast over [N, M, H, W] as [M, 1, 1] (one 1 per spatial axis).
    const spatial = dims.length - 2;
    ctx.addInitializer(makeTensor(ws, DT.FLOAT, perChannel ? [out, ...Array(spatial).fill(1)] : [], w.scales));
    ctx.addInitializer(makeTensor(wz, DT.UINT8, perChannel ? [out] : [], w.zeroPoints));
    const x = dynamicQuantize(ctx, n.input![0]!);
    const bias = n.input?.[2];
    const scaled = bias ? ctx.index.uniqueName(`${base}_scaled`) : n.output![0]!;
    const nodes = [...x.nodes, ...integerOp(ctx, base, 'ConvInteger', [x.q, wq, x.zeroPoint, wz], n.attribute ?? [], x.scale, ws, scaled)];
    if (bias) {
      const b = ctx.index.floatInitializer(bias)!;
      const reshaped = ctx.index.uniqueName(`${base}_bias_reshaped`);
      ctx.addInitializer(makeTensor(reshaped, DT.FLOAT, [out, ...Array(spatial).fill(1)], floatValues(b)));
      nodes.push(node('Add', [scaled, reshaped], [n.output![0]!], {}, ctx.index.uniqueName(`${base}_bias_Add`)));
    }
    return nodes;
  },
});

export {};
