import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { F32, floatTensor, model, node, valueInfo } from '../../src/onnx/build';
import { decodeModel, encodeModel } from '../../src/onnx/proto';
import { foldBatchNorms } from '../../src/onnx/fold-batchnorm';
import { prng } from '../../src/util/prng';

const r = prng(3);
const rand = (n: number, lo = -1, hi = 1) => Array.from({ length: n }, () => lo + (hi - lo) * r());

/**
 * Conv → BatchNormalization twice (with and without a conv bias), and a third pair whose Conv output is also
 * a graph output, which must not fold: onnxruntime runs the graph before and after on the same input.
 */
function convBn() {
  const bn = (p: string) => [floatTensor(`${p}.g`, [4], rand(4, 0.5, 2)), floatTensor(`${p}.b`, [4], rand(4)), floatTensor(`${p}.m`, [4], rand(4)), floatTensor(`${p}.v`, [4], rand(4, 0.1, 3))];
  return model({
    name: 'conv_bn', opset: 9,
    inputs: [valueInfo('x', F32, [1, 3, 6, 6])],
    outputs: [{ name: 'y' }, { name: 'c3' }, { name: 'z' }],
    initializers: [
      floatTensor('w1', [4, 3, 3, 3], rand(108)), floatTensor('b1', [4], rand(4)), ...bn('bn1'),
      floatTensor('w2', [4, 4, 1, 1], rand(16)), ...bn('bn2'),
      floatTensor('w3', [4, 3, 1, 1], rand(12)), ...bn('bn3'),
    ],
    nodes: [
      node('Conv', ['x', 'w1', 'b1'], ['c1'], { pads: [1, 1, 1, 1] }),
      node('BatchNormalization', ['c1', 'bn1.g', 'bn1.b', 'bn1.m', 'bn1.v'], ['n1'], { epsilon: { float: 1e-3 } }),
      node('Relu', ['n1'], ['r1']),
      node('Conv', ['r1', 'w2'], ['c2']),
      node('BatchNormalization', ['c2', 'bn2.g', 'bn2.b', 'bn2.m', 'bn2.v'], ['y']),
      node('Conv', ['x', 'w3'], ['c3']),
      node('BatchNormalization', ['c3', 'bn3.g', 'bn3.b', 'bn3.m', 'bn3.v'], ['z']),
    ],
  });
}

async function outputs(bytes: Uint8Array, x: Float32Array): Promise<Record<string, Float32Array>> {
  const out = await (await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled' })).run({ x: new ort.Tensor('float32', x, [1, 3, 6, 6]) });
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
}

test('a BatchNormalization after a Conv folds into its weights and bias; outputs stay the same, and a Conv whose output is read elsewhere keeps its own', async () => {
  const before = encodeModel(convBn());
  const m = decodeModel(before);
  assert.equal(foldBatchNorms(m.graph!), 2);
  const nodes = m.graph!.node ?? [];
  const ops = nodes.map((n) => n.opType);
  assert.deepEqual(ops, ['Conv', 'Relu', 'Conv', 'Conv', 'BatchNormalization']);
  assert.deepEqual(nodes[2]!.output, ['y'], 'the folded Conv writes what the BatchNormalization wrote');
  // Read by nothing else, the exporter's tensors hold the folded values under their own names.
  assert.deepEqual(nodes[0]!.input, ['x', 'w1', 'b1']);
  assert.deepEqual(nodes[2]!.input, ['r1', 'w2', 'bn2.b']);
  const x = Float32Array.from(rand(108));
  const [a, b] = [await outputs(before, x), await outputs(encodeModel(m), x)];
  for (const k of ['y', 'c3', 'z']) {
    const err = Math.max(...Array.from(a[k]!, (v, i) => Math.abs(v - b[k]![i]!)));
    assert.ok(err < 1e-4, `${k}: max abs error ${err}`);
  }
});

test('a non-spatial (opset 9, per-activation) BatchNormalization is left alone', () => {
  const m = decodeModel(encodeModel(convBn()));
  for (const n of m.graph!.node ?? []) if (n.opType === 'BatchNormalization') n.attribute = [...(n.attribute ?? []), { name: 'spatial', type: 2, i: 0 }];
  assert.equal(foldBatchNorms(m.graph!), 0);
});

test('a weight another Conv also reads is folded into a new tensor; the other Conv keeps the original', async () => {
  const m = model({
    name: 'shared', opset: 9,
    inputs: [valueInfo('x', F32, [1, 3, 6, 6])],
    outputs: [{ name: 'y' }, { name: 'z' }],
    initializers: [floatTensor('w', [4, 3, 1, 1], rand(12)), floatTensor('g', [4], rand(4, 0.5, 2)), floatTensor('b', [4], rand(4)), floatTensor('m', [4], rand(4)), floatTensor('v', [4], rand(4, 0.1, 3))],
    nodes: [node('Conv', ['x', 'w'], ['c']), node('BatchNormalization', ['c', 'g', 'b', 'm', 'v'], ['y']), node('Conv', ['x', 'w'], ['z'])],
  });
  const before = encodeModel(m);
  assert.equal(foldBatchNorms(m.graph!), 1);
  const [folded, other] = m.graph!.node!;
  assert.equal(folded!.input![1], 'w.bn_folded');
  assert.deepEqual(other!.input, ['x', 'w']);
  const x = Float32Array.from(rand(108));
  const [a, b] = [await outputs(before, x), await outputs(encodeModel(m), x)];
  for (const k of ['y', 'z']) assert.ok(Math.max(...Array.from(a[k]!, (v, i) => Math.abs(v - b[k]![i]!))) < 1e-4, k);
});
