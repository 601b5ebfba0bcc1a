/**
 * Accuracy-driven mixed precision: which quantized nodes to keep in float so the model agrees with its
 * fp32 self to a target. Pure orchestration over an injected `score` (mean cosine with fp32 of the model
 * with each set of nodes kept float), so the search is unit-tested without onnxruntime;
 * quantize-model.ts supplies the real one (int8-static's --min-cosine, the workflow's rankSensitiveNodes).
 */

/** Candidates scored together (each an onnxruntime session open at once beside fp32's). */
export const SENSITIVITY_BATCH = 4;

/** Mean cosine with fp32 of the model with each set of nodes kept float. */
export type Score = (keptFloat: string[][]) => Promise<number[]>;

export interface SensitivityOptions {
  /** The mean cosine to reach against fp32 on the samples. */
  target: number;
  /** At most this many nodes kept float (the rest of the search is then given up, and said so). */
  maxKept: number;
  /** What keeping a node float costs (its weights' bytes): nodes are taken by gain per cost. Default 1 each. */
  cost?: (node: string) => number;
  /** After each batch: evaluations so far, and the most the search can take. */
  progress?: (evaluations: number, atMost: number) => void;
}

export interface SensitivityReport {
  target: number;
  /** Mean cosine of the model with every chosen node quantized, and of the result. */
  start: number;
  reached: number;
  /** Nodes kept float, in the order taken, each with the cosine it took the model to. */
  kept: { node: string; cosine: number }[];
  /** Single-node gains of the nodes tried (cosine with that node alone float, less start), largest first. */
  gains: { node: string; gain: number }[];
  evaluations: number;
  met: boolean;
}

/**
 * Greedy by sensitivity: each candidate is scored with it alone kept float, then taken in the order of
 * that gain per cost, each kept only where the model as a whole got closer to fp32 (errors interact: the
 * second most sensitive node can be harmless once the first is float), until the target or `maxKept`.
 */
export async function keepSensitiveFloat(candidates: string[], score: Score, o: SensitivityOptions): Promise<SensitivityReport> {
  const counted = counting(score, 1 + candidates.length + Math.min(2 * o.maxKept, candidates.length), o.progress);
  const [start] = await counted.score([[]]);
  const report = (kept: SensitivityReport['kept'], gains: SensitivityReport['gains'], reached: number): SensitivityReport => ({ target: o.target, start: start!, reached, kept, gains, evaluations: counted.evaluations(), met: reached >= o.target });
  if (start! >= o.target || candidates.length === 0 || o.maxKept <= 0) return report([], [], start!);
  const { gains } = await rankByFloatGain(candidates, counted.score, undefined, start);
  const cost = o.cost ?? ((): number => 1);
  const order = gains.filter((g) => g.gain > 0).sort((a, b) => b.gain / cost(b.node) - a.gain / cost(a.node));
  const kept: SensitivityReport['kept'] = [];
  let reached = start!;
  // Twice maxKept tried at most: past that, single-node gains no longer predict what helps.
  for (const { node } of order.slice(0, 2 * o.maxKept)) {
    if (reached >= o.target || kept.length >= o.maxKept) break;
    const [s] = await counted.score([[...kept.map((k) => k.node), node]]);
    if (s! > reached) {
      kept.push({ node, cosine: s! });
      reached = s!;
    }
  }
  return report(kept, gains, reached);
}

/** Each candidate's gain in agreement when it alone is kept float, largest first (and the all-quantized agreement they are measured from). */
export async function rankByFloatGain(candidates: string[], score: Score, progress?: (evaluations: number, atMost: number) => void, start?: number): Promise<{ start: number; gains: { node: string; gain: number }[] }> {
  const counted = counting(score, candidates.length + (start === undefined ? 1 : 0), progress);
  const base = start ?? (await counted.score([[]]))[0]!;
  const alone = await counted.score(candidates.map((c) => [c]));
  return { start: base, gains: candidates.map((node, i) => ({ node, gain: alone[i]! - base })).sort((a, b) => b.gain - a.gain) };
}

/** Scores sets SENSITIVITY_BATCH at a time, counting evaluations and reporting progress after each batch. */
function counting(score: Score, atMost: number, progress?: (evaluations: number, atMost: number) => void): { score: Score; evaluations: () => number } {
  let evaluations = 0;
  return {
    evaluations: () => evaluations,
    score: async (sets) => {
      const out: number[] = [];
      for (let i = 0; i < sets.length; i += SENSITIVITY_BATCH) {
        const batch = sets.slice(i, i + SENSITIVITY_BATCH);
        out.push(...(await score(batch)));
        evaluations += batch.length;
        progress?.(evaluations, atMost);
      }
      return out;
    },
  };
}
