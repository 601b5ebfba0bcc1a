import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { F32, floatTensor, model, node, valueInfo } from '../../src/onnx/build';
import { rng } from '../../src/onnx/fixture-models';
import { encodeModel, type onnx } from '../../src/onnx/proto';
import { float32ToFloat16Bits } from '../../src/onnx/tensor';
import { goldenOutputs, outputDrift, parseGoldenOutput, storeTensor, tensorValues } from '../../src/quantize/golden-outputs';
import { QuantizeError } from '../../src/quantize/types';

const r = rng(5);
const values = (n: number): number[] => Array.from({ length: n }, () => r() - 0.5);
const [w1, w2] = [values(8 * 4), values(8 * 4)];
const heads = (second: number[], boxes = 4): onnx.IModelProto => model({
  name: 'two-heads', opset: 13, inputs: [valueInfo('x', F32, [1, 8])], outputs: [valueInfo('scores', F32, [1, 4]), valueInfo('boxes', F32, [1, boxes])],
  initializers: [floatTensor('w1', [8, 4], w1), floatTensor('w2', [8, boxes], second)],
  nodes: [node('MatMul', ['x', 'w1'], ['scores'], {}, 'head1'), node('MatMul', ['x', 'w2'], ['boxes'], {}, 'head2')],
});
const golden = Array.from({ length: 5 }, () => ({ inputs: { x: { dims: [1, 8], data: Float32Array.from(values(8)) } } }));

test('every output is stored, and a drift in the second head alone is caught and named', async () => {
  const stored = await goldenOutputs(encodeModel(heads(w2)), golden);
  assert.deepEqual(Object.keys(stored[0]!.outputs), ['scores', 'boxes']);
  // Stored as JSON lines and read back, bit for bit.
  const reread = stored.map((s) => parseGoldenOutput(JSON.stringify(s)));
  assert.deepEqual(outputDrift(reread, await goldenOutputs(encodeModel(heads(w2)), golden)), { samples: 5, maxAbsError: 0, minCosine: 1, outputs: { scores: { maxAbsError: 0, minCosine: 1 }, boxes: { maxAbsError: 0, minCosine: 1 } } });
  const drifted = outputDrift(reread, await goldenOutputs(encodeModel(heads(w2.map((v, i) => (i % 3 === 0 ? v + 0.3 : v)))), golden));
  assert.deepEqual(drifted.outputs.scores, { maxAbsError: 0, minCosine: 1 });
  assert.ok(drifted.outputs.boxes!.maxAbsError > 0.01, JSON.stringify(drifted));
  assert.equal(drifted.maxAbsError, drifted.outputs.boxes!.maxAbsError);
  assert.equal(drifted.minCosine, drifted.outputs.boxes!.minCosine);
});

test('outputs stored before every output was kept (the first, as JSON numbers) are checked as they are', async () => {
  const m = encodeModel(heads(w2));
  const now = await goldenOutputs(m, golden, { outputs: ['scores'] });
  const old = now.map((s) => parseGoldenOutput(JSON.stringify({ output: 'scores', data: Array.from(tensorValues(s.outputs.scores!)) })));
  const fresh = await goldenOutputs(m, golden, { outputs: Object.keys(old[0]!.outputs) });
  assert.deepEqual(outputDrift(old, fresh).outputs, { scores: { maxAbsError: 0, minCosine: 1 } });
});

test('a changed output shape or a lost output is an error naming it, not a number', async () => {
  const stored = await goldenOutputs(encodeModel(heads(w2)), golden);
  const wider = await goldenOutputs(encodeModel(heads(values(8 * 6), 6)), golden);
  assert.throws(() => outputDrift(stored, wider), (e: Error) => e instanceof QuantizeError && /sample 1: output boxes has 6 values \(dims \[1, 6\]\) now, 4 at registration/.test(e.message));
  await assert.rejects(goldenOutputs(encodeModel(heads(w2)), golden, { outputs: ['scores', 'labels'] }), /no output labels, stored at registration \(it has scores, boxes\)/);
  assert.throws(() => outputDrift(stored, stored.slice(1)), /5 stored golden outputs but 4 golden inputs/);
});

test('integer, boolean and float16 outputs keep their values through base64', () => {
  const cases: Array<[ort.Tensor, number[]]> = [
    [new ort.Tensor('int64', BigInt64Array.from([3n, -7n, 2n ** 40n]), [3]), [3, -7, 2 ** 40]],
    [new ort.Tensor('bool', Uint8Array.from([1, 0, 1]), [3]), [1, 0, 1]],
    [new ort.Tensor('int32', Int32Array.from([-1, 5]), [1, 2]), [-1, 5]],
    [new ort.Tensor('float16', Uint16Array.from([1.5, -0.25, 1024].map(float32ToFloat16Bits)), [3]), [1.5, -0.25, 1024]],
  ];
  for (const [t, expected] of cases) {
    const s = parseGoldenOutput(JSON.stringify({ outputs: { y: storeTensor(t) } })).outputs.y!;
    assert.deepEqual([s.type, s.dims, Array.from(tensorValues(s))], [t.type, [...t.dims], expected]);
  }
  assert.throws(() => storeTensor(new ort.Tensor('string', ['a'], [1])), /type string cannot be kept/);
});
