import { intAttr } from '../onnx/graph';
import { node } from '../onnx/build';
import type { onnx } from '../onnx/proto';
import { DT, floatValues, makeTensor, scalesTensor, transpose } from '../onnx/tensor';
import { readingWeight, weightOnlyInt8 } from './dequantized-weight';
import { quantizeInt4 } from './int4';
import { registerQuantizer } from './registry';
import { tiedToAHead } from './tied-weights';
import type { Method, QuantizeContext } from './types';

/** Tables smaller than this stay float: their bytes do not matter and a scale per row would. */
const MIN_TABLE = 4096;

// Embeddings (Gather from a constant table): a text model's largest weight. Each row (one token's vector)
// gets its own int8 scale, restored by Cast and Mul that onnxruntime folds at load. The rows take the
// range integer kernels read (7 bits unless reduceRange is off): a table tied to an LM head is then the
// transpose of that head's quantized weight, and is stored once (see dedupeTransposedInt8). Under int4
// the table becomes com.microsoft GatherBlockQuantized instead (below).
for (const method of ['int8-dynamic', 'int8-static', 'int4'] as Method[]) {
  registerQuantizer({
    method,
    opType: 'Gather',
    weightInputs: [0],
    applies: (n, ctx) => ctx.index.initializers.has(n.input?.[0] ?? ''),
    check(n, ctx) {
      const table = ctx.index.floatInitializer(n.input?.[0]);
      if (!table) return 'the table (input 0) is not a float initializer';
      if ((table.dims ?? []).length !== 2 || intAttr(n, 'axis', 0) !== 0) return 'only row lookups (axis 0) in a 2-D table are quantized';
      if ((table.dims ?? []).map(Number).reduce((a, b) => a * b, 1) < MIN_TABLE) return `fewer than ${MIN_TABLE} values: too small to matter`;
      return undefined;
    },
    quantize(n, ctx) {
      if (method === 'int4') {
        const blocked = gatherBlockQuantized(n, ctx);
        if (blocked) return blocked;
      }
      // Under int4 no integer kernel reads the table or the head it may be tied to: full 8 bits.
      return readingWeight(n, 0, weightOnlyInt8(ctx, n.input![0]!, 0, method === 'int4' ? false : ctx.options.reduceRange));
    },
  });
}

/**
 * int4 embeddings: com.microsoft GatherBlockQuantized (onnxruntime ≥ 1.21 on CPU) reads a table kept in 4
 * bits — each row in blocks along its width, packed two per byte, one scale per block, the same nibbles
 * and scales as MatMulNBits (symmetric blocks centred on 8, the operator's default zero point
 * for 4-bit uint8) — and dequantizes only the rows it gathers. Undefined, so the table keeps 8 bits, when a
 * row is not a whole number of blocks, or when the table is tied to an LM head (a MatMul or Gemm weight
 * holds the same values): the head keeps 8 bits (int4.ts, outputLayers) and the table is then stored once
 * with it; a 4-bit table under a 4-bit head cost the tied BERT-like model 0.003 of cosine (0.9930 against
 * 0.9957), more than onnxruntime's own int4 gives up.
 */
function gatherBlockQuantized(n: onnx.INodeProto, ctx: QuantizeContext): onnx.INodeProto[] | undefined {
  const name = n.input![0]!;
  const table = ctx.index.floatInitializer(name)!;
  const [rows, width] = (table.dims ?? []).map(Number) as [number, number];
  // Rows are read as they are, not summed over K as a MatMul's are, so their errors do not average out:
  // half MatMulNBits' blocks (16 by default) keep a torch text transformer at its 8-bit table's cosine.
  const bs = Math.max(16, ctx.options.blockSize / 2);
  if (width % bs !== 0) return undefined;
  // Decided and stored once per table, however many Gathers read it.
  const stored = ctx.once(`gbq:${name}`, () => {
    const values = floatValues(table);
    // The table as a head over it would read it, [width, rows]: quantizeInt4 blocks such a [K, N] weight
    // along K per column, which is each row of the table along its width.
    const columns = transpose(values, [rows, width], [1, 0]);
    if (tiedToAHead(ctx, values, columns, rows, width)) return undefined;
    const q = quantizeInt4(columns, width, rows, bs, ctx.options.symmetric);
    const blocks = width / bs;
    const d = ctx.index.uniqueName(`${name}_int4`);
    const s = ctx.index.uniqueName(`${name}_int4_scales`);
    ctx.addInitializer(makeTensor(d, DT.UINT8, [rows, width / 2], q.packed));
    // Scales in float16 where they fit: blocks of 16 take 8 bytes of codes, so 4-byte scales were a third
    // of the table. The rows then come out in float16, cast back for the graph (what was a float Gather).
    ctx.addInitializer(scalesTensor(s, [rows, blocks], q.scales));
    if (!q.zeroPoints) return [d, s];
    const z = ctx.index.uniqueName(`${name}_int4_zero_points`);
    ctx.addInitializer(makeTensor(z, DT.UINT8, [rows, Math.ceil(blocks / 2)], q.zeroPoints));
    return [d, s, z];
  }).value;
  if (!stored) return undefined;
  ctx.domains.add('com.microsoft');
  const half = ctx.index.initializers.get(stored[1]!)?.dataType === DT.FLOAT16;
  const y = n.output![0]!;
  const rowsOut = half ? ctx.index.uniqueName(`${y}_float16`) : y;
  return [
    { ...node('GatherBlockQuantized', [stored[0]!, n.input![1]!, ...stored.slice(1)], [rowsOut], { bits: 4, block_size: bs, gather_axis: 0, quantize_axis: 1 }, ctx.index.uniqueName(`${n.name || y}_GatherBlockQuantized`)), domain: 'com.microsoft' },
    ...(half ? [node('Cast', [rowsOut], [y], { to: DT.FLOAT }, ctx.index.uniqueName(`${y}_Cast`))] : []),
  ];
}
