export type Disposition = 'accepted' | 'review' | 'resample' | 'rejected';

export interface LayerOutcome {
  layer1Passed: boolean;
}

/**
 * Routes a sample once its layers have run. With only layer 1 in place a compliant sample is accepted;
 * layers 2–5 extend the inputs and the rules (conflict → review, fused confidence → accept/review/resample).
 */
export function decideDisposition(o: LayerOutcome): Disposition {
  return o.layer1Passed ? 'accepted' : 'rejected';
}
