import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { REPO } from './helpers';
import { SILERO_VAD, speech, speechSteps } from '../fixtures/silero-vad';
import { TORCH_MODELS_DIR } from '../fixtures/torch-models';
import { goldenToJsonl } from '../../src/quantize/evaluate';
import { F32, floatTensor, model, node, valueInfo } from '../../src/onnx/build';
import { encodeModel } from '../../src/onnx/proto';

async function qcflow(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: REPO, env: { ...process.env, QCFLOW_LOG_LEVEL: 'silent' } });
    return { code: 0, ...r };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('qcflow model quantize and evaluate work on files without a server, and refuse bad input by name', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-qcli-'));
  assert.equal((await qcflow(['model', 'fixture', '--name', 'mlp', '--dir', dir, '--samples', '100'])).code, 0);
  const q = await qcflow(['model', 'quantize', '--input', path.join(dir, 'model.onnx'), '--method', 'int8-dynamic', '--output', path.join(dir, 'int8.onnx')]);
  assert.equal(q.code, 0, q.stderr);
  const report = JSON.parse(q.stdout) as { quantized: number; quantizedWeights: { ratio: number }; modelBytes: { ratio: number } };
  assert.equal(report.quantized, 3);
  assert.ok(report.quantizedWeights.ratio <= 0.27);
  // The whole file's ratio beside the weights': graph and float biases included.
  assert.ok(report.modelBytes.ratio > report.quantizedWeights.ratio && report.modelBytes.ratio < 0.35, JSON.stringify(report.modelBytes));
  const e = await qcflow(['model', 'evaluate', '--reference', path.join(dir, 'model.onnx'), '--candidate', path.join(dir, 'int8.onnx'), '--inputs', path.join(dir, 'golden.jsonl'), '--runs', '3']);
  assert.equal(e.code, 0, e.stderr);
  const metrics = JSON.parse(e.stdout) as { samples: number; top1Agreement: number; cosine: { mean: number }; accuracy: { candidate: number }; bytes: { ratio: number } };
  assert.equal(metrics.samples, 100);
  assert.ok(metrics.top1Agreement >= 0.99 && metrics.cosine.mean >= 0.99);
  assert.ok(metrics.accuracy.candidate > 0.9);
  assert.ok(metrics.bytes.ratio < 0.35);

  const st = await qcflow(['model', 'quantize', '--input', path.join(dir, 'model.onnx'), '--method', 'int8-static', '--calibration', path.join(dir, 'golden.jsonl'), '--calibrate', 'percentile', '--output', path.join(dir, 'static.onnx')]);
  assert.equal(st.code, 0, st.stderr);
  const stReport = JSON.parse(st.stdout) as { calibration: unknown; seconds: number; latencyMs: { reference: number; candidate: number; ratio: number } };
  assert.deepEqual(stReport.calibration, { method: 'percentile', percentile: 99.999, biasCorrection: true });
  // With samples at hand it times both on the first (after `seconds`, which is the quantization's alone),
  // and says so where the result is slower here.
  const { latencyMs } = stReport;
  assert.ok(latencyMs.reference > 0 && latencyMs.candidate > 0 && Math.abs(latencyMs.ratio - latencyMs.candidate / latencyMs.reference) < 1e-9, JSON.stringify(latencyMs));
  assert.equal(/note: on this CPU the int8-static model takes ×[\d.]+ the time of the fp32 one/.test(st.stderr), latencyMs.ratio > 1.2, st.stderr);
  // To a target no MLP at 8 bits reaches: the search scores every MatMul, keeps at most a quarter of them
  // float (one of three), shows progress and says the target was missed and what to try.
  const tgt = await qcflow(['model', 'quantize', '--input', path.join(dir, 'model.onnx'), '--method', 'int8-static', '--calibration', path.join(dir, 'golden.jsonl'), '--min-cosine', '0.9999999', '--output', path.join(dir, 'target.onnx')]);
  assert.equal(tgt.code, 0, tgt.stderr);
  const sens = (JSON.parse(tgt.stdout) as { sensitivity: { met: boolean; kept: unknown[]; evaluations: number; start: number; reached: number } }).sensitivity;
  assert.ok(!sens.met && sens.kept.length <= 1 && sens.evaluations >= 4 && sens.reached >= sens.start, JSON.stringify(sens));
  assert.match(tgt.stderr, /sensitivity: \d+ of at most \d+ candidates scored/);
  assert.match(tgt.stderr, /under --min-cosine 0\.9999999: the error is spread over many nodes; raise --max-float/);
  for (const [args, why] of [[['--min-cosine', '1.5'], /--min-cosine 1\.5: a cosine between 0 and 1/], [['--max-float', '2'], /--max-float bounds the search --min-cosine starts/]] as const) {
    const r = await qcflow(['model', 'quantize', '--input', path.join(dir, 'model.onnx'), '--method', 'int8-static', '--calibration', path.join(dir, 'golden.jsonl'), ...args, '--output', path.join(dir, 'x.onnx')]);
    assert.match(r.stderr, why);
  }
  const notStatic = await qcflow(['model', 'quantize', '--input', path.join(dir, 'model.onnx'), '--method', 'int8-dynamic', '--min-cosine', '0.99', '--output', path.join(dir, 'x.onnx')]);
  assert.match(notStatic.stderr, /--min-cosine and --max-float are for int8-static with --calibration/);
  // int4 with a calibration set: GPTQ, with progress on stderr and what it chose in the report.
  const g = await qcflow(['model', 'quantize', '--input', path.join(dir, 'model.onnx'), '--method', 'int4', '--calibration', path.join(dir, 'golden.jsonl'), '--output', path.join(dir, 'gptq.onnx')]);
  assert.equal(g.code, 0, g.stderr);
  assert.match(g.stderr, /gptq: calibrated layer 3 of 3/);
  const gptq = (JSON.parse(g.stdout) as { gptq: { layers: number; samples: number; used: boolean } }).gptq;
  assert.deepEqual([gptq.layers, gptq.samples], [3, 100]);
  const unread = await qcflow(['model', 'quantize', '--input', path.join(dir, 'model.onnx'), '--method', 'fp16', '--calibration', path.join(dir, 'golden.jsonl'), '--output', path.join(dir, 'x.onnx')]);
  assert.match(unread.stderr, /--calibration is for int8-static \(activation ranges\) and int4 \(GPTQ\); fp16 would not read it/);
  const notInt4 = await qcflow(['model', 'quantize', '--input', path.join(dir, 'model.onnx'), '--method', 'int8-dynamic', '--int4-recurrent', '--output', path.join(dir, 'x.onnx')]);
  assert.match(notInt4.stderr, /--int4-recurrent is for --method int4; int8-dynamic would ignore it/);
  // A model whose LSTMs keep 8 bits under int4 is told of --int4-recurrent; with it, it is not.
  for (const [flags, note] of [[[], true], [['--int4-recurrent'], false]] as const) {
    const vad = await qcflow(['model', 'quantize', '--input', SILERO_VAD, '--method', 'int4', ...flags, '--output', path.join(dir, 'vad.onnx')]);
    assert.equal(vad.code, 0, vad.stderr);
    assert.equal(/4 recurrent layer\(s\) \(LSTM, GRU, RNN\) kept 8-bit weights; --int4-recurrent puts them in 4-bit blocks/.test(vad.stderr), note, vad.stderr);
  }
  // So is one whose Loop body multiplies weights (a scripted torch RNN cell).
  for (const [flags, note] of [[[], true], [['--int4-recurrent'], false]] as const) {
    const loop = await qcflow(['model', 'quantize', '--input', path.join(TORCH_MODELS_DIR, 'loop-rnn.onnx'), '--method', 'int4', ...flags, '--output', path.join(dir, 'loop.onnx')]);
    assert.equal(loop.code, 0, loop.stderr);
    assert.equal(/2 MatMul\/Gemm node\(s\) inside Loop or Scan bodies kept 8-bit weights/.test(loop.stderr), note, loop.stderr);
  }
  // int8-static calibrated on 16 kHz speech alone: the 8 kHz branch's six Convs are out of its reach, and it says so.
  const steps = await speechSteps(readFileSync(SILERO_VAD), speech(16000), 16000);
  writeFileSync(path.join(dir, 'speech16k.jsonl'), goldenToJsonl(steps.slice(0, 8).map((x) => x.sample)));
  const oneRate = await qcflow(['model', 'quantize', '--input', SILERO_VAD, '--method', 'int8-static', '--calibration', path.join(dir, 'speech16k.jsonl'), '--output', path.join(dir, 'vad8.onnx')]);
  assert.equal(oneRate.code, 0, oneRate.stderr);
  assert.match(oneRate.stderr, /note: 6 node\(s\) stayed float because no calibration sample reached them \(an If branch none of the samples takes/);
  const noCalib = await qcflow(['model', 'quantize', '--input', path.join(dir, 'model.onnx'), '--method', 'int8-static', '--output', path.join(dir, 'x.onnx')]);
  assert.match(noCalib.stderr, /int8-static needs a calibration set: pass --calibration/);

  writeFileSync(path.join(dir, 'bad.onnx'), 'truncated');
  const bad = await qcflow(['model', 'quantize', '--input', path.join(dir, 'bad.onnx'), '--method', 'fp16', '--output', path.join(dir, 'x.onnx')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^qcflow: not a valid ONNX model/);
  // A model onnxruntime cannot load is the input's fault, said as such (not "a qcflow defect"), nothing written.
  const w = Array.from({ length: 64 * 64 }, (_, i) => Math.sin(i));
  writeFileSync(path.join(dir, 'dangling.onnx'), encodeModel(model({ name: 'd', inputs: [valueInfo('x', F32, [1, 64])], outputs: [valueInfo('y', F32, [1, 64])], initializers: [floatTensor('w', [64, 64], w)], nodes: [node('MatMul', ['x', 'w'], ['h'], {}, 'mm'), node('Add', ['h', 'nowhere'], ['y'], {}, 'add')] })));
  const dangling = await qcflow(['model', 'quantize', '--input', path.join(dir, 'dangling.onnx'), '--method', 'int8-dynamic', '--output', path.join(dir, 'd8.onnx')]);
  assert.match(dangling.stderr, /dangling\.onnx does not load in onnxruntime \(.*nowhere.*\), so it was not quantized: fix or re-export the model/);
  assert.equal(existsSync(path.join(dir, 'd8.onnx')), false);
  // Quantizing a quantized model: refused by name.
  const again = await qcflow(['model', 'quantize', '--input', path.join(dir, 'int8.onnx'), '--method', 'int4', '--output', path.join(dir, 'x.onnx')]);
  assert.match(again.stderr, /the model is already quantized \(by qcflow, int8-dynamic, DynamicQuantizeLinear ×\d+, MatMulInteger ×\d+\)/);
  const method = await qcflow(['model', 'quantize', '--input', path.join(dir, 'model.onnx'), '--method', 'int3', '--output', path.join(dir, 'x.onnx')]);
  assert.match(method.stderr, /must be one of int8-dynamic, int8-static, fp16, int4/);
  writeFileSync(path.join(dir, 'shape.jsonl'), JSON.stringify({ input: { dims: [1, 3], data: [1, 2, 3] } }) + '\n');
  const shape = await qcflow(['model', 'evaluate', '--reference', path.join(dir, 'model.onnx'), '--candidate', path.join(dir, 'int8.onnx'), '--inputs', path.join(dir, 'shape.jsonl')]);
  assert.equal(shape.code, 1);
  assert.match(shape.stderr, /golden sample 1 does not fit the model/);
});

test('qcflow model quantize writes nothing that would be larger than its input, and says why', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-qcli-'));
  // A 2 × 2 weight: int4 blocks of 32 along K and a scale each take more bytes than four floats.
  const tiny = model({ name: 'tiny', opset: 13, inputs: [valueInfo('x', F32, [1, 2])], outputs: [valueInfo('y', F32, [1, 2])], initializers: [floatTensor('w', [2, 2], [1, 2, 3, 4])], nodes: [node('MatMul', ['x', 'w'], ['y'], {}, 'mm')] });
  writeFileSync(path.join(dir, 'tiny.onnx'), encodeModel(tiny));
  const r = await qcflow(['model', 'quantize', '--input', path.join(dir, 'tiny.onnx'), '--method', 'int4', '--output', path.join(dir, 'q.onnx')]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /int4 would make .*tiny\.onnx larger \(×\d+\.\d{3}\), so nothing was written: 1 nodes quantized, 0 kept in float\. Try another --method/);
  assert.equal(existsSync(path.join(dir, 'q.onnx')), false);
});
