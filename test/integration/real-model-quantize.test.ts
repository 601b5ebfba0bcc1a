import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { readModelFile } from '../../src/onnx/io';
import { ASSETS, PADDLE_OCR as CASES } from '../fixtures/paddle-ocr';
import { encodeModel } from '../../src/onnx/proto';
import { constantsToInitializers } from '../../src/onnx/graph';
import { upgradeOpset } from '../../src/onnx/opset-upgrade';
import { quantizeModel, quantizeModelCalibrated, quantizeModelStatic, type QuantizeReport } from '../../src/quantize/quantize-model';
import { evaluateCandidate, type EvaluationMetrics } from '../../src/quantize/evaluate';
import type { Method } from '../../src/quantize/types';


for (const c of CASES) {
  test(`${c.file}: every method quantizes (old opsets raised first), loads and is evaluated in onnxruntime-node`, async (t) => {
    const file = path.join(ASSETS, c.file);
    const golden = await c.golden();
    for (const method of ['int8-static', 'int8-dynamic', 'fp16', 'int4'] as Method[]) {
      // int8-static calibrates on the same rendered text it is judged on: the point here is that it runs.
      const { model, report } = method === 'int8-static'
        ? await quantizeModelStatic(readModelFile(file), { method }, () => golden, { method: 'minmax' })
        : quantizeModel(readModelFile(file), { method });
      assert.ok(report.constantsMoved > 0, 'paddle2onnx stores weights as Constant nodes; they become initializers');
      // paddle2onnx keeps every BatchNormalization (35 in the classifier): folded into their Convs first
      // where weights alone are quantized.
      if (method === 'int8-dynamic' || method === 'int4') assert.equal(report.foldedBatchNorms, { 'ch_ppocr_mobile_v2.0_cls_infer.onnx': 35, 'ch_PP-OCRv4_rec_infer.onnx': 6, 'ch_PP-OCRv4_det_infer.onnx': 2 }[c.file]);
      // The classifier and recogniser import opset 9 and the detector 11: each is raised to what the
      // method's operators need (DynamicQuantizeLinear 11, per-axis QDQ 13), computing what it did.
      if (method.startsWith('int8')) assert.equal(Number(report.opsetUpgrade?.to ?? model.opsetImport[0]!.version), method === 'int8-static' ? 13 : 11);
      const m = await evaluateCandidate(file, encodeModel(model), golden, { runs: 3 });
      t.diagnostic(`${c.file} ${method}: ${report.opsetUpgrade ? `opset ${report.opsetUpgrade.from}→${report.opsetUpgrade.to}, ` : ''}${report.quantized} nodes, weights ×${report.quantizedWeights.ratio.toFixed(3)}, file ×${m.bytes!.ratio.toFixed(3)}, cosine ${m.cosine.mean.toFixed(4)} (worst ${m.cosine.min.toFixed(4)}), latency ×${m.latencyMs.ratio.toFixed(2)}`);
      if (report.quantized === 0) continue;
      // fp16 keeps these models nearly exact, int8 weights (the detector's Convs weight-only) close and 4-bit
      // weights a little less; the recogniser's attention quantizes its activations dynamically (0.979), and
      // its convolutions' 8-bit weights under int4 cost it as much (0.972).
      // int8-static also quantizes every activation, from six text lines: the deep recogniser and detector
      // land at 0.95 (the quantization workflow's search keeps the most sensitive nodes in float to meet a
      // budget). These are floors, not the budget (0.99).
      const floor = { 'int8-dynamic': 0.97, fp16: 0.99, int4: 0.97, 'int8-static': 0.94 }[method];
      assert.ok(m.cosine.mean >= floor, `${method} cosine ${m.cosine.mean} < ${floor}`);
      if (method === 'int8-dynamic') assert.ok(m.bytes!.ratio <= 0.34, `int8-dynamic file ×${m.bytes!.ratio}`);
    }
  });
}

test('the opset-9 PaddleOCR classifier and recogniser, raised to opset 21, compute what they did', async () => {
  for (const c of CASES.slice(0, 2)) {
    const file = path.join(ASSETS, c.file);
    const m = readModelFile(file);
    constantsToInitializers(m.graph!);
    const up = upgradeOpset(m, 21);
    assert.equal(up.from, 9);
    const r = await evaluateCandidate(file, encodeModel(m), await c.golden(), { runs: 1 });
    assert.ok(r.cosine.min > 0.999999, `${c.file}: ${r.cosine.min} (${JSON.stringify(up.rewritten)})`);
  }
});

test('int4 with --int4-conv: the detector in 4-bit blocks is a fifth of its file and keeps 0.97', async (t) => {
  const c = CASES[2]!;
  const file = path.join(ASSETS, c.file);
  const { model, report } = quantizeModel(readModelFile(file), { method: 'int4', int4Conv: true });
  assert.deepEqual(report.opsetUpgrade && [report.opsetUpgrade.from, report.opsetUpgrade.to], [11, 21]);
  const int4 = new Set(model.graph!.initializer!.filter((w) => w.dataType === 22).map((w) => w.name));
  assert.ok(model.graph!.node!.filter((n) => n.opType === 'Cast' && int4.has(n.input![0])).length >= 20, 'Convs read 4-bit blocks');
  const m = await evaluateCandidate(file, encodeModel(model), await c.golden(), { runs: 1 });
  t.diagnostic(`${c.file} int4 + int4Conv: file ×${m.bytes!.ratio.toFixed(3)}, cosine ${m.cosine.mean.toFixed(4)} (worst ${m.cosine.min.toFixed(4)})`);
  assert.ok(m.bytes!.ratio <= 0.2, String(m.bytes!.ratio));
  assert.ok(m.cosine.mean >= 0.97, String(m.cosine.mean));
});

test('int4 with --int4-conv and a calibration set: GPTQ keeps the recogniser at 0.97 in a fifth of its file, where rounding gives 0.89', async (t) => {
  const c = CASES[1]!;
  const file = path.join(ASSETS, c.file);
  const golden = await c.golden();
  // Calibrated on twelve other lines than the six it is judged on.
  const lines = await c.calibration();
  const { model, report } = await quantizeModelCalibrated(readModelFile(file), { method: 'int4', int4Conv: true }, () => lines);
  assert.deepEqual([report.gptq.layers, report.gptq.samples, report.gptq.used], [33, 12, true]);
  const rounded = quantizeModel(readModelFile(file), { method: 'int4', int4Conv: true }).model;
  const [m, r] = [await evaluateCandidate(file, encodeModel(model), golden, { runs: 1 }), await evaluateCandidate(file, encodeModel(rounded), golden, { runs: 1 })];
  t.diagnostic(`${c.file} int4 --int4-conv: GPTQ file ×${m.bytes!.ratio.toFixed(3)} cosine ${m.cosine.mean.toFixed(4)} (worst ${m.cosine.min.toFixed(4)}); rounded ×${r.bytes!.ratio.toFixed(3)} ${r.cosine.mean.toFixed(4)}`);
  assert.equal(m.bytes!.ratio, r.bytes!.ratio);
  assert.ok(m.bytes!.ratio <= 0.2, String(m.bytes!.ratio));
  assert.ok(m.cosine.mean >= 0.97 && m.cosine.mean > r.cosine.mean + 0.05, `GPTQ ${m.cosine.mean}, rounded ${r.cosine.mean}`);
});

test('int8-static corrects its Convs\' biases for the mean shift quantization makes: the detector, calibrated apart from the lines that judge it, agrees better with fp32', async (t) => {
  const c = CASES[2]!;
  const file = path.join(ASSETS, c.file);
  const [golden, lines] = [await c.golden(), await c.calibration()];
  const quantized = async (biasCorrection: boolean): Promise<{ report: QuantizeReport; m: EvaluationMetrics }> => {
    const { model, report } = await quantizeModelStatic(readModelFile(file), { method: 'int8-static' }, () => lines, { method: 'auto', biasCorrection });
    return { report, m: await evaluateCandidate(file, encodeModel(model), golden, { runs: 1 }) };
  };
  const [plain, corrected] = [await quantized(false), await quantized(true)];
  t.diagnostic(`${c.file} int8-static: cosine ${plain.m.cosine.mean.toFixed(4)} (worst ${plain.m.cosine.min.toFixed(4)}) → ${corrected.m.cosine.mean.toFixed(4)} (worst ${corrected.m.cosine.min.toFixed(4)}) with ${corrected.report.biasCorrected} biases corrected`);
  assert.ok(corrected.report.biasCorrected! >= 50, String(corrected.report.biasCorrected));
  // Measured here: 0.975 (worst 0.930) → 0.990 (0.977).
  assert.ok(corrected.m.cosine.mean >= 0.985 && corrected.m.cosine.min > plain.m.cosine.min + 0.02, `${plain.m.cosine.mean}/${plain.m.cosine.min} → ${corrected.m.cosine.mean}/${corrected.m.cosine.min}`);
});
