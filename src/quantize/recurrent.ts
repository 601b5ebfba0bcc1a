import { sharedWeight, weightOnlyInt8 } from './dequantized-weight';
import { blockedInt4Weight, evenBlockLength, INT4_CAST_OPSET } from './int4';
import { floatValues } from '../onnx/tensor';
import { registerQuantizer } from './registry';
import { RECURRENT_OPS, type Method, type QuantizeContext } from './types';

// LSTM, GRU and RNN weights (W [directions, gates·hidden, input], R [directions, gates·hidden, hidden]) as
// weight-only int8, a scale per gate unit (axis 1), restored by Cast and Mul that onnxruntime folds at load:
// the file keeps a quarter of their bytes and the recurrence runs in float as before, on any CPU. 8 bits
// under int4 too: an error in R is applied again at every time step. (onnxruntime's DynamicQuantizeLSTM
// would compute in int8, but it is LSTM only and in its contrib domain.) int8-static takes them the same
// way, uncalibrated: ddddocr's recogniser kept its LSTM in float there, ×0.485 against int8-dynamic's ×0.252.
// int4 with `int4Recurrent` takes 4-bit blocks along each gate unit's inputs (as int4Conv a filter's).
for (const method of ['int8-dynamic', 'int8-static', 'int4'] as Method[]) {
  for (const opType of RECURRENT_OPS) {
    registerQuantizer({
      method,
      opType,
      weightInputs: [1, 2],
      check(n, ctx) {
        const [w, r] = [1, 2].map((i) => ctx.index.floatInitializer(n.input?.[i]));
        if (!w || !r) return 'the weights (W, R: inputs 1 and 2) are not constant float initializers';
        if ([w, r].some((t) => (t.dims ?? []).length !== 3)) return 'W and R are not 3-D';
        return undefined;
      },
      quantize(n, ctx) {
        const [w, r] = [1, 2].map((i) => (fourBitRecurrent(ctx, n.input![i]!) ?? weightOnlyInt8(ctx, n.input![i]!, 1)));
        return [...w!.nodes, ...r!.nodes, { ...n, input: (n.input ?? []).map((x, i) => (i === 1 ? w!.output : i === 2 ? r!.output : x)) }];
      },
    });
  }
}

/** W or R [directions, gates·hidden, k] in 4-bit blocks, when asked and its `k` splits evenly into blocks; else undefined. */
function fourBitRecurrent(ctx: QuantizeContext, name: string): ReturnType<typeof blockedInt4Weight> | undefined {
  const t = ctx.index.initializers.get(name)!;
  const dims = (t.dims ?? []).map(Number);
  const { method, int4Recurrent, blockSize } = ctx.options;
  if (method !== 'int4' || !int4Recurrent || ctx.opset < INT4_CAST_OPSET || evenBlockLength(dims[2]!, blockSize) === undefined) return undefined;
  return sharedWeight(ctx, `int4-recurrent:${name}`, () => blockedInt4Weight(ctx, name, floatValues(t), dims, dims[0]! * dims[1]!));
}
