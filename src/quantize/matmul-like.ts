import type { onnx } from '../onnx/proto';
import { node } from '../onnx/build';
import { floatAttr, intAttr, nodeKey } from '../onnx/graph';
import { floatValues, transpose } from '../onnx/tensor';
import { registerQuantizer } from './registry';
import type { Method, QuantizeContext } from './types';

/**
 * Emits the quantized form of `output = input · W` for a weight W [K, N]; `weightKey` names W as it is
 * stored (with `:T` when transposed on the way), so a weight several nodes read is quantized once.
 */
export type MatMulEmitter = (ctx: QuantizeContext, base: string, input: string, weight: () => Float32Array, k: number, n: number, output: string, weightKey: string) => onnx.INodeProto[];

function constantWeight2d(ctx: QuantizeContext, name: string | undefined): onnx.ITensorProto | undefined {
  const w = ctx.index.floatInitializer(name);
  return w && (w.dims ?? []).length === 2 ? w : undefined;
}

function checkWeight(n: onnx.INodeProto, ctx: QuantizeContext): string | undefined {
  if (!constantWeight2d(ctx, n.input?.[1])) return 'the weight (input B) is not a constant 2-D float initializer';
  if (ctx.index.initializers.has(n.input![0]!)) return 'both inputs are constants (fold them instead)';
  return undefined;
}

/**
 * Registers a method's MatMul and Gemm quantizers around one emitter. Gemm(A, B, C) = A·B' + C is
 * rewritten to the quantized MatMul plus an Add of C, with B' transposed ahead of time when transB=1;
 * only transA=0, alpha=1, beta=1 qualify.
 */
export function registerMatMulAndGemm(method: Method, emit: MatMulEmitter): void {
  registerQuantizer({
    method,
    opType: 'MatMul',
    check: checkWeight,
    quantize(n, ctx) {
      const w = constantWeight2d(ctx, n.input![1])!;
      const [k, m] = (w.dims ?? []).map(Number) as [number, number];
      return emit(ctx, nodeKey(n), n.input![0]!, () => floatValues(w), k, m, n.output![0]!, n.input![1]!);
    },
  });
  registerQuantizer({
    method,
    opType: 'Gemm',
    check(n, ctx) {
      if (intAttr(n, 'transA', 0) !== 0) return 'transA=1 is not rewritten to MatMul';
      if (floatAttr(n, 'alpha', 1) !== 1 || floatAttr(n, 'beta', 1) !== 1) return 'alpha or beta is not 1';
      return checkWeight(n, ctx);
    },
    quantize(n, ctx) {
      const w = constantWeight2d(ctx, n.input![1])!;
      const [r, c] = (w.dims ?? []).map(Number) as [number, number];
      const transB = intAttr(n, 'transB', 0) === 1;
      const values = (): Float32Array => (transB ? transpose(floatValues(w), [r, c], [1, 0]) : floatValues(w));
      const [k, m] = transB ? [c, r] : [r, c];
      const key = `${n.input![1]}${transB ? ':T' : ''}`;
      const base = nodeKey(n);
      const bias = n.input?.[2];
      if (!bias) return emit(ctx, base, n.input![0]!, values, k, m, n.output![0]!, key);
      const mm = ctx.index.uniqueName(`${base}_matmul_output`);
      return [...emit(ctx, base, n.input![0]!, values, k, m, mm, key), node('Add', [mm, bias], [n.output![0]!], {}, ctx.index.uniqueName(`${base}_bias_Add`))];
    },
  });
}
