import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { F32, floatTensor, I64, int64Tensor, model, node, valueInfo } from '../../src/onnx/build';
import { allGraphs, attr, compactNames, GraphIndex, moveInitializersIntoSubgraphs, removeUnusedInitializers, topologicalSort } from '../../src/onnx/graph';
import { sliceValues } from '../../src/onnx/fold-weights';
import { encodeModel, onnx } from '../../src/onnx/proto';
import { loadError, type GoldenSample } from '../../src/quantize/evaluate';
import { cosine } from '../../src/quantize/agreement';
import { analyzeModel, quantizeModel, quantizeModelCalibrated, quantizeModelStatic } from '../../src/quantize/quantize-model';
import { NOT_CALIBRATED } from '../../src/quantize/types';
import { inlineBranches } from '../../src/onnx/inline-branches';
import { branchGroups } from '../../src/quantize/calibrate';
import { exposeLoopValues } from '../../src/onnx/loop-values';

const BOOL = onnx.TensorProto.DataType.BOOL;
const G = onnx.AttributeProto.AttributeType.GRAPH;

function rng(seed: number): () => number {
  let s = seed;
  return () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
}

const [seq, input, hidden] = [5, 32, 16];

/**
 * silero-vad's shape in small: the main graph holds the weights, an If's branches read them. Each branch
 * runs an LSTM whose W and R are Slices of a torch-ordered weight put back in ONNX's gate order by a Concat
 * and an Unsqueeze (torch's LSTM export), and a MatMul by a weight only that branch reads.
 */
function branchModel(): onnx.IModelProto {
  const r = rng(3);
  const values = (n: number): number[] => Array.from({ length: n }, () => (r() - 0.5) * 0.6);
  const branch = (tag: string, matmulWeight: string): onnx.IGraphProto => {
    const gates = (w: string, out: string): onnx.INodeProto[] => [
      node('Slice', [w, `${tag}.s0`, `${tag}.s1`, `${tag}.axis0`], [`${out}.a`]),
      node('Slice', [w, `${tag}.s1`, `${tag}.s2`, `${tag}.axis0`], [`${out}.b`]),
      node('Concat', [`${out}.b`, `${out}.a`], [`${out}.c`], { axis: 0 }),
      node('Unsqueeze', [`${out}.c`, `${tag}.axis0`], [out]),
    ];
    return {
      name: tag,
      initializer: [int64Tensor(`${tag}.s0`, [1], [0]), int64Tensor(`${tag}.s1`, [1], [2 * hidden]), int64Tensor(`${tag}.s2`, [1], [4 * hidden]), int64Tensor(`${tag}.axis0`, [1], [0])],
      input: [],
      output: [valueInfo(`${tag}.h`, F32, ['a', 'b', 'c']), valueInfo(`${tag}.z`, F32, ['a', 'b', 'c'])],
      node: [
        ...gates('w_ih', `${tag}.W`), ...gates('w_hh', `${tag}.R`),
        node('LSTM', ['x', `${tag}.W`, `${tag}.R`], [`${tag}.y`, `${tag}.h`], { hidden_size: hidden }, `${tag}.lstm`),
        node('MatMul', ['x', matmulWeight], [`${tag}.z`], {}, `${tag}.matmul`),
      ],
    };
  };
  const m = model({
    name: 'branches', opset: 13,
    inputs: [valueInfo('x', F32, [seq, 1, input]), valueInfo('cond', BOOL, [])],
    outputs: [valueInfo('h', F32, ['a', 'b', 'c']), valueInfo('z', F32, ['a', 'b', 'c'])],
    initializers: [floatTensor('w_ih', [4 * hidden, input], values(4 * hidden * input)), floatTensor('w_hh', [4 * hidden, hidden], values(4 * hidden * hidden)), floatTensor('m_then', [input, 64], values(input * 64)), floatTensor('m_else', [input, 64], values(input * 64))],
    nodes: [node('If', ['cond'], ['h', 'z'], {}, 'if')],
  });
  m.graph!.node![0]!.attribute = [{ name: 'then_branch', type: G, g: branch('then', 'm_then') }, { name: 'else_branch', type: G, g: branch('else', 'm_else') }];
  return m;
}

async function run(m: onnx.IModelProto, x: Float32Array, cond: boolean): Promise<Float32Array[]> {
  const s = await ort.InferenceSession.create(encodeModel(m));
  const out = await s.run({ x: new ort.Tensor('float32', x, [seq, 1, input]), cond: new ort.Tensor('bool', [cond], []) });
  await s.release();
  return [out.h!.data as Float32Array, out.z!.data as Float32Array];
}

test('a weight only a subgraph reads is used: kept, its reader known, its producer sorted first', () => {
  const m = branchModel();
  const g = m.graph!;
  assert.deepEqual(removeUnusedInitializers(g), [], 'the main graph\'s weights are read by the If\'s branches alone');
  const index = new GraphIndex(g);
  assert.deepEqual(index.consumers.get('w_ih')?.map((n) => n.name), ['if']);
  // A value made after the If in node order but read inside it: the If must come later.
  g.node = [g.node![0]!, node('Identity', ['w_ih'], ['late'], {}, 'late')];
  g.node[0]!.attribute![0]!.g!.node![0]!.input![0] = 'late';
  assert.deepEqual(topologicalSort(g).map((n) => n.name), ['late', 'if']);
  // Read by one branch only: moved into it; read by both: stays.
  const fresh = branchModel();
  assert.equal(moveInitializersIntoSubgraphs(fresh.graph!), 2);
  assert.deepEqual(fresh.graph!.initializer!.map((t) => t.name), ['w_ih', 'w_hh']);
});

test('weights inside If branches are quantized there: LSTM weights through Slice, Concat and Unsqueeze of the main graph\'s, MatMuls; the result loads and agrees', async () => {
  const m = branchModel();
  const x = Float32Array.from({ length: seq * input }, (_, i) => Math.sin(i / 3));
  for (const method of ['int8-dynamic', 'int4'] as const) {
    const { model: q, report } = quantizeModel(m, { method });
    assert.deepEqual(report.nodes.map((n) => `${n.node} ${n.action}`).sort(), ['else.lstm quantized', 'else.matmul quantized', 'then.lstm quantized', 'then.matmul quantized']);
    assert.equal(await loadError(encodeModel(q)), undefined);
    // No float weight is left anywhere: the main graph's went into the branches and were quantized there.
    const floats = allGraphs(q.graph!).flatMap((g) => g.initializer ?? []).filter((t) => t.dataType === F32 && (t.dims ?? []).map(Number).reduce((a, b) => a * b, 1) > 64).map((t) => t.name!);
    assert.deepEqual(floats, []);
    // Both branches quantized the same LSTM weights: stored once, in the graph around them.
    const int8 = (g: onnx.IGraphProto): string[] => (g.initializer ?? []).filter((t) => t.dataType === onnx.TensorProto.DataType.INT8).map((t) => t.name!);
    assert.equal(int8(q.graph!).length, 2, `main graph: ${int8(q.graph!).join(', ')}`);
    assert.ok(report.modelBytes.ratio < 0.6, `${method}: ×${report.modelBytes.ratio}`);
    for (const cond of [true, false]) {
      const [ref, got] = [await run(m, x, cond), await run(q, x, cond)];
      // The LSTMs keep 8-bit weights under int4 too; the MatMuls take 4 bits there.
      for (const i of [0, 1]) assert.ok(cosine(ref[i]!, got[i]!) > (method === 'int4' && i === 1 ? 0.99 : 0.999), `${method} cond ${cond} output ${i}: ${cosine(ref[i]!, got[i]!)}`);
    }
  }
});

/** branchModel with the condition from the data, as silero-vad's come from its sample rate and state: x's first value > 0. */
function dataBranchModel(): onnx.IModelProto {
  const m = branchModel();
  m.graph!.input = m.graph!.input!.filter((v) => v.name !== 'cond');
  m.graph!.initializer = [...m.graph!.initializer!, floatTensor('zero', [], [0]), int64Tensor('first', [1], [0])];
  m.graph!.node = [node('Flatten', ['x'], ['flat'], { axis: 0 }, 'flat'), node('Gather', ['flat', 'first'], ['x0'], { axis: 1 }, 'x0'), node('Greater', ['x0', 'zero'], ['gt'], {}, 'gt'), node('Squeeze', ['gt'], ['cond'], {}, 'cond'), ...m.graph!.node!];
  return m;
}

const x = (seed: number): Float32Array => Float32Array.from({ length: seq * input }, (_, i) => Math.sin(i / 3 + seed));
const feed = (seed: number): GoldenSample => ({ inputs: { x: { dims: [seq, 1, input], data: x(seed) } } });

test('int8-static calibrates the If branches its samples take, and says what none took; GPTQ says what it leaves to rounding; analyze offers what applies', async () => {
  await assert.rejects(quantizeModelStatic(branchModel(), { method: 'int8-static' }, () => [], { method: 'minmax' }), /int8-static finds nothing to calibrate: no node it quantizes reads a constant weight outside If branches the calibration samples do not take/);
  // Samples of one side calibrate that branch alone: the other's MatMul stays float, and says why.
  const m = dataBranchModel();
  const one = await quantizeModelStatic(m, { method: 'int8-static' }, () => [feed(0.5), feed(1)], { method: 'minmax' });
  assert.deepEqual(one.report.nodes.filter((n) => n.op === 'MatMul').map((n) => `${n.node} ${n.action}${n.reason ? `: ${n.reason}` : ''}`).sort(), [`else.matmul kept: ${NOT_CALIBRATED}`, 'then.matmul quantized']);
  const both = await quantizeModelStatic(m, { method: 'int8-static' }, () => [0.5, 4, 1, 4.5].map(feed), { method: 'minmax' });
  assert.deepEqual(both.report.nodes.filter((n) => n.op === 'MatMul' && n.action === 'quantized').map((n) => n.node).sort(), ['else.matmul', 'then.matmul']);
  for (const [seed, side] of [[1, 'then_branch'], [4, 'else_branch']] as const) {
    const outputs = async (model: onnx.IModelProto) => (await (await ort.InferenceSession.create(encodeModel(model))).run({ x: new ort.Tensor('float32', x(seed), [seq, 1, input]) })).z!.data as Float32Array;
    const [ref, got] = [await outputs(m), await outputs(both.model)];
    assert.ok(cosine(ref, got) > 0.999, `${side}: ${cosine(ref, got)}`);
    // Q/DQ pairs inside the branch, around its MatMul.
    const branch = attr(both.model.graph!.node!.find((n) => n.opType === 'If')!, side)!.g!;
    assert.ok((branch.node ?? []).some((n) => n.opType === 'QuantizeLinear'), `${side}: no QuantizeLinear in the branch`);
  }
  const calibrated = await quantizeModelCalibrated(branchModel(), { method: 'int4' }, () => []);
  assert.deepEqual([calibrated.report.gptq.layers, calibrated.report.gptq.roundedInBodies, calibrated.report.quantized], [0, 4, 4]);
  assert.deepEqual(analyzeModel(branchModel()).applicable.sort(), ['fp16', 'int4', 'int8-dynamic', 'int8-static']);
});

test('GPTQ reaches into If branches: the samples grouped by the branch they take, each branch inlined into a copy calibrated on its group', async () => {
  const m = dataBranchModel();
  const positive = [0.5, 1, 1.5, 2].map(feed); // sin(seed) > 0
  const mixed = [0.5, 4, 1, 4.5].map(feed); // sin(4) < 0
  // Which branch each If takes on the samples, and the model with it inlined computes what the If did.
  const sides = async (samples: typeof positive) => (await branchGroups(m, () => samples)).map((g) => [[...g.taken], g.indices]);
  assert.deepEqual(await sides(positive), [[[['if', true]], [0, 1, 2, 3]]]);
  assert.deepEqual((await sides(mixed)).sort(), [[[['if', false]], [1, 3]], [[['if', true]], [0, 2]]]);
  const inlined = inlineBranches(m, new Map([['if', true]]));
  assert.ok(!inlined.graph!.node!.some((n) => n.opType === 'If'));
  const outputs = async (model: onnx.IModelProto) => Object.values(await (await ort.InferenceSession.create(encodeModel(model))).run({ x: new ort.Tensor('float32', x(1), [seq, 1, input]) })).map((t) => t.data as Float32Array);
  const [a, b] = [await outputs(m), await outputs(inlined)];
  a.forEach((v, i) => assert.deepEqual(b[i], v));
  // GPTQ solves the taken branch's MatMul; the other branch's two nodes are out of its reach (LSTMs are
  // never GPTQ's, wherever they are). Samples taking both branches reach both.
  const fitted = (await quantizeModelCalibrated(m, { method: 'int4' }, () => positive)).report.gptq;
  assert.deepEqual([fitted.layers, fitted.roundedInBodies], [1, 2]);
  const split = (await quantizeModelCalibrated(m, { method: 'int4' }, () => mixed)).report.gptq;
  assert.deepEqual([split.layers, split.roundedInBodies], [2, 0]);
});

/** Relative error of `got` against `want`, at worst. */
function worstRelative(want: Float32Array, got: Float32Array): number {
  let worst = 0;
  want.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - got[i]!) / (Math.abs(v) + 0.05))));
  return worst;
}

test('fp16 converts inside If branches: what a branch reads from around it (a computed value, a weight of both branches, one of the main graph\'s) reaches it, loads and agrees', async () => {
  const r = rng(11);
  const values = (n: number): number[] => Array.from({ length: n }, () => r() - 0.5);
  const branch = (name: string, nodes: onnx.INodeProto[]): onnx.IGraphProto => ({ name, input: [], output: [valueInfo(`${name}.y`, F32, [2, 8])], initializer: [], node: nodes });
  const m = model({
    name: 'if16', opset: 13, inputs: [valueInfo('x', F32, [2, 8]), valueInfo('cond', BOOL, [])], outputs: [valueInfo('out', F32, [2, 8])],
    initializers: [floatTensor('w_both', [8, 8], values(64)), floatTensor('w_then', [8, 8], values(64)), floatTensor('b', [8], values(8))],
    nodes: [node('Tanh', ['x'], ['t'], {}, 'tanh'), node('If', ['cond'], ['y'], {}, 'if'), node('Add', ['y', 'b'], ['out'], {}, 'add')],
  });
  m.graph!.node![1]!.attribute = [
    { name: 'then_branch', type: G, g: branch('then', [node('MatMul', ['t', 'w_then'], ['then.a'], {}, 'then.mm1'), node('MatMul', ['x', 'w_both'], ['then.b'], {}, 'then.mm2'), node('Add', ['then.a', 'then.b'], ['then.y'], {}, 'then.add')]) },
    { name: 'else_branch', type: G, g: branch('else', [node('MatMul', ['t', 'w_both'], ['else.a'], {}, 'else.mm'), node('Add', ['else.a', 'b'], ['else.y'], {}, 'else.add')]) },
  ];
  const { model: q, report } = quantizeModel(m, { method: 'fp16' });
  assert.equal(await loadError(encodeModel(q)), undefined);
  assert.deepEqual(report.nodes.filter((n) => n.action === 'kept').map((n) => `${n.node}: ${n.reason}`), ['if: holds subgraphs: converted inside them, fp32 at their edges']);
  assert.deepEqual(report.nodes.filter((n) => n.action === 'quantized').map((n) => n.node).sort(), ['add', 'else.add', 'else.mm', 'tanh', 'then.add', 'then.mm1', 'then.mm2']);
  // Every weight is stored once, in float16; the one the then-branch alone reads lives there.
  const weights = allGraphs(q.graph!).flatMap((g) => (g.initializer ?? []).map((t) => `${g.name ?? 'main'}:${t.name}:${t.dataType}`)).filter((w) => /w_|:b:/.test(w));
  assert.deepEqual(weights.sort(), ['if16:b:10', 'if16:w_both:10', 'then:w_then:10']);
  const x = Float32Array.from(values(16), (v) => v * 3);
  for (const cond of [true, false]) {
    const feeds = { x: new ort.Tensor('float32', x, [2, 8]), cond: new ort.Tensor('bool', [cond], []) };
    const [want, got] = [(await (await ort.InferenceSession.create(encodeModel(m))).run(feeds)).out!.data as Float32Array, (await (await ort.InferenceSession.create(encodeModel(q))).run(feeds)).out!.data as Float32Array];
    assert.ok(worstRelative(want, got) < 5e-3, `cond ${cond}: ${worstRelative(want, got)}`);
  }
});

test('fp16 converts inside a Loop body: carried state and scan outputs in fp32 at its edges, a main-graph weight read from inside', async () => {
  const r = rng(12);
  const values = (n: number): number[] => Array.from({ length: n }, () => r() - 0.5);
  const m = loopModel(r);
  const { model: q } = quantizeModel(m, { method: 'fp16' });
  assert.equal(await loadError(encodeModel(q)), undefined);
  const feeds = { h0: new ort.Tensor('float32', Float32Array.from(values(8)), [1, 8]), n: new ort.Tensor('int64', BigInt64Array.of(6n), []) };
  const [want, got] = [await (await ort.InferenceSession.create(encodeModel(m))).run(feeds), await (await ort.InferenceSession.create(encodeModel(q))).run(feeds)];
  assert.deepEqual(got.hs!.dims, [6, 1, 8]);
  // tanh states in (-1, 1), six steps of float16 (a step is ≈ 1e-3 near 1): compared absolutely.
  for (const k of ['h_last', 'hs']) {
    const [a, b] = [want[k]!.data as Float32Array, got[k]!.data as Float32Array];
    const worst = a.reduce((w, v, i) => Math.max(w, Math.abs(v - b[i]!)), 0);
    assert.ok(worst < 4e-3 && worst > 0, `${k}: ${worst}`);
  }
  // The body computes in float16: its weight and bias are halved, not kept twice.
  const floats = allGraphs(q.graph!).flatMap((g) => g.initializer ?? []).filter((t) => t.dataType === F32);
  assert.deepEqual(floats.map((t) => t.name), []);
});

test('a folded Slice is onnxruntime\'s Slice: negative bounds, steps, clamping', async () => {
  const dims = [4, 6, 5];
  const x = Float32Array.from({ length: 120 }, (_, i) => i);
  const cases: Array<[number[], number[], number[], number[]]> = [[[1], [-1], [1], [1]], [[5, 0], [-100, 9], [1, 2], [-2, 2]], [[-1, 1], [0, 2 ** 62], [0, 2], [-1, 1]], [[0], [3], [-1], [3]]];
  for (const [starts, ends, axes, steps] of cases) {
    const m = model({
      name: 'slice', opset: 13, inputs: [valueInfo('x', F32, dims)], outputs: [valueInfo('y', F32, ['a', 'b', 'c'])],
      initializers: [int64Tensor('starts', [starts.length], starts), int64Tensor('ends', [ends.length], ends), int64Tensor('axes', [axes.length], axes), int64Tensor('steps', [steps.length], steps)],
      nodes: [node('Slice', ['x', 'starts', 'ends', 'axes', 'steps'], ['y'])],
    });
    const s = await ort.InferenceSession.create(encodeModel(m));
    const y = (await s.run({ x: new ort.Tensor('float32', x, dims) })).y!;
    const got = sliceValues(x, dims, starts, ends, axes, steps);
    assert.deepEqual(got.dims, y.dims.map(Number), JSON.stringify([starts, ends, axes, steps]));
    assert.deepEqual(Array.from(got.values), Array.from(y.data as Float32Array));
  }
});

test('loadError says why onnxruntime refuses a model, and nothing for one it loads', async () => {
  const ok = model({ name: 'id', inputs: [valueInfo('x', F32, [1])], outputs: [valueInfo('y', F32, [1])], initializers: [], nodes: [node('Identity', ['x'], ['y'])] });
  assert.equal(await loadError(encodeModel(ok)), undefined);
  const dangling = model({ name: 'id', inputs: [valueInfo('x', F32, [1])], outputs: [valueInfo('y', F32, [1])], initializers: [], nodes: [node('Add', ['x', 'gone'], ['y'])] });
  assert.match((await loadError(encodeModel(dangling)))!, /gone/);
});

test('GRU and RNN weights (bidirectional too) are weight-only int8 per gate unit: a quarter of the bytes, the same outputs within int8', async () => {
  const r = rng(9);
  const values = (n: number): number[] => Array.from({ length: n }, () => (r() - 0.5) * 0.5);
  const [steps, features, units] = [6, 24, 20];
  const x = Float32Array.from({ length: steps * features }, (_, i) => Math.cos(i / 5));
  for (const [op, gates, directions] of [['GRU', 3, 1], ['RNN', 1, 2], ['LSTM', 4, 2]] as const) {
    const m = model({
      name: op, opset: 14, inputs: [valueInfo('x', F32, [steps, 1, features])], outputs: [valueInfo('y', F32, ['a', 'b', 'c', 'd'])],
      initializers: [floatTensor('W', [directions, gates * units, features], values(directions * gates * units * features)), floatTensor('R', [directions, gates * units, units], values(directions * gates * units * units))],
      nodes: [node(op, ['x', 'W', 'R'], ['y'], { hidden_size: units, ...(directions === 2 ? { direction: 'bidirectional' } : {}) }, op)],
    });
    const { model: q, report } = quantizeModel(m, { method: 'int8-dynamic' });
    assert.deepEqual(report.nodes, [{ node: op, op, action: 'quantized' }]);
    assert.ok(report.quantizedWeights.ratio < 0.3, `${op}: weights ×${report.quantizedWeights.ratio}`);
    const run1 = async (mm: onnx.IModelProto): Promise<Float32Array> => {
      const s = await ort.InferenceSession.create(encodeModel(mm));
      const y = (await s.run({ x: new ort.Tensor('float32', x, [steps, 1, features]) })).y!.data as Float32Array;
      await s.release();
      return y;
    };
    const c = cosine(await run1(m), await run1(q));
    assert.ok(c > 0.9999, `${op}: cosine ${c}`);
    // int8-static takes them the same way, beside what it calibrates (a MatMul after them here).
    const withHead = structuredClone(m);
    withHead.graph!.initializer!.push(floatTensor('head', [units, 4], values(units * 4)));
    withHead.graph!.node!.push(node('MatMul', ['y', 'head'], ['z'], {}, 'head'));
    withHead.graph!.output = [valueInfo('z', F32, ['a', 'b', 'c', 4])];
    const calibration = [{ inputs: { x: { dims: [steps, 1, features], data: x } } }];
    const s = await quantizeModelStatic(withHead, { method: 'int8-static' }, () => calibration, { method: 'minmax' });
    assert.deepEqual(s.report.nodes.map((n) => `${n.node} ${n.action}`), [`${op} quantized`, 'head quantized']);
    assert.equal(await loadError(encodeModel(s.model)), undefined);
  }
});

test('--compact-names renames every value and node inside the If\'s bodies too, one map across them, keeping the graph\'s inputs and outputs; the model computes the same', async () => {
  const m = branchModel();
  const x = Float32Array.from({ length: seq * input }, (_, i) => Math.sin(i / 3));
  const plain = quantizeModel(m, { method: 'int4' });
  const short = quantizeModel(m, { method: 'int4', compactNames: true });
  assert.ok(short.report.modelBytes.after < plain.report.modelBytes.after);
  const g = short.model.graph!;
  assert.deepEqual([...g.input!.map((v) => v.name), ...g.output!.map((v) => v.name)], ['x', 'cond', 'h', 'z']);
  const names = allGraphs(g).flatMap((x) => [...(x.initializer ?? []).map((t) => t.name!), ...(x.node ?? []).flatMap((n) => [...(n.input ?? []), ...(n.output ?? [])]), ...(x.output ?? []).map((v) => v.name!)]).filter((n) => n);
  const inner = names.filter((n) => !['x', 'cond', 'h', 'z'].includes(n));
  assert.ok(inner.every((n) => /^[0-9a-z]{1,2}$/.test(n)), inner.join(' '));
  assert.ok(allGraphs(g).every((x) => (x.node ?? []).every((n) => !n.name)));
  for (const cond of [true, false]) {
    const [a, b] = [await run(plain.model, x, cond), await run(short.model, x, cond)];
    for (const i of [0, 1]) assert.deepEqual(b[i], a[i]);
  }
  // Ids that would be a kept name are skipped: a graph whose input is '0' and output '1'.
  const tiny = model({ name: 't', opset: 13, inputs: [valueInfo('0', F32, [2])], outputs: [valueInfo('1', F32, [2])], initializers: [], nodes: [node('Relu', ['0'], ['/a/Relu_output_0'], {}, '/a/Relu'), node('Neg', ['/a/Relu_output_0'], ['/a/Neg_output_0'], {}, '/a/Neg'), node('Abs', ['/a/Neg_output_0'], ['1'], {}, '/a/Abs')] });
  compactNames(tiny.graph!);
  assert.deepEqual(tiny.graph!.node!.map((n) => [n.name, ...n.input!, ...n.output!]), [['', '0', '2'], ['', '2', '3'], ['', '3', '1']]);
});

/** An RNN cell in a Loop, as a scripted torch loop exports: the body reads a main-graph weight `w` (and `loopModel` its own bias). */
function loopModel(r: () => number): onnx.IModelProto {
  const values = (n: number): number[] => Array.from({ length: n }, () => r() - 0.5);
  const body: onnx.IGraphProto = {
    name: 'body',
    input: [valueInfo('i', I64, []), valueInfo('c', BOOL, []), valueInfo('h', F32, [1, 8])],
    output: [valueInfo('c_out', BOOL, []), valueInfo('h_out', F32, [1, 8]), valueInfo('h_scan', F32, [1, 8])],
    initializer: [floatTensor('bias', [8], values(8))],
    node: [node('Identity', ['c'], ['c_out']), node('MatMul', ['h', 'w'], ['hw'], {}, 'body.mm'), node('Add', ['hw', 'bias'], ['pre'], {}, 'body.add'), node('Tanh', ['pre'], ['h_out'], {}, 'body.tanh'), node('Identity', ['h_out'], ['h_scan'], {}, 'body.scan')],
  };
  const m = model({
    name: 'loop', opset: 13, inputs: [valueInfo('h0', F32, [1, 8]), valueInfo('n', I64, [])], outputs: [valueInfo('h_last', F32, [1, 8]), valueInfo('hs', F32, ['n', 1, 8])],
    initializers: [floatTensor('w', [8, 8], values(64).map((v) => v * 1.5)), { name: 'yes', dataType: BOOL, dims: [], int32Data: [1] }],
    nodes: [node('Loop', ['n', 'yes', 'h0'], ['h_last', 'hs'], {}, 'loop')],
  });
  m.graph!.node![0]!.attribute = [{ name: 'body', type: G, g: body }];
  return m;
}

test('a Loop body\'s values are fetched stacked over its iterations (a carried input through an Identity), and its own outputs stay as they were', async () => {
  const r = rng(31);
  const m = loopModel(r);
  const { model: exposed, fetched } = exposeLoopValues(m, new Set(['pre', 'h', 'not-there']));
  assert.deepEqual([...fetched.values()].sort(), ['h', 'pre']);
  const h0 = Float32Array.from({ length: 8 }, () => r() - 0.5);
  const out = await (await ort.InferenceSession.create(encodeModel(exposed))).run({ h0: new ort.Tensor('float32', h0, [1, 8]), n: new ort.Tensor('int64', BigInt64Array.of(5n), []) });
  const byValue = Object.fromEntries([...fetched].map(([o, v]) => [v, out[o]!]));
  assert.deepEqual([byValue.pre!.dims, byValue.h!.dims], [[5, 1, 8], [5, 1, 8]]);
  const [pre, h, hs] = [byValue.pre!.data as Float32Array, byValue.h!.data as Float32Array, out.hs!.data as Float32Array];
  // Iteration k reads h_k (h0, then the states the Loop emitted) and computes pre_k, whose tanh is h_(k+1).
  assert.deepEqual(Array.from(h.slice(0, 8)), Array.from(h0));
  for (let k = 1; k < 5; k++) assert.deepEqual(Array.from(h.slice(8 * k, 8 * k + 8)), Array.from(hs.slice(8 * (k - 1), 8 * k)));
  for (let j = 0; j < 40; j++) assert.ok(Math.abs(Math.tanh(pre[j]!) - hs[j]!) < 1e-6);
  assert.deepEqual(out.h_last!.data, (await (await ort.InferenceSession.create(encodeModel(m))).run({ h0: new ort.Tensor('float32', h0, [1, 8]), n: new ort.Tensor('int64', BigInt64Array.of(5n), []) })).h_last!.data);
});

test('int8-static calibrates inside a Loop body over every iteration and puts its MatMul in QDQ there; a body whose values change shape each iteration stays float, NOT_CALIBRATED', async () => {
  const r = rng(32);
  const m = loopModel(r);
  const sample = (): GoldenSample => ({ inputs: { h0: { dims: [1, 8], data: Float32Array.from({ length: 8 }, () => r() - 0.5) }, n: { dims: [], data: BigInt64Array.of(6n) } } });
  const [cal, held] = [Array.from({ length: 8 }, sample), Array.from({ length: 8 }, sample)];
  const { model: q, report } = await quantizeModelStatic(m, { method: 'int8-static' }, () => cal, { method: 'minmax' });
  // Its bias Add too, on the MatMul's product (QLinearAdd after QLinearMatMul, as in the main graph).
  assert.deepEqual(report.nodes.map((n) => [n.node, n.action]), [['body.mm', 'quantized'], ['body.add', 'quantized']]);
  const body = attr(q.graph!.node!.find((n) => n.opType === 'Loop')!, 'body')!.g!;
  assert.ok(body.node!.some((n) => n.opType === 'QuantizeLinear') && body.node!.some((n) => n.opType === 'DequantizeLinear'));
  const [a, b] = [await ort.InferenceSession.create(encodeModel(m)), await ort.InferenceSession.create(encodeModel(q))];
  for (const s of held) {
    const feeds = { h0: new ort.Tensor('float32', s.inputs.h0!.data as Float32Array, [1, 8]), n: new ort.Tensor('int64', BigInt64Array.of(6n), []) };
    const [x, y] = [await a.run(feeds), await b.run(feeds)];
    assert.ok(cosine(x.hs!.data as Float32Array, y.hs!.data as Float32Array) > 0.999);
  }

  // A carried sequence that grows a step each iteration: its MatMul's output cannot be stacked.
  const grow: onnx.IGraphProto = {
    name: 'grow',
    input: [valueInfo('i', I64, []), valueInfo('c', BOOL, []), valueInfo('s', F32, [1, 't', 8])],
    output: [valueInfo('c_out', BOOL, []), valueInfo('s_out', F32, [1, 't1', 8])],
    initializer: [int64Tensor('last.start', [1], [-1]), int64Tensor('last.end', [1], [1_000_000]), int64Tensor('last.axis', [1], [1])],
    node: [node('Identity', ['c'], ['c_out']), node('MatMul', ['s', 'w'], ['y'], {}, 'grow.mm'), node('Slice', ['y', 'last.start', 'last.end', 'last.axis'], ['last']), node('Tanh', ['last'], ['next']), node('Concat', ['s', 'next'], ['s_out'], { axis: 1 })],
  };
  const g = model({
    name: 'growing', opset: 13, inputs: [valueInfo('s0', F32, [1, 1, 8]), valueInfo('n', I64, [])], outputs: [valueInfo('out', F32, [1, 'k', 8])],
    initializers: [floatTensor('w', [8, 8], Array.from({ length: 64 }, () => r() - 0.5)), floatTensor('w2', [8, 8], Array.from({ length: 64 }, () => r() - 0.5)), { name: 'yes', dataType: BOOL, dims: [], int32Data: [1] }],
    nodes: [node('Loop', ['n', 'yes', 's0'], ['s_last'], {}, 'loop'), node('MatMul', ['s_last', 'w2'], ['out'], {}, 'after')],
  });
  g.graph!.node![0]!.attribute = [{ name: 'body', type: G, g: grow }];
  const seqs = Array.from({ length: 4 }, (): GoldenSample => ({ inputs: { s0: { dims: [1, 1, 8], data: Float32Array.from({ length: 8 }, () => r() - 0.5) }, n: { dims: [], data: BigInt64Array.of(4n) } } }));
  const grown = await quantizeModelStatic(g, { method: 'int8-static' }, () => seqs, { method: 'minmax' });
  assert.deepEqual(grown.report.nodes.map((n) => [n.node, n.action, n.reason ?? '']), [['after', 'quantized', ''], ['grow.mm', 'kept', NOT_CALIBRATED]]);
});

test('int4 keeps 8-bit weights inside a Loop body, as for an LSTM\'s, unless int4Recurrent', async () => {
  const m = loopModel(rng(34));
  const bodyOps = (q: onnx.IModelProto): string[] => attr(q.graph!.node!.find((n) => n.opType === 'Loop')!, 'body')!.g!.node!.map((n) => n.opType!);
  const eight = quantizeModel(m, { method: 'int4' }).model;
  assert.ok(!bodyOps(eight).includes('MatMulNBits') && bodyOps(eight).includes('MatMul'), bodyOps(eight).join());
  const four = quantizeModel(m, { method: 'int4', int4Recurrent: true }).model;
  assert.ok(bodyOps(four).includes('MatMulNBits'), bodyOps(four).join());
  for (const q of [eight, four]) assert.equal(await loadError(encodeModel(q)), undefined);
});

test('a Scan body\'s value is fetched stacked too, its scan_output_axes extended for the new output', async () => {
  const r = rng(33);
  const w = Array.from({ length: 16 }, () => r() - 0.5);
  const body: onnx.IGraphProto = {
    name: 'scan_body',
    input: [valueInfo('s', F32, [1, 4]), valueInfo('x_t', F32, [1, 4])],
    output: [valueInfo('s_out', F32, [1, 4]), valueInfo('y_t', F32, [1, 4])],
    node: [node('MatMul', ['x_t', 'w'], ['xw'], {}, 'scan.mm'), node('Add', ['s', 'xw'], ['s_out']), node('Identity', ['s_out'], ['y_t'])],
  };
  const m = model({
    name: 'scan', opset: 16, inputs: [valueInfo('s0', F32, [1, 4]), valueInfo('xs', F32, [3, 1, 4])], outputs: [valueInfo('s_last', F32, [1, 4]), valueInfo('ys', F32, [3, 1, 4])],
    initializers: [floatTensor('w', [4, 4], w)],
    nodes: [node('Scan', ['s0', 'xs'], ['s_last', 'ys'], { num_scan_inputs: 1, scan_output_axes: [0] }, 'scan')],
  });
  m.graph!.node![0]!.attribute!.push({ name: 'body', type: G, g: body });
  const { model: exposed, fetched } = exposeLoopValues(m, new Set(['xw']));
  assert.deepEqual(attr(exposed.graph!.node![0]!, 'scan_output_axes')!.ints!.map(Number), [0, 0]);
  const xs = Float32Array.from({ length: 12 }, () => r() - 0.5);
  const out = await (await ort.InferenceSession.create(encodeModel(exposed))).run({ s0: new ort.Tensor('float32', new Float32Array(4), [1, 4]), xs: new ort.Tensor('float32', xs, [3, 1, 4]) });
  const [stacked] = [...fetched.keys()];
  assert.deepEqual(out[stacked!]!.dims, [3, 1, 4]);
  const xw = out[stacked!]!.data as Float32Array;
  for (let t = 0; t < 3; t++) for (let j = 0; j < 4; j++) {
    const want = [0, 1, 2, 3].reduce((acc, k) => acc + xs[4 * t + k]! * w[4 * k + j]!, 0);
    assert.ok(Math.abs(xw[4 * t + j]! - want) < 1e-5, `${t},${j}`);
  }
});
