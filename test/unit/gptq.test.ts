import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { INT4_CONV_GRID, INT8_GRID, gptqQuantize, hessianFactor, NBITS_GRID, pooledHessian, roundToNearest, shrinkTowardDiagonal, type BlockCodes, type HessianFactor, type GptqLayer, type MatMul, solveRequested } from '../../src/quantize/gptq';
import { doubleMatMul } from '../../src/quantize/double-matmul';
import { agreementOn, collectHessians } from '../../src/quantize/calibrate';
import { dequantizeInt4, quantizeInt4 } from '../../src/quantize/int4';
import { F32, floatTensor, model, node, valueInfo } from '../../src/onnx/build';
import { nodeKey } from '../../src/onnx/graph';
import { decodeModel, encodeModel } from '../../src/onnx/proto';
import { cnnModel, fixtureGolden, mlpModel, rng, transformerModel } from '../../src/onnx/fixture-models';
import { DT } from '../../src/onnx/tensor';
import { quantizeModel, quantizeModelCalibrated } from '../../src/quantize/quantize-model';
import { evaluateCandidate } from '../../src/quantize/evaluate';

let product: ReturnType<typeof doubleMatMul> | undefined;
/** onnxruntime's float64 products, as quantizeModelCalibrated uses them. */
const matmul: MatMul = async (a, b, m, k, n) => (await (product ??= doubleMatMul())).matmul(a, b, m, k, n);
const factorOf = (h: Float64Array, k: number, damp?: number): Promise<HessianFactor> => hessianFactor(h, k, matmul, damp);

/** Inputs with the structure real activations have: a few shared factors, a few loud channels, little else. */
function correlatedInputs(count: number, cols: number, seed: number): Float32Array {
  const r = rng(seed);
  const factors = Array.from({ length: count * 6 }, () => r() - 0.5);
  return Float32Array.from({ length: count * cols }, (_, i) => {
    const [row, c] = [Math.floor(i / cols), i % cols];
    return factors[row * 6 + (c % 6)]! * (c % 7 === 0 ? 4 : 1) + 0.05 * (r() - 0.5);
  });
}

/** Σ x·xᵀ over the rows of X [count, k], plainly (the calibration computes it in onnxruntime). */
function hessianOf(x: Float32Array, count: number, k: number): Float64Array {
  const h = new Float64Array(k * k);
  for (let r = 0; r < count; r++) for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) h[i * k + j] = h[i * k + j]! + x[r * k + i]! * x[r * k + j]!;
  return h;
}

/** Σ over rows of ‖x‖⁴ − Σ x_i⁴, plainly. */
function crossFourthMoment(x: Float32Array, count: number, k: number): number {
  let sum = 0;
  for (let r = 0; r < count; r++) {
    let [sq, fourth] = [0, 0];
    for (let i = r * k; i < (r + 1) * k; i++) {
      sq += x[i]! ** 2;
      fourth += x[i]! ** 4;
    }
    sum += sq * sq - fourth;
  }
  return sum;
}

/** ‖(W − Q)·X‖ / ‖W·X‖ over the rows of X. */
function outputError(w: Float32Array, q: BlockCodes, rows: number, cols: number, groupSize: number, x: Float32Array, count: number): number {
  const groups = Math.ceil(cols / groupSize);
  let [err, norm] = [0, 0];
  for (let s = 0; s < count; s++) {
    for (let o = 0; o < rows; o++) {
      let [a, b] = [0, 0];
      for (let k = 0; k < cols; k++) {
        a += w[o * cols + k]! * x[s * cols + k]!;
        b += q.codes[o * cols + k]! * q.scales[o * groups + Math.floor(k / groupSize)]! * x[s * cols + k]!;
      }
      err += (a - b) ** 2;
      norm += a * a;
    }
  }
  return Math.sqrt(err / norm);
}

test('H is Σ x·xᵀ, and the inverse Hessian factor: Uᵀ·U·(H + damping) = I, for sizes within one block and across several, with dead inputs', async () => {
  for (const k of [5, 64, 97, 131, 300, 530]) {
    const count = Math.max(300, 2 * k);
    const x = correlatedInputs(count, k, k);
    for (let s = 0; s < count; s++) x[s * k + 1] = 0; // an input never active
    const h = hessianOf(x, count, k);
    for (let i = 0; i < k; i += 7) {
      for (let j = 0; j < k; j += 5) {
        let s = 0;
        for (let r = 0; r < count; r++) s += x[r * k + i]! * x[r * k + j]!;
        assert.ok(Math.abs(h[i * k + j]! - s) < 1e-9 * (1 + Math.abs(s)), `H[${i}][${j}] ${h[i * k + j]} vs ${s}`);
      }
    }
    const { u, diagonal } = await factorOf(h, k, 0.01);
    assert.deepEqual(diagonal, Float64Array.from({ length: k }, (_, i) => h[i * k + i]!));
    const mean = diagonal.reduce((a, b) => a + b, 0) / k;
    const damped = Float64Array.from(h, (v, at) => (at % (k + 1) === 0 ? (v || 1) + 0.01 * mean : v));
    // Uᵀ·U·(H + damping)·v = v for random v (the whole product, one vector at a time: O(k²) each).
    const r = rng(k);
    let worst = 0;
    for (let probe = 0; probe < 4; probe++) {
      const v = Float64Array.from({ length: k }, () => r() - 0.5);
      const hv = Float64Array.from({ length: k }, (_, i) => damped.subarray(i * k, (i + 1) * k).reduce((s, d, j) => s + d * v[j]!, 0));
      const uhv = Float64Array.from({ length: k }, (_, i) => u.subarray(i * k, (i + 1) * k).reduce((s, d, j) => s + d * hv[j]!, 0));
      for (let i = 0; i < k; i++) {
        let s = 0;
        for (let n = 0; n <= i; n++) s += u[n * k + i]! * uhv[n]!;
        worst = Math.max(worst, Math.abs(s - v[i]!));
      }
    }
    assert.ok(worst < 1e-9, `k=${k}: ${worst}`);
    for (let i = 0; i < k; i++) for (let j = 0; j < i; j++) assert.equal(u[i * k + j], 0);
  }
});

test('GPTQ: lower output error than rounding on inputs it was not fitted to, same codes and scales as rounding when H is diagonal', async () => {
  const [rows, cols, count] = [24, 96, 400];
  const r = rng(5);
  const w = Float32Array.from({ length: rows * cols }, () => r() - 0.5);
  const fit = correlatedInputs(count, cols, 1);
  const heldOut = correlatedInputs(count, cols, 2);
  for (const grid of [NBITS_GRID, INT4_CONV_GRID]) {
    const rounded = roundToNearest(w, rows, cols, 32, grid);
    const gptq = await gptqQuantize(w, rows, cols, await factorOf(hessianOf(fit, count, cols), cols), 32, grid, matmul);
    const [a, b] = [outputError(w, rounded, rows, cols, 32, heldOut, count), outputError(w, gptq, rows, cols, 32, heldOut, count)];
    assert.ok(b < 0.85 * a, `grid ±${grid.qmax}: GPTQ ${b} vs rounding ${a}`);
    assert.ok(gptq.codes.every((c) => c >= grid.qmin && c <= grid.qmax));
  }
  // Independent inputs of equal size: nothing to compensate along, and no reason to clip.
  const diagonal = new Float64Array(cols * cols);
  for (let i = 0; i < cols; i++) diagonal[i * cols + i] = 1;
  const g = await gptqQuantize(w, rows, cols, await factorOf(diagonal, cols), 32, NBITS_GRID, matmul);
  const rtn = roundToNearest(w, rows, cols, 32, NBITS_GRID);
  const mse = (q: BlockCodes) => w.reduce((s, v, i) => s + (v - q.codes[i]! * q.scales[Math.floor(i / cols) * 3 + Math.floor((i % cols) / 32)]!) ** 2, 0);
  assert.ok(mse(g) <= mse(rtn) + 1e-12, 'a clipped scale is taken only where it lowers the error');
  // A group of float32 denormals (GPTQ's updates can leave some) gets a usable scale, not 0 and NaN codes.
  const tiny = Float32Array.from({ length: 32 }, (_, i) => (i === 3 ? 1e-45 : 0));
  const t = roundToNearest(tiny, 1, 32, 32, INT4_CONV_GRID);
  assert.ok(t.scales[0]! > 0 && t.codes.every((c) => c === 0));
});

test('GPTQ in blocks of columns: each row gets the codes and scales it gets alone, for groups shorter and longer than a block', async () => {
  const [rows, cols] = [10, 300];
  const r = rng(8);
  const w = Float32Array.from({ length: rows * cols }, () => r() - 0.5);
  const factor = await factorOf(hessianOf(correlatedInputs(600, cols, 6), 600, cols), cols);
  for (const [grid, group] of [[NBITS_GRID, 32], [INT4_CONV_GRID, 30], [INT8_GRID, cols]] as const) {
    const all = await gptqQuantize(w, rows, cols, factor, group, grid, matmul);
    const groups = Math.ceil(cols / group);
    for (let i = 0; i < rows; i++) {
      const alone = await gptqQuantize(w.slice(i * cols, (i + 1) * cols), 1, cols, factor, group, grid, matmul);
      assert.deepEqual([all.codes.slice(i * cols, (i + 1) * cols), all.scales.slice(i * groups, (i + 1) * groups)], [alone.codes, alone.scales], `row ${i}, groups of ${group}`);
    }
  }
});

test('a Hessian from too few rows of independent inputs is shrunk to its diagonal, so GPTQ no longer fits their noise; real correlations are kept', async () => {
  const [rows, cols, count] = [24, 128, 32];
  const r = rng(17);
  const w = Float32Array.from({ length: rows * cols }, () => r() - 0.5);
  const independent = (n: number): Float32Array => Float32Array.from({ length: n * cols }, () => r() * 2 - 1);
  const [fit, heldOut] = [independent(count), independent(2000)];
  const raw = hessianOf(fit, count, cols);
  const shrunk = Float64Array.from(raw);
  const alpha = shrinkTowardDiagonal(shrunk, cols, count, crossFourthMoment(fit, count, cols));
  assert.ok(alpha > 0.9, `independent inputs: α ${alpha}`);
  for (let i = 0; i < cols; i++) {
    assert.equal(shrunk[i * cols + i], raw[i * cols + i]);
    assert.ok(Math.abs(shrunk[i * cols + (i + 1) % cols]! - (1 - alpha) * raw[i * cols + (i + 1) % cols]!) < 1e-12);
  }
  const error = (q: BlockCodes) => outputError(w, q, rows, cols, 32, heldOut, 2000);
  const [rounded, fitted, kept] = [roundToNearest(w, rows, cols, 32, NBITS_GRID), await gptqQuantize(w, rows, cols, await factorOf(raw, cols), 32, NBITS_GRID, matmul), await gptqQuantize(w, rows, cols, await factorOf(shrunk, cols), 32, NBITS_GRID, matmul)];
  assert.ok(error(fitted) > 1.05 * error(rounded), `unshrunk GPTQ ${error(fitted)} vs rounding ${error(rounded)}: the case this guards`);
  assert.ok(error(kept) <= 1.01 * error(rounded), `shrunk GPTQ ${error(kept)} vs rounding ${error(rounded)}`);
  // Inputs driven by shared factors, from as few rows: the correlations are real and H is left whole.
  const correlated = correlatedInputs(count, cols, 4);
  const h = hessianOf(correlated, count, cols);
  const before = Float64Array.from(h);
  assert.equal(shrinkTowardDiagonal(h, cols, count, crossFourthMoment(correlated, count, cols)), 0);
  assert.deepEqual(h, before);
});

test('GPTQ codes pack into MatMulNBits as rounding does: the dequantized weight is codes × scales', async () => {
  const [k, n] = [80, 12];
  const r = rng(9);
  const w = Float32Array.from({ length: k * n }, () => r() - 0.5);
  const x = correlatedInputs(200, k, 3);
  const h = hessianOf(x, 200, k);
  const factor = await factorOf(h, k);
  const layer: GptqLayer = { factor };
  // A quantization before the layer is solved notes what to solve and stands in with rounding's codes.
  assert.deepEqual(quantizeInt4(w, k, n, 32, true, layer), quantizeInt4(w, k, n, 32, true));
  assert.ok(layer.request && !layer.codes);
  await solveRequested([layer, layer], matmul);
  // Solved once: the factor is let go, the codes kept for every later quantization of the same model.
  assert.ok(!layer.factor && !layer.request && layer.codes);
  const q = quantizeInt4(w, k, n, 32, true, layer);
  assert.deepEqual(quantizeInt4(w, k, n, 32, true, layer), q);
  assert.notDeepEqual(q, quantizeInt4(w, k, n, 32, true));
  const back = dequantizeInt4(q, k, n, 32);
  const rowsW = Float32Array.from({ length: n * k }, (_, i) => w[(i % k) * n + Math.floor(i / k)]!);
  const codes = await gptqQuantize(rowsW, n, k, factor, 32, NBITS_GRID, matmul);
  for (let col = 0; col < n; col++) for (let row = 0; row < k; row++) assert.equal(back[row * n + col], Math.fround(codes.codes[col * k + row]! * codes.scales[col * 3 + Math.floor(row / 32)]!));
});

/**
 * Checks a Conv's H against its output y [2, k, …positions] from the same batch fed twice: W·H·Wᵀ is the
 * Gram matrix of the layer's outputs over its positions, so with k independent filters H is pinned down
 * entry by entry, in the weight's column order. Returns the positions per image.
 */
function assertConvHessian(w: Float32Array, k: number, h: Float64Array, y: ort.Tensor): number {
  const positions = y.dims.slice(2).reduce((a, b) => a * b, 1);
  const out = y.data as Float32Array;
  for (let a = 0; a < k; a++) {
    for (let b = 0; b < k; b++) {
      let gram = 0;
      for (let n = 0; n < 2; n++) for (let p = 0; p < positions; p++) gram += out[(n * k + a) * positions + p]! * out[(n * k + b) * positions + p]!;
      let whw = 0;
      for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) whw += w[a * k + i]! * h[i * k + j]! * w[b * k + j]!;
      assert.ok(Math.abs(whw - 2 * gram) < 1e-3 * (1 + Math.abs(gram)), `conv (W·H·Wᵀ)[${a}][${b}]: ${whw} vs ${2 * gram}`);
    }
  }
  return positions;
}

test('Hessians from onnxruntime: a MatMul\'s rows (more than one block of them) and a Conv\'s patches (stride, padding, dilation), as the layers multiply them', async () => {
  const [c, height, width] = [3, 7, 9];
  const geometry = { kernel: [3, 2], strides: [2, 1], pads: [1, 0, 1, 1], dilations: [1, 2] };
  const k = c * 3 * 2;
  const r = rng(4);
  // Any W: W·H·Wᵀ is the Gram matrix of the layer's outputs over its positions, so with k independent
  // filters H is pinned down entry by entry, in the weight's column order.
  const w = Float32Array.from({ length: k * k }, () => r() - 0.5);
  const x = Float32Array.from({ length: 2 * c * height * width }, () => r() - 0.5);
  // Rows driven by shared factors, as activations are: H is kept whole, not shrunk (see below).
  // 600 rows a sample: the second sample's are multiplied into H in two blocks (ROW_BLOCK is 1,024).
  const rows = correlatedInputs(600, k, 5);
  const m = model({
    name: 'layers', opset: 13,
    inputs: [valueInfo('x', F32, [2, c, height, width]), valueInfo('rows', F32, [2, 300, k])],
    outputs: [valueInfo('y', F32, [2, k, 4, 8]), valueInfo('z', F32, [2, 300, k])],
    initializers: [floatTensor('w', [k, c, 3, 2], w), floatTensor('wt', [k, k], w)],
    nodes: [node('Conv', ['x', 'w'], ['y'], { strides: [2, 1], pads: [1, 0, 1, 1], dilations: [1, 2] }, 'conv'), node('MatMul', ['rows', 'wt'], ['z'], {}, 'matmul')],
  });
  const sample = { inputs: { x: { dims: [2, c, height, width], data: x }, rows: { dims: [2, 300, k], data: rows } } };
  const got = await collectHessians(m, [{ node: 'conv', input: 'x', k, conv: geometry }, { node: 'matmul', input: 'rows', k }, { node: 'sibling', input: 'rows', k }], () => [sample, sample]);
  assert.equal(got.samples, 2);
  // Two layers reading the same rows share the computation, not the sums (shared weights add theirs up).
  const [rowsSum, sibling, conv] = ['matmul', 'sibling', 'conv'].map((n) => got.sums.get(n)!);
  assert.deepEqual(sibling, rowsSum);
  assert.notEqual(sibling!.h, rowsSum!.h);
  // The MatMul's rows: H is theirs, twice (two samples), and so are the moments shrinkage reads.
  const plain = hessianOf(rows, 600, k);
  pooledHessian([rowsSum!], k).hessian.forEach((v, i) => assert.ok(Math.abs(v - 2 * plain[i]!) < 1e-4, `matmul H[${i}]: ${v} vs ${2 * plain[i]!}`));
  assert.equal(rowsSum!.rows, 1200);
  assert.ok(Math.abs(rowsSum!.crossFourth - 2 * crossFourthMoment(rows, 600, k)) < 1e-3 * rowsSum!.crossFourth, `${rowsSum!.crossFourth}`);
  const y = (await (await ort.InferenceSession.create(encodeModel(m))).run({ x: new ort.Tensor('float32', x, [2, c, height, width]), rows: new ort.Tensor('float32', rows, [2, 300, k]) })).y!;
  const positions = assertConvHessian(w, k, pooledHessian([conv!], k).hessian, y);
  assert.equal(conv!.rows, 2 * 2 * positions, 'two samples of two images');
  // A weight two layers multiply: their rows pooled before the shrinkage estimate, not each shrunk alone.
  const pooled = pooledHessian([rowsSum!, sibling!], k);
  const summed = Float64Array.from(rowsSum!.h, (v, i) => v + sibling!.h[i]!);
  for (let i = 0; i < k; i++) for (let j = 0; j < i; j++) summed[i * k + j] = summed[j * k + i]!;
  assert.equal(pooled.shrinkage, shrinkTowardDiagonal(summed, k, 2400, 2 * rowsSum!.crossFourth));
  assert.deepEqual(pooled.hessian, summed);
  assert.deepEqual([pooledHessian([conv!], k).shrinkage, pooled.shrinkage], [0, 0], 'correlated enough to keep whole');
});

test('Hessians of a 1-D Conv\'s patches (audio and text conv nets), and GPTQ solving its 4-bit blocks', async () => {
  const [c, length] = [16, 21];
  const k = c * 4;
  const r = rng(6);
  const w = Float32Array.from({ length: k * k }, () => r() - 0.5);
  const x = Float32Array.from({ length: 2 * c * length }, () => r() - 0.5);
  const conv = (weights: Float32Array) => model({
    name: 'conv1d', opset: 21, inputs: [valueInfo('x', F32, [2, c, length])], outputs: [valueInfo('y', F32, [2, k, 9])],
    initializers: [floatTensor('w', [k, c, 4], weights)], nodes: [node('Conv', ['x', 'w'], ['y'], { strides: [2], pads: [1, 2], dilations: [2] }, 'conv')],
  });
  const sample = { inputs: { x: { dims: [2, c, length], data: x } } };
  const got = await collectHessians(conv(w), [{ node: 'conv', input: 'x', k, conv: { kernel: [4], strides: [2], pads: [1, 2], dilations: [2] } }], () => [sample, sample]);
  const y = (await (await ort.InferenceSession.create(encodeModel(conv(w)))).run({ x: new ort.Tensor('float32', x, [2, c, length]) })).y!;
  assertConvHessian(w, k, pooledHessian([got.sums.get('conv')!], k).hessian, y);
  // Through the quantizer: the 1-D Conv is a GPTQ target at 4 bits (it was rounded).
  const samples = Array.from({ length: 12 }, () => ({ inputs: { x: { dims: [2, c, length], data: Float32Array.from({ length: 2 * c * length }, () => r() - 0.5) } } }));
  const { model: q, report } = await quantizeModelCalibrated(conv(w), { method: 'int4', int4Conv: true }, () => samples);
  assert.deepEqual([report.gptq.layers, q.graph!.initializer!.some((t) => t.dataType === 22)], [1, true]); // 22: INT4
});

test('keep-or-round agreement: mean cosine per sample for vectors; for one value a sample, 1 − the stream\'s relative error (a scalar\'s cosine is only its sign)', async () => {
  const linear = (w: number[], out: number) => model({ name: 'lin', opset: 13, inputs: [valueInfo('x', F32, [1, 4])], outputs: [valueInfo('y', F32, [1, out])], initializers: [floatTensor('w', [4, out], w)], nodes: [node('MatMul', ['x', 'w'], ['y'])] });
  const r = rng(8);
  const samples = Array.from({ length: 10 }, () => ({ inputs: { x: { dims: [1, 4], data: Float32Array.from({ length: 4 }, () => r() - 0.5) } } }));
  const w = [0.3, -0.2, 0.5, 0.1];
  const [near, far] = await agreementOn(linear(w, 1), [linear(w.map((v) => v * 1.02), 1), linear(w.map((v, i) => v + (i === 0 ? 0.1 : 0)), 1)], () => samples);
  assert.ok(near! < 1 && far! < near!, `${near} ${far}`);
  assert.ok(Math.abs(near! - 0.98) < 1e-3, `a 2% scale is 2% off: ${near}`);
  // Vectors: the mean cosine, blind to scale as before.
  const [scaled] = await agreementOn(linear([...w, ...w], 2), [linear([...w, ...w].map((v) => v * 1.02), 2)], () => samples);
  assert.ok(Math.abs(scaled! - 1) < 1e-6, `${scaled}`);
});

test('int4 with calibration samples: every MatMul calibrated, up to four a pass, the file the size rounding gives, closer to fp32 on other samples', async () => {
  const f = await mlpModel();
  const samples = fixtureGolden(f, 60);
  const [calibration, judge] = [samples.slice(0, 40), samples.slice(40)];
  const layers: number[] = [];
  const { model: q, report } = await quantizeModelCalibrated(decodeModel(f.onnx), { method: 'int4' }, () => calibration, { progress: (layer) => layers.push(layer) });
  assert.deepEqual([report.gptq.layers, report.gptq.samples, report.gptq.used, layers], [3, 40, true, [3]]);
  // Seven layers: four in the first pass, the other three from the model with those four quantized.
  const t = await transformerModel();
  const passes: number[] = [];
  await quantizeModelCalibrated(decodeModel(t.onnx), { method: 'int4' }, () => fixtureGolden(t, 8), { progress: (layer) => passes.push(layer) });
  assert.deepEqual(passes, [4, 7]);
  assert.ok(report.gptq.calibrationCosine.gptq > report.gptq.calibrationCosine.rounded);
  const rounded = quantizeModel(decodeModel(f.onnx), { method: 'int4' }).model;
  const [a, b] = [await evaluateCandidate(f.onnx, encodeModel(q), judge, { runs: 1 }), await evaluateCandidate(f.onnx, encodeModel(rounded), judge, { runs: 1 })];
  assert.equal(a.bytes!.candidate, b.bytes!.candidate);
  assert.ok(1 - a.cosine.mean < 0.9 * (1 - b.cosine.mean), `GPTQ ${a.cosine.mean}, rounded ${b.cosine.mean}`);
  // Where rounding agrees better with fp32 on the calibration samples, rounding is what comes out.
  const few = await quantizeModelCalibrated(decodeModel(f.onnx), { method: 'int4' }, () => calibration.slice(0, 1));
  const fewScores = few.report.gptq.calibrationCosine;
  assert.equal(few.report.gptq.used, fewScores.gptq >= fewScores.rounded);
  if (!few.report.gptq.used) assert.deepEqual(encodeModel(few.model), encodeModel(rounded));
  await assert.rejects(quantizeModelCalibrated(decodeModel(f.onnx), { method: 'int4', symmetric: false }, () => calibration), /symmetric/);
  await assert.rejects(quantizeModelCalibrated(decodeModel(f.onnx), { method: 'int4' }, () => []), /calibration set is empty/);
  // Each pass reads only the first `maxSamples` of a set.
  assert.equal((await quantizeModelCalibrated(decodeModel(f.onnx), { method: 'int4' }, () => calibration, { maxSamples: 8 })).report.gptq.samples, 8);
  await assert.rejects(quantizeModelCalibrated(decodeModel(f.onnx), { method: 'int4' }, () => calibration, { maxSamples: 0 }), /calibration-samples 0/);
});

test('int4 with calibration samples: a Conv left at 8 bits takes GPTQ codes per channel, one group a filter', async () => {
  const f = await cnnModel();
  const samples = fixtureGolden(f, 40);
  const { model: q, report } = await quantizeModelCalibrated(decodeModel(f.onnx), { method: 'int4' }, () => samples.slice(0, 20));
  const rounded = quantizeModel(decodeModel(f.onnx), { method: 'int4' }).model;
  const int8 = (m: typeof rounded) => m.graph!.initializer!.filter((t) => t.dataType === DT.INT8 && t.name!.endsWith('_quantized'));
  assert.ok(report.gptq.layers >= 2 && int8(q).length > 0 && int8(q).length === int8(rounded).length);
  // Kept (closer to fp32 on the 20 samples) and not rounding's codes; int8 within ±127.
  const differs = int8(q).some((t, i) => !Buffer.from(t.rawData!).equals(Buffer.from(int8(rounded)[i]!.rawData!)));
  assert.ok(report.gptq.used && differs, JSON.stringify(report.gptq));
  for (const t of int8(q)) assert.ok(new Int8Array(t.rawData!.buffer, t.rawData!.byteOffset, t.rawData!.length).every((v) => v >= -127));
  const [a, b] = [await evaluateCandidate(f.onnx, encodeModel(q), samples.slice(20), { runs: 1 }), await evaluateCandidate(f.onnx, encodeModel(rounded), samples.slice(20), { runs: 1 })];
  assert.ok(a.cosine.mean >= b.cosine.mean - 0.001, `GPTQ ${a.cosine.mean}, rounded ${b.cosine.mean}`);
  // Only what the quantizer would take GPTQ codes for is calibrated (one pass each): not an excluded node,
  // nor a Conv whose 8 bits share one scale (--per-tensor).
  const convs = decodeModel(f.onnx).graph!.node!.filter((n) => n.opType === 'Conv').map(nodeKey);
  const fewer = async (o: { excludeNodes?: string[]; perChannel?: boolean }) => (await quantizeModelCalibrated(decodeModel(f.onnx), { method: 'int4', ...o }, () => samples.slice(0, 4))).report.gptq.layers;
  assert.equal(await fewer({ excludeNodes: convs.slice(0, 1) }), report.gptq.layers - 1);
  assert.equal(await fewer({ perChannel: false }), report.gptq.layers - convs.length);
  // --compact-names renames the result only: each pass's model is tapped by the original value names
  // (a compacted pass model once failed to load). Sizes are against the caller's file, not the copy with
  // its BatchNorms folded.
  const compact = await quantizeModelCalibrated(decodeModel(f.onnx), { method: 'int4', compactNames: true }, () => samples.slice(0, 4));
  assert.equal(compact.report.gptq.layers, report.gptq.layers);
  assert.equal(compact.report.modelBytes.before, encodeModel(decodeModel(f.onnx)).length);
  assert.equal(compact.report.modelBytes.after, encodeModel(compact.model).length);
  const [plain, short] = [quantizeModel(decodeModel(f.onnx), { method: 'int4' }).report, quantizeModel(decodeModel(f.onnx), { method: 'int4', compactNames: true }).report];
  assert.ok(short.nameBytes < plain.nameBytes);
  // Renamed weights are not counted as quantized ones.
  assert.deepEqual(short.quantizedWeights, plain.quantizedWeights);
});

test('int4 with calibration samples: a Conv at 8 bits over more than 1,024 inputs is rounded, at 4 bits it is solved', async () => {
  const [M, C] = [8, 128];
  const r = rng(4);
  const conv = model({ name: 'wide', opset: 13, inputs: [valueInfo('x', F32, [1, C, 5, 5])], outputs: [valueInfo('y', F32, [1, M, 3, 3])], initializers: [floatTensor('w', [M, C, 3, 3], Array.from({ length: M * C * 9 }, () => r() - 0.5))], nodes: [node('Conv', ['x', 'w'], ['y'], {}, 'conv')] });
  const samples = Array.from({ length: 4 }, () => ({ inputs: { x: { dims: [1, C, 5, 5], data: Float32Array.from({ length: C * 25 }, () => r() - 0.5) } } }));
  const layers = async (int4Conv: boolean) => (await quantizeModelCalibrated(structuredClone(conv), { method: 'int4', int4Conv }, () => samples)).report.gptq.layers;
  assert.deepEqual([await layers(false), await layers(true)], [0, 1]);
});

