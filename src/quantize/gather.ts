import { intAttr } from '../onnx/graph';
import { readingWeight, weightOnlyInt8 } from './dequantized-weight';
import { registerQuantizer } from './registry';
import type { Method } from './types';

/** Tables smaller than this stay float: their bytes do not matter and a scale per row would. */
const MIN_TABLE = 4096;

// Embeddings (Gather from a constant table): a text model's largest weight. Each row (one token's vector)
// gets its own int8 scale, restored by Cast and Mul that onnxruntime folds at load. The rows take the
// range integer kernels read (7 bits unless reduceRange is off): a table tied to an LM head is then the
// transpose of that head's quantized weight, and is stored once (see dedupeTransposedInt8).
for (const method of ['int8-dynamic', 'int8-static', 'int4'] as Method[]) {
  registerQuantizer({
    method,
    opType: 'Gather',
    weightInput: 0,
    applies: (n, ctx) => ctx.index.initializers.has(n.input?.[0] ?? ''),
    check(n, ctx) {
      const table = ctx.index.floatInitializer(n.input?.[0]);
      if (!table) return 'the table (input 0) is not a float initializer';
      if ((table.dims ?? []).length !== 2 || intAttr(n, 'axis', 0) !== 0) return 'only row lookups (axis 0) in a 2-D table are quantized';
      if ((table.dims ?? []).map(Number).reduce((a, b) => a * b, 1) < MIN_TABLE) return `fewer than ${MIN_TABLE} values: too small to matter`;
      return undefined;
    },
    quantize(n, ctx) {
      return readingWeight(n, 0, weightOnlyInt8(ctx, n.input![0]!, 0, ctx.options.reduceRange));
    },
  });
}
