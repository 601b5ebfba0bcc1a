/**
 * How close a candidate's outputs are to the reference's, over a stream of samples: one way for the
 * evaluation that decides (evaluateCandidate) and for the choices calibration makes (GPTQ's keep-or-round,
 * the sensitivity search). Every float output is judged and the weakest counts: RapidAI's PicoDet's
 * int8-static scored 0.907 on its first head while two others were at 0.84. Per output, the cosine of each
 * sample (mean and worst); for an output of one value a sample (silero-vad's speech probability, a score),
 * 1 − the stream's relative L2 error instead, since one value's cosine is only its sign (GPTQ and rounding
 * both scored 1 there, and the tie kept GPTQ unchecked; evaluations reported 1 whatever the drift).
 */
import { QuantizeError } from './types';

export interface Agreement {
  mean: number;
  /** The worst sample's: its cosine, or for one-value outputs 1 − its error over the stream's RMS value. */
  min: number;
}

type Outputs = Record<string, { data: unknown }>;

export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na === 0 && nb === 0 ? 1 : dot / Math.sqrt(na * nb || 1);
}

function oneOutput(): { add(reference: Float32Array, candidate: Float32Array): void; value(): Agreement } {
  let [cosSum, cosMin, n, error, norm, worst] = [0, 1, 0, 0, 0, 0];
  let scalar = true;
  return {
    add(reference, candidate) {
      const c = cosine(reference, candidate);
      cosSum += c;
      cosMin = Math.min(cosMin, c);
      n++;
      scalar &&= reference.length === 1;
      const d = reference[0]! - candidate[0]!;
      error += d * d;
      norm += reference[0]! ** 2;
      worst = Math.max(worst, Math.abs(d));
    },
    value: () => (scalar && n > 0
      ? { mean: 1 - Math.sqrt(error / (norm || 1)), min: 1 - worst / (Math.sqrt(norm / n) || 1) }
      : { mean: cosSum / Math.max(1, n), min: cosMin }),
  };
}

export function outputsAgreement(): { add(reference: Outputs, candidate: Outputs): void; each(): Record<string, Agreement>; weakest(): Agreement } {
  const sums = new Map<string, ReturnType<typeof oneOutput>>();
  const each = (): Record<string, Agreement> => Object.fromEntries([...sums].map(([name, s]) => [name, s.value()]));
  return {
    add(reference, candidate) {
      for (const [name, t] of Object.entries(reference)) {
        if (!(t.data instanceof Float32Array)) continue;
        if (!sums.has(name)) sums.set(name, oneOutput());
        sums.get(name)!.add(t.data, candidate[name]!.data as Float32Array);
      }
    },
    each,
    weakest() {
      const all = Object.values(each());
      if (!all.length) throw new QuantizeError('the model has no float output to compare by cosine; name one with --output-name');
      return { mean: Math.min(...all.map((x) => x.mean)), min: Math.min(...all.map((x) => x.min)) };
    },
  };
}
