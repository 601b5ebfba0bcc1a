/**
 * What a finished activity says about QC, as metric observations: its result already holds the batch's
 * counts, so the activities stay free of metric calls. Pure: the interceptor applies what this returns.
 */
export interface Observation {
  /** qcflow_qc_samples_total's labels and increment. */
  samples?: Array<{ layer: string; outcome: string; n: number }>;
  batchSeconds?: number;
  release?: { rows: number; bytes: number };
  /** Subjects (annotators, '*' the stream) under a layer-4 decay alert after a batch. */
  decayAlerts?: number;
}

type Rec = Record<string, unknown>;
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);
const rec = (v: unknown): Rec => (v && typeof v === 'object' ? (v as Rec) : {});

export function observeActivity(activityType: string, result: unknown): Observation {
  const r = rec(result);
  switch (activityType) {
    case 'runCompliance':
      return { samples: [{ layer: '1', outcome: 'passed', n: num(r.passed) }, { layer: '1', outcome: 'flagged', n: num(r.failed) }] };
    case 'runConsistency':
      return { samples: [{ layer: '2', outcome: 'passed', n: num(r.samples) - num(r.conflicts) }, { layer: '2', outcome: 'flagged', n: num(r.conflicts) }] };
    case 'scorePlausibility': {
      const flagged = num(r.disagreements);
      return { samples: [
        { layer: '3', outcome: 'passed', n: Math.max(0, num(r.scored) - flagged) },
        { layer: '3', outcome: 'flagged', n: flagged },
        { layer: '3', outcome: 'failed', n: num(r.failed) },
      ] };
    }
    case 'trackQualityDecay':
      return { decayAlerts: Array.isArray(r.alerts) ? r.alerts.length : 0 };
    case 'fuseAndDispose': {
      const c = rec(r.counts);
      return { samples: ['accepted', 'review', 'resample', 'rejected'].map((outcome) => ({ layer: '5', outcome, n: num(c[outcome]) })) };
    }
    case 'finishBatch':
      return typeof r.seconds === 'number' ? { batchSeconds: num(r.seconds) } : {};
    case 'writeReleaseFiles': {
      const jsonl = rec(r.jsonl);
      const arrow = rec(r.arrow);
      return { release: { rows: num(jsonl.rows), bytes: num(jsonl.bytes) + num(arrow.bytes) } };
    }
    default:
      return {};
  }
}
