import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { F32, floatTensor, model, node, valueInfo } from '../../src/onnx/build';
import { encodeModel, decodeModel, onnx } from '../../src/onnx/proto';
import { OpsetUpgradeError, upgradeOpset } from '../../src/onnx/opset-upgrade';

/** Runs `m` on `x` and returns every output, by name. */
async function run(m: Parameters<typeof encodeModel>[0], x: Float32Array, dims: number[]): Promise<Record<string, number[]>> {
  const out = await (await ort.InferenceSession.create(encodeModel(m))).run({ x: new ort.Tensor('float32', x, dims) });
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Array.from(v.data as Float32Array, Number)]));
}

/**
 * An opset-9 graph with every operator whose signature or meaning changed by opset 21, each feeding a graph
 * output so a wrong rewrite shows: onnxruntime runs the old model and the upgraded one on the same input.
 */
function oldModel() {
  const dims = [1, 2, 3, 4];
  return model({
    name: 'old', opset: 9,
    inputs: [valueInfo('x', F32, dims)],
    outputs: ['clip', 'clip2', 'slice', 'sq', 'unsq', 'mean', 'soft', 'pad', 'up', 'a', 'b', 'top', 'drop'].map((o) => ({ name: o })),
    initializers: [floatTensor('scales', [4], [1, 1, 2, 2])],
    nodes: [
      node('Clip', ['x'], ['clip'], { min: { float: -0.5 }, max: { float: 0.7 } }),
      node('Clip', ['x'], ['clip2'], { min: { float: -0.5 }, max: { float: 0.7 } }),
      node('Slice', ['x'], ['slice'], { starts: [1, 0], ends: [3, 2], axes: [3, 1] }),
      node('Slice', ['x'], ['s0'], { starts: [0], ends: [1], axes: [2] }),
      node('Squeeze', ['s0'], ['sq'], { axes: [2] }),
      node('Unsqueeze', ['sq'], ['unsq'], { axes: [0] }),
      node('ReduceMean', ['x'], ['mean'], { axes: [2, 3], keepdims: 1 }),
      // Opset 9's Softmax normalises over everything from axis 1 on: all 24 values of the sample, not one axis.
      node('Softmax', ['x'], ['soft'], { axis: 1 }),
      node('Pad', ['x'], ['pad'], { pads: [0, 0, 1, 0, 0, 0, 0, 2], value: { float: 0.25 } }),
      node('Upsample', ['x', 'scales'], ['up'], { mode: 'nearest' }),
      node('Split', ['x'], ['a', 'b'], { axis: 3, split: [1, 3] }),
      node('TopK', ['x'], ['top', 'top_i'], { k: 2, axis: 3 }),
      node('Dropout', ['x'], ['drop'], { ratio: { float: 0.3 } }),
    ],
  });
}

test('an opset-9 model upgraded to 11, 13 and 21 computes exactly what it did', async () => {
  const x = Float32Array.from({ length: 24 }, (_, i) => Math.sin(i * 1.7) * 2);
  const want = await run(oldModel(), x, [1, 2, 3, 4]);
  for (const to of [11, 13, 21]) {
    const m = decodeModel(encodeModel(oldModel()));
    const up = upgradeOpset(m, to);
    assert.equal(up.from, 9);
    assert.equal(m.opsetImport[0]!.version, to);
    const got = await run(m, x, [1, 2, 3, 4]);
    for (const [k, v] of Object.entries(want)) {
      assert.equal(got[k]!.length, v.length, `${to} ${k}`);
      v.forEach((w, i) => assert.ok(Math.abs(w - got[k]![i]!) < 1e-6, `opset ${to}, ${k}[${i}]: ${got[k]![i]} vs ${w}`));
    }
    // Attributes turned inputs: one constant per value, shared by the nodes that hold it.
    const [c1, c2] = m.graph!.node!.filter((n) => n.opType === 'Clip');
    assert.deepEqual(c1!.input, c2!.input);
    assert.equal(c1!.input![1], 'min_-0.5');
    if (to === 21) assert.deepEqual(Object.keys(up.rewritten).sort(), ['Clip', 'Dropout', 'Pad', 'ReduceMean', 'Slice', 'Softmax', 'Split', 'Squeeze', 'TopK', 'Unsqueeze', 'Upsample']);
  }
});

test('operators the upgrader does not know are refused by name, and a model already new enough is left alone', () => {
  const nms = model({ name: 'boxes', opset: 9, inputs: [valueInfo('b', F32, [1, 4, 4]), valueInfo('s', F32, [1, 1, 4])], outputs: [{ name: 'y' }], initializers: [], nodes: [node('NonMaxSuppression', ['b', 's'], ['y'], {}, 'nms')] });
  assert.throws(() => upgradeOpset(nms, 13), (e: Error) => e instanceof OpsetUpgradeError && /cannot upgrade NonMaxSuppression node "nms" from opset 9 to 13/.test(e.message));
  // An If before opset 11 is refused too: its bodies are upgraded from 11 on.
  const early = model({ name: 'if', opset: 10, inputs: [valueInfo('c', onnx.TensorProto.DataType.BOOL, [])], outputs: [{ name: 'y' }], initializers: [], nodes: [node('If', ['c'], ['y'], {}, 'branch')] });
  assert.throws(() => upgradeOpset(early, 13), /cannot upgrade If node "branch" from opset 10 to 13/);
  // Operators newer than 7 that mean the same from their first version on pass (a model with them imports that opset).
  const modern = model({ name: 'hs', opset: 14, inputs: [valueInfo('x', F32, [1])], outputs: [{ name: 'y' }], initializers: [], nodes: [node('HardSwish', ['x'], ['y'])] });
  assert.deepEqual(upgradeOpset(modern, 21), { from: 14, to: 21, rewritten: {} });
  const recent = model({ name: 'new', opset: 17, inputs: [valueInfo('x', F32, [1])], outputs: [{ name: 'y' }], initializers: [], nodes: [node('Relu', ['x'], ['y'])] });
  assert.deepEqual(upgradeOpset(recent, 13), { from: 17, to: 17, rewritten: {} });
  assert.equal(recent.opsetImport![0]!.version, 17);
});

test('an If\'s branches are upgraded with the graph around them, and compute what they did', async () => {
  const BOOL = onnx.TensorProto.DataType.BOOL;
  const branch = (name: string, axis: number): onnx.IGraphProto => ({
    name, input: [], initializer: [], output: [valueInfo(`${name}.y`, F32, ['n'])],
    node: [node('Unsqueeze', ['x'], [`${name}.u`], { axes: [axis] }), node('ReduceSum', [`${name}.u`], [`${name}.y`], { axes: [1], keepdims: 0 })],
  });
  const m = model({ name: 'if', opset: 11, inputs: [valueInfo('x', F32, [3]), valueInfo('c', BOOL, [])], outputs: [valueInfo('y', F32, ['n'])], initializers: [], nodes: [node('If', ['c'], ['y'], {}, 'branch')] });
  const G = onnx.AttributeProto.AttributeType.GRAPH;
  m.graph!.node![0]!.attribute = [{ name: 'then_branch', type: G, g: branch('then', 0) }, { name: 'else_branch', type: G, g: branch('else', 1) }];
  const run = async (mm: onnx.IModelProto, c: boolean): Promise<number[]> => Array.from((await (await ort.InferenceSession.create(encodeModel(mm))).run({ x: new ort.Tensor('float32', Float32Array.from([1, 2, 4]), [3]), c: new ort.Tensor('bool', [c], []) })).y!.data as Float32Array);
  const before = [await run(m, true), await run(m, false)];
  const up = decodeModel(encodeModel(m));
  assert.deepEqual(upgradeOpset(up, 13).rewritten, { Unsqueeze: 2, ReduceSum: 2 });
  assert.deepEqual([await run(up, true), await run(up, false)], before);
  assert.deepEqual(before, [[7], [1, 2, 4]]);
});
