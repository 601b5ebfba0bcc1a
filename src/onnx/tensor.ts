import { onnx, OnnxFormatError } from './proto';

export const DT = onnx.TensorProto.DataType;

export const elementCount = (dims: ArrayLike<number | Long>): number => Array.from(dims, Number).reduce((a, b) => a * b, 1);

type Long = { toNumber(): number };

/** A tensor whose data cannot be read as declared: the model's fault (a bad input, as OnnxFormatError is). */
export class TensorDataError extends OnnxFormatError {
  override name = 'TensorDataError';
}

/** A tensor's little-endian bytes, whichever field holds them (raw_data, or the typed repeated fields). */
export function tensorBytes(t: onnx.ITensorProto): Uint8Array {
  if (t.rawData && t.rawData.length) return t.rawData;
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) throw new TensorDataError(`tensor ${t.name}: external data not loaded; read the model with readModelFile`);
  const n = elementCount(t.dims ?? []);
  switch (t.dataType) {
    case DT.FLOAT: return new Uint8Array(Float32Array.from(t.floatData ?? []).buffer);
    case DT.DOUBLE: return new Uint8Array(Float64Array.from(t.doubleData ?? []).buffer);
    case DT.INT64: return new Uint8Array(BigInt64Array.from((t.int64Data ?? []).map((v) => BigInt(String(v)))).buffer);
    case DT.INT32: return new Uint8Array(Int32Array.from(t.int32Data ?? []).buffer);
    // int8/uint8/int16/uint16/bool/float16 live in int32_data, one element per entry.
    case DT.INT8: return new Uint8Array(Int8Array.from(t.int32Data ?? []).buffer);
    case DT.UINT8: case DT.BOOL: return Uint8Array.from(t.int32Data ?? []);
    case DT.FLOAT16: case DT.UINT16: return new Uint8Array(Uint16Array.from(t.int32Data ?? []).buffer);
    case DT.INT16: return new Uint8Array(Int16Array.from(t.int32Data ?? []).buffer);
    default:
      if (n === 0) return new Uint8Array(0);
      throw new TensorDataError(`tensor ${t.name}: data type ${t.dataType} is not supported`);
  }
}

/**
 * Copies into a fresh, aligned buffer of exactly these bytes: protobuf hands out Buffer views into the whole
 * file at any offset, and Buffer#slice would share that memory rather than copy it.
 */
function aligned(bytes: Uint8Array): ArrayBuffer {
  return new Uint8Array(bytes).buffer;
}

/** A float tensor's values as float32 (float16 and double are converted). */
export function floatValues(t: onnx.ITensorProto): Float32Array {
  const bytes = tensorBytes(t);
  const width = t.dataType === DT.DOUBLE ? 8 : t.dataType === DT.FLOAT16 ? 2 : 4;
  const need = elementCount(t.dims ?? []) * width;
  if ([DT.FLOAT, DT.DOUBLE, DT.FLOAT16].includes(t.dataType!) && bytes.length !== need) throw new TensorDataError(`tensor ${t.name}: holds ${bytes.length} bytes where its dims [${(t.dims ?? []).join(', ')}] need ${need}: the model is damaged; re-export it`);
  if (t.dataType === DT.FLOAT) return new Float32Array(aligned(bytes));
  if (t.dataType === DT.DOUBLE) return Float32Array.from(new Float64Array(aligned(bytes)));
  if (t.dataType === DT.FLOAT16) return Float32Array.from(new Uint16Array(aligned(bytes)), float16BitsToFloat32);
  throw new TensorDataError(`tensor ${t.name}: expected a float tensor, got data type ${t.dataType}`);
}

/**
 * Whether a float32 tensor holds NaN or ±Inf (all exponent bits set), read from its little-endian bytes in
 * place: checked before every weight is quantized, where a floatValues copy cost a 60 MB model's int8
 * 150 ms of 480 (this, ≈ 50).
 */
export function hasNonFinite(t: onnx.ITensorProto): boolean {
  const b = tensorBytes(t);
  // The exponent is in the top two bytes of each value; protobuf's views may sit at any offset.
  for (let i = 3; i < b.length; i += 4) if ((b[i]! & 0x7f) === 0x7f && (b[i - 1]! & 0x80) !== 0) return true;
  return false;
}

/** Row-major N-D transpose: out[i_perm[0], …] = x[i_0, …]. */
export function transpose<T extends Float32Array | Float64Array | Int8Array>(x: T, dims: number[], perm: number[]): T {
  const rank = dims.length;
  const outDims = perm.map((p) => dims[p]!);
  const strides = dims.map((_, i) => elementCount(dims.slice(i + 1)));
  const out = new (x.constructor as new (n: number) => T)(x.length);
  if (rank === 2 && perm[0] === 1) {
    // A weight matrix flipped (the common case): in 32 × 32 tiles, so reads and writes both stay in cache.
    const [r, c] = dims as [number, number];
    for (let i0 = 0; i0 < r; i0 += 32) {
      for (let j0 = 0; j0 < c; j0 += 32) {
        for (let i = i0; i < Math.min(r, i0 + 32); i++) for (let j = j0; j < Math.min(c, j0 + 32); j++) out[j * r + i] = x[i * c + j]!;
      }
    }
    return out;
  }
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0; o < out.length; o++) {
    let src = 0;
    for (let i = 0; i < rank; i++) src += idx[i]! * strides[perm[i]!]!;
    out[o] = x[src]!;
    for (let i = rank - 1; i >= 0; i--) {
      if (++idx[i]! < outDims[i]!) break;
      idx[i] = 0;
    }
  }
  return out;
}

export function makeTensor(name: string, dataType: number, dims: number[], data: Float32Array | Uint8Array | Int8Array | Uint16Array | Int32Array | BigInt64Array): onnx.ITensorProto {
  return { name, dataType, dims, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice() };
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bits of a number, rounded to nearest even (as numpy's astype(float16)); overflow → ±Inf. */
export function float32ToFloat16Bits(value: number): number {
  f32[0] = value;
  return halfOfSingleBits(u32[0]!);
}

/**
 * float32ToFloat16Bits over a whole tensor, read as its bits in one loop: Uint16Array.from with the
 * per-value function took 150 ns a value (2 s of the 54 MB ddddocr recogniser's fp16), this a few.
 */
export function float32ArrayToFloat16Bits(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) out[i] = halfOfSingleBits(bits[i]!);
  return out;
}

/**
 * Whether every value is a normal float16 (2⁻¹⁴ ≤ |v| ≤ 65504) or zero: stored as float16 it keeps 11
 * significant bits. A scale below that range would lose precision as a subnormal, one above it overflow.
 */
export function fitsFloat16(values: Float32Array): boolean {
  for (const v of values) {
    const a = Math.abs(v);
    if (a !== 0 && !(a >= 2 ** -14 && a <= 65504)) return false;
  }
  return true;
}

/**
 * Block scales as a tensor: float16 where every one fits (fitsFloat16), float32 otherwise. A reader checks
 * the tensor's dataType to know whether to cast it back.
 */
export function scalesTensor(name: string, dims: number[], scales: Float32Array): onnx.ITensorProto {
  return fitsFloat16(scales) ? makeTensor(name, DT.FLOAT16, dims, float32ArrayToFloat16Bits(scales)) : makeTensor(name, DT.FLOAT, dims, scales);
}

function halfOfSingleBits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf / NaN
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // underflows to ±0
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && (m & 1))) m++;
    return sign | m;
  }
  const rest = mant & 0x1fff;
  let m = mant >>> 13;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1))) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

export function float16BitsToFloat32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}
