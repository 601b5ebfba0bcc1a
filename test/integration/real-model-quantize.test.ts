import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import sharp from 'sharp';
import { readModelFile } from '../../src/onnx/io';
import { encodeModel } from '../../src/onnx/proto';
import { quantizeModel } from '../../src/quantize/quantize-model';
import { evaluateCandidate, type GoldenSample } from '../../src/quantize/evaluate';
import { QuantizeError, type Method } from '../../src/quantize/types';
import { REPO } from './helpers';

// Real models shipped in an npm package: PaddleOCR's text direction classifier, recogniser and detector.
// The package exports only an ESM entry point; its assets sit beside it in node_modules.
const ASSETS = path.join(REPO, 'node_modules', '@gutenye', 'ocr-models', 'assets');
const WORDS = ['quality control', 'dataset v3 release', 'Temporal 2026', 'review queue', 'int8 fp16 int4', 'golden outputs'];

/** Rendered text lines, normalised as PaddleOCR expects (the detector: ImageNet mean/std; cls and rec: ±1). */
async function textImages(height: number, width: number, norm: 'imagenet' | 'unit'): Promise<GoldenSample[]> {
  const mean = norm === 'imagenet' ? [0.485, 0.456, 0.406] : [0.5, 0.5, 0.5];
  const std = norm === 'imagenet' ? [0.229, 0.224, 0.225] : [0.5, 0.5, 0.5];
  return Promise.all(WORDS.map(async (w, i) => {
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="100%" height="100%" fill="white"/>`
      + `<text x="${4 + i * 3}" y="${Math.round(height * 0.7)}" font-size="${Math.round(height * 0.5)}" font-family="sans-serif" fill="black">${w}</text></svg>`;
    const { data } = await sharp(Buffer.from(svg)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const x = new Float32Array(3 * height * width);
    for (let c = 0; c < 3; c++) for (let p = 0; p < height * width; p++) x[c * height * width + p] = (data[p * 3 + c]! / 255 - mean[c]!) / std[c]!;
    return { inputs: { x: { dims: [1, 3, height, width], data: x } } };
  }));
}

const CASES = [
  { file: 'ch_ppocr_mobile_v2.0_cls_infer.onnx', golden: () => textImages(48, 192, 'unit') },
  { file: 'ch_PP-OCRv4_rec_infer.onnx', golden: () => textImages(48, 320, 'unit') },
  { file: 'ch_PP-OCRv4_det_infer.onnx', golden: () => textImages(96, 320, 'imagenet') },
];

for (const c of CASES) {
  test(`${c.file}: each applicable method quantizes, loads and is evaluated in onnxruntime-node; the others are refused by name`, async (t) => {
    const file = path.join(ASSETS, c.file);
    const golden = await c.golden();
    for (const method of ['int8-static', 'int8-dynamic', 'fp16', 'int4'] as Method[]) {
      let result;
      try {
        result = quantizeModel(readModelFile(file), { method });
      } catch (err) {
        // The classifier and recogniser are opset 9 and the detector 11: DynamicQuantizeLinear needs 11,
        // per-axis QDQ 13 (checked before anything else, so no calibration set is needed to be refused).
        assert.ok(err instanceof QuantizeError && /needs opset 1[13] or later; the model imports opset (9|11)/.test(err.message), String(err));
        t.diagnostic(`${c.file} ${method}: refused (${err.message})`);
        continue;
      }
      const { model, report } = result;
      assert.ok(report.constantsMoved > 0, 'paddle2onnx stores weights as Constant nodes; they become initializers');
      const m = await evaluateCandidate(file, encodeModel(model), golden, { runs: 3 });
      t.diagnostic(`${c.file} ${method}: ${report.quantized} nodes, weights ×${report.quantizedWeights.ratio.toFixed(3)}, file ×${m.bytes!.ratio.toFixed(3)}, cosine ${m.cosine.mean.toFixed(4)} (worst ${m.cosine.min.toFixed(4)}), latency ×${m.latencyMs.ratio.toFixed(2)}`);
      if (report.quantized === 0) continue;
      // fp16 keeps these models nearly exact, int8 weights (the detector's Convs weight-only) close and 4-bit
      // weights a little less. These are floors, not the budget (0.99).
      const floor = { 'int8-dynamic': 0.99, fp16: 0.99, int4: 0.98, 'int8-static': 0.99 }[method];
      assert.ok(m.cosine.mean >= floor, `${method} cosine ${m.cosine.mean} < ${floor}`);
    }
  });
}
