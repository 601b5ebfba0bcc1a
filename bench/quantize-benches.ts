import { cnnModel, fixtureGolden, mlpModel, transformerModel, type FixtureModel } from '../src/onnx/fixture-models';
import { decodeModel, encodeModel } from '../src/onnx/proto';
import { quantizeModel, quantizeModelStatic } from '../src/quantize/quantize-model';
import { evaluateCandidate } from '../src/quantize/evaluate';
import type { Method } from '../src/quantize/types';

/** Size targets of the quantized weights relative to their fp32 bytes (issue 6). */
const TARGET: Partial<Record<Method, number>> = { 'int8-dynamic': 0.27, 'int8-static': 0.27, int4: 0.16 };

/**
 * Per model and method: quantization time, the replaced weights' size ratio against its target, and the
 * median single-sample CPU latency of the quantized model vs the fp32 model, measured in the same run
 * (with top-1 agreement and cosine so a fast but wrong candidate shows).
 */
export async function quantizeBenches(): Promise<void> {
  const models: FixtureModel[] = [
    await mlpModel(), await cnnModel(), await transformerModel(),
    // Big enough that the matrix products, not the per-node overhead, dominate the latency.
    { ...(await mlpModel(7, { input: 1024, hidden1: 4096, hidden2: 1024 })), name: 'mlp-large' },
  ];
  for (const f of models) {
    const golden = fixtureGolden(f, 50);
    const calibration = fixtureGolden(f, 64, { seed: 7 });
    for (const method of ['int8-dynamic', 'int8-static', 'fp16', 'int4'] as Method[]) {
      const t0 = process.hrtime.bigint();
      // int8-static: min-max calibration on 64 samples other than the golden ones, included in the time.
      const { model, report } = method === 'int8-static'
        ? await quantizeModelStatic(decodeModel(f.onnx), { method }, () => calibration, { method: 'minmax' })
        : quantizeModel(decodeModel(f.onnx), { method });
      const quantizeMs = Number(process.hrtime.bigint() - t0) / 1e6;
      const m = await evaluateCandidate(f.onnx, encodeModel(model), golden, { runs: 50 });
      const target = TARGET[method];
      console.log(JSON.stringify({
        bench: 'quantize', model: f.name, method, fp32WeightBytes: report.quantizedWeights.before, quantizeMs: +quantizeMs.toFixed(1),
        weightRatio: +report.quantizedWeights.ratio.toFixed(4), fileRatio: +m.bytes!.ratio.toFixed(4),
        ...(target ? { target, meetsTarget: report.quantizedWeights.ratio <= target } : {}),
        baseline: 'fp32 model, same golden input, same run', latencyMs: +m.latencyMs.candidate.toFixed(4), baselineLatencyMs: +m.latencyMs.reference.toFixed(4),
        latencyRatio: +m.latencyMs.ratio.toFixed(3), top1Agreement: m.top1Agreement, cosine: +m.cosine.mean.toFixed(5),
      }));
    }
  }
}
