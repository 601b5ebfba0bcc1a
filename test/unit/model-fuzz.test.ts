/**
 * Models damaged the ways real files are (a node or initializer missing, dims that do not match the data,
 * truncated raw data, a dangling input, wild attributes, an unknown opset or data type, NaN weights, a cycle,
 * a value assigned twice), seeded and reproducible. Whatever the damage, quantizing either refuses with a
 * named bad-input error (QuantizeError, OnnxFormatError: never retried by the workflow) or, when onnxruntime
 * loads the damaged model, writes one onnxruntime loads too.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { allGraphs } from '../../src/onnx/graph';
import { cnnModel, mlpModel, rng, transformerModel } from '../../src/onnx/fixture-models';
import { decodeModel, encodeModel, onnx, OnnxFormatError } from '../../src/onnx/proto';
import { loadError } from '../../src/quantize/evaluate';
import { quantizeModel } from '../../src/quantize/quantize-model';
import { QuantizeError, type Method } from '../../src/quantize/types';
import { SILERO_VAD } from '../fixtures/silero-vad';

type Mutation = (m: onnx.IModelProto, r: () => number) => void;
const pick = <T>(xs: T[], r: () => number): T => xs[Math.floor(r() * xs.length)]!;
const anyGraph = (m: onnx.IModelProto, r: () => number): onnx.IGraphProto => pick(allGraphs(m.graph!), r);
const anyInitializer = (m: onnx.IModelProto, r: () => number): onnx.ITensorProto | undefined => {
  const g = anyGraph(m, r);
  return g.initializer?.length ? pick(g.initializer, r) : undefined;
};
const anyNode = (m: onnx.IModelProto, r: () => number): onnx.INodeProto | undefined => {
  const g = anyGraph(m, r);
  return g.node?.length ? pick(g.node, r) : undefined;
};

const MUTATIONS: Record<string, Mutation> = {
  dropNode: (m, r) => { const g = anyGraph(m, r); g.node?.splice(Math.floor(r() * g.node.length), 1); },
  dropInitializer: (m, r) => { const g = anyGraph(m, r); g.initializer?.splice(Math.floor(r() * g.initializer.length), 1); },
  dims: (m, r) => { const t = anyInitializer(m, r); if (t) t.dims = (t.dims ?? []).map((d) => Number(d) + 1); },
  truncateData: (m, r) => { const t = anyInitializer(m, r); if (t?.rawData?.length) t.rawData = t.rawData.subarray(0, Math.floor(t.rawData.length / 2) + 1); },
  danglingInput: (m, r) => { const n = anyNode(m, r); if (n?.input?.length) n.input[Math.floor(r() * n.input.length)] = 'nowhere'; },
  attribute: (m, r) => { const n = anyNode(m, r); for (const a of n?.attribute ?? []) { a.i = -7; a.ints = [-1, 99999]; a.f = NaN; } },
  opset: (m, r) => { m.opsetImport = [{ domain: '', version: pick([1, 5, 8, 99], r) }]; },
  dataType: (m, r) => { const t = anyInitializer(m, r); if (t) t.dataType = pick([0, 2, 7, 8, 10, 16, 99], r); },
  nanWeights: (m, r) => {
    const t = anyGraph(m, r).initializer?.find((x) => x.dataType === onnx.TensorProto.DataType.FLOAT && (x.rawData?.length ?? 0) > 16);
    if (!t) return;
    const f = new Float32Array(Uint8Array.from(t.rawData!).buffer);
    f.fill(NaN, 0, Math.max(1, f.length >> 3));
    f[f.length - 1] = Infinity;
    t.rawData = new Uint8Array(f.buffer);
  },
  cycle: (m) => { const nodes = m.graph!.node!; if (nodes.length > 2) nodes[0]!.input = [...(nodes[0]!.input ?? []), nodes[nodes.length - 1]!.output![0]!]; },
  assignedTwice: (m) => { const nodes = m.graph!.node!; if (nodes.length > 2) nodes[1]!.output = [...nodes[0]!.output!]; },
};

test('damaged models: every one is refused by a named bad-input error, or quantized into a model onnxruntime loads whenever it loaded the damaged one', async (t) => {
  const models: Array<[string, Uint8Array]> = [['mlp', (await mlpModel()).onnx], ['cnn', (await cnnModel()).onnx], ['transformer', (await transformerModel()).onnx], ['silero-vad', readFileSync(SILERO_VAD)]];
  const r = rng(Number(process.env.QCFLOW_FUZZ_SEED ?? 20261201));
  const outcomes: Record<string, number> = {};
  for (let i = 0; i < 160; i++) {
    const [name, bytes] = pick(models, r);
    const kind = pick(Object.keys(MUTATIONS), r);
    const method = pick<Method>(['int8-dynamic', 'int4', 'fp16'], r);
    const damaged = decodeModel(bytes);
    MUTATIONS[kind]!(damaged, r);
    const what = `#${i} ${name}, ${kind}, ${method}`;
    const damagedBytes = encodeModel(damaged);
    let made: Uint8Array;
    try {
      made = encodeModel(quantizeModel(decodeModel(damagedBytes), { method, int4Conv: r() < 0.5 }).model);
    } catch (err) {
      assert.ok(err instanceof QuantizeError || err instanceof OnnxFormatError, `${what}: ${(err as Error).stack}`);
      outcomes[err.name] = (outcomes[err.name] ?? 0) + 1;
      continue;
    }
    const before = await loadError(damagedBytes);
    if (before === undefined) assert.equal(await loadError(made), undefined, what);
    const outcome = before === undefined ? 'quantized, loads' : 'quantized, input did not load';
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
  }
  t.diagnostic(JSON.stringify(outcomes));
  // The damage reaches every path: refusals of both kinds, and models quantized.
  assert.ok((outcomes['quantized, loads'] ?? 0) > 20 && (outcomes.QuantizeError ?? 0) > 0 && (outcomes.OnnxFormatError ?? 0) + (outcomes.TensorDataError ?? 0) > 10, JSON.stringify(outcomes));
});
