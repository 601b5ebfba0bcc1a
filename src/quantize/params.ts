/**
 * Scale and zero-point arithmetic shared by every quantizer, following onnxruntime's quantization tool
 * (quant_utils.compute_scale_zp) including numpy's round-half-to-even, so our outputs match theirs.
 */

/** numpy.round / rint: ties go to the even neighbour (2.5 → 2, 3.5 → 4, -0.5 → -0). */
export function roundHalfEven(x: number): number {
  // floor(x + 0.5), then one step down for a tie to an odd number or where the addition itself rounded up
  // (0.49999999999999994 + 0.5 is 1). Both are rare, so the branch is predicted: Math.round (7 ns a value
  // in V8) or a test on which side of .5 the fraction lies (mispredicted half the time) cost 2–3× as much,
  // and quantizing is mostly this. The sign of a zero is x's, as numpy's (−0.3 and −0 give −0).
  let r = Math.floor(x + 0.5);
  const d = r - x;
  if (d > 0.5 || (d === 0.5 && r % 2 !== 0)) r -= 1;
  return r === 0 ? x * 0 : r;
}

export type QType = 'int8' | 'uint8' | 'int4' | 'uint4';

/**
 * The integer range of a type; symmetric signed ranges drop the most negative value (−127…127), as onnxruntime does.
 * `reduceRange` keeps 8-bit weights to 7 bits (int8 −64…64, uint8 0…127), as onnxruntime's reduce_range does:
 * x86 integer kernels without VNNI (AVX2, AVX-512 before VNNI) add u8·s8 products in pairs into saturating
 * 16-bit lanes, so 255·127·2 overflows and the output depends on the CPU; 255·64·2 = 32,640 cannot.
 */
export function qRange(q: QType, symmetric: boolean, reduceRange = false): [number, number] {
  if (reduceRange && q === 'int8') return [-64, 64];
  if (reduceRange && q === 'uint8') return [0, 127];
  switch (q) {
    case 'int8': return symmetric ? [-127, 127] : [-128, 127];
    case 'uint8': return [0, 255];
    case 'int4': return symmetric ? [-7, 7] : [-8, 7];
    case 'uint4': return [0, 15];
  }
}

export interface QParams {
  scale: number;
  zeroPoint: number;
}

/**
 * Scale and zero point mapping [rmin, rmax] (widened to include 0, so 0 is exact) onto [qmin, qmax].
 * Symmetric: the range is ±max(|rmin|, |rmax|) and the zero point the middle of the integer range.
 */
export function computeScaleZeroPoint(rmin: number, rmax: number, qmin: number, qmax: number, symmetric: boolean): QParams {
  let lo = Math.min(rmin, 0);
  let hi = Math.max(rmax, 0);
  if (symmetric) {
    const absmax = Math.max(Math.abs(lo), Math.abs(hi));
    lo = -absmax;
    hi = absmax;
  }
  // float32 arithmetic where onnxruntime's numpy code works in float32.
  const scale = Math.fround((hi - lo) / (qmax - qmin));
  if (scale === 0 || !Number.isFinite(scale)) return { scale: 1, zeroPoint: symmetric ? roundHalfEven((qmax + qmin) / 2) : 0 };
  const zeroPoint = symmetric ? roundHalfEven((qmax + qmin) / 2) : roundHalfEven(qmin - lo / scale);
  return { scale, zeroPoint: Math.min(qmax, Math.max(qmin, zeroPoint)) };
}

export function quantizeValue(x: number, scale: number, zeroPoint: number, qmin: number, qmax: number): number {
  return Math.min(qmax, Math.max(qmin, roundHalfEven(x / scale) + zeroPoint));
}
