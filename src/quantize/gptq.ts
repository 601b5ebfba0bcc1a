/**
 * Error-compensating 4-bit quantization (GPTQ, Frantar et al. 2022) of a weight against the inputs it sees.
 * Rounding each weight to its nearest level minimises ‖W − Q‖; what matters is ‖(W − Q)·X‖ on the layer's
 * real inputs X. GPTQ quantizes one input dimension at a time and spreads its rounding error over the
 * dimensions not yet quantized, weighted by the inverse of H = Σ x·xᵀ, so correlated inputs absorb it.
 * Arithmetic, its large matrix products handed to an injected MatMul (onnxruntime's: double-matmul.ts): the
 * Hessians come from calibration runs (calibrate.ts), the codes go to the packers in int4.ts.
 */
import { roundHalfEven } from './params';
import { transpose } from '../onnx/tensor';

/** Signed 4-bit codes, row-major [rows, cols], and one scale per row and group of `groupSize` columns. */
export interface BlockCodes {
  codes: Int8Array;
  scales: Float32Array;
}

/**
 * One calibrated layer. quantizeModelCalibrated factors its Hessian (`factor`); a quantization of the model
 * then notes what its quantizer would solve (`request`: the weight as that quantizer lays it out) while
 * rounding stands in; solveRequested solves it (`codes`, the factor let go: a 4,096-wide one is 134 MB), and
 * every later quantization of the model takes those codes.
 */
export interface GptqLayer {
  factor?: HessianFactor;
  request?: { w: Float32Array; rows: number; cols: number; groupSize: number; grid: Grid };
  codes?: BlockCodes;
}

/** The layer's GPTQ codes for W [rows, cols]; until solveRequested has solved it, rounding's, and the request noted. */
export function codesOf(layer: GptqLayer, w: Float32Array, rows: number, cols: number, groupSize: number, grid: Grid): BlockCodes {
  if (layer.codes) return layer.codes;
  layer.request ??= { w, rows, cols, groupSize, grid };
  return roundToNearest(w, rows, cols, groupSize, grid);
}

/** Solves every layer a quantization has noted a request for (codesOf). */
export async function solveRequested(layers: Iterable<GptqLayer>, matmul: MatMul): Promise<void> {
  for (const layer of new Set(layers)) {
    const r = layer.request;
    if (!r || layer.codes) continue;
    layer.codes = await gptqQuantize(r.w, r.rows, r.cols, layer.factor!, r.groupSize, r.grid, matmul);
    delete layer.request;
    delete layer.factor;
  }
}

/** A product of row-major float64 matrices, a [m, k] · b [k, n]: onnxruntime's (double-matmul.ts) where it counts. */
export type MatMul = (a: Float64Array, b: Float64Array, m: number, k: number, n: number) => Promise<Float64Array>;

/** What GPTQ solves a layer with: U, upper, with (H + damping)⁻¹ = Uᵀ·U, and H's diagonal (bestScale weighs by it). */
export interface HessianFactor {
  u: Float64Array;
  diagonal: Float64Array;
}

/**
 * How a group of values becomes a scale: MatMulNBits' symmetric blocks put the extreme onto −8 (all 16
 * levels, a negative scale when the extreme is positive); 4-bit Conv blocks use ±7, weight-only
 * int8 channels ±127.
 */
export interface Grid {
  qmin: number;
  qmax: number;
  scale(values: Float64Array | Float32Array, from: number, to: number): number;
}

export const NBITS_GRID: Grid = {
  qmin: -8,
  qmax: 7,
  scale(v, from, to) {
    let lo = 0;
    let hi = 0;
    for (let i = from; i < to; i++) {
      if (v[i]! < lo) lo = v[i]!;
      if (v[i]! > hi) hi = v[i]!;
    }
    const extreme = -lo > hi ? lo : hi;
    return Math.fround(extreme) === 0 ? 1 : extreme / -8;
  },
};

/** Symmetric ±`levels` around 0, the extreme onto the last level (a group of float32 denormals, which GPTQ's updates can leave, gets 1 and stores 0s). */
function symmetricGrid(levels: number): Grid {
  return {
    qmin: -levels,
    qmax: levels,
    scale(v, from, to) {
      let absmax = 0;
      for (let i = from; i < to; i++) absmax = Math.max(absmax, Math.abs(v[i]!));
      const scale = Math.fround((2 * absmax) / (2 * levels));
      return scale === 0 ? 1 : scale;
    },
  };
}

export const INT4_CONV_GRID = symmetricGrid(7);
export const INT8_GRID = symmetricGrid(127);

/** Round to nearest per group: what the packers did before GPTQ, and what a layer without a Hessian gets. */
export function roundToNearest(w: Float32Array, rows: number, cols: number, groupSize: number, grid: Grid): BlockCodes {
  const groups = Math.ceil(cols / groupSize);
  const codes = new Int8Array(rows * cols);
  const scales = new Float32Array(rows * groups);
  const round = roundHalfEven;
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const from = r * cols + g * groupSize;
      const to = r * cols + Math.min(cols, (g + 1) * groupSize);
      const s = grid.scale(w, from, to);
      scales[r * groups + g] = s;
      for (let i = from; i < to; i++) codes[i] = Math.min(grid.qmax, Math.max(grid.qmin, round(w[i]! / s)));
    }
  }
  return { codes, scales };
}

/**
 * H's factor for GPTQ (HessianFactor), after dampening H by `damp` × its mean diagonal (GPTQ's 1%) so an
 * input seen little or never cannot make it singular. Inputs never active (zero diagonal) get 1 there.
 * U is the inverse of V where H = V·Vᵀ, V upper: the Cholesky factor of H with rows and columns reversed.
 */
export async function hessianFactor(h: Float64Array, n: number, matmul: MatMul, damp = 0.01): Promise<HessianFactor> {
  const a = new Float64Array(n * n);
  let mean = 0;
  for (let i = 0; i < n; i++) mean += h[i * n + i]!;
  mean /= n;
  const add = damp * (mean || 1);
  const diagonal = new Float64Array(n);
  // Reversed: a[i][j] = h[n-1-i][n-1-j], so its lower Cholesky factor L gives V = P·L·P (upper).
  for (let i = 0; i < n; i++) {
    diagonal[i] = h[i * n + i]!;
    for (let j = 0; j < n; j++) a[i * n + j] = h[(n - 1 - i) * n + (n - 1 - j)]!;
    if (a[i * n + i] === 0) a[i * n + i] = 1;
    a[i * n + i] = a[i * n + i]! + add;
  }
  await blockedCholesky(a, n, 1e-12 * add, matmul);
  const inv = await blockedLowerInverse(a, n, matmul);
  // U = V⁻¹ = P·L⁻¹·P: un-reverse.
  const u = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) u[i * n + j] = inv[(n - 1 - i) * n + (n - 1 - j)]!;
  return { u, diagonal };
}

/**
 * Rows of the blocked factorizations: each block's own work (a Cholesky, a triangular inverse, 256 wide) runs
 * in JavaScript, the products between blocks — nearly all of the n³ work — in `matmul`. All in
 * JavaScript, a 2,880-wide Hessian (PaddleOCR's recogniser) took 8 s, ≈ 1 GFlop/s; onnxruntime's double
 * MatMul runs at ≈ 50 GFlop/s on the same 2 cores.
 */
const BLOCK = 256;

/** The [rows, cols] block of the n-wide `a` at (r, c), copied out. */
function blockOf(a: Float64Array, n: number, r: number, c: number, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) out.set(a.subarray((r + i) * n + c, (r + i) * n + c + cols), i * cols);
  return out;
}

/** Writes `b` [rows, cols] into the n-wide `a` at (r, c), times `sign`. */
function putBlock(a: Float64Array, n: number, r: number, c: number, b: Float64Array, rows: number, cols: number, sign = 1): void {
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) a[(r + i) * n + c + j] = sign * b[i * cols + j]!;
}

/**
 * In-place lower Cholesky factor of the symmetric positive-definite a [n, n] (upper triangle zeroed), a block
 * of rows at a time: the diagonal block factored, the rows below solved against it (L21 = A21·L11⁻ᵀ) and the
 * trailing matrix updated (A22 −= L21·L21ᵀ, its lower triangle: nothing reads above the diagonal).
 */
async function blockedCholesky(a: Float64Array, n: number, floor: number, matmul: MatMul): Promise<void> {
  for (let kb = 0; kb < n; kb += BLOCK) {
    const b = Math.min(BLOCK, n - kb);
    const ke = kb + b;
    const m = n - ke;
    const d = blockOf(a, n, kb, kb, b, b);
    cholesky(d, b, floor);
    putBlock(a, n, kb, kb, d, b, b);
    if (m === 0) break;
    const l21 = await matmul(blockOf(a, n, ke, kb, m, b), transpose(lowerInverse(d, b), [b, b], [1, 0]), m, b, b);
    putBlock(a, n, ke, kb, l21, m, b);
    const p = await matmul(l21, transpose(l21, [m, b], [1, 0]), m, b, m);
    for (let i = 0; i < m; i++) {
      const ri = (ke + i) * n + ke;
      for (let j = 0; j <= i; j++) a[ri + j] = a[ri + j]! - p[i * m + j]!;
    }
  }
  for (let i = 0; i < n; i++) a.fill(0, i * n + i + 1, (i + 1) * n);
}

/** L⁻¹ of a lower-triangular L [n, n], a block of rows at a time: X_ii = L_ii⁻¹, X_i,<i = −L_ii⁻¹·(L_i,<i · X_<i,<i). */
async function blockedLowerInverse(l: Float64Array, n: number, matmul: MatMul): Promise<Float64Array> {
  const x = new Float64Array(n * n);
  for (let ib = 0; ib < n; ib += BLOCK) {
    const b = Math.min(BLOCK, n - ib);
    const inv = lowerInverse(blockOf(l, n, ib, ib, b, b), b);
    putBlock(x, n, ib, ib, inv, b, b);
    if (ib === 0) continue;
    const t = await matmul(blockOf(l, n, ib, 0, b, ib), blockOf(x, n, 0, 0, ib, ib), b, ib, ib);
    putBlock(x, n, ib, 0, await matmul(inv, t, b, b, ib), b, ib, -1);
  }
  return x;
}

/** Panel width of the block kernels below: a panel of a few hundred rows stays in cache. */
const PANEL = 64;

/**
 * The four dot products of rows p, p1 with rows q, q1 of `m` (row starts as offsets) over [from, to), into
 * `out`: two rows by two, half the loads of one product at a time (the Cholesky update).
 */
function dots2x2(m: Float64Array, p: number, p1: number, q: number, q1: number, from: number, to: number, out: Float64Array): void {
  let s00 = 0;
  let s01 = 0;
  let s10 = 0;
  let s11 = 0;
  for (let t = from; t < to; t++) {
    const a = m[p + t]!;
    const b = m[p1 + t]!;
    const c = m[q + t]!;
    const d = m[q1 + t]!;
    s00 += a * c;
    s01 += a * d;
    s10 += b * c;
    s11 += b * d;
  }
  out[0] = s00;
  out[1] = s01;
  out[2] = s10;
  out[3] = s11;
}

/** Subtracts dots2x2's sums at columns j, j + 1 of the rows starting at `row` and `row1` (−1: no second row; `next` false: no second column). */
function subtract2x2(t: Float64Array, row: number, row1: number, j: number, next: boolean, sums: Float64Array): void {
  t[row + j] = t[row + j]! - sums[0]!;
  if (next) t[row + j + 1] = t[row + j + 1]! - sums[1]!;
  if (row1 < 0) return;
  t[row1 + j] = t[row1 + j]! - sums[2]!;
  if (next) t[row1 + j + 1] = t[row1 + j + 1]! - sums[3]!;
}

/**
 * In-place lower Cholesky factor of the symmetric positive-definite a [n, n] (upper triangle zeroed),
 * right-looking by panels: each panel is factored, then the trailing matrix updated from it while it is
 * in cache (row by row it is memory-bound: 7 s at n = 2,880, a Conv over 960 channels × 1×3).
 */
function cholesky(a: Float64Array, n: number, floor: number): void {
  const sums = new Float64Array(4);
  for (let kb = 0; kb < n; kb += PANEL) {
    const ke = Math.min(n, kb + PANEL);
    for (let i = kb; i < n; i++) {
      const ri = i * n;
      for (let j = kb; j < Math.min(i + 1, ke); j++) {
        const rj = j * n;
        let s = a[ri + j]!;
        for (let k = kb; k < j; k++) s -= a[ri + k]! * a[rj + k]!;
        a[ri + j] = i === j ? Math.sqrt(Math.max(s, floor)) : s / a[rj + j]!;
      }
    }
    // Two rows by two (the upper triangle takes stray updates; it is never read and zeroed at the end).
    for (let i = ke; i < n; i += 2) {
      const ri = i * n;
      const ri1 = i + 1 < n ? ri + n : ri;
      for (let j = ke; j <= i; j += 2) {
        const rj = j * n;
        const rj1 = j + 1 < n ? rj + n : rj;
        dots2x2(a, ri, ri1, rj, rj1, kb, ke, sums);
        subtract2x2(a, ri, ri1 !== ri ? ri1 : -1, j, rj1 !== rj, sums);
      }
    }
  }
  for (let i = 0; i < n; i++) a.fill(0, i * n + i + 1, (i + 1) * n);
}

/** L⁻¹ of a lower-triangular L [n, n], by forward substitution a panel of columns at a time (the panel stays in cache). */
function lowerInverse(l: Float64Array, n: number): Float64Array {
  const inv = new Float64Array(n * n);
  const x = new Float64Array(n * PANEL);
  for (let jb = 0; jb < n; jb += PANEL) {
    const w = Math.min(PANEL, n - jb);
    x.fill(0);
    // Rows of X = L⁻¹[:, jb…jb+w) from jb on (those above are 0): X_i = (e_i − Σ_{jb≤k<i} L_ik·X_k) / L_ii.
    // Four columns at a time, summed in registers: X_k is read from the cached panel, nothing is stored per k.
    for (let i = jb; i < n; i++) {
      const xi = i * PANEL;
      const ri = i * n;
      const d = l[ri + i]!;
      for (let c = 0; c < w; c += 4) {
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        for (let k = jb; k < i; k++) {
          const lik = l[ri + k]!;
          const xk = k * PANEL + c;
          s0 += lik * x[xk]!;
          s1 += lik * x[xk + 1]!;
          s2 += lik * x[xk + 2]!;
          s3 += lik * x[xk + 3]!;
        }
        const e = i - jb - c;
        x[xi + c] = ((e === 0 ? 1 : 0) - s0) / d;
        x[xi + c + 1] = ((e === 1 ? 1 : 0) - s1) / d;
        x[xi + c + 2] = ((e === 2 ? 1 : 0) - s2) / d;
        x[xi + c + 3] = ((e === 3 ? 1 : 0) - s3) / d;
      }
      for (let c = 0; c < w; c++) inv[ri + jb + c] = x[xi + c]!;
    }
  }
  return inv;
}

/** Columns GPTQ quantizes between two updates of the columns after them (its "lazy batch"). */
const LAZY_BLOCK = 128;

/**
 * GPTQ of W [rows, cols] (rows are outputs, cols the inputs H is over) in groups of `groupSize` along cols;
 * each group's scale is set from the values as updated when the group is reached (bestScale). Columns go in
 * blocks, as GPTQ's authors run it: within a block each column's error is spread over the block's later
 * columns at once, over the columns after the block in one product (`matmul`) when the block is done —
 * the same arithmetic in another order, with nearly all of the rows · cols² work in that product. A block
 * holds whole groups (or a row is one group, its scale set before any update), so every group's values are
 * up to date when its scale is set. Rows are independent given U: four go together so each row of U is read
 * once for all four.
 */
export async function gptqQuantize(w: Float32Array, rows: number, cols: number, factor: HessianFactor, groupSize: number, grid: Grid, matmul: MatMul): Promise<BlockCodes> {
  const { u, diagonal } = factor;
  const groups = Math.ceil(cols / groupSize);
  const block = groupSize >= cols ? LAZY_BLOCK : groupSize * Math.max(1, Math.floor(LAZY_BLOCK / groupSize));
  const work = Float64Array.from(w);
  const codes = new Int8Array(rows * cols);
  const scales = new Float32Array(rows * groups);
  const round = roundHalfEven;
  const s = new Float64Array(4);
  const err = new Float64Array(4);
  for (let b0 = 0; b0 < cols; b0 += block) {
    const b1 = Math.min(cols, b0 + block);
    const width = b1 - b0;
    const errors = new Float64Array(rows * width);
    for (let r0 = 0; r0 < rows; r0 += 4) {
      const n = Math.min(4, rows - r0);
      // A group longer than a block (int8: one a row) goes on with the scale its first block set.
      if (b0 % groupSize !== 0) for (let t = 0; t < n; t++) s[t] = scales[(r0 + t) * groups + Math.floor(b0 / groupSize)]!;
      for (let c = b0; c < b1; c++) {
        const uc = c * cols;
        for (let t = 0; t < n; t++) {
          const row = (r0 + t) * cols;
          if (c % groupSize === 0) {
            s[t] = bestScale(work, row + c, row + Math.min(cols, c + groupSize), diagonal, -row, grid);
            scales[(r0 + t) * groups + c / groupSize] = s[t]!;
          }
          const v = work[row + c]!;
          const q = Math.min(grid.qmax, Math.max(grid.qmin, round(v / s[t]!)));
          codes[row + c] = q;
          err[t] = (v - q * s[t]!) / u[uc + c]!;
          errors[(r0 + t) * width + c - b0] = err[t]!;
        }
        if (n === 4) {
          const [p0, p1, p2, p3] = [r0 * cols, (r0 + 1) * cols, (r0 + 2) * cols, (r0 + 3) * cols];
          const [e0, e1, e2, e3] = [err[0]!, err[1]!, err[2]!, err[3]!];
          for (let j = c + 1; j < b1; j++) {
            const x = u[uc + j]!;
            work[p0 + j] = work[p0 + j]! - e0 * x;
            work[p1 + j] = work[p1 + j]! - e1 * x;
            work[p2 + j] = work[p2 + j]! - e2 * x;
            work[p3 + j] = work[p3 + j]! - e3 * x;
          }
        } else {
          for (let t = 0; t < n; t++) {
            const row = (r0 + t) * cols;
            const e = err[t]!;
            for (let j = c + 1; j < b1; j++) work[row + j] = work[row + j]! - e * u[uc + j]!;
          }
        }
      }
    }
    if (b1 === cols) break;
    const rest = cols - b1;
    const update = await matmul(errors, blockOf(u, cols, b0, b1, width, rest), rows, width, rest);
    for (let r = 0; r < rows; r++) {
      const row = r * cols + b1;
      for (let j = 0; j < rest; j++) work[row + j] = work[row + j]! - update[r * rest + j]!;
    }
  }
  return { codes, scales };
}

/** Clipping tried for each group's scale (its extreme onto the last level, then a little inside it). */
const SHRINKS = [1, 0.95, 0.9, 0.85, 0.8, 0.75];

/**
 * The group's scale, shrunk where that lowers its rounding error weighted by how large each input runs
 * (diag H): clipping a rare extreme buys a finer step for the rest (PaddleOCR's recogniser, 4-bit convs:
 * cosine 0.968 → 0.977 on its golden lines, 0.972 → 0.976 on 24 others).
 */
function bestScale(v: Float64Array, from: number, to: number, diagonal: Float64Array, offset: number, grid: Grid): number {
  const full = grid.scale(v, from, to);
  const round = roundHalfEven;
  let best = full;
  let bestErr = Infinity;
  for (const f of SHRINKS) {
    const s = full * f;
    let err = 0;
    for (let i = from; i < to; i++) {
      const q = Math.min(grid.qmax, Math.max(grid.qmin, round(v[i]! / s)));
      err += diagonal[i + offset]! * (v[i]! - q * s) ** 2;
    }
    if (err < bestErr) {
      bestErr = err;
      best = s;
    }
  }
  return best;
}

/** Σ x·xᵀ over a layer's input rows, with what shrinkTowardDiagonal needs of those rows. */
export interface HessianSum {
  /** Its upper triangle (j ≥ i); below the diagonal is not read. */
  h: Float64Array;
  rows: number;
  /** Σ over rows of Σ_{i≠j} x_i²·x_j². */
  crossFourth: number;
}

/**
 * One weight's H from the sums of every layer that multiplies it (TorchScript stores a TransformerEncoder's
 * identical layers' weights once): their rows pooled, the upper triangle mirrored, and shrunk toward its
 * diagonal where its correlations are mostly sampling noise. `shrinkage`: the share taken off, 0 for most.
 */
export function pooledHessian(sums: HessianSum[], k: number): { hessian: Float64Array; shrinkage: number } {
  const h = Float64Array.from(sums[0]!.h);
  for (const s of sums.slice(1)) for (let i = 0; i < h.length; i++) h[i] = h[i]! + s.h[i]!;
  for (let i = 0; i < k; i++) for (let j = 0; j < i; j++) h[i * k + j] = h[j * k + i]!;
  const rows = sums.reduce((n, s) => n + s.rows, 0);
  const crossFourth = sums.reduce((n, s) => n + s.crossFourth, 0);
  return { hessian: h, shrinkage: shrinkTowardDiagonal(h, k, rows, crossFourth) };
}

/** Below this share of noise H is left as it is (see shrinkTowardDiagonal). */
const SHRINK_FROM = 0.5;

/**
 * Shrinks H's off-diagonal toward 0 by the share of it that is sampling noise (Schäfer & Strimmer 2005,
 * target "diagonal, unequal variance"): α = Σ Var(h_ij) / Σ h_ij² over i ≠ j, from `rows` rows whose cross
 * fourth moment (Σ over rows of Σ_{i≠j} x_i²·x_j² = ‖x‖⁴ − Σ x_i⁴) is `crossFourth`. GPTQ moves each
 * rounding error onto the inputs H says are correlated; where those correlations are mostly noise of a small calibration set (independent features: α ≈ 1 at
 * any number of rows) it fits the noise and ends further from the model than rounding (the torch MLP's
 * 0.998 → 0.996). Only then, α ≥ ½: the estimate is made for H itself, not for GPTQ's use of its inverse,
 * and the few percent it finds in a Conv's strongly correlated patches, taken off, cost the detector
 * 0.994 → 0.991. Returns the α applied (0 when none).
 */
export function shrinkTowardDiagonal(h: Float64Array, k: number, rows: number, crossFourth: number): number {
  let off = 0;
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) if (i !== j) off += h[i * k + j]! * h[i * k + j]!;
  if (off === 0) return 0;
  // In units of H = N·S: Σ Var(h_ij) = N²·Σ Var(s_ij), Var(s_ij) = (mean of (x_i·x_j)² − s_ij²)/(N − 1).
  const alpha = rows < 2 ? 1 : Math.min(1, Math.max(0, (rows * crossFourth - off) / ((rows - 1) * off)));
  if (alpha < SHRINK_FROM) return 0;
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) if (i !== j) h[i * k + j] = h[i * k + j]! * (1 - alpha);
  return alpha;
}

/** A convolution's geometry along its spatial axes (1-, 2- or 3-D), as its attributes give it (the weight [M, C/group, …kernel]; pads: every begin, then every end). */
export interface ConvGeometry {
  kernel: number[];
  strides: number[];
  pads: number[];
  dilations: number[];
}

