import { computeScaleZeroPoint, minMax, qRange, quantizeValue } from './params';

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
  const inner = dims.slice(o.axis + 1).reduce((a, b) => a * b, 1);
  const channelOf = (i: number): number => (o.perChannel ? Math.floor(i / inner) % channels : 0);
  const lo = new Float64Array(channels).fill(Infinity);
  const hi = new Float64Array(channels).fill(-Infinity);
  if (o.perChannel) {
    for (let i = 0; i < values.length; i++) {
      const c = channelOf(i);
      if (values[i]! < lo[c]!) lo[c] = values[i]!;
      if (values[i]! > hi[c]!) hi[c] = values[i]!;
    }
  } else {
    [lo[0], hi[0]] = minMax(values);
  }
  const params = Array.from({ length: channels }, (_, c) => computeScaleZeroPoint(Number.isFinite(lo[c]!) ? lo[c]! : 0, Number.isFinite(hi[c]!) ? hi[c]! : 0, qmin, qmax, o.symmetric));
  const Q = o.qtype === 'int8' ? Int8Array : Uint8Array;
  const out = new Q(values.length);
  for (let i = 0; i < values.length; i++) out[i] = quantizeValue(values[i]!, params[channelOf(i)]!, qmin, qmax);
  const zeroPoints = new Q(channels);
  params.forEach((p, c) => (zeroPoints[c] = p.zeroPoint));
  return { values: out, scales: Float32Array.from(params, (p) => p.scale), zeroPoints };
}

