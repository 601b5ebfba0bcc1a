import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { floatTensor, model, node, valueInfo } from '../../src/onnx/build';
import { DT, floatValues } from '../../src/onnx/tensor';
import { encodeModel, type onnx } from '../../src/onnx/proto';
import { addChannelMeans, biasCorrections, targetLevels, upTo } from '../../src/quantize/bias-correction';
import { quantizeModelStatic } from '../../src/quantize/quantize-model';
import type { GoldenSample } from '../../src/quantize/evaluate';

test('channel means are taken over the batch and every spatial position, per channel', () => {
  const into = new Float64Array(2);
  // N 2, C 2, 2 positions: channel 0 holds 1,3 and 5,7; channel 1 holds 2,2 and 4,4.
  addChannelMeans(Float32Array.of(1, 3, 2, 2, 5, 7, 4, 4), [2, 2, 2], into, 0.5);
  assert.deepEqual([...into], [2, 1.5]);
});

/** x → a → b, with c beside b reading a, and d reading both: the levels a, then b and c, then d. */
function diamond(shift = 0): onnx.IModelProto {
  const w = (name: string, v: number): onnx.ITensorProto => floatTensor(name, [2, 2, 1, 1], [v, 0, 0, v]);
  return model({
    name: 'diamond', opset: 13,
    inputs: [valueInfo('x', DT.FLOAT, [1, 2, 3, 3])], outputs: [valueInfo('y', DT.FLOAT, [1, 2, 3, 3])],
    initializers: [w('wa', 1 + shift), w('wb', 0.5), w('wc', 2 + shift), floatTensor('bb', [2], [0.1, -0.1]), w('wd', 1)],
    nodes: [
      node('Conv', ['x', 'wa'], ['a'], {}, 'A'),
      node('Conv', ['a', 'wb', 'bb'], ['b'], {}, 'B'),
      node('Conv', ['a', 'wc'], ['c'], {}, 'C'),
      node('Add', ['b', 'c'], ['bc'], {}, 'BC'),
      node('Conv', ['bc', 'wd'], ['y'], {}, 'D'),
    ],
  });
}

test('Convs are corrected in levels: each after every Conv it reads from', () => {
  assert.deepEqual(targetLevels(diamond().graph!, new Set(['A', 'B', 'C', 'D'])), [['A'], ['B', 'C'], ['D']]);
  // Nodes that are not targets pass levels through; a level of none is not one.
  assert.deepEqual(targetLevels(diamond().graph!, new Set(['B', 'D'])), [['B'], ['D']]);
});

test('upTo keeps only what computes the values asked for', () => {
  const part = upTo(diamond(), ['c']);
  assert.deepEqual(part.graph!.node!.map((n) => n.name), ['A', 'C']);
  assert.deepEqual(part.graph!.initializer!.map((t) => t.name).sort(), ['wa', 'wc']);
  assert.deepEqual(part.graph!.output!.map((o) => o.name), ['c']);
});

const samples: GoldenSample[] = [0, 1, 2].map((s) => ({ inputs: { x: { dims: [1, 2, 3, 3], data: Float32Array.from({ length: 18 }, (_, i) => 0.2 + ((i * 7 + s * 5) % 11) / 10) } } }));

async function means(m: onnx.IModelProto, value: string): Promise<number[]> {
  const g = { ...m.graph!, output: [{ name: value }] };
  const session = await ort.InferenceSession.create(encodeModel({ ...m, graph: g }));
  const sum = new Float64Array(2);
  for (const s of samples) {
    const r = (await session.run({ x: new ort.Tensor('float32', s.inputs.x!.data as Float32Array, s.inputs.x!.dims) }))[value]!;
    addChannelMeans(r.data as Float32Array, r.dims, sum, 1 / samples.length);
  }
  return [...sum];
}

test('corrected biases give each Conv fp32\'s mean output, including what the Convs above it shifted', async () => {
  // Weights off by 10% stand in for quantization: A and C shift their means, B and D inherit A's shift.
  const [reference, shifted] = [diamond(), diamond(0.1)];
  const outputs: Record<string, string> = { A: 'a', B: 'b', C: 'c', D: 'y' };
  const corrections = await biasCorrections(reference, shifted, Object.entries(outputs).map(([node, value]) => ({ node, reference: value, quantized: value })), samples);
  assert.deepEqual([...corrections.keys()].sort(), ['A', 'B', 'C', 'D']);
  const corrected = diamond(0.1);
  const g = corrected.graph!;
  for (const n of g.node!) {
    const b = corrections.get(n.name!);
    if (!b) continue;
    g.initializer = [...g.initializer!.filter((t) => t.name !== n.input![2]), floatTensor(`${n.name}_bias`, [b.length], b)];
    n.input = [n.input![0]!, n.input![1]!, `${n.name}_bias`];
  }
  for (const value of ['a', 'b', 'c', 'y']) {
    const [want, before, after] = [await means(reference, value), await means(shifted, value), await means(corrected, value)];
    for (let c = 0; c < 2; c++) assert.ok(Math.abs(after[c]! - want[c]!) < 1e-4 && Math.abs(before[c]! - want[c]!) > 0.01, `${value}[${c}]: fp32 ${want[c]}, shifted ${before[c]}, corrected ${after[c]}`);
  }
});

/** The diamond with weights that 7-bit levels cannot hold, read on a near-constant input (a blank page's). */
function offsetDiamond(): { m: onnx.IModelProto; samples: GoldenSample[] } {
  const w = (name: string, v: number): onnx.ITensorProto => floatTensor(name, [2, 2, 1, 1], [v, 0.011 * v, 0.023, 1.1 * v]);
  const m = diamond();
  m.graph!.initializer = [w('wa', 0.413), w('wb', 0.372), w('wc', 0.537), floatTensor('bb', [2], [0.1, -0.1]), w('wd', 0.413)];
  const near = [0, 1, 2, 3].map((s) => ({ inputs: { x: { dims: [1, 2, 3, 3], data: Float32Array.from({ length: 18 }, (_, i) => 5 + 0.1 * (((i * 7 + s * 5) % 11) / 10 - 0.5)) } } }));
  return { m, samples: near };
}

test('int8-static corrects its Convs\' biases by default where the model then agrees better with fp32, and not when asked', async () => {
  const { m, samples: near } = offsetDiamond();
  const on = await quantizeModelStatic(m, { method: 'int8-static' }, () => near, { method: 'minmax' });
  const off = await quantizeModelStatic(m, { method: 'int8-static' }, () => near, { method: 'minmax', biasCorrection: false });
  const agreement = on.report.biasCorrectionAgreement!;
  assert.ok(agreement.corrected > agreement.uncorrected, JSON.stringify(agreement));
  assert.equal(on.report.biasCorrected, 4);
  assert.equal(off.report.biasCorrected, undefined);
  assert.equal(off.report.biasCorrectionAgreement, undefined);
  // B's own bias takes its corrected values in place; the three Convs without one get one.
  const corrected = on.model.graph!.initializer!.filter((t) => t.name!.endsWith('_bias_corrected'));
  assert.equal(corrected.length, 3);
  assert.ok(corrected.every((t) => floatValues(t).every(Number.isFinite)));
  const bb = (q: onnx.IModelProto): number[] => [...floatValues(q.graph!.initializer!.find((t) => t.name === 'bb')!)].map((v) => +v.toFixed(6));
  assert.deepEqual(bb(off.model), [0.1, -0.1]);
  assert.notDeepEqual(bb(on.model), [0.1, -0.1]);
  assert.equal(off.model.graph!.initializer!.filter((t) => t.name!.endsWith('_bias_corrected')).length, 0);
  // Weights the levels hold exactly shift nothing worth keeping: a correction is kept only where it agrees better.
  const exact = await quantizeModelStatic(diamond(), { method: 'int8-static' }, () => samples, { method: 'minmax' });
  const e = exact.report.biasCorrectionAgreement!;
  assert.equal(exact.report.biasCorrected, e.corrected > e.uncorrected ? 4 : 0, JSON.stringify(e));
});
