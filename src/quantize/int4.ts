import type { onnx } from '../onnx/proto';
import { node } from '../onnx/build';
import { DT, makeTensor } from '../onnx/tensor';
import { computeScaleZeroPoint, quantizeValue } from './params';
import { registerMatMulAndGemm } from './matmul-like';
import type { QuantizeContext } from './types';

export interface Int4Weight {
  /** [N, blocks, blockSize/2] bytes, two values per byte, the first in the low nibble. */
  packed: Uint8Array;
  /** [N * blocks] scales. */
  scales: Float32Array;
  /** [N * ceil(blocks/2)] packed zero points; absent when symmetric (MatMulNBits then uses 8). */
  zeroPoints?: Uint8Array;
}

/**
 * Block-wise 4-bit quantization of a MatMul weight W [K, N] in MatMulNBits' layout: each column is split
 * into blocks of `blockSize` along K (the last padded with zeros), each block with its own scale and, when
 * asymmetric, zero point. Stored as unsigned nibbles; symmetric blocks are centred on 8.
 */
export function quantizeInt4(w: Float32Array, k: number, n: number, blockSize: number, symmetric: boolean): Int4Weight {
  const blocks = Math.ceil(k / blockSize);
  const blob = blockSize / 2;
  const packed = new Uint8Array(n * blocks * blob);
  const scales = new Float32Array(n * blocks);
  const zeroPoints = symmetric ? undefined : new Uint8Array(n * Math.ceil(blocks / 2));
  const q = new Uint8Array(blockSize);
  for (let col = 0; col < n; col++) {
    for (let b = 0; b < blocks; b++) {
      let lo = 0;
      let hi = 0;
      for (let i = 0; i < blockSize; i++) {
        const r = b * blockSize + i;
        if (r >= k) break;
        const v = w[r * n + col]!;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      // Symmetric: ±absmax onto −7…7 around 8 (nibbles 1…15); asymmetric: [min, max] onto 0…15.
      const p = symmetric ? { ...computeScaleZeroPoint(lo, hi, -7, 7, true), zeroPoint: 8 } : computeScaleZeroPoint(lo, hi, 0, 15, false);
      scales[col * blocks + b] = p.scale;
      for (let i = 0; i < blockSize; i++) {
        const r = b * blockSize + i;
        q[i] = r < k ? quantizeValue(w[r * n + col]!, p, 0, 15) : p.zeroPoint;
      }
      const base = (col * blocks + b) * blob;
      for (let i = 0; i < blob; i++) packed[base + i] = (q[2 * i]! & 0x0f) | ((q[2 * i + 1]! & 0x0f) << 4);
      if (zeroPoints) {
        const at = col * Math.ceil(blocks / 2) + (b >> 1);
        zeroPoints[at] = b & 1 ? (zeroPoints[at]! & 0x0f) | (p.zeroPoint << 4) : (zeroPoints[at]! & 0xf0) | p.zeroPoint;
      }
    }
  }
  return { packed, scales, zeroPoints };
}

/** The float weight MatMulNBits computes with: (nibble − zero point) · scale, back in [K, N] layout. */
export function dequantizeInt4(q: Int4Weight, k: number, n: number, blockSize: number): Float32Array {
  const blocks = Math.ceil(k / blockSize);
  const out = new Float32Array(k * n);
  for (let col = 0; col < n; col++) {
    for (let r = 0; r < k; r++) {
      const b = Math.floor(r / blockSize);
      const i = r % blockSize;
      const byte = q.packed[(col * blocks + b) * (blockSize / 2) + (i >> 1)]!;
      const nib = i & 1 ? byte >> 4 : byte & 0x0f;
      const zpByte = q.zeroPoints ? q.zeroPoints[col * Math.ceil(blocks / 2) + (b >> 1)]! : 0x88;
      const zp = q.zeroPoints ? (b & 1 ? zpByte >> 4 : zpByte & 0x0f) : 8;
      out[r * n + col] = (nib - zp) * q.scales[col * blocks + b]!;
    }
  }
  return out;
}

/** MatMulNBits(A, W) → `output`, W [K, N] quantized in blocks of the configured size. */
function matMulNBits(ctx: QuantizeContext, base: string, input: string, weight: Float32Array, k: number, cols: number, output: string): onnx.INodeProto[] {
  const bs = ctx.options.blockSize;
  const q = quantizeInt4(weight, k, cols, bs, ctx.options.symmetric);
  const blocks = Math.ceil(k / bs);
  const b = ctx.index.uniqueName(`${base}_weight_int4`);
  const s = ctx.index.uniqueName(`${base}_weight_scales`);
  ctx.addInitializer(makeTensor(b, DT.UINT8, [cols, blocks, bs / 2], q.packed));
  ctx.addInitializer(makeTensor(s, DT.FLOAT, [cols * blocks], q.scales));
  const inputs = [input, b, s];
  if (q.zeroPoints) {
    const z = ctx.index.uniqueName(`${base}_weight_zero_points`);
    ctx.addInitializer(makeTensor(z, DT.UINT8, [cols * Math.ceil(blocks / 2)], q.zeroPoints));
    inputs.push(z);
  }
  ctx.domains.add('com.microsoft');
  return [{ ...node('MatMulNBits', inputs, [output], { K: k, N: cols, bits: 4, block_size: bs }, ctx.index.uniqueName(`${base}_MatMulNBits`)), domain: 'com.microsoft' }];
}

registerMatMulAndGemm('int4', matMulNBits);
