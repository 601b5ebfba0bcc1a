import { computeScaleZeroPoint, qRange, quantizeValue } from './params';

export interface QuantizedWeight {
  /** Quantized values in the weight's own layout (int8 or uint8 as `qtype` says). */
  values: Int8Array | Uint8Array;
  /** One per channel along `axis`, or one for the tensor. */
  scales: Float32Array;
  zeroPoints: Int8Array | Uint8Array;
}

/**
 * Quantizes a weight tensor to 8 bits, per tensor or per channel along `axis` (the output channel: axis 1
 * of a MatMul weight [K, N], axis 0 of a Conv weight [M, C, kH, kW]).
 */
export function quantizeWeight8(values: Float32Array, dims: number[], o: { axis: number; perChannel: boolean; symmetric: boolean; qtype: 'int8' | 'uint8'; reduceRange?: boolean }): QuantizedWeight {
  const [qmin, qmax] = qRange(o.qtype, o.symmetric, o.reduceRange);
  const channels = o.perChannel ? dims[o.axis]! : 1;
  // Values in runs of `inner` per channel, channels repeating `outer` times: no division per value (a
  // 13.7 MB transformer's int8 took 0.23 s, most of it here).
  const inner = o.perChannel ? dims.slice(o.axis + 1).reduce((a, b) => a * b, 1) : values.length;
  const outer = values.length / (channels * inner);
  const lo = new Float64Array(channels).fill(Infinity);
  const hi = new Float64Array(channels).fill(-Infinity);
  for (let b = 0, i = 0; b < outer; b++) {
    for (let c = 0; c < channels; c++) {
      let l = lo[c]!;
      let h = hi[c]!;
      for (const end = i + inner; i < end; i++) {
        const v = values[i]!;
        if (v < l) l = v;
        if (v > h) h = v;
      }
      lo[c] = l;
      hi[c] = h;
    }
  }
  const params = Array.from({ length: channels }, (_, c) => computeScaleZeroPoint(Number.isFinite(lo[c]!) ? lo[c]! : 0, Number.isFinite(hi[c]!) ? hi[c]! : 0, qmin, qmax, o.symmetric));
  const Q = o.qtype === 'int8' ? Int8Array : Uint8Array;
  const out = new Q(values.length);
  // Scales are float32 already (computeScaleZeroPoint), zero points within the type: stored as computed.
  const scales = Float32Array.from(params, (p) => p.scale);
  const zeroPoints = new Q(channels);
  params.forEach((p, c) => (zeroPoints[c] = p.zeroPoint));
  const quantize = quantizeValue; // once: an imported binding is a property read on every call
  for (let b = 0, i = 0; b < outer; b++) {
    for (let c = 0; c < channels; c++) {
      const s = scales[c]!;
      const z = zeroPoints[c]!;
      for (const end = i + inner; i < end; i++) out[i] = quantize(values[i]!, s, z, qmin, qmax);
    }
  }
  return { values: out, scales, zeroPoints };
}

