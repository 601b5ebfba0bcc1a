import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { readFileSync } from 'node:fs';
import { decodeModel, encodeModel } from '../../src/onnx/proto';
import { quantizeModel, quantizeModelStatic } from '../../src/quantize/quantize-model';
import { evaluateCandidate } from '../../src/quantize/evaluate';
import type { Method } from '../../src/quantize/types';
import { TORCH_MODELS, TORCH_MODELS_DIR } from '../fixtures/torch-models';

// Models as torch exports them (test/fixtures/models/export.py): weights behind Transpose and Identity
// aliases, one weight shared by every layer, embeddings (tied to the LM head in bert-tied), Gemm with transB.
// Ceilings on the whole file, floors on the mean cosine with fp32 on inputs like the models' own.
const CEILING: Record<Method, number> = { 'int8-dynamic': 0.45, 'int8-static': 0.45, int4: 0.33, fp16: 0.56 };
const FLOOR: Record<Method, number> = { 'int8-dynamic': 0.999, 'int8-static': 0.99, int4: 0.99, fp16: 0.9999 };

for (const c of TORCH_MODELS) {
  test(`${c.file}: every weight is quantized, the file shrinks, the outputs stay close`, async (t) => {
    const bytes = readFileSync(path.join(TORCH_MODELS_DIR, c.file));
    const golden = c.golden();
    for (const method of ['int8-dynamic', 'int8-static', 'int4', 'fp16'] as Method[]) {
      const { model, report } = method === 'int8-static'
        ? await quantizeModelStatic(decodeModel(bytes), { method }, () => golden, { method: 'minmax' })
        : quantizeModel(decodeModel(bytes), { method });
      const m = await evaluateCandidate(bytes, encodeModel(model), golden, { runs: 1 });
      const kept = report.nodes.filter((n) => n.action === 'kept');
      t.diagnostic(`${c.file} ${method}: ${report.quantized} nodes (${report.foldedWeightPaths} weight paths folded), file ×${m.bytes!.ratio.toFixed(3)}, cosine ${m.cosine.mean.toFixed(5)}; kept: ${[...new Set(kept.map((k) => `${k.op} (${k.reason})`))].join('; ') || 'none'}`);
      // What stays float is attention's activation × activation products, never a weight.
      for (const k of kept) assert.ok(k.op === 'MatMul' && /not a constant/.test(k.reason ?? '') || method === 'int8-static', `${k.node}: ${k.reason}`);
      assert.ok(m.bytes!.ratio <= CEILING[method], `${method} file ×${m.bytes!.ratio}`);
      assert.ok(m.cosine.mean >= FLOOR[method], `${method} cosine ${m.cosine.mean}`);
      // The tied table is stored once: the LM head's int8 weight is a Transpose of the embedding's rows.
      if (c.file.startsWith('bert-tied') && method === 'int8-dynamic') assert.ok(model.graph!.node!.some((n) => n.opType === 'Transpose' && model.graph!.initializer!.some((t) => t.name === n.input![0] && t.dataType === 3)), 'tied table stored twice');
    }
  });
}
