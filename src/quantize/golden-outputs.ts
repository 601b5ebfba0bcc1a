/**
 * A registered version's own outputs on its golden inputs, stored beside them (golden-outputs.jsonl), and
 * their drift when the version is run again (`qcflow model check`: another onnxruntime, provider or CPU).
 * Every output is kept, bit for bit, as base64 of its raw bytes: a detector's box head can drift while its
 * class head does not, and base64 of float32 is about a quarter of the same values as JSON numbers, so all
 * eight heads of a layout detector take about what its first took before as JSON.
 */
import * as ort from 'onnxruntime-node';
import { cosine } from './agreement';
import { runOutputs, session, type GoldenSample, type ModelSource } from './evaluate';
import { float16BitsToFloat32 } from '../onnx/tensor';
import { QuantizeError } from './types';

/** One output tensor of one sample: its onnxruntime type, dims and raw little-endian bytes in base64. */
export interface StoredTensor {
  type: NumericType;
  dims: number[];
  base64: string;
}

/** One golden sample's outputs by name (one line of golden-outputs.jsonl). */
export interface GoldenOutput {
  outputs: Record<string, StoredTensor>;
}

/** Before every output was kept: the first output's values as JSON numbers. Still read, and checked as they are. */
interface FirstOutputOnly {
  output: string;
  data: number[];
}

const ARRAYS = {
  float32: Float32Array, float64: Float64Array, float16: Uint16Array,
  int8: Int8Array, uint8: Uint8Array, bool: Uint8Array, int16: Int16Array, uint16: Uint16Array,
  int32: Int32Array, uint32: Uint32Array, int64: BigInt64Array, uint64: BigUint64Array,
} as const;
type NumericType = keyof typeof ARRAYS;
const isNumeric = (type: string): type is NumericType => Object.hasOwn(ARRAYS, type);

export function storeTensor(t: ort.Tensor): StoredTensor {
  if (!isNumeric(t.type)) throw new QuantizeError(`output of type ${t.type} cannot be kept as a golden output; give the model numeric outputs`);
  const data = t.data as ArrayBufferView;
  return { type: t.type, dims: [...t.dims], base64: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64') };
}

/** A stored tensor's values as numbers (float16 widened; int64 to the nearest double). */
export function tensorValues(t: StoredTensor): Float64Array {
  const bytes = Buffer.from(t.base64, 'base64');
  // Copied into an aligned buffer: a Buffer's offset need not be a multiple of the element size.
  const raw = new ARRAYS[t.type](new Uint8Array(bytes).buffer);
  return t.type === 'float16' ? Float64Array.from(raw as Uint16Array, float16BitsToFloat32) : Float64Array.from(raw as ArrayLike<number | bigint>, Number);
}

/** One stored line, of either format. */
export function parseGoldenOutput(line: string): GoldenOutput {
  const v = JSON.parse(line) as GoldenOutput | FirstOutputOnly;
  if ('outputs' in v) return v;
  const data = Float32Array.from(v.data);
  return { outputs: { [v.output]: { type: 'float32', dims: [data.length], base64: Buffer.from(data.buffer).toString('base64') } } };
}

/** The model's outputs on each golden sample: every output, or those of `outputs` (what was stored before). */
export async function goldenOutputs(model: ModelSource, golden: GoldenSample[], o: { outputs?: string[]; providers?: string[]; progress?: () => void } = {}): Promise<GoldenOutput[]> {
  const s = await session(model, o.providers ?? ['cpu']);
  try {
    const names = o.outputs ?? [...s.outputNames];
    const missing = names.filter((n) => !s.outputNames.includes(n));
    if (missing.length) throw new QuantizeError(`the model has no output ${missing.join(', ')}, stored at registration (it has ${s.outputNames.join(', ')}); register the changed model as a new version`);
    const out: GoldenOutput[] = [];
    for (let i = 0; i < golden.length; i++) {
      const r = await runOutputs(s, golden[i]!, i, names);
      out.push({ outputs: Object.fromEntries(names.map((n) => [n, storeTensor(r[n]!)])) });
      o.progress?.();
    }
    return out;
  } finally {
    await s.release();
  }
}

export interface Drift {
  maxAbsError: number;
  minCosine: number;
}

/**
 * Drift of fresh outputs from stored ones, per output and overall (the worst of any output): largest
 * absolute difference and lowest cosine over the samples. A changed shape is an error naming the output.
 */
export function outputDrift(stored: GoldenOutput[], fresh: GoldenOutput[]): { samples: number; outputs: Record<string, Drift> } & Drift {
  if (stored.length !== fresh.length) throw new QuantizeError(`${stored.length} stored golden outputs but ${fresh.length} golden inputs; re-register the version`);
  const each: Record<string, Drift> = {};
  stored.forEach((s, i) => {
    for (const [name, t] of Object.entries(s.outputs)) {
      const f = fresh[i]!.outputs[name];
      if (!f) throw new QuantizeError(`golden sample ${i + 1}: output ${name} was stored at registration but not computed now`);
      const [a, b] = [tensorValues(t), tensorValues(f)];
      if (a.length !== b.length) throw new QuantizeError(`golden sample ${i + 1}: output ${name} has ${b.length} values (dims [${f.dims.join(', ')}]) now, ${a.length} at registration: the model's outputs changed shape`);
      let maxAbs = 0;
      for (let j = 0; j < a.length; j++) maxAbs = Math.max(maxAbs, Math.abs(a[j]! - b[j]!));
      const d = (each[name] ??= { maxAbsError: 0, minCosine: 1 });
      d.maxAbsError = Math.max(d.maxAbsError, maxAbs);
      d.minCosine = Math.min(d.minCosine, cosine(a, b));
    }
  });
  const all = Object.values(each);
  return { samples: stored.length, maxAbsError: Math.max(0, ...all.map((d) => d.maxAbsError)), minCosine: Math.min(1, ...all.map((d) => d.minCosine)), outputs: each };
}
