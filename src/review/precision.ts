import { foundWrong, type ReviewDecision } from './decisions';
import { calibration, type CalibrationBin } from '../qc/stats/calibration';

/** One group of decided reviews of would-be-accepted samples (the audit share, or an alerted annotator's share). */
export interface PrecisionRow {
  reason: string;
  modelVersion: string | null;
  decision: ReviewDecision;
  n: number;
}

export interface PrecisionGroup {
  /** The layer-3 model version that scored the samples (null: the project has no layer-3 model). */
  modelVersion: string | null;
  reviewed: number;
  upheld: number;
  overturned: { reject: number; correct: number; resample: number };
  /** Share of auto-accepted samples a reviewer let stand; null before any review. */
  precision: number | null;
  /** 95% Wilson score interval of the precision: small audit samples are wide, and a dashboard should say so. */
  interval: [number, number] | null;
}

export interface PrecisionReport {
  overall: PrecisionGroup;
  byModelVersion: PrecisionGroup[];
  byReason: Record<string, PrecisionGroup>;
  /**
   * Layer 5's probability that the labels are wrong against what reviewers decided (corrected or rejected = wrong),
   * over every decided review with a risk estimate (resamples aside: they say nothing of the labels),
   * binned: a calibrated estimate has observed ≈ predicted. `rawEce` is the annotator models' estimate
   * before recalibration against reviews, on the same reviews.
   */
  calibration: { reviewed: number; ece: number | null; rawEce: number | null; table: CalibrationBin[] };
}

/** One decided review of a sample layer 5 gave a probability of being wrong, and the models' own estimate before recalibration. */
export interface CalibrationRow {
  pWrong: number;
  rawPWrong: number;
  decision: ReviewDecision;
}

/** The 95% Wilson score interval for k successes in n trials. */
export function wilsonInterval(k: number, n: number, z = 1.959963984540054): [number, number] | null {
  if (n === 0) return null;
  const p = k / n;
  const denom = 1 + (z * z) / n;
  const centre = (p + (z * z) / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / denom;
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

function group(rows: PrecisionRow[], modelVersion: string | null): PrecisionGroup {
  const count = (d: ReviewDecision): number => rows.filter((r) => r.decision === d).reduce((s, r) => s + r.n, 0);
  const upheld = count('approve');
  const overturned = { reject: count('reject'), correct: count('correct'), resample: count('resample') };
  const reviewed = upheld + overturned.reject + overturned.correct + overturned.resample;
  return { modelVersion, reviewed, upheld, overturned, precision: reviewed ? upheld / reviewed : null, interval: wilsonInterval(upheld, reviewed) };
}

/** QC precision: how often a sample the machine would have accepted is upheld by a reviewer, overall and per model version. */
export function qcPrecision(rows: PrecisionRow[], reviews: CalibrationRow[] = []): PrecisionReport {
  const settled = reviews.flatMap((r) => {
    const wrong = foundWrong(r.decision);
    return wrong === undefined ? [] : [{ ...r, wrong }];
  });
  const cal = calibration(settled.map((r) => r.pWrong), settled.map((r) => r.wrong));
  const raw = calibration(settled.map((r) => r.rawPWrong), settled.map((r) => r.wrong));
  const versions = [...new Set(rows.map((r) => r.modelVersion))].sort((a, b) => String(a).localeCompare(String(b)));
  const reasons = [...new Set(rows.map((r) => r.reason))].sort();
  return {
    overall: group(rows, null),
    byModelVersion: versions.map((v) => group(rows.filter((r) => r.modelVersion === v), v)),
    byReason: Object.fromEntries(reasons.map((reason) => [reason, group(rows.filter((r) => r.reason === reason), null)])),
    calibration: { reviewed: settled.length, ece: settled.length ? cal.ece : null, rawEce: settled.length ? raw.ece : null, table: cal.table },
  };
}
