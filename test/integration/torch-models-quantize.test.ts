import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { readFileSync } from 'node:fs';
import { decodeModel, encodeModel } from '../../src/onnx/proto';
import { quantizeModel, quantizeModelCalibrated, quantizeModelStatic } from '../../src/quantize/quantize-model';
import { evaluateCandidate, goldenToJsonl, parseGoldenJsonl } from '../../src/quantize/evaluate';
import { OnnxruntimeCrashed, evaluateIsolated } from '../../src/quantize/evaluate-isolated';
import { QuantizeError, type Method } from '../../src/quantize/types';
import { TORCH_MODELS, TORCH_MODELS_DIR } from '../fixtures/torch-models';

// Models as torch exports them (test/fixtures/models/export.py): weights behind Transpose and Identity
// aliases, one weight shared by every layer, embeddings (tied to the LM head in bert-tied), Gemm with transB.
// Ceilings on the whole file (plus the share of it that is IR 10 metadata, which stays as written: 19–22% of
// the torch.export files), floors on the mean cosine with fp32 on inputs like the models' own.
const CEILING: Record<Method, number> = { 'int8-dynamic': 0.45, 'int8-static': 0.45, int4: 0.33, fp16: 0.56 };
const FLOOR: Record<Method, number> = { 'int8-dynamic': 0.999, 'int8-static': 0.99, int4: 0.99, fp16: 0.9999 };

for (const c of TORCH_MODELS) {
  test(`${c.file}: every weight is quantized, the file shrinks, the outputs stay close`, async (t) => {
    const bytes = readFileSync(path.join(TORCH_MODELS_DIR, c.file));
    const golden = c.golden();
    const bare = decodeModel(bytes);
    for (const n of bare.graph!.node ?? []) n.metadataProps = null;
    bare.graph!.metadataProps = null;
    for (const v of [...(bare.graph!.valueInfo ?? []), ...(bare.graph!.input ?? []), ...(bare.graph!.output ?? [])]) v.metadataProps = null;
    const metadataShare = 1 - encodeModel(bare).length / encodeModel(decodeModel(bytes)).length;
    for (const method of ['int8-dynamic', 'int8-static', 'int4', 'fp16'] as Method[]) {
      const { model, report } = method === 'int8-static'
        ? await quantizeModelStatic(decodeModel(bytes), { method }, () => golden, { method: 'minmax' })
        : quantizeModel(decodeModel(bytes), { method });
      const m = await evaluateCandidate(bytes, encodeModel(model), golden, { runs: 1 });
      const kept = report.nodes.filter((n) => n.action === 'kept');
      t.diagnostic(`${c.file} ${method}: ${report.quantized} nodes (${report.foldedWeightPaths} weight paths folded), file ×${m.bytes!.ratio.toFixed(3)}, cosine ${m.cosine.mean.toFixed(5)}; kept: ${[...new Set(kept.map((k) => `${k.op} (${k.reason})`))].join('; ') || 'none'}`);
      // What stays float is attention's activation × activation products, never a weight (fp16 notes a
      // Loop it converted inside, its edges kept fp32).
      for (const k of kept) assert.ok(k.op === 'MatMul' && /not a constant/.test(k.reason ?? '') || method === 'int8-static' || (method === 'fp16' && k.op === 'Loop' && /converted inside/.test(k.reason ?? '')), `${k.node}: ${k.reason}`);
      // The looped RNN's cell is inside its Loop: int8-static reaches it as the others do (calibrated over every iteration).
      if (c.file === 'loop-rnn.onnx' && method !== 'fp16') assert.deepEqual(report.nodes.filter((n) => n.action === 'quantized').map((n) => n.op).sort(), ['Gemm', 'Gemm', 'MatMul'], method);
      // The looped RNN's cell keeps 8 bits under int4 (an error there recurs every iteration; --int4-recurrent).
      const ceiling = c.file === 'loop-rnn.onnx' && method === 'int4' ? CEILING['int8-dynamic'] : CEILING[method];
      assert.ok(m.bytes!.ratio <= ceiling + metadataShare, `${method} file ×${m.bytes!.ratio} (${(metadataShare * 100).toFixed(1)}% of the input is metadata)`);
      assert.ok(m.cosine.mean >= FLOOR[method], `${method} cosine ${m.cosine.mean}`);
      // The tied table is stored once: the LM head's int8 weight is a Transpose of the embedding's rows.
      if (c.file.startsWith('bert-tied') && method === 'int8-dynamic') assert.ok(model.graph!.node!.some((n) => n.opType === 'Transpose' && model.graph!.initializer!.some((t) => t.name === n.input![0] && t.dataType === 3)), 'tied table stored twice');
    }
  });
}

test('int4 calibrated on 32 inputs of a 256-feature MLP does not fit their noise: its first layer\'s Hessian is shrunk, and it stays as close as rounding', async (t) => {
  const c = TORCH_MODELS.find((m) => m.file === 'mlp.onnx')!;
  const bytes = readFileSync(path.join(TORCH_MODELS_DIR, c.file));
  const golden = c.golden();
  const { model, report } = await quantizeModelCalibrated(decodeModel(bytes), { method: 'int4' }, () => c.calibration());
  const rounded = quantizeModel(decodeModel(bytes), { method: 'int4' }).model;
  const [g, r] = [await evaluateCandidate(bytes, encodeModel(model), golden, { runs: 1 }), await evaluateCandidate(bytes, encodeModel(rounded), golden, { runs: 1 })];
  t.diagnostic(`mlp.onnx int4: calibrated ${g.cosine.mean.toFixed(5)} (${JSON.stringify(report.gptq)}), rounded ${r.cosine.mean.toFixed(5)}`);
  // Unshrunk, GPTQ made this model worse than rounding (0.9961 against 0.9981) while looking better on its own 32 inputs.
  assert.ok(report.gptq.shrunk >= 1, JSON.stringify(report.gptq));
  assert.ok(g.cosine.mean >= r.cosine.mean - 0.0005, `calibrated ${g.cosine.mean} vs rounded ${r.cosine.mean}`);
});

test('int4 calibrated on the TorchScript text transformer, whose four layers share one set of weights: each shared weight solved against all the inputs it multiplies', async (t) => {
  const c = TORCH_MODELS.find((m) => m.file === 'text-transformer.onnx')!;
  const { report } = await quantizeModelCalibrated(decodeModel(readFileSync(path.join(TORCH_MODELS_DIR, c.file))), { method: 'int4' }, () => c.calibration());
  t.diagnostic(`text-transformer.onnx int4 calibrated: ${JSON.stringify(report.gptq)}`);
  // Solved for their first user alone, the shared weights fitted layer 0 and the model was further from fp32
  // than rounding on these very inputs (0.9954 against 0.9968), so rounding came out.
  assert.equal(report.gptq.used, true);
  assert.ok(report.gptq.calibrationCosine.gptq > report.gptq.calibrationCosine.rounded, JSON.stringify(report.gptq));
});

test('a candidate is evaluated in a process of its own: the trained pet classifier at fp16 crashes onnxruntime here, and that is a OnnxruntimeCrashed, not a dead worker', async (t) => {
  const bytes = readFileSync(path.join(TORCH_MODELS_DIR, 'pet-classifier.onnx'));
  const golden = goldenToJsonl([{ inputs: { ids: { dims: [1, 32], data: BigInt64Array.from({ length: 32 }, (_, i) => BigInt(i < 6 ? [2, 9, 40, 7, 33, 3][i]! : 0)) } } }]);
  // Isolated, a sound candidate gives what the in-process evaluation gives.
  const int8 = encodeModel(quantizeModel(decodeModel(bytes), { method: 'int8-dynamic' }).model);
  const isolated = await evaluateIsolated(bytes, int8, golden, { runs: 1 });
  const inProcess = await evaluateCandidate(bytes, int8, parseGoldenJsonl(golden), { runs: 1 });
  assert.equal(isolated.cosine.mean, inProcess.cosine.mean);
  assert.equal(isolated.top1Agreement, 1);
  // fp16 puts a Transpose (perm 1,0,2) before an fp16 MatMul with a constant weight, which onnxruntime's
  // CPU optimizer (NchwcTransformer, level "all") segfaults on — on this machine's onnxruntime; where it
  // does not, the candidate simply evaluates.
  const fp16 = encodeModel(quantizeModel(decodeModel(bytes), { method: 'fp16' }).model);
  const outcome = await evaluateIsolated(bytes, fp16, golden, { runs: 1 }).then((m) => `cosine ${m.cosine.mean.toFixed(4)}`, (e: Error) => e);
  t.diagnostic(`pet-classifier fp16: ${String(outcome)}`);
  if (outcome instanceof Error) assert.ok(outcome instanceof OnnxruntimeCrashed && /onnxruntime crashed \(SIGSEGV\)/.test(outcome.message), String(outcome));
  // A bad request stays an ordinary error, with its message.
  await assert.rejects(evaluateIsolated(bytes, int8, ''), (e: Error) => e instanceof QuantizeError && /no golden samples/.test(e.message));
});

test('torch.export\'s node metadata (stack traces, FX nodes) stays unless dropNodeMetadata, which leaves the model\'s own', () => {
  const bytes = readFileSync(path.join(TORCH_MODELS_DIR, 'text-transformer.dynamo.onnx'));
  const kept = quantizeModel(decodeModel(bytes), { method: 'int4' });
  const dropped = quantizeModel(decodeModel(bytes), { method: 'int4', dropNodeMetadata: true });
  assert.ok(kept.report.nodeMetadataBytes > 0.1 * kept.report.modelBytes.after, `${kept.report.nodeMetadataBytes} of ${kept.report.modelBytes.after}`);
  assert.equal(dropped.report.nodeMetadataBytes, 0);
  assert.ok(dropped.report.modelBytes.after < kept.report.modelBytes.after - 0.9 * kept.report.nodeMetadataBytes, `${dropped.report.modelBytes.after} against ${kept.report.modelBytes.after}`);
  assert.deepEqual(dropped.model.metadataProps.map((p) => p.key), kept.model.metadataProps.map((p) => p.key));
});
