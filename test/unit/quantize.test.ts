import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { computeScaleZeroPoint, roundHalfEven } from '../../src/quantize/params';
import { DT, fitsFloat16, float16BitsToFloat32, float32ArrayToFloat16Bits, float32ToFloat16Bits, floatValues, hasNonFinite, makeTensor } from '../../src/onnx/tensor';
import { dequantizeInt4, evenBlockLength, quantizeBlockedInt4, quantizeInt4 } from '../../src/quantize/int4';
import { nodeKey, removeUnusedInitializers, topologicalSort } from '../../src/onnx/graph';
import { dedupeTransposedInt8 } from '../../src/onnx/fold-weights';
import { readModelFile, writeModelFile } from '../../src/onnx/io';
import { decodeModel, encodeModel, onnx, OnnxFormatError } from '../../src/onnx/proto';
import { F32, floatTensor, int64Tensor, model, node, valueInfo } from '../../src/onnx/build';
import { cnnModel, fixtureGolden, mlpModel, rng, transformerModel, type FixtureModel } from '../../src/onnx/fixture-models';
import { analyzeModel, quantizeModel, quantizeModelStatic, rankSensitiveNodes } from '../../src/quantize/quantize-model';
import { evaluateCandidate, feedsOf, goldenToJsonl, loadError, parseGoldenJsonl } from '../../src/quantize/evaluate';
import { cosine } from '../../src/quantize/agreement';
import { evaluateIsolated, OnnxruntimeCrashed } from '../../src/quantize/evaluate-isolated';
import { agreementOn, entropyThreshold, quantileOfHistogram } from '../../src/quantize/calibrate';
import { calibrationSource, samplesToArrow } from '../../src/quantize/calibration-data';
import { QuantizeError, type Method } from '../../src/quantize/types';

test('round half to even, as numpy.round', () => {
  const cases: Array<[number, number]> = [[0.5, 0], [1.5, 2], [2.5, 2], [3.5, 4], [-0.5, -0], [-1.5, -2], [-2.5, -2], [2.4999, 2], [2.5000001, 3], [-3.7, -4], [7, 7], [-0, -0], [-0.3, -0], [0.49999999999999994, 0], [-0.49999999999999994, -0], [2 ** 52 + 1, 2 ** 52 + 1], [-(2 ** 52) - 1, -(2 ** 52) - 1], [2 ** 51 + 0.5, 2 ** 51], [Infinity, Infinity]];
  for (const [x, want] of cases) assert.ok(Object.is(roundHalfEven(x), want), `round(${x}) = ${roundHalfEven(x)}, want ${want}`);
});

test('scale and zero point follow onnxruntime compute_scale_zp', () => {
  // uint8 asymmetric over [-1, 3]: scale 4/255, zero point round(63.75) = 64.
  const a = computeScaleZeroPoint(-1, 3, 0, 255, false);
  assert.equal(a.scale, Math.fround(4 / 255));
  assert.equal(a.zeroPoint, 64);
  // The range always contains 0: [0.5, 2] behaves as [0, 2].
  assert.deepEqual(computeScaleZeroPoint(0.5, 2, 0, 255, false), { scale: Math.fround(2 / 255), zeroPoint: 0 });
  // int8 symmetric over [-2, 1]: ±2 onto ±127, zero point 0.
  assert.deepEqual(computeScaleZeroPoint(-2, 1, -127, 127, true), { scale: Math.fround(4 / 254), zeroPoint: 0 });
  // A tie in the zero point rounds to even: [-0.5·s, …] with s = 1/255·… gives qmin - rmin/scale = 2.5 → 2.
  const tie = computeScaleZeroPoint(-2.5, 255 - 2.5, 0, 255, false);
  assert.equal(tie.scale, 1);
  assert.equal(tie.zeroPoint, 2);
  assert.deepEqual(computeScaleZeroPoint(0, 0, 0, 255, false), { scale: 1, zeroPoint: 0 });
});

test('float16 conversion rounds to nearest even and handles the edges', () => {
  const cases: Array<[number, number]> = [
    [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65520, 0x7c00], [1 / 3, 0x3555], [0.1, 0x2e66],
    [2 ** -24, 0x0001], [2 ** -25, 0x0000], [3 * 2 ** -25, 0x0002], [2 ** -14, 0x0400], [Infinity, 0x7c00], [1e-10, 0],
  ];
  for (const [x, bits] of cases) assert.equal(float32ToFloat16Bits(x), bits, `${x} → 0x${float32ToFloat16Bits(x).toString(16)}`);
  assert.equal(float32ToFloat16Bits(NaN) & 0x7c00, 0x7c00);
  assert.ok(Number.isNaN(float16BitsToFloat32(float32ToFloat16Bits(NaN))));
  // Values float16 represents exactly survive the round trip.
  for (const x of [1, -2, 65504, 0.5, 2 ** -24, 0.0999755859375]) assert.equal(float16BitsToFloat32(float32ToFloat16Bits(x)), x);
  // A whole tensor at once gives the same bits, from a view at an offset too.
  const r = rng(8);
  const values = Float32Array.from([...cases.map(([x]) => x), NaN, -0, -Infinity, ...Array.from({ length: 5000 }, () => (r() - 0.5) * 2 ** Math.floor(r() * 60 - 30))]);
  const view = new Float32Array(values.buffer, 8, values.length - 2);
  assert.deepEqual(Array.from(float32ArrayToFloat16Bits(view)), Array.from(view, float32ToFloat16Bits));
  // Scales are kept in float16 only where each is normal there (or zero): no subnormal, no overflow.
  assert.deepEqual([[0, 2 ** -14, -65504, 0.02], [2 ** -15], [65520], [1, NaN]].map((v) => fitsFloat16(Float32Array.from(v))), [true, false, false, false]);
});

test('int4 blocks: low nibble first, each value within half a step, a padded last block', () => {
  const k = 40;
  const n = 3;
  const w = Float32Array.from({ length: k * n }, (_, i) => Math.sin(i) * (1 + (i % 7)));
  for (const symmetric of [true, false]) {
    const q = quantizeInt4(w, k, n, 32, symmetric);
    assert.equal(q.packed.length, n * 2 * 16);
    assert.equal(q.scales.length, n * 2);
    assert.equal(q.zeroPoints === undefined, symmetric);
    const back = dequantizeInt4(q, k, n, 32);
    for (let r = 0; r < k; r++) {
      for (let c = 0; c < n; c++) {
        const step = Math.abs(q.scales[c * 2 + Math.floor(r / 32)]!);
        // Symmetric blocks put the largest magnitude on −8: a value of the other sign beyond 7.5 steps clips to 7.
        const clipped = symmetric && Math.abs(w[r * n + c]!) > 7.5 * step;
        assert.ok(Math.abs(back[r * n + c]! - w[r * n + c]!) <= (clipped ? step : step / 2) + 1e-6, `${symmetric} [${r},${c}]`);
      }
    }
  }
  // Column 0, block 0: values 0 and 1 of the column share byte 0, value 0 in the low nibble. 8 is the
  // largest magnitude: scale −1, so 8 → −8 (nibble 0) and −7 → 7 (nibble 15).
  const tiny = new Float32Array(32).map((_, i) => (i === 0 ? 8 : i === 1 ? -7 : 0));
  const q = quantizeInt4(tiny, 32, 1, 32, true);
  assert.equal(q.scales[0], -1);
  assert.equal(q.packed[0]! & 0x0f, 0);
  assert.equal(q.packed[0]! >> 4, 15);
});

test('topological sort orders producers first and refuses cycles; unused initializers go', () => {
  const g = model({
    name: 'g', inputs: [valueInfo('x', F32, [1])], outputs: [valueInfo('z', F32, [1])],
    initializers: [floatTensor('used', [1], [1]), floatTensor('unused', [1], [2])],
    nodes: [node('Relu', ['y'], ['z'], {}, 'second'), node('Add', ['x', 'used'], ['y'], {}, 'first')],
  }).graph!;
  assert.deepEqual(topologicalSort(g).map((n) => n.name), ['first', 'second']);
  assert.deepEqual(removeUnusedInitializers(g), ['unused']);
  assert.deepEqual(g.initializer!.map((t) => t.name), ['used']);
  // Malformed graphs are the model's fault (OnnxFormatError: a bad input, never retried), said by name.
  g.node = [node('Relu', ['b'], ['a'], {}, 'p'), node('Relu', ['a'], ['b'], {}, 'q')];
  assert.throws(() => topologicalSort(g), (e: Error) => e instanceof OnnxFormatError && /has a cycle through p, q/.test(e.message));
  g.node = [node('Relu', ['x'], ['a'], {}, 'p'), node('Sigmoid', ['x'], ['a'], {}, 'q')];
  assert.throws(() => topologicalSort(g), (e: Error) => e instanceof OnnxFormatError && /value "a" is produced by two nodes \(p and q\)/.test(e.message));
});

const fixtures: Record<string, () => Promise<FixtureModel>> = { mlp: mlpModel, cnn: cnnModel, transformer: transformerModel };

test('external data: written beside the model, read back, run by onnxruntime; paths outside the folder are refused', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-ext-'));
  const f = await mlpModel();
  const file = path.join(dir, 'm.onnx');
  const w = writeModelFile(file, decodeModel(f.onnx), { externalData: 'always', sizeThreshold: 0 });
  assert.equal(w.externalFile, path.join(dir, 'm.onnx.data'));
  assert.ok(readFileSync(file).length < 4096, 'the weights are not inline');
  const back = readModelFile(file);
  const original = decodeModel(f.onnx);
  for (const t of original.graph!.initializer!) {
    assert.deepEqual(floatValues(back.graph!.initializer!.find((x) => x.name === t.name)!), floatValues(t));
  }
  const golden = fixtureGolden(f, 4);
  const feeds = { input: new ort.Tensor('float32', golden[0]!.inputs.input!.data, [1, 64]) };
  const a = await (await ort.InferenceSession.create(f.onnx)).run(feeds);
  const b = await (await ort.InferenceSession.create(file)).run(feeds);
  assert.deepEqual(Array.from(b.logits!.data as Float32Array), Array.from(a.logits!.data as Float32Array));

  for (const location of ['../outside.bin', '/etc/passwd', 'sub/../../x.bin']) {
    const m = decodeModel(f.onnx);
    const t = m.graph!.initializer![0]!;
    Object.assign(t, { rawData: new Uint8Array(0), dataLocation: 1, externalData: [{ key: 'location', value: location }] });
    writeFileSync(path.join(dir, 'evil.onnx'), encodeModel(m));
    assert.throws(() => readModelFile(path.join(dir, 'evil.onnx')), /outside the model's folder/);
  }
  truncateSync(path.join(dir, 'm.onnx.data'), 100);
  assert.throws(() => readModelFile(file), /truncated/);
  writeFileSync(path.join(dir, 'junk.onnx'), 'not a model at all');
  assert.throws(() => readModelFile(path.join(dir, 'junk.onnx')), OnnxFormatError);
  assert.throws(() => readModelFile(path.join(dir, 'm.onnx').slice(0, -5) + 'missing.onnx'));
  assert.ok(existsSync(file));
  // `auto` keeps a model inline below the limit and goes external above it (the > 2 GB rule, with a lowered limit).
  const small = path.join(dir, 'auto-inline.onnx');
  assert.equal(writeModelFile(small, decodeModel(f.onnx)).externalFile, undefined);
  const big = path.join(dir, 'auto-external.onnx');
  assert.equal(writeModelFile(big, decodeModel(f.onnx), { inlineLimit: 100_000 }).externalFile, `${big}.data`);
  const run = await (await ort.InferenceSession.create(big)).run(feeds);
  assert.deepEqual(Array.from(run.logits!.data as Float32Array), Array.from(a.logits!.data as Float32Array));
});

for (const [name, build] of Object.entries(fixtures)) {
  test(`${name}: every method's output loads and runs in onnxruntime-node; int8 and int4 meet their size targets`, async (t) => {
    const f = await build();
    const golden = fixtureGolden(f, 200);
    const analysis = analyzeModel(decodeModel(f.onnx));
    assert.ok(analysis.applicable.includes('int8-dynamic') && analysis.applicable.includes('fp16'));
    for (const method of ['int8-dynamic', 'fp16', 'int4'] as Method[]) {
      const { model: q, report } = quantizeModel(decodeModel(f.onnx), { method });
      const m = await evaluateCandidate(f.onnx, encodeModel(q), golden, { runs: 3 });
      t.diagnostic(`${name} ${method}: quantized ${report.quantized} nodes, weights ×${report.quantizedWeights.ratio.toFixed(3)} (file ×${m.bytes!.ratio.toFixed(3)}), top-1 ${m.top1Agreement}, cosine ${m.cosine.mean.toFixed(5)}, latency ×${m.latencyMs.ratio.toFixed(2)}`);
      assert.ok(report.quantized > 0, `${method} quantized something`);
      assert.ok(m.cosine.mean > 0.9, `${method} output is close (cosine ${m.cosine.mean})`);
      if (method === 'int8-dynamic') assert.ok(report.quantizedWeights.ratio <= 0.27, `int8 ratio ${report.quantizedWeights.ratio}`);
      // int4 keeps Conv weights at 8 bits unless asked (int4Conv): the CNN's convolutions weigh in at ×0.25.
      if (method === 'int4') assert.ok(report.quantizedWeights.ratio <= (name === 'cnn' ? 0.26 : 0.16), `int4 ratio ${report.quantizedWeights.ratio}`);
      if (method === 'fp16') assert.equal(report.quantizedWeights.ratio, 0.5);
      if (method === 'int8-dynamic') {
        assert.ok(m.top1Agreement >= 0.99, `int8 top-1 ${m.top1Agreement}`);
        assert.ok(m.cosine.mean >= 0.99, `int8 cosine ${m.cosine.mean}`);
      }
    }
  });
}

test('int8-dynamic emits onnxruntime\'s pattern; exclusions, declined nodes and bad input are reported by name', async () => {
  const f = await mlpModel();
  const { model: q, report } = quantizeModel(decodeModel(f.onnx), { method: 'int8-dynamic', excludeNodes: ['fc2'] });
  const ops = q.graph!.node!.map((n) => n.opType);
  for (const op of ['DynamicQuantizeLinear', 'MatMulInteger', 'Cast', 'Mul']) assert.ok(ops.includes(op), op);
  assert.ok(!ops.includes('Gemm'), 'Gemm became MatMulInteger + Add');
  assert.deepEqual(report.nodes.find((n) => n.node === 'fc2'), { node: 'fc2', op: 'MatMul', action: 'kept', reason: 'excluded by name' });
  // One DynamicQuantizeLinear per activation, however many nodes read it.
  const t = await transformerModel();
  const tq = quantizeModel(decodeModel(t.onnx), { method: 'int8-dynamic' }).model;
  assert.equal(tq.graph!.node!.filter((n) => n.opType === 'DynamicQuantizeLinear' && n.input![0] === 'n1').length, 1);
  // Attention's activation × activation MatMuls have no constant weight and stay in float.
  const kept = quantizeModel(decodeModel(t.onnx), { method: 'int8-dynamic' }).report.nodes.filter((n) => n.action === 'kept').map((n) => n.node);
  assert.deepEqual(kept.sort(), ['context', 'scores']);

  const old = model({ name: 'old', opset: 10, inputs: [valueInfo('x', F32, [1, 2])], outputs: [valueInfo('y', F32, [1, 2])], initializers: [floatTensor('w', [2, 2], [1, 0, 0, 1])], nodes: [node('MatMul', ['x', 'w'], ['y'])] });
  // An opset-10 model is upgraded to what DynamicQuantizeLinear needs first; one the upgrader cannot take is refused by name.
  const upgraded = quantizeModel(old, { method: 'int8-dynamic' });
  assert.deepEqual([upgraded.report.opsetUpgrade, upgraded.report.quantized, upgraded.model.opsetImport[0]!.version], [{ from: 10, to: 11, rewritten: {} }, 1, 11]);
  const nms = model({ name: 'nms', opset: 9, inputs: [valueInfo('x', F32, [1, 2])], outputs: [valueInfo('y', F32, [1, 2])], initializers: [floatTensor('w', [2, 2], [1, 0, 0, 1])], nodes: [node('MatMul', ['x', 'w'], ['h']), node('NonMaxSuppression', ['h', 'w'], ['y'], {}, 'nms')] });
  assert.throws(() => quantizeModel(nms, { method: 'int8-dynamic' }), (e: Error) => e instanceof QuantizeError && /needs opset 11 or later; the model imports opset 9 and cannot upgrade NonMaxSuppression node "nms"/.test(e.message));
  assert.throws(() => quantizeModel(decodeModel(f.onnx), { method: 'int4', blockSize: 48 }), /power of two from 16 to 256/);
  const wrong = fixtureGolden(f, 1).map((g) => ({ inputs: { input: { dims: [1, 32], data: g.inputs.input!.data.slice(0, 32) } } }));
  await assert.rejects(evaluateCandidate(f.onnx, f.onnx, wrong, { runs: 1 }), /golden sample 1 does not fit the model/);
});

test('fp16 keeps a node in fp32 when a constant input exceeds the float16 range, and Resize scales stay float32', async () => {
  const m = model({
    name: 'bn', opset: 13, inputs: [valueInfo('x', F32, [1, 2, 4, 4])], outputs: [valueInfo('y', F32, [1, 2, 8, 8])],
    initializers: [
      floatTensor('scale', [2], [1, 1]), floatTensor('bias', [2], [0, 0]), floatTensor('mean', [2], [0, 0]), floatTensor('var', [2], [1e6, 4]),
      floatTensor('roi', [0], []), floatTensor('scales', [4], [1, 1, 2, 2]),
    ],
    nodes: [node('BatchNormalization', ['x', 'scale', 'bias', 'mean', 'var'], ['b'], {}, 'bn'), node('Resize', ['b', 'roi', 'scales'], ['y'], { mode: 'nearest' }, 'up')],
  });
  const { model: q, report } = quantizeModel(m, { method: 'fp16' });
  assert.match(report.nodes.find((n) => n.node === 'bn')!.reason!, /exceeds the float16 range/);
  assert.equal(q.graph!.initializer!.find((t) => t.name === 'scales')!.dataType, F32);
  const x = Float32Array.from({ length: 32 }, (_, i) => i * 10);
  const feeds = { x: new ort.Tensor('float32', x, [1, 2, 4, 4]) };
  const want = (await (await ort.InferenceSession.create(encodeModel(m))).run(feeds)).y!.data as Float32Array;
  const got = (await (await ort.InferenceSession.create(encodeModel(q))).run(feeds)).y!.data as Float32Array;
  want.forEach((v, i) => assert.ok(Math.abs(v - got[i]!) <= Math.abs(v) * 1e-3 + 1e-3, `${i}: ${got[i]} vs ${v}`));
});

test('a model already quantized is refused by name (its quantized ops, qcflow\'s own mark); one with float layers left quantizes them', async () => {
  const [mlp, cnn] = [await mlpModel(), await cnnModel()];
  const once = quantizeModel(decodeModel(mlp.onnx), { method: 'int8-dynamic' }).model;
  assert.throws(() => quantizeModel(once, { method: 'int8-dynamic' }), (e: Error) => e instanceof QuantizeError && /already quantized \(by qcflow, int8-dynamic, DynamicQuantizeLinear ×\d+, MatMulInteger ×\d+\): nothing is left in float for int8-dynamic/.test(e.message));
  // Weight-only Convs hold no quantized op: the mark names them.
  assert.throws(() => quantizeModel(quantizeModel(decodeModel(cnn.onnx), { method: 'int8-dynamic' }).model, { method: 'int4' }), /already quantized \(by qcflow, int8-dynamic[,)]/);
  const matmuls = decodeModel(mlp.onnx).graph!.node!.filter((n) => n.opType === 'MatMul').map(nodeKey);
  const partly = quantizeModel(decodeModel(mlp.onnx), { method: 'int8-dynamic', excludeNodes: matmuls.slice(1) }).model;
  assert.equal(quantizeModel(partly, { method: 'int8-dynamic' }).report.quantized, matmuls.length - 1);
});

/**
 * `q` as onnxruntime loads it — the op types of the graph it optimizes it into — and the cosine of each of
 * its outputs against `m`'s on `feeds`.
 */
async function asLoaded(m: onnx.IModelProto, q: onnx.IModelProto, feeds: Record<string, ort.Tensor>): Promise<{ loaded: string[]; cosines: Record<string, number> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-loaded-'));
  try {
    const optimized = path.join(dir, 'loaded.onnx');
    const got = await (await ort.InferenceSession.create(encodeModel(q), { optimizedModelFilePath: optimized })).run(feeds);
    const want = await (await ort.InferenceSession.create(encodeModel(m))).run(feeds);
    const loaded = decodeModel(readFileSync(optimized)).graph!.node!.map((n) => n.opType!);
    return { loaded, cosines: Object.fromEntries(Object.keys(want).map((k) => [k, cosine(want[k]!.data as Float32Array, got[k]!.data as Float32Array)])) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('int8-static: a residual Add and the Relus that stay int8 are in QDQ too, so onnxruntime runs QLinearAdd and drops the Relus; an Add read by a float op is left alone', async () => {
  const r = rng(21);
  const w = (name: string, m: number, c: number) => floatTensor(name, [m, c, 3, 3], Array.from({ length: m * c * 9 }, () => (r() - 0.5) * 0.4));
  const conv = (x: string, wt: string, y: string) => node('Conv', [x, wt], [y], { pads: [1, 1, 1, 1] }, y);
  const m = model({
    name: 'residual', opset: 13, inputs: [valueInfo('x', F32, [1, 8, 8, 8])], outputs: [valueInfo('y', F32, [1, 8, 8, 8]), valueInfo('s', F32, [1, 8, 8, 8])],
    initializers: [w('w1', 8, 8), w('w2', 8, 8), w('w3', 8, 8)],
    nodes: [
      conv('x', 'w1', 'c1'), node('Relu', ['c1'], ['r1'], {}, 'relu1'), conv('r1', 'w2', 'c2'), node('Add', ['c2', 'r1'], ['a'], {}, 'add'),
      node('Relu', ['a'], ['r2'], {}, 'relu2'), conv('r2', 'w3', 'y'),
      // Read by a Sigmoid (float here): QDQ would only requantize.
      node('Add', ['c2', 'c1'], ['b'], {}, 'side'), node('Sigmoid', ['b'], ['s'], {}, 'sigmoid'),
    ],
  });
  const samples = Array.from({ length: 8 }, () => ({ inputs: { x: { dims: [1, 8, 8, 8], data: Float32Array.from({ length: 512 }, () => r() * 2 - 1) } } }));
  const { model: q, report } = await quantizeModelStatic(m, { method: 'int8-static' }, () => samples, { method: 'minmax' });
  assert.deepEqual(report.nodes.filter((n) => n.action === 'quantized').map((n) => n.node).sort(), ['add', 'c1', 'c2', 'relu1', 'relu2', 'y']);
  // A range does not choose a node: with every tensor calibrated but no choice made, 'side' (read by the
  // Sigmoid) and the rest of the weightless nodes stay float.
  const everyRange = new Map(['x', 'c1', 'r1', 'c2', 'a', 'r2', 'y', 'b', 's'].map((t) => [t, { min: -4, max: 4 }]));
  assert.deepEqual(quantizeModel(m, { method: 'int8-static', ranges: everyRange }).report.nodes.filter((n) => n.action === 'quantized').map((n) => n.node).sort(), ['c1', 'c2', 'y']);
  const { loaded, cosines } = await asLoaded(m, q, { x: new ort.Tensor('float32', samples[0]!.inputs.x.data, [1, 8, 8, 8]) });
  assert.ok(loaded.includes('QLinearAdd') && !loaded.includes('Relu'), loaded.join(' '));
  for (const [k, c] of Object.entries(cosines)) assert.ok(c > 0.995, `${k}: cosine ${c}`);
});

test('int8-static: Adds on a MatMul\'s product (nn.Linear\'s bias, the residual after a reshape) are in QDQ whatever reads them, the bias stored as uint8: onnxruntime runs QLinearAdd after QLinearMatMul', async () => {
  const r = rng(22);
  const m = model({
    name: 'linear', opset: 17, inputs: [valueInfo('x', F32, [1, 8, 16])], outputs: [valueInfo('y', F32, [1, 8, 16]), valueInfo('z', F32, [1, 8, 16])],
    initializers: [
      floatTensor('w', [16, 16], Array.from({ length: 256 }, () => (r() - 0.5) * 0.5)), floatTensor('bias', [16], Array.from({ length: 16 }, () => r() - 0.5)),
      int64Tensor('shape', [3], [1, 8, 16]), floatTensor('gamma', [16], new Array<number>(16).fill(1)), floatTensor('beta', [16], new Array<number>(16).fill(0)),
    ],
    nodes: [
      node('MatMul', ['x', 'w'], ['h'], {}, 'linear'), node('Add', ['h', 'bias'], ['hb'], {}, 'bias_add'), node('Reshape', ['hb', 'shape'], ['hr'], {}, 'reshape'),
      node('Add', ['x', 'hr'], ['s'], {}, 'residual'), node('LayerNormalization', ['s', 'gamma', 'beta'], ['y'], { axis: -1 }, 'norm'),
      // Neither input is a product: read by a float op, it stays float.
      node('Add', ['x', 'y'], ['z'], {}, 'other'),
    ],
  });
  const samples = Array.from({ length: 8 }, () => ({ inputs: { x: { dims: [1, 8, 16], data: Float32Array.from({ length: 128 }, () => r() * 2 - 1) } } }));
  const { model: q, report } = await quantizeModelStatic(m, { method: 'int8-static' }, () => samples, { method: 'minmax' });
  assert.deepEqual(report.nodes.filter((n) => n.action === 'quantized').map((n) => n.node).sort(), ['bias_add', 'linear', 'residual']);
  assert.equal(q.graph!.initializer!.find((t) => t.name === 'bias_quantized')?.dataType, DT.UINT8);
  const { loaded, cosines } = await asLoaded(m, q, { x: new ort.Tensor('float32', samples[0]!.inputs.x.data, [1, 8, 16]) });
  assert.equal(loaded.filter((op) => op === 'QLinearAdd').length, 2, loaded.join(' '));
  for (const [k, c] of Object.entries(cosines)) assert.ok(c > 0.995, `${k}: cosine ${c}`);
});

test('a weight holding NaN or Inf keeps its node float, by name; the rest of the model is quantized', async () => {
  const r = rng(13);
  const w = (n: number): number[] => Array.from({ length: n }, () => r() - 0.5);
  const bad = w(64 * 64);
  bad[7] = Number.POSITIVE_INFINITY;
  bad[100] = Number.NaN;
  const m = model({
    name: 'diverged', opset: 13, inputs: [valueInfo('x', F32, [1, 64])], outputs: [valueInfo('y', F32, [1, 64])],
    initializers: [floatTensor('w1', [64, 64], w(64 * 64)), floatTensor('w2', [64, 64], bad)],
    nodes: [node('MatMul', ['x', 'w1'], ['h'], {}, 'fc1'), node('MatMul', ['h', 'w2'], ['y'], {}, 'fc2')],
  });
  // Read from the bytes in place, at an odd offset as protobuf may hand them: the largest finite float is not Inf, -Inf is.
  const unaligned = (values: number[]) => {
    const bytes = new Uint8Array(3 + values.length * 4);
    bytes.set(new Uint8Array(Float32Array.from(values).buffer), 3);
    return { name: 't', dataType: F32, dims: [values.length], rawData: bytes.subarray(3) };
  };
  assert.deepEqual([unaligned([3.4028234663852886e38, -1e-45, 0]), unaligned([1, Number.NEGATIVE_INFINITY]), unaligned([Number.NaN])].map(hasNonFinite), [false, true, true]);
  for (const method of ['int8-dynamic', 'int4'] as const) {
    const { model: q, report } = quantizeModel(structuredClone(m), { method });
    assert.deepEqual(report.nodes.map((n) => [n.node, n.action, n.reason]), [['fc1', 'quantized', undefined], ['fc2', 'kept', 'its weight w2 holds NaN or infinite values (a damaged or diverged model): kept as it is']]);
    assert.equal(await loadError(encodeModel(q)), undefined);
  }
});

test('fp16 keeps ops whose schema takes no float16 in fp32 (a YOLOv8 export\'s Range over a computed float, a model quantized before), and the result loads', async () => {
  // YOLOv8's anchor grid: Range(0, width, 1) in float, its limit computed from the input's shape; then a
  // DynamicQuantizeLinear / MatMulInteger pair as onnxruntime's quantize_dynamic writes it, and a contrib op.
  const m = model({
    name: 'grid', opset: 17, inputs: [valueInfo('x', F32, [1, 4])], outputs: [valueInfo('y', F32, [1, 4]), valueInfo('q', F32, [1, 2])],
    initializers: [floatTensor('start', [], [0]), floatTensor('step', [], [1]), int64Tensor('one', [], [1]), floatTensor('w', [4, 2], [0.5, -1, 2, 0.25, -0.5, 1, 1.5, -2]), floatTensor('ws', [], [0.01])],
    nodes: [
      node('Shape', ['x'], ['shape']), node('Gather', ['shape', 'one'], ['width'], { axis: 0 }), node('Cast', ['width'], ['limit'], { to: F32 }),
      node('Range', ['start', 'limit', 'step'], ['r'], {}, 'range'),
      node('Add', ['x', 'r'], ['y'], {}, 'add'),
      node('DynamicQuantizeLinear', ['x'], ['xq', 'xs', 'xz'], {}, 'dql'),
      node('Cast', ['w'], ['w_f'], { to: F32 }, 'w_copy'),
      node('MatMul', ['x', 'w_f'], ['mm'], {}, 'mm'), { opType: 'Gelu', domain: 'com.microsoft', input: ['mm'], output: ['g'], name: 'gelu' },
      node('Mul', ['g', 'xs'], ['q'], {}, 'scale'),
    ],
  });
  m.opsetImport = [...(m.opsetImport ?? []), { domain: 'com.microsoft', version: 1 }];
  const { model: q, report } = quantizeModel(structuredClone(m), { method: 'fp16' });
  const kept = Object.fromEntries(report.nodes.filter((n) => n.action === 'kept').map((n) => [n.node, n.reason]));
  assert.deepEqual(kept, { range: 'Range takes no float16 (ONNX schema)', dql: 'DynamicQuantizeLinear takes no float16 (ONNX schema)', gelu: 'a com.microsoft op: its float16 support is not known here' });
  const feeds = { x: new ort.Tensor('float32', Float32Array.of(0.3, -1.2, 2.5, 0.7), [1, 4]) };
  const want = await (await ort.InferenceSession.create(encodeModel(m))).run(feeds);
  const got = await (await ort.InferenceSession.create(encodeModel(q))).run(feeds);
  for (const k of ['y', 'q']) (want[k]!.data as Float32Array).forEach((v, i) => assert.ok(Math.abs(v - (got[k]!.data as Float32Array)[i]!) <= Math.abs(v) * 2e-3 + 1e-3, `${k}[${i}]: ${(got[k]!.data as Float32Array)[i]} vs ${v}`));
});

test('fp16: a float-to-float Cast (torch\'s in attention\'s scale, 1/√√d from the shape) becomes an Identity, so onnxruntime loads the model with optimizations off too', async () => {
  const m = model({
    name: 'scale', opset: 13, inputs: [valueInfo('x', F32, [2, 16])], outputs: [valueInfo('y', F32, [2, 16])], initializers: [int64Tensor('last', [1], [-1]), int64Tensor('end', [1], [2 ** 40]), floatTensor('one', [1], [1])],
    nodes: [
      node('Shape', ['x'], ['shape']), node('Slice', ['shape', 'last', 'end'], ['width']), node('Cast', ['width'], ['wf'], { to: F32 }), node('Sqrt', ['wf'], ['root']),
      node('Div', ['one', 'root'], ['inv']), node('Cast', ['inv'], ['c'], { to: F32 }, 'cast'), node('Sqrt', ['c'], ['s'], {}, 'sqrt'), node('Mul', ['x', 's'], ['y'], {}, 'mul'),
    ],
  });
  const { model: q } = quantizeModel(m, { method: 'fp16' });
  // Left a Cast (float16 to float16), onnxruntime's CPU cast insertion mistyped it: "Type (tensor(float)) of
  // output arg (InsertedPrecisionFreeCast_c) of node (cast) does not match expected type (tensor(float16))".
  assert.equal(await loadError(encodeModel(q)), undefined);
  assert.equal(q.graph!.node!.find((n) => n.name === 'cast')?.opType, 'Identity');
  const feeds = { x: new ort.Tensor('float32', new Float32Array(32).fill(2), [2, 16]) };
  const got = (await (await ort.InferenceSession.create(encodeModel(q), { graphOptimizationLevel: 'disabled' })).run(feeds)).y!.data as Float32Array;
  assert.ok(got.every((v) => Math.abs(v - 1) < 1e-3), String(got[0]));
});

test('calibration statistics: histogram quantiles and the entropy threshold', () => {
  // Uniform mass over [0, 10): the 25% quantile is 2.5.
  assert.ok(Math.abs(quantileOfHistogram(new Float64Array(100).fill(1), 0, 10, 0.25) - 2.5) < 1e-9);
  // Laplace magnitudes (long-tailed, as activations are): entropy clips the sparse tail well below the
  // largest value; uniform mass keeps nearly all of it.
  const r = rng(3);
  const g = Float32Array.from({ length: 200_000 }, () => -Math.log(1 - r()));
  const absmax = g.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const hist = new Float64Array(2048);
  for (const v of g) hist[Math.min(2047, Math.floor((Math.abs(v) / absmax) * 2048))]! += 1;
  const t = entropyThreshold(hist, absmax);
  assert.ok(t > 2 && t < 0.8 * absmax, `threshold ${t} of ${absmax}`);
  assert.ok(entropyThreshold(new Float64Array(2048).fill(10), 4) > 3.9);
});

for (const [name, build] of Object.entries({ mlp: mlpModel, transformer: transformerModel, cnn: cnnModel })) {
  test(`${name}: int8-static QDQ calibrated with min-max, percentile and auto loads, runs and stays within budget`, async () => {
    const f = await build();
    const calib = fixtureGolden(f, 32, { seed: 7 });
    const golden = fixtureGolden(f, 100);
    for (const method of ['minmax', 'percentile', 'auto'] as const) {
      const { model: q, report } = await quantizeModelStatic(decodeModel(f.onnx), { method: 'int8-static' }, () => calib, { method });
      // auto: percentile for a model with convolutions, min-max for the rest; the report says which.
      assert.equal(report.calibration.method, method !== 'auto' ? method : name === 'cnn' ? 'percentile' : 'minmax');
      const ops = q.graph!.node!.map((n) => n.opType);
      assert.ok(ops.includes('QuantizeLinear') && ops.includes('DequantizeLinear'));
      assert.ok(report.quantizedWeights.ratio <= 0.27, `weights ×${report.quantizedWeights.ratio}`);
      const m = await evaluateCandidate(f.onnx, encodeModel(q), golden, { runs: 2 });
      assert.ok(m.top1Agreement >= 0.99 && m.cosine.mean >= 0.99, `${method}: top-1 ${m.top1Agreement}, cosine ${m.cosine.mean}`);
    }
  });
}

test('calibration sets stream from JSONL or Arrow; int8-static without one, or on an old opset, is refused', async () => {
  const f = await mlpModel();
  const samples = fixtureGolden(f, 5);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-calib-'));
  writeFileSync(path.join(dir, 'c.arrow'), samplesToArrow(samples));
  writeFileSync(path.join(dir, 'c.jsonl'), goldenToJsonl(samples));
  for (const file of ['c.arrow', 'c.jsonl']) {
    const got: number[][] = [];
    for await (const s of calibrationSource(path.join(dir, file))()) got.push(Array.from(s.inputs.input!.data.slice(0, 3), Number));
    assert.equal(got.length, 5, file);
    assert.deepEqual(got[4], Array.from(samples[4]!.inputs.input!.data.slice(0, 3), Number), file);
  }
  // A file that is not Arrow IPC, or none at all, is refused by name (the reader alone reads a missing file as no rows).
  writeFileSync(path.join(dir, 'text.arrow'), 'sample,value\n'.repeat(40));
  writeFileSync(path.join(dir, 'noise.arrow'), Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 97 + 13) % 256)));
  const drain = async (file: string) => {
    for await (const s of calibrationSource(path.join(dir, file))()) assert.ok(s);
  };
  for (const file of ['text.arrow', 'noise.arrow']) await assert.rejects(drain(file), new RegExp(`${file.replace('.', '\\.')} is not an Arrow IPC file qcflow can read .*qcflow\\.dims`));
  await assert.rejects(drain('missing.arrow'), /missing\.arrow: ENOENT/);
  assert.throws(() => quantizeModel(decodeModel(f.onnx), { method: 'int8-static' }), /needs a calibration set/);
  const nms = model({ name: 'nms', opset: 11, inputs: [valueInfo('x', F32, [1, 2])], outputs: [valueInfo('y', F32, [1, 2])], initializers: [floatTensor('w', [2, 2], [1, 0, 0, 1])], nodes: [node('MatMul', ['x', 'w'], ['h']), node('NonMaxSuppression', ['h', 'w'], ['y'], {}, 'nms')] });
  await assert.rejects(quantizeModelStatic(nms, { method: 'int8-static' }, () => [], { method: 'minmax' }), /needs opset 13 or later; the model imports opset 11 and cannot upgrade NonMaxSuppression/);
  const wrong = [{ inputs: { input: { dims: [1, 3], data: Float32Array.of(1, 2, 3) } } }];
  await assert.rejects(quantizeModelStatic(decodeModel(f.onnx), { method: 'int8-static' }, () => wrong, { method: 'minmax' }), /calibration sample 1 does not fit the model/);
});

test('int4 Conv: 8-bit weights by default; with int4Conv, 4-bit blocks along each filter, restored to a float weight when onnxruntime loads the model', async () => {
  const ops = (m: { graph?: { node?: Array<{ opType?: string | null }> | null } | null }) => m.graph!.node!.map((n) => n.opType);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-int4-conv-'));
  // 40·3·3 = 360 weights a filter: 12 blocks of 30 (not 32, …, 8); 64·1·1 = 64: two of 32; 67 (prime) keeps 8 bits.
  assert.deepEqual([360, 64, 88, 67, 64].map((k, i) => evenBlockLength(k, i === 4 ? 256 : 32)), [30, 32, 22, undefined, 64]);
  for (const [M, C, K, bs] of [[16, 40, 3, 30], [8, 64, 1, 32], [8, 67, 1, 0]] as const) {
    const k = C * K * K;
    const w = Float32Array.from({ length: M * k }, (_, i) => Math.sin(i * 0.91) * (1 + (i % 7)));
    const conv = (weights: Float32Array, opset: number) => model({ name: 'c', opset, inputs: [valueInfo('x', F32, [1, C, 8, 8])], outputs: [valueInfo('y', F32, [1, M, 9 - K, 9 - K])], initializers: [floatTensor('w', [M, C, K, K], weights)], nodes: [node('Conv', ['x', 'w'], ['y'], {}, 'conv')] });
    assert.deepEqual(ops(quantizeModel(conv(w, 13), { method: 'int4' }).model), ['Cast', 'Mul', 'Conv']);
    const { model: q, report } = quantizeModel(conv(w, 13), { method: 'int4', int4Conv: true });
    if (!bs) {
      assert.deepEqual(ops(q), ['Cast', 'Mul', 'Conv']);
      continue;
    }
    // The scales in float16, cast back beside the blocks' Cast.
    assert.deepEqual([ops(q), report.opsetUpgrade?.to, q.graph!.initializer!.filter((t) => t.dataType === DT.FLOAT16).length], [['Cast', 'Cast', 'Mul', 'Reshape', 'Conv'], 21, 1]);
    // The same blocks dequantized here: each filter in blocks of `bs`, scale = absmax / 7, kept in float16.
    const bq = quantizeBlockedInt4(w, M, k, bs);
    const deq = Float32Array.from(w, (_, at) => {
      const nib = at & 1 ? bq.packed[at >> 1]! >> 4 : bq.packed[at >> 1]! & 15;
      return (nib > 7 ? nib - 16 : nib) * float16BitsToFloat32(float32ToFloat16Bits(bq.scales[Math.floor(at / bs)]!));
    });
    const err = Math.sqrt(w.reduce((s, v, i) => s + (v - deq[i]!) ** 2, 0) / w.reduce((s, v) => s + v * v, 0));
    assert.ok(err > 0.01 && err < 0.12, `relative weight error ${err}`);
    const feeds = { x: new ort.Tensor('float32', Float32Array.from({ length: C * 64 }, (_, i) => Math.cos(i * 0.3)), [1, C, 8, 8]) };
    const optimized = path.join(dir, `${k}.onnx`);
    const got = (await (await ort.InferenceSession.create(encodeModel(q), { optimizedModelFilePath: optimized, graphOptimizationLevel: 'extended' })).run(feeds)).y!.data as Float32Array;
    const want = (await (await ort.InferenceSession.create(encodeModel(conv(deq, 13)))).run(feeds)).y!.data as Float32Array;
    want.forEach((v, i) => assert.ok(Math.abs(v - got[i]!) < 1e-4 * (1 + Math.abs(v)), `${i}: ${got[i]} vs ${v}`));
    // Nothing is left to restore at run time: the weight is one constant (a DequantizeLinear would stay).
    const loaded = ops(decodeModel(readFileSync(optimized)));
    assert.ok(!loaded.some((op) => ['Cast', 'Mul', 'Reshape', 'DequantizeLinear'].includes(op!)), loaded.join(' '));
  }
  rmSync(dir, { recursive: true, force: true });
});

test('int4Conv takes 1-D and 3-D convolutions too (audio and text conv nets: silero-vad\'s encoder), blocked along each filter as 2-D ones', async () => {
  for (const kernel of [[3], [3, 3, 3]]) {
    const [M, C] = [8, 64];
    const k = C * kernel.reduce((a, b) => a * b, 1);
    const w = Float32Array.from({ length: M * k }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 5)));
    const spatial = kernel.map(() => 6);
    const conv = (weights: Float32Array) => model({ name: 'c', opset: 21, inputs: [valueInfo('x', F32, [1, C, ...spatial])], outputs: [valueInfo('y', F32, [1, M, ...spatial.map((s, i) => s - kernel[i]! + 1)])], initializers: [floatTensor('w', [M, C, ...kernel], weights)], nodes: [node('Conv', ['x', 'w'], ['y'], {}, 'conv')] });
    const { model: q } = quantizeModel(conv(w), { method: 'int4', int4Conv: true });
    assert.deepEqual(q.graph!.node!.map((n) => n.opType), ['Cast', 'Cast', 'Mul', 'Reshape', 'Conv'], `${kernel.length}-D`);
    const bs = evenBlockLength(k, 32)!;
    const bq = quantizeBlockedInt4(w, M, k, bs);
    const deq = Float32Array.from(w, (_, at) => {
      const nib = at & 1 ? bq.packed[at >> 1]! >> 4 : bq.packed[at >> 1]! & 15;
      return (nib > 7 ? nib - 16 : nib) * float16BitsToFloat32(float32ToFloat16Bits(bq.scales[Math.floor(at / bs)]!));
    });
    const size = C * spatial.reduce((a, b) => a * b, 1);
    const feeds = { x: new ort.Tensor('float32', Float32Array.from({ length: size }, (_, i) => Math.cos(i * 0.3)), [1, C, ...spatial]) };
    const got = (await (await ort.InferenceSession.create(encodeModel(q))).run(feeds)).y!.data as Float32Array;
    const want = (await (await ort.InferenceSession.create(encodeModel(conv(deq)))).run(feeds)).y!.data as Float32Array;
    want.forEach((v, i) => assert.ok(Math.abs(v - got[i]!) < 1e-4 * (1 + Math.abs(v)), `${kernel.length}-D ${i}: ${got[i]} vs ${v}`));
  }
});

test('int4Recurrent: an LSTM\'s W and R in 4-bit blocks along each gate unit\'s inputs (raised to opset 21), computing what the dequantized LSTM does; 8 bits without it', async () => {
  const [I, H, T] = [64, 32, 5];
  const r = rng(9);
  const [w, rr] = [Float32Array.from({ length: 4 * H * I }, () => r() - 0.5), Float32Array.from({ length: 4 * H * H }, () => r() - 0.5)];
  const lstm = (W: Float32Array, R: Float32Array) => model({ name: 'lstm', opset: 14, inputs: [valueInfo('x', F32, [T, 1, I])], outputs: [valueInfo('y', F32, [T, 1, 1, H])], initializers: [floatTensor('W', [1, 4 * H, I], W), floatTensor('R', [1, 4 * H, H], R)], nodes: [node('LSTM', ['x', 'W', 'R'], ['y'], { hidden_size: H }, 'lstm')] });
  const restoredBy = (q: onnx.IModelProto, input: number) => q.graph!.node!.find((p) => p.output![0] === q.graph!.node!.find((n) => n.opType === 'LSTM')!.input![input])!.opType;
  const plain = quantizeModel(lstm(w, rr), { method: 'int4' });
  assert.deepEqual([restoredBy(plain.model, 1), restoredBy(plain.model, 2), plain.report.opsetUpgrade], ['Mul', 'Mul', undefined]);
  const { model: q, report } = quantizeModel(lstm(w, rr), { method: 'int4', int4Recurrent: true });
  assert.deepEqual([restoredBy(q, 1), restoredBy(q, 2), report.opsetUpgrade?.to], ['Reshape', 'Reshape', 21]);
  assert.ok(report.modelBytes.after < 0.6 * plain.report.modelBytes.after, `${report.modelBytes.after} vs ${plain.report.modelBytes.after}`);
  // The blocks as quantizeBlockedInt4 makes them (a row a gate unit, blocks of 32), scales in float16.
  const deq = (v: Float32Array, k: number) => {
    const bq = quantizeBlockedInt4(v, v.length / k, k, 32);
    return Float32Array.from(v, (_, at) => {
      const nib = at & 1 ? bq.packed[at >> 1]! >> 4 : bq.packed[at >> 1]! & 15;
      return (nib > 7 ? nib - 16 : nib) * float16BitsToFloat32(float32ToFloat16Bits(bq.scales[Math.floor(at / 32)]!));
    });
  };
  const feeds = { x: new ort.Tensor('float32', Float32Array.from({ length: T * I }, (_, i) => Math.sin(i * 0.7)), [T, 1, I]) };
  const got = (await (await ort.InferenceSession.create(encodeModel(q))).run(feeds)).y!.data as Float32Array;
  const want = (await (await ort.InferenceSession.create(encodeModel(lstm(deq(w, I), deq(rr, H))))).run(feeds)).y!.data as Float32Array;
  want.forEach((v, i) => assert.ok(Math.abs(v - got[i]!) < 1e-4, `${i}: ${got[i]} vs ${v}`));
});

test('int4Conv: the stem (the first Convs, up to 0.5% of the Conv weights) keeps 8 bits, the rest take 4, whatever is excluded', () => {
  const r = rng(5);
  const layer = (name: string, from: string, to: string, m: number, c: number) => ({ w: floatTensor(`${name}_w`, [m, c, 3, 3], Array.from({ length: m * c * 9 }, () => r() - 0.5)), n: node('Conv', [from, `${name}_w`], [to], { pads: [1, 1, 1, 1] }, name) });
  // 576, 4,608 and 147,456 weights: conv0 is 0.4% of them (under 0.5%), conv0 and conv1 3.4%.
  const layers = [layer('conv0', 'x', 'h0', 8, 8), layer('conv1', 'h0', 'h1', 64, 8), layer('conv2', 'h1', 'y', 256, 64)];
  const m = model({ name: 'stem', opset: 21, inputs: [valueInfo('x', F32, [1, 8, 6, 6])], outputs: [valueInfo('y', F32, [1, 256, 6, 6])], initializers: layers.map((l) => l.w), nodes: [...layers].reverse().map((l) => l.n) });
  // A Conv's weight bits, from what restores it: a Reshape of 4-bit blocks, Cast and Mul of 8-bit channels, or the float initializer.
  const bits = (q: onnx.IModelProto) => Object.fromEntries(q.graph!.node!.filter((n) => n.opType === 'Conv').map((n) => [n.name, q.graph!.node!.find((p) => p.output![0] === n.input![1])?.opType === 'Reshape' ? 4 : q.graph!.initializer!.some((t) => t.name === n.input![1]) ? 32 : 8]));
  assert.deepEqual(bits(quantizeModel(structuredClone(m), { method: 'int4', int4Conv: true }).model), { conv0: 8, conv1: 4, conv2: 4 });
  // A calibration pass excludes layers: the stem is the model's, not a share of what is left (without conv2, conv0 would be 11%).
  assert.deepEqual(bits(quantizeModel(structuredClone(m), { method: 'int4', int4Conv: true, excludeNodes: ['conv2'] }).model), { conv0: 8, conv1: 4, conv2: 32 });
});

test('weights reached through Transpose, Cast and Reshape are folded and quantized; nothing off the weight paths changes', async () => {
  const r = rng(3);
  const w1 = Array.from({ length: 8 * 16 }, () => r() - 0.5);
  const w2 = Array.from({ length: 16 * 8 }, () => r() - 0.5);
  const half = { name: 'w2_half', dims: [16, 8], dataType: onnx.TensorProto.DataType.FLOAT16, rawData: new Uint8Array(Uint16Array.from(w2, float32ToFloat16Bits).buffer) };
  const m = model({
    name: 'exported', opset: 13, inputs: [valueInfo('x', F32, [2, 16])], outputs: [valueInfo('y', F32, [2, 16]), valueInfo('t', F32, [16, 8])],
    initializers: [floatTensor('w1', [8, 16], w1), half, int64Tensor('flat', [2], [8, -1])],
    nodes: [
      // torch's nn.Linear with constant folding off: x · Transpose(W) with W [out, in].
      node('Transpose', ['w1'], ['w1_t'], { perm: [1, 0] }, 't1'),
      node('MatMul', ['x', 'w1_t'], ['h'], {}, 'fc1'),
      // A float16 weight cast up and reshaped on its way to the MatMul.
      node('Cast', ['w2_half'], ['w2_f'], { to: F32 }, 'cast'),
      node('Reshape', ['w2_f', 'flat'], ['w2_r'], {}, 'reshape'),
      node('Relu', ['h'], ['hr'], {}, 'relu'),
      node('MatMul', ['hr', 'w2_r'], ['y'], {}, 'fc2'),
      // Off any weight path: a graph output that is a Transpose of a weight stays as it is.
      node('Transpose', ['w1'], ['t'], { perm: [1, 0] }, 'out_t'),
    ],
  });
  const { model: q, report } = quantizeModel(m, { method: 'int8-dynamic' });
  assert.equal(report.foldedWeightPaths, 3);
  assert.deepEqual(report.nodes.map((n) => [n.node, n.action]), [['fc1', 'quantized'], ['fc2', 'quantized']]);
  assert.ok(q.graph!.node!.some((n) => n.name === 'out_t'), 'the graph output keeps its Transpose');
  const feeds = { x: new ort.Tensor('float32', Float32Array.from({ length: 32 }, () => r() - 0.5), [2, 16]) };
  const want = await (await ort.InferenceSession.create(encodeModel(m))).run(feeds);
  const got = await (await ort.InferenceSession.create(encodeModel(q))).run(feeds);
  for (const k of ['y', 't']) {
    const a = want[k]!.data as Float32Array;
    const b = got[k]!.data as Float32Array;
    const cos = a.reduce((s, v, i) => s + v * b[i]!, 0) / Math.sqrt(a.reduce((s, v) => s + v * v, 0) * b.reduce((s, v) => s + v * v, 0));
    assert.ok(cos > 0.999, `${k}: cosine ${cos}`);
  }
});

test('an int8 matrix also stored transposed (a tied embedding and LM head) is stored once, the copy a Transpose', () => {
  const a = Int8Array.of(1, 2, 3, 4, 5, 6);
  const g = model({
    name: 'tied', inputs: [], outputs: [], nodes: [],
    initializers: [makeTensor('table', DT.INT8, [2, 3], a), makeTensor('head', DT.INT8, [3, 2], Int8Array.of(1, 4, 2, 5, 3, 6)), makeTensor('near', DT.INT8, [3, 2], Int8Array.of(1, 4, 2, 5, 3, 7))],
  }).graph!;
  assert.equal(dedupeTransposedInt8(g), 1);
  assert.deepEqual(g.initializer!.map((t) => t.name), ['head', 'near']);
  assert.deepEqual(g.node!.map((n) => [n.opType, n.input, n.output]), [['Transpose', ['head'], ['table']]]);
});

test('int4 output layers: a small head keeps 8-bit weights (run as written), a large one or int4Head takes 4; layers behind weightless nodes count', async () => {
  // x [1, 256] → fc1 (256×256) → Relu → head (256×classes) → Identity → y: the head is the output layer
  // though a node stands between it and the output.
  const mlp = (classes: number) => {
    const r = rng(7);
    const layer = (rows: number, cols: number) => Float32Array.from({ length: rows * cols }, () => r() * 2 - 1);
    return model({
      name: 'mlp', opset: 17, inputs: [valueInfo('x', F32, [1, 256])], outputs: [valueInfo('y', F32, [1, classes])],
      initializers: [floatTensor('w1', [256, 256], layer(256, 256)), floatTensor('w2', [256, classes], layer(256, classes))],
      nodes: [node('MatMul', ['x', 'w1'], ['h'], {}, 'fc1'), node('Relu', ['h'], ['a'], {}, 'relu'), node('MatMul', ['a', 'w2'], ['z'], {}, 'head'), node('Identity', ['z'], ['y'], {}, 'out')],
    });
  };
  const ops = (m: onnx.IModelProto) => (m.graph!.node ?? []).map((n) => n.opType).join(' ');
  // 256×10 is 3.8% of the weights: 8 bits, restored at load, read by a plain MatMul.
  const small = quantizeModel(mlp(10), { method: 'int4' }).model;
  assert.equal(ops(small), 'MatMulNBits Relu Cast Mul MatMul Identity');
  const fourBitHead = quantizeModel(mlp(10), { method: 'int4', int4Head: true }).model;
  assert.equal(ops(fourBitHead), 'MatMulNBits Relu MatMulNBits Identity');
  // 256×64 is 20%: 4 bits like the rest.
  assert.equal(ops(quantizeModel(mlp(64), { method: 'int4' }).model), 'MatMulNBits Relu MatMulNBits Identity');
  // The 8-bit head holds int8 values per output column at scale absmax / 127.
  const w2 = floatValues(mlp(10).graph!.initializer![1]!);
  const g = small.graph!;
  const q8 = g.initializer!.find((t) => t.dataType === DT.INT8)!;
  const scales = floatValues(g.initializer!.find((t) => t.name === g.node!.find((n) => n.opType === 'Mul')!.input![1])!);
  const ints = Int8Array.from(q8.rawData!, (b) => (b << 24) >> 24);
  for (let c = 0; c < 10; c++) {
    let absmax = 0;
    for (let k = 0; k < 256; k++) absmax = Math.max(absmax, Math.abs(w2[k * 10 + c]!));
    assert.ok(Math.abs(scales[c]! - absmax / 127) < 1e-7, `column ${c}: scale ${scales[c]} vs ${absmax / 127}`);
    for (let k = 0; k < 256; k++) assert.ok(Math.abs(ints[k * 10 + c]! * scales[c]! - w2[k * 10 + c]!) <= scales[c]! / 2 + 1e-6);
  }
  // onnxruntime runs it, closer to fp32 than with the 4-bit head.
  const x = { x: new ort.Tensor('float32', Float32Array.from({ length: 256 }, (_, i) => Math.sin(i)), [1, 256]) };
  const run = async (m: onnx.IModelProto) => (await (await ort.InferenceSession.create(encodeModel(m))).run(x)).y!.data as Float32Array;
  const [ref, eight, four] = [await run(mlp(10)), await run(small), await run(fourBitHead)];
  const dist = (a: Float32Array) => Math.sqrt(a.reduce((s, v, i) => s + (v - ref[i]!) ** 2, 0));
  assert.ok(dist(eight) < dist(four), `8-bit head ${dist(eight)} vs 4-bit ${dist(four)}`);
});

test('IR 10 metadata (per node, graph, value) survives decode, encode and quantization: a torch.export model keeps its 799 node entries where nodes stay', async () => {
  const file = path.join(__dirname, '../fixtures/models/text-transformer.dynamo.onnx');
  const m = decodeModel(readFileSync(file));
  const g = m.graph!;
  const count = (xs: Array<{ metadataProps?: unknown[] | null }> | null | undefined) => (xs ?? []).reduce((s, x) => s + (x.metadataProps?.length ?? 0), 0);
  // The figures Python's onnx reads from the same file.
  assert.deepEqual([count(g.node), g.metadataProps?.length, count([...(g.valueInfo ?? []), ...(g.input ?? []), ...(g.output ?? [])])], [799, 2, 61]);
  const again = decodeModel(encodeModel(m));
  assert.deepEqual((again.graph!.node ?? []).map((n) => n.metadataProps ?? []), (g.node ?? []).map((n) => n.metadataProps ?? []));
  assert.deepEqual(again.graph!.metadataProps, g.metadataProps);
  assert.equal(count(again.graph!.valueInfo), count(g.valueInfo));
  // Quantized, the nodes it leaves alone keep theirs; replacements carry none (as onnxruntime's quantizer).
  const { model: q, report } = quantizeModel(m, { method: 'int4' });
  const replaced = new Set(report.nodes.filter((n) => n.action === 'quantized').map((n) => n.node));
  const kept = (g.node ?? []).filter((n) => !replaced.has(nodeKey(n)));
  const byName = new Map((q.graph!.node ?? []).map((n) => [n.name, n]));
  assert.ok(kept.length > 100 && kept.every((n) => JSON.stringify(byName.get(n.name)?.metadataProps) === JSON.stringify(n.metadataProps)));
  assert.ok((q.graph!.node ?? []).filter((n) => n.opType === 'MatMulNBits').every((n) => !n.metadataProps));
  await ort.InferenceSession.create(encodeModel(q));
});

test('golden JSONL carries int32 and int64 inputs through a round trip, and refuses values their type cannot hold, by line and input', async () => {
  const sample = { inputs: { bytes: { dims: [1, 3], data: Int32Array.from([0, 255, 256]) }, ids: { dims: [2], data: BigInt64Array.from([5n, 7n]) }, x: { dims: [1], data: Float32Array.from([0.5]) } } };
  const [back] = parseGoldenJsonl(goldenToJsonl([sample]));
  assert.deepEqual(back!.inputs, sample.inputs);
  const feeds = feedsOf(back!);
  assert.deepEqual([feeds.bytes!.type, feeds.ids!.type, feeds.x!.type], ['int32', 'int64', 'float32']);
  assert.throws(() => parseGoldenJsonl('{"bytes": {"dims": [1], "data": [1.5], "type": "int32"}}'), /line 1: input bytes is int32 but holds a value that is not an integer/);
  assert.throws(() => parseGoldenJsonl('{"bytes": {"dims": [1], "data": [4294967296], "type": "int32"}}'), /line 1: input bytes is int32 but holds a value outside its range/);
  assert.throws(() => parseGoldenJsonl('{"bytes": {"dims": [1], "data": [1], "type": "uint8"}}'), /use "float32" \(the default\), "int64" \(token ids\) or "int32"/);
});

test('int8-static --min-cosine: the nodes that cost most agreement are kept float, named with the reason, until the target; rankSensitiveNodes ranks the same nodes for int8-static', async () => {
  const f = await cnnModel();
  const calib = fixtureGolden(f, 32, { seed: 7 });
  const golden = fixtureGolden(f, 100);
  const plain = await quantizeModelStatic(decodeModel(f.onnx), { method: 'int8-static' }, () => calib, { method: 'auto' });
  const { start, gains } = await rankSensitiveNodes(decodeModel(f.onnx), { method: 'int8-static' }, () => calib);
  const weighted = plain.report.nodes.filter((n) => n.action === 'quantized' && ['Conv', 'Gemm', 'MatMul'].includes(n.op)).map((n) => n.node);
  assert.deepEqual(gains.map((g) => g.node).sort(), weighted.sort());
  assert.ok(start < 1 && gains[0]!.gain > 0, `start ${start}, best gain ${gains[0]!.gain}`);
  const target = start + 0.5 * gains[0]!.gain;
  const seen: number[] = [];
  const { model: q, report } = await quantizeModelStatic(decodeModel(f.onnx), { method: 'int8-static' }, () => calib, { method: 'auto' }, { minCosine: target, maxFloat: 2, progress: (e) => seen.push(e) });
  const s = report.sensitivity!;
  assert.ok(s.met && s.reached >= target && s.kept.length >= 1 && s.kept.length <= 2, JSON.stringify(s));
  assert.equal(s.start, start);
  assert.equal(seen.at(-1), s.evaluations);
  for (const k of s.kept) assert.match(report.nodes.find((n) => n.node === k.node && n.action === 'kept')?.reason ?? '', /kept float by the sensitivity search/);
  // An Add or Relu chosen only with a node now float leaves QDQ with it.
  assert.ok(report.quantized <= plain.report.quantized - s.kept.length);
  // Judged on samples it was not scored on, the result is no further from fp32 than the plain one.
  const [a, b] = [await evaluateCandidate(f.onnx, encodeModel(plain.model), golden, { runs: 1 }), await evaluateCandidate(f.onnx, encodeModel(q), golden, { runs: 1 })];
  assert.ok(b.cosine.mean >= a.cosine.mean, `${b.cosine.mean} vs ${a.cosine.mean}`);
});

test('an output of one value a sample is judged by its relative error, not by a cosine that is only its sign, in evaluation and in agreementOn alike', async () => {
  const r = rng(22);
  const w = Array.from({ length: 8 }, () => r() - 0.5);
  const scorer = (weights: number[]): onnx.IModelProto => model({
    name: 'score', opset: 13, inputs: [valueInfo('x', F32, [1, 8])], outputs: [valueInfo('p', F32, [1, 1])],
    initializers: [floatTensor('w', [8, 1], weights)], nodes: [node('MatMul', ['x', 'w'], ['p'], {}, 'score')],
  });
  const golden = Array.from({ length: 10 }, () => ({ inputs: { x: { dims: [1, 8], data: Float32Array.from({ length: 8 }, () => r() - 0.5) } } }));
  const [reference, drifted] = [scorer(w), scorer(w.map((v) => v * 1.1))];
  const m = await evaluateCandidate(encodeModel(reference), encodeModel(drifted), golden, { runs: 1 });
  // Every score is 10% off: 1 − 0.1 by the stream's relative L2, where each sample's cosine is 1.
  assert.ok(Math.abs(m.cosine.mean - 0.9) < 1e-4, JSON.stringify(m.cosine));
  assert.ok(m.cosine.min < m.cosine.mean, JSON.stringify(m.cosine));
  const [againstDrifted, againstItself] = await agreementOn(reference, [drifted, reference], () => golden);
  assert.deepEqual([againstDrifted!.toFixed(4), againstItself], [m.cosine.mean.toFixed(4), 1]);
  const labels = model({
    name: 'labels', opset: 13, inputs: [valueInfo('x', F32, [1, 8])], outputs: [valueInfo('k', onnx.TensorProto.DataType.INT64, [1])],
    initializers: [], nodes: [node('ArgMax', ['x'], ['k'], { axis: 1, keepdims: 0 }, 'pick')],
  });
  await assert.rejects(evaluateCandidate(encodeModel(labels), encodeModel(labels), golden, { runs: 1 }), /no float output to compare by cosine; name one with --output-name/);
  // A label output first (as some classifier exports have it): top-1 and max-abs are read on the first float one.
  const labelFirst = (weights: number[]): onnx.IModelProto => model({
    name: 'label-first', opset: 13, inputs: [valueInfo('x', F32, [1, 8])], outputs: [valueInfo('k', onnx.TensorProto.DataType.INT64, [1]), valueInfo('scores', F32, [1, 2])],
    initializers: [floatTensor('w2', [8, 2], weights)], nodes: [node('MatMul', ['x', 'w2'], ['scores'], {}, 'head'), node('ArgMax', ['scores'], ['k'], { axis: 1, keepdims: 0 }, 'pick')],
  });
  const w2 = Array.from({ length: 16 }, () => r() - 0.5);
  const picked = await evaluateCandidate(encodeModel(labelFirst(w2)), encodeModel(labelFirst(w2.map((v) => v * 1.01))), golden, { runs: 1 });
  assert.equal(picked.output, 'scores');
  assert.ok(picked.maxAbsError > 0 && picked.top1Agreement === 1, JSON.stringify(picked));
  await assert.rejects(evaluateCandidate(encodeModel(labelFirst(w2)), encodeModel(labelFirst(w2)), golden, { runs: 1, output: 'k' }), /output k is int64, not float; name a float output with --output-name/);
});

test('an option passed as undefined keeps its default (reduceRange: undefined is not full range)', async () => {
  const f = await mlpModel();
  for (const method of ['int8-dynamic', 'int4'] as const) {
    const plain = encodeModel(quantizeModel(decodeModel(f.onnx), { method }).model);
    const spelled = encodeModel(quantizeModel(decodeModel(f.onnx), { method, reduceRange: undefined, perChannel: undefined, symmetric: undefined }).model);
    assert.deepEqual(Buffer.from(spelled), Buffer.from(plain), method);
  }
  assert.notDeepEqual(Buffer.from(encodeModel(quantizeModel(decodeModel(f.onnx), { method: 'int8-dynamic', reduceRange: false }).model)), Buffer.from(encodeModel(quantizeModel(decodeModel(f.onnx), { method: 'int8-dynamic' }).model)));
});

test('every float output is judged, the weakest counting: a two-headed model whose second head drifts scores that head, in evaluation and in the agreement GPTQ keeps or rounds by', async () => {
  const r = rng(21);
  const values = (n: number, noise = 0): number[] => Array.from({ length: n }, () => r() - 0.5 + noise * (r() - 0.5));
  const [w1, w2] = [values(8 * 4), values(8 * 4)];
  const heads = (second: number[]): onnx.IModelProto => model({
    name: 'two-heads', opset: 13, inputs: [valueInfo('x', F32, [1, 8])], outputs: [valueInfo('scores', F32, [1, 4]), valueInfo('boxes', F32, [1, 4])],
    initializers: [floatTensor('w1', [8, 4], w1), floatTensor('w2', [8, 4], second)],
    nodes: [node('MatMul', ['x', 'w1'], ['scores'], {}, 'head1'), node('MatMul', ['x', 'w2'], ['boxes'], {}, 'head2')],
  });
  const reference = heads(w2);
  const drifted = heads(w2.map((v, i) => (i % 3 === 0 ? -v : v)));
  const golden = Array.from({ length: 6 }, () => ({ inputs: { x: { dims: [1, 8], data: Float32Array.from(values(8)) } } }));
  const m = await evaluateCandidate(encodeModel(reference), encodeModel(drifted), golden, { runs: 1 });
  assert.equal(m.output, 'scores');
  assert.equal(m.outputs!.scores!.mean, 1);
  assert.ok(m.outputs!.boxes!.mean < 0.9, JSON.stringify(m.outputs));
  assert.deepEqual(m.cosine, m.outputs!.boxes);
  // One output named: that one alone.
  const first = await evaluateCandidate(encodeModel(reference), encodeModel(drifted), golden, { runs: 1, output: 'scores' });
  assert.deepEqual([first.cosine.mean, first.outputs], [1, undefined]);
  const [againstDrifted, againstItself] = await agreementOn(reference, [drifted, reference], () => golden);
  assert.ok(againstDrifted! < 0.9 && againstItself === 1, `${againstDrifted} ${againstItself}`);
});

test('ConvTranspose weights are quantized weight-only per output channel (4-bit blocks with int4Conv), and a weight no quantizer takes is named with the reason', async () => {
  const r = rng(23);
  const values = (n: number): number[] => Array.from({ length: n }, () => r() - 0.5);
  const decoder = model({
    name: 'decoder', opset: 17, inputs: [valueInfo('x', F32, [1, 8, 6, 6])], outputs: [valueInfo('y', F32, [1, 8, 26, 26])],
    initializers: [floatTensor('up', [8, 32, 3, 3], values(8 * 32 * 9)), floatTensor('pos', [1, 32, 13, 13], values(32 * 169)), floatTensor('grouped', [32, 4, 2, 2], values(32 * 16))],
    nodes: [
      node('ConvTranspose', ['x', 'up'], ['u'], { strides: [2, 2] }, 'up'),
      node('Add', ['u', 'pos'], ['p'], {}, 'position'),
      node('ConvTranspose', ['p', 'grouped'], ['y'], { strides: [2, 2], group: 2 }, 'grouped_up'),
    ],
  });
  const golden = Array.from({ length: 4 }, () => ({ inputs: { x: { dims: [1, 8, 6, 6], data: Float32Array.from(values(288)) } } }));
  const ratios: number[] = [];
  for (const [options, floor] of [[{ method: 'int8-dynamic' }, 0.999], [{ method: 'int4' }, 0.999], [{ method: 'int4', int4Conv: true }, 0.99]] as const) {
    const { model: q, report } = quantizeModel(decodeModel(encodeModel(decoder)), options);
    const label = JSON.stringify(options);
    assert.deepEqual(report.nodes.filter((n) => n.action === 'quantized').map((n) => n.node), ['up', 'grouped_up'], label);
    assert.deepEqual(report.nodes.filter((n) => n.action === 'kept').map((n) => [n.node, n.reason]), [['position', `no ${options.method} quantizer for Add: its weight pos (5408 values) stays float`]], label);
    // 4-bit blocks of the 288 weights an input channel feeds: the model raised to opset 21 for the int4 Cast.
    const fourBit = q.graph!.initializer!.some((t) => t.dataType === 22);
    assert.equal(fourBit, 'int4Conv' in options, label);
    const m = await evaluateCandidate(encodeModel(decoder), encodeModel(q), golden, { runs: 1 });
    assert.ok(m.cosine.mean >= floor, `${label}: cosine ${m.cosine.mean}`);
    ratios.push(m.bytes!.ratio);
  }
  // The float position table is most of what is left: 0.76 of the file with 8-bit ConvTranspose weights, less with 4-bit.
  assert.ok(ratios[0]! < 0.8 && ratios[2]! < ratios[0]! - 0.02, JSON.stringify(ratios));
});

test('an evaluation whose model stops making progress is stopped by its watchdog and reported as crashed, not waited on', async () => {
  // A Loop of a billion additions: onnxruntime runs it for as good as ever, as a hung kernel would.
  const body: onnx.IGraphProto = {
    name: 'spin', input: [valueInfo('i', onnx.TensorProto.DataType.INT64, []), valueInfo('c', onnx.TensorProto.DataType.BOOL, []), valueInfo('v', F32, [1])],
    output: [valueInfo('c_out', onnx.TensorProto.DataType.BOOL, []), valueInfo('v_out', F32, [1])],
    initializer: [floatTensor('one', [1], [1])],
    node: [node('Identity', ['c'], ['c_out']), node('Add', ['v', 'one'], ['v_out'])],
  };
  const spin = model({
    name: 'spin', opset: 13, inputs: [valueInfo('x', F32, [1])], outputs: [valueInfo('y', F32, [1])],
    initializers: [int64Tensor('trips', [], [1e9]), { name: 'yes', dataType: onnx.TensorProto.DataType.BOOL, dims: [], int32Data: [1] }],
    nodes: [node('Loop', ['trips', 'yes', 'x'], ['y'], {}, 'spin')],
  });
  spin.graph!.node![0]!.attribute = [{ name: 'body', type: onnx.AttributeProto.AttributeType.GRAPH, g: body }];
  const golden = goldenToJsonl([{ inputs: { x: { dims: [1], data: Float32Array.of(0) } } }]);
  const t0 = Date.now();
  await assert.rejects(evaluateIsolated(encodeModel(spin), encodeModel(spin), golden, { runs: 1, stallMs: 4000 }), (e: Error) => e instanceof OnnxruntimeCrashed && /onnxruntime stopped responding loading or running the model \(no sample finished in 4 s\)/.test(e.message));
  assert.ok(Date.now() - t0 < 30_000, `${Date.now() - t0} ms`);
});
