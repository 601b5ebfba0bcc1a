import { intAttr } from '../onnx/graph';
import { floatValues } from '../onnx/tensor';
import { readingWeight, sharedWeight, weightOnlyInt8 } from './dequantized-weight';
import { blockedInt4Weight, convTakesFourBits } from './int4';
import { registerQuantizer } from './registry';
import type { Method } from './types';

// ConvTranspose (a U-Net's or a detector's upsampling decoder): weight-only int8 under every integer
// method, as Conv's default is, per output channel. Its weight is [C_in, C_out/group, …kernel], so the
// output channels are axis 1. onnxruntime's CPU provider has no integer ConvTranspose (its quantize_dynamic
// leaves these float), and weight-only keeps the float kernel's speed and output on any CPU while the file
// keeps a quarter of the bytes: half of the weights of the U-Net in test/fixtures/models. With int4Conv,
// 4-bit blocks as a Conv takes them (convTakesFourBits), a row an input channel.
for (const method of ['int8-dynamic', 'int8-static', 'int4'] as Method[]) {
  registerQuantizer({
    method,
    opType: 'ConvTranspose',
    check(n, ctx) {
      return ctx.index.floatInitializer(n.input?.[1]) ? undefined : 'the weight is not a constant float initializer';
    },
    quantize(n, ctx) {
      const name = n.input![1]!;
      const w = ctx.index.initializers.get(name)!;
      const dims = (w.dims ?? []).map(Number);
      if (method !== 'int4' || !convTakesFourBits(dims, intAttr(n, 'group', 1), ctx.opset, ctx.options)) return readingWeight(n, 1, weightOnlyInt8(ctx, name, 1));
      return readingWeight(n, 1, sharedWeight(ctx, `int4-conv:${name}`, () => blockedInt4Weight(ctx, name, floatValues(w), dims, dims[0]!)));
    },
  });
}
