/**
 * A synthetic crowd with known truth, for the QC benchmark: images of one object each (a class, a box and
 * a `pose` attribute), labelled by 3 of a pool of annotators with different profiles, plus schema errors.
 * Everything is drawn from one seeded PRNG, so every machine gets the same data.
 */
import { prng } from '../src/util/prng';

export const CROWD_CLASSES = ['cat', 'dog', 'fox', 'wolf', 'car', 'truck'] as const;
/** Classes people confuse: a swapper trades each for its partner. */
const PARTNER: Record<string, string> = { cat: 'dog', dog: 'cat', fox: 'wolf', wolf: 'fox', car: 'truck', truck: 'car' };
export const POSES = ['standing', 'sitting', 'lying'] as const;
const SWAP_RATE = 0.6;
const DEGRADED_ACCURACY = 0.7;

export const CROWD_ONTOLOGY = { classes: [...CROWD_CLASSES], attributes: { pose: [...POSES] } };
export const CROWD_SCHEMA = {
  type: 'object', required: ['image', 'width', 'height', 'signal'], additionalProperties: false,
  properties: {
    image: { type: 'string', minLength: 1 }, width: { type: 'integer', minimum: 1 }, height: { type: 'integer', minimum: 1 },
    signal: { type: 'array', items: { type: 'number' }, minItems: CROWD_CLASSES.length, maxItems: CROWD_CLASSES.length },
  },
};

export interface AnnotatorProfile {
  id: string;
  kind: 'reliable' | 'careless' | 'swapper' | 'degrading';
  classAccuracy: number;
  attributeAccuracy: number;
  /** Standard deviation of each box edge, in pixels. */
  jitter: number;
  /** Chance of drawing the box off target (shifted by about its own size). */
  displaceRate: number;
}

export function crowdProfiles(): AnnotatorProfile[] {
  const reliable = Array.from({ length: 9 }, (_, i): AnnotatorProfile => ({ id: `ann-${i + 1}`, kind: 'reliable', classAccuracy: 0.96, attributeAccuracy: 0.92, jitter: 2, displaceRate: 0.01 }));
  return [
    ...reliable,
    { id: 'ann-10', kind: 'careless', classAccuracy: 0.75, attributeAccuracy: 0.7, jitter: 6, displaceRate: 0.08 },
    { id: 'ann-11', kind: 'careless', classAccuracy: 0.78, attributeAccuracy: 0.72, jitter: 5, displaceRate: 0.06 },
    { id: 'ann-12', kind: 'swapper', classAccuracy: 0.96, attributeAccuracy: 0.9, jitter: 2, displaceRate: 0.01 },
    { id: 'ann-13', kind: 'degrading', classAccuracy: 0.96, attributeAccuracy: 0.92, jitter: 2, displaceRate: 0.01 },
  ];
}

export interface CrowdTruth {
  externalId: string;
  schemaViolation: boolean;
  cls: string;
  pose: string;
  box: { x: number; y: number; w: number; h: number };
  annotators: string[];
  /** Class votes in annotator order (for majority vote and cleanlab). */
  votes: string[];
  /** Pose votes in annotator order. */
  poses: string[];
  /** Whether the sample is in the second half, where the degrading annotator has degraded. */
  late: boolean;
  /** The model signal (a noisy one-hot of the class), what a classifier would see. */
  signal: number[];
}

export interface Crowd {
  lines: string[];
  truth: CrowdTruth[];
  profiles: AnnotatorProfile[];
}

export function generateCrowd(n: number, o: { seed?: number; schemaErrorRate?: number; signalNoise?: number } = {}): Crowd {
  const rnd = prng(o.seed ?? 11);
  const gauss = (): number => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const profiles = crowdProfiles();
  const start = Date.UTC(2026, 10, 1);
  const lines: string[] = [];
  const truth: CrowdTruth[] = [];
  for (let i = 0; i < n; i++) {
    const cls = pick(CROWD_CLASSES);
    const pose = pick(POSES);
    const w = 50 + Math.floor(rnd() * 100);
    const h = 50 + Math.floor(rnd() * 100);
    const box = { x: 20 + Math.floor(rnd() * 300), y: 20 + Math.floor(rnd() * 200), w, h };
    const signal = CROWD_CLASSES.map((c) => (c === cls ? 1 : 0) + (o.signalNoise ?? 0.6) * gauss());
    const chosen: AnnotatorProfile[] = [];
    while (chosen.length < 3) {
      const p = pick(profiles);
      if (!chosen.includes(p)) chosen.push(p);
    }
    const late = i >= n / 2;
    const annotations = chosen.map((p, k) => {
      const acc = p.kind === 'degrading' && late ? DEGRADED_ACCURACY : p.classAccuracy;
      let given: string = rnd() < acc ? cls : pick(CROWD_CLASSES.filter((c) => c !== cls));
      if (p.kind === 'swapper' && rnd() < SWAP_RATE) given = PARTNER[cls]!;
      const attrAcc = p.kind === 'degrading' && late ? DEGRADED_ACCURACY : p.attributeAccuracy;
      const givenPose = rnd() < attrAcc ? pose : pick(POSES.filter((x) => x !== pose));
      const jitter = p.kind === 'degrading' && late ? 6 : p.jitter;
      const displaced = rnd() < p.displaceRate;
      const dx = displaced ? (rnd() < 0.5 ? -1 : 1) * box.w * (0.9 + 0.3 * rnd()) : 0;
      const x1 = box.x + dx + jitter * gauss();
      const y1 = box.y + jitter * gauss();
      const x2 = box.x + dx + box.w + jitter * gauss();
      const y2 = box.y + box.h + jitter * gauss();
      return {
        annotator: p.id,
        submittedAt: new Date(start + i * 30_000 + k * 5_000).toISOString(),
        durationMs: Math.round((p.kind === 'degrading' && late ? 2500 : 9000) * (0.6 + 0.8 * rnd())),
        labels: {
          classes: [given],
          boxes: [{ x: +x1.toFixed(1), y: +y1.toFixed(1), w: +Math.max(1, x2 - x1).toFixed(1), h: +Math.max(1, y2 - y1).toFixed(1), class: given, attributes: { pose: givenPose } }],
        },
      };
    });
    const schemaViolation = rnd() < (o.schemaErrorRate ?? 0.05);
    const payload: Record<string, unknown> = { image: `img-${i}.jpg`, width: 640, height: 480, signal: signal.map((v) => +v.toFixed(3)) };
    if (schemaViolation) {
      // One of a few realistic upstream mistakes.
      const kind = i % 3;
      if (kind === 0) delete payload.width;
      else if (kind === 1) payload.height = 'tall';
      else payload.extra = true;
    }
    const externalId = `img-${String(i).padStart(6, '0')}`;
    lines.push(JSON.stringify({ externalId, payload, annotations }));
    truth.push({ externalId, schemaViolation, cls, pose, box, annotators: chosen.map((p) => p.id), votes: annotations.map((a) => a.labels.classes[0]!), poses: annotations.map((a) => a.labels.boxes[0]!.attributes.pose), late, signal });
  }
  return { lines, truth, profiles };
}

/**
 * The true probability that a consensus class and pose are wrong, from the profiles that generated the
 * votes (the same draws as generateCrowd, as likelihoods; classes and poses uniform). No estimator ranks
 * errors better than this posterior, so its AUROC is the ceiling a QC score can reach on this crowd.
 */
export function oracleRisk(t: CrowdTruth, consensus: { cls?: string; pose?: string }, profiles: AnnotatorProfile[]): { cls: number; all: number } {
  const prof = new Map(profiles.map((p) => [p.id, p]));
  const degraded = (p: AnnotatorProfile): boolean => p.kind === 'degrading' && t.late;
  const classLik = (truth: string): number => t.votes.reduce((s, g, k) => {
    const p = prof.get(t.annotators[k]!)!;
    const acc = degraded(p) ? DEGRADED_ACCURACY : p.classAccuracy;
    const honest = g === truth ? acc : (1 - acc) / (CROWD_CLASSES.length - 1);
    return s * (p.kind === 'swapper' ? (1 - SWAP_RATE) * honest + (g === PARTNER[truth] ? SWAP_RATE : 0) : honest);
  }, 1);
  const poseLik = (truth: string): number => t.poses.reduce((s, g, k) => {
    const p = prof.get(t.annotators[k]!)!;
    const acc = degraded(p) ? DEGRADED_ACCURACY : p.attributeAccuracy;
    return s * (g === truth ? acc : (1 - acc) / (POSES.length - 1));
  }, 1);
  const wrong = (values: readonly string[], lik: (v: string) => number, chosen: string | undefined): number => {
    const z = values.reduce((s, v) => s + lik(v), 0);
    return chosen && values.includes(chosen) ? 1 - lik(chosen) / z : 1;
  };
  const cls = wrong(CROWD_CLASSES, classLik, consensus.cls);
  return { cls, all: 1 - (1 - cls) * (1 - wrong(POSES, poseLik, consensus.pose)) };
}
