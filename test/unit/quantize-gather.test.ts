import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { floatTensor, I64, model, node, valueInfo } from '../../src/onnx/build';
import { encodeModel } from '../../src/onnx/proto';
import { quantizeModel } from '../../src/quantize/quantize-model';
import { prng } from '../../src/util/prng';

/** An embedding lookup of a [rows, width] table: ids [1, 16] → [1, 16, width]. */
function embedding(rows: number, width: number) {
  const r = prng(rows + width);
  return model({
    name: 'emb', opset: 17,
    inputs: [valueInfo('ids', I64, [1, 16])], outputs: [{ name: 'y' }],
    initializers: [floatTensor('table', [rows, width], Array.from({ length: rows * width }, () => r() * 2 - 1))],
    nodes: [node('Gather', ['table', 'ids'], ['y'], { axis: 0 })],
  });
}

async function lookup(bytes: Uint8Array, ids: BigInt64Array): Promise<Float32Array> {
  const out = await (await ort.InferenceSession.create(bytes)).run({ ids: new ort.Tensor('int64', ids, [1, 16]) });
  return out.y!.data as Float32Array;
}

test('int4 keeps an embedding table in 4 bits behind GatherBlockQuantized (blocks of 16): an eighth of the bytes plus float16 scales, rows close to fp32', async () => {
  const m = embedding(300, 64);
  const { model: q, report } = quantizeModel(m, { method: 'int4' });
  const ops = (q.graph!.node ?? []).map((n) => `${n.domain || ''}:${n.opType}`);
  // Its scales are float16, so the rows come out in float16 and are cast back.
  assert.deepEqual(ops, ['com.microsoft:GatherBlockQuantized', ':Cast']);
  // 32 bytes of codes and 4 × 2 of scales a row of 64 floats (256 bytes): ×0.156; with float scales ×0.19.
  assert.ok(report.modelBytes.ratio < 0.17, `file ×${report.modelBytes.ratio}`);
  const ids = BigInt64Array.from({ length: 16 }, (_, i) => BigInt((i * 37) % 300));
  const [a, b] = [await lookup(encodeModel(m), ids), await lookup(encodeModel(q), ids)];
  let dot = 0, na = 0, nb = 0, worst = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!; na += a[i]! ** 2; nb += b[i]! ** 2;
    worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  }
  assert.ok(dot / Math.sqrt(na * nb) > 0.99, `cosine ${dot / Math.sqrt(na * nb)}`);
  // Symmetric 4-bit blocks of values in ±1: the extreme maps onto −8 (a step of at most 1/8), so a value
  // moves by half a step, or by one where the other side's extreme clips at 7; the float16 scale adds at
  // most 8 × 2⁻¹¹ of a step.
  assert.ok(worst <= (1 / 8) * (1 + 8 * 2 ** -11), `max abs error ${worst}`);
});

test('a table whose rows are not whole blocks, or that is tied to an LM head, keeps 8 bits under int4', () => {
  const { model: q } = quantizeModel(embedding(300, 40), { method: 'int4' });
  assert.ok(!(q.graph!.node ?? []).some((n) => n.opType === 'GatherBlockQuantized'));
  assert.ok((q.graph!.node ?? []).some((n) => n.opType === 'Gather'));
  // The head reads the same values transposed (as torch's TorchScript export stores a tied weight).
  const tied = embedding(300, 64);
  const table = tied.graph!.initializer![0]!;
  const values = new Float32Array(new Uint8Array(table.rawData!).buffer);
  const transposed = Array.from({ length: 300 * 64 }, (_, i) => values[(i % 300) * 64 + Math.floor(i / 300)]!);
  tied.graph!.initializer!.push(floatTensor('head', [64, 300], transposed));
  tied.graph!.node!.push(node('MatMul', ['y', 'head'], ['logits']));
  tied.graph!.output = [{ name: 'logits' }];
  // With int4Head the head is 4-bit blocks and the table keeps 8 bits of its own.
  const fourBitHead = quantizeModel(tied, { method: 'int4', int4Head: true }).model.graph!;
  const ops = (fourBitHead.node ?? []).map((n) => n.opType);
  assert.ok(ops.includes('MatMulNBits') && !ops.includes('GatherBlockQuantized'), ops.join(', '));
  // By default the head is an output layer tied to the table: both keep 8 bits, stored once.
  const { model: q8, report } = quantizeModel(tied, { method: 'int4' });
  const g = q8.graph!;
  assert.ok(!(g.node ?? []).some((n) => n.opType === 'MatMulNBits' || n.opType === 'GatherBlockQuantized'), (g.node ?? []).map((n) => n.opType).join(', '));
  assert.deepEqual((g.initializer ?? []).filter((t) => t.dataType === 3 && (t.dims ?? []).length === 2).map((t) => (t.dims ?? []).map(Number)), [[64, 300]]);
  assert.ok((g.node ?? []).some((n) => n.opType === 'Transpose'));
  assert.ok(report.modelBytes.ratio < 0.27, `file ×${report.modelBytes.ratio}`);
});
