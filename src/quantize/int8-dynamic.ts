import { onnx } from '../onnx/proto';
import { node } from '../onnx/build';
import { DT, makeTensor } from '../onnx/tensor';
import { registerQuantizer } from './registry';
import { registerMatMulAndGemm } from './matmul-like';
import { quantizeWeight8 } from './weights';
import { readingWeight, weightOnlyInt8 } from './dequantized-weight';
import type { QuantizeContext } from './types';

/**
 * int8 dynamic quantization in onnxruntime's QOperator form: activations are quantized at run time by
 * DynamicQuantizeLinear, weights ahead of time (7-bit unless reduceRange is off, see qRange); MatMulInteger
 * computes in integers, and a Cast plus scale Muls bring the result back to float. onnxruntime fuses this
 * pattern when it loads the model. Conv weights are stored as int8 and dequantized (see below).
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
function matMulInteger(ctx: QuantizeContext, base: string, input: string, weight: () => Float32Array, k: number, n: number, output: string, weightKey: string): onnx.INodeProto[] {
  const { wq, ws, wz } = ctx.once(`int8-dynamic:${weightKey}`, () => {
    const w = quantizeWeight8(weight(), [k, n], { axis: 1, perChannel: ctx.options.perChannel, symmetric: ctx.options.symmetric, qtype: 'int8', reduceRange: ctx.options.reduceRange });
    const perChannel = w.scales.length > 1;
    const names = { wq: ctx.index.uniqueName(`${base}_weight_quantized`), ws: ctx.index.uniqueName(`${base}_weight_scale`), wz: ctx.index.uniqueName(`${base}_weight_zero_point`) };
    ctx.addInitializer(makeTensor(names.wq, DT.INT8, [k, n], w.values));
    ctx.addInitializer(makeTensor(names.ws, DT.FLOAT, perChannel ? [n] : [], w.scales));
    ctx.addInitializer(makeTensor(names.wz, DT.INT8, perChannel ? [n] : [], w.zeroPoints));
    return names;
  }).value;
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
    if (!ctx.index.floatInitializer(n.input?.[1])) return 'the weight is not a constant float initializer';
    return undefined;
  },
  // Weight-only (see weightOnlyInt8), not ConvInteger: onnxruntime's ConvInteger has no optimised kernel
  // (its maintainers point conv nets to static QDQ), takes one weight zero point per tensor, and was
  // measured hundreds of times slower than the float Conv on an AVX2-only CPU. This keeps the ×0.25
  // weight size, per-channel precision, the float speed, and an output that does not depend on the CPU.
  quantize(n, ctx) {
    return readingWeight(n, 1, weightOnlyInt8(ctx, n.input![1]!, 0));
  },
});

export {};
