/**
 * Real annotators' boxes: a street photo that 18 people annotated with extreme-point boxes
 * (github.com/ZJW-92/Image_Annotation, `data/`: the JPEG and `*_judgements.json`, one list of objects per
 * person). Pure logic for `npm run bench -- review-real`: reading the judgements as qcflow boxes, the
 * 18-person reference, and whether a consensus drawn from three of them agrees with it.
 */
import { iou, median, type Box } from '../src/qc/consistency/matching';

export interface LabelBox extends Box {
  class: string;
}

export interface Judgement {
  annotator: string;
  boxes: LabelBox[];
}

interface RawObject {
  type?: unknown;
  properties?: { ObjectID?: unknown };
  boundaries?: Array<{ boundaryPoints?: Array<{ coords?: unknown }> }>;
}

/**
 * Each person's objects as boxes (the extreme points' bounding box, in pixels, y down). An object without
 * points cannot be a box: it is listed in `dropped` with where it is, as a converter would report it.
 */
export function readJudgements(json: unknown): { judgements: Judgement[]; dropped: string[] } {
  if (!json || typeof json !== 'object') throw new Error('judgements: expected an object of annotator → objects');
  const dropped: string[] = [];
  const judgements = Object.entries(json as Record<string, RawObject[]>).map(([k, objects]) => {
    const boxes: LabelBox[] = [];
    objects.forEach((o, i) => {
      const points = (o.boundaries ?? []).flatMap((b) => b.boundaryPoints ?? []).map((p) => p.coords);
      const xy = points.filter((c): c is [number, number] => Array.isArray(c) && c.length === 2 && c.every((v) => typeof v === 'number'));
      if (xy.length < 2 || typeof o.type !== 'string') {
        dropped.push(`judgement ${k}, object ${i} (${String(o.type)}): ${xy.length} boundary points, a box needs at least 2`);
        return;
      }
      const xs = xy.map((c) => c[0]);
      const ys = xy.map((c) => c[1]);
      const round = (v: number) => Math.round(v * 10) / 10;
      const x = Math.min(...xs);
      const y = Math.min(...ys);
      boxes.push({ x: round(x), y: round(y), w: round(Math.max(...xs) - x), h: round(Math.max(...ys) - y), class: o.type });
    });
    return { annotator: `ann-${Number(k) + 1}`, boxes };
  });
  return { judgements, dropped };
}

export interface ReferenceObject {
  box: Box;
  class: string;
  /** How many of the people drew it. */
  support: number;
}

/**
 * The objects of the whole crowd, found by support rather than by qcflow's matcher: repeatedly, the drawn
 * box that the most people have a box overlapping (IoU ≥ 0.5) becomes an object and takes, from each person,
 * their box overlapping it most; its box is the members' coordinate-wise median, its class their majority.
 */
export function referenceObjects(judgements: Judgement[]): ReferenceObject[] {
  let left = judgements.flatMap((j) => j.boxes.map((b) => ({ annotator: j.annotator, b })));
  const objects: ReferenceObject[] = [];
  while (left.length > 0) {
    const supportOf = (a: Box) => new Set(left.filter((o) => iou(a, o.b) >= 0.5).map((o) => o.annotator)).size;
    const seed = left.reduce((best, o) => (supportOf(o.b) > supportOf(best.b) ? o : best));
    const members = new Map<string, (typeof left)[number]>();
    for (const o of [...left].sort((p, q) => iou(seed.b, q.b) - iou(seed.b, p.b))) {
      if (iou(seed.b, o.b) >= 0.5 && !members.has(o.annotator)) members.set(o.annotator, o);
    }
    const ms = [...members.values()];
    left = left.filter((o) => !ms.includes(o));
    const votes = new Map<string, number>();
    for (const m of ms) votes.set(m.b.class, (votes.get(m.b.class) ?? 0) + 1);
    objects.push({
      box: { x: median(ms.map((m) => m.b.x)), y: median(ms.map((m) => m.b.y)), w: median(ms.map((m) => m.b.w)), h: median(ms.map((m) => m.b.h)) },
      class: [...votes].sort((a, b) => b[1] - a[1])[0]![0],
      support: ms.length,
    });
  }
  return objects;
}

export type Verdict = 'right' | 'ignored' | 'missed' | 'invented' | 'class';

/**
 * A set of boxes (a consensus, or one person's annotation) against the crowd: it must hold every object
 * at least half the crowd drew, with their class, and nothing fewer than `minSupport` people drew. Objects
 * in between (a far-away car a third of the crowd saw) are right either way: the crowd itself is split.
 * A don't-care region is never an invented object; a majority object present only as one is `ignored`
 * (no wrong label, a lost one), worse than right and better than missed.
 */
export function judgeBoxes(boxes: Array<LabelBox & { dontCare?: boolean }>, reference: ReferenceObject[], crowdSize: number, minSupport = 3): Verdict {
  const majority = reference.filter((r) => r.support * 2 >= crowdSize);
  const tolerated = reference.filter((r) => r.support >= minSupport);
  const certain = boxes.filter((b) => !b.dontCare);
  const regions = boxes.filter((b) => b.dontCare);
  const used = new Set<number>();
  let classWrong = false;
  let ignored = false;
  for (const r of majority) {
    const at = bestMatch(certain, r.box, used);
    if (at < 0) {
      if (bestMatch(regions, r.box, new Set()) < 0) return 'missed';
      ignored = true;
      continue;
    }
    used.add(at);
    if (certain[at]!.class !== r.class) classWrong = true;
  }
  for (let i = 0; i < certain.length; i++) {
    if (used.has(i)) continue;
    if (!tolerated.some((r) => iou(r.box, certain[i]!) >= 0.5)) return 'invented';
  }
  return classWrong ? 'class' : ignored ? 'ignored' : 'right';
}

function bestMatch(boxes: LabelBox[], target: Box, used: Set<number>): number {
  let best = -1;
  let bestIou = 0.5;
  boxes.forEach((b, i) => {
    const v = iou(b, target);
    if (!used.has(i) && v >= bestIou) { best = i; bestIou = v; }
  });
  return best;
}

/** The plain baseline: every object at least two of the three drew (IoU ≥ 0.5), its box the members' median (the mean of two), its class the majority. */
export function twoOfThree(judgements: Judgement[]): LabelBox[] {
  const ref = referenceObjects(judgements);
  return ref.filter((r) => r.support >= 2).map((r) => ({ ...r.box, class: r.class }));
}

/** Every way of choosing `k` of `n`, in lexicographic order. */
export function combinations(n: number, k: number): number[][] {
  const out: number[][] = [];
  const pick = (start: number, acc: number[]) => {
    if (acc.length === k) { out.push([...acc]); return; }
    for (let i = start; i < n; i++) pick(i + 1, [...acc, i]);
  };
  pick(0, []);
  return out;
}
