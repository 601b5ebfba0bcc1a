import { prng } from '../util/prng';

// The demo dataset is the same on every machine.
export { prng };

/** Cue words per sentiment: the demo texts are drawn from them, and the demo's layer-3 model is built on them. */
export const DEMO_CUES = {
  positive: ['great', 'love', 'excellent', 'fast', 'friendly', 'recommend'],
  negative: ['broken', 'slow', 'refund', 'terrible', 'rude', 'late'],
  neutral: ['arrived', 'ordered', 'package', 'store', 'item', 'week'],
} as const;
const TOPICS = ['price', 'quality', 'service', 'other'] as const;

/** The ways the demo injects bad input; each must be caught by a distinct layer-1 rule. */
export const DEFECTS = [
  'malformed-json', 'missing-external-id', 'bad-box', 'bad-email', 'bad-lang', 'missing-field',
  'pii-ssn', 'bad-annotator', 'text-too-long', 'bad-uri',
] as const;
export type Defect = (typeof DEFECTS)[number];

/** Annotator disagreements the demo injects into otherwise valid samples, for layers 2 and 5 to route. */
export const CONFLICTS = ['majority-2-1', 'split-3', 'topic-conflict'] as const;
export type Conflict = (typeof CONFLICTS)[number];

export interface DemoLine {
  line: string;
  defect?: Defect;
  conflict?: Conflict;
  /** All three annotators agree on the wrong class: only layer 3 (the model) can catch it. */
  mislabeled?: boolean;
}

/**
 * `n` JSONL lines of review snippets annotated by 3 annotators: `conflictRate` of them with annotators
 * disagreeing in one of CONFLICTS, `defectRate` of the rest broken in one of DEFECTS (both round robin),
 * about `mislabelRate` unanimously mislabelled (for layer 3), ann-3 rushing through the last third (for
 * layer 4), plus a few exact duplicates and a few revised resubmissions.
 */
export function generateDemoLines(n: number, seed = 7, defectRate = 0.1, conflictRate = 0.08, mislabelRate = 0.03): DemoLine[] {
  const rnd = prng(seed);
  let conflictIdx = 0;
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const out: DemoLine[] = [];
  let defectIdx = 0;
  const mislabelEvery = Math.max(2, Math.round(1 / mislabelRate));
  const rushFrom = Math.floor((2 * n) / 3);
  for (let i = 0; i < n; i++) {
    const cls = pick(['positive', 'negative', 'neutral'] as const);
    const topic = pick(TOPICS);
    const text = Array.from({ length: 6 + Math.floor(rnd() * 10) }, () => pick(DEMO_CUES[cls])).join(' ');
    const sample: Record<string, unknown> = {
      externalId: `rev-${String(i).padStart(6, '0')}`,
      payload: {
        text,
        lang: 'en',
        source: `https://reviews.example.com/p/${i}`,
        collectedAt: new Date(Date.UTC(2026, 10, 1) + i * 60_000).toISOString(),
        rating: cls === 'positive' ? 5 : cls === 'negative' ? 1 : 3,
        meta: { device: pick(['mobile', 'desktop', 'tablet'] as const) },
      },
      annotations: [1, 2, 3].map((a) => ({
        annotator: `ann-${a}`,
        submittedAt: new Date(Date.UTC(2026, 10, 2) + i * 60_000 + a * 1000).toISOString(),
        // From two thirds in, ann-3 starts rushing (layer 4's annotation-time alert); same PRNG draws either way.
        durationMs: a === 3 && i >= rushFrom ? 300 + Math.floor(rnd() * 900) : 2000 + Math.floor(rnd() * 8000),
        labels: { classes: [cls], attributes: { topic } },
      })),
    };
    let defect: Defect | undefined;
    let conflict: Conflict | undefined;
    let mislabeled: boolean | undefined;
    if (rnd() < conflictRate) {
      conflict = CONFLICTS[conflictIdx++ % CONFLICTS.length]!;
      const labels = (sample.annotations as Array<{ labels: { classes: string[]; attributes: { topic: string } } }>).map((a) => a.labels);
      const others = (['positive', 'negative', 'neutral'] as const).filter((c) => c !== cls);
      // Dissent with 'neutral' where possible: positive vs negative is an exclusive pair, a harder conflict.
      if (conflict === 'majority-2-1') labels[2]!.classes = [cls === 'neutral' ? others[0]! : 'neutral'];
      if (conflict === 'split-3') { labels[1]!.classes = [others[0]!]; labels[2]!.classes = [others[1]!]; }
      if (conflict === 'topic-conflict') labels[1]!.attributes = { topic: TOPICS[(TOPICS.indexOf(topic) + 1) % TOPICS.length]! };
    } else if (rnd() < defectRate) {
      defect = DEFECTS[defectIdx++ % DEFECTS.length]!;
      const payload = sample.payload as Record<string, unknown>;
      const anns = sample.annotations as Array<Record<string, unknown>>;
      switch (defect) {
        case 'malformed-json': out.push({ line: JSON.stringify(sample).slice(0, 40), defect }); continue;
        case 'missing-external-id': delete sample.externalId; break;
        case 'bad-box': (anns[0]!.labels as Record<string, unknown>).boxes = [{ x: 1, y: 2, w: -3, h: 4, class: cls }]; break;
        case 'bad-email': payload.contact = 'not-an-email'; break;
        case 'bad-lang': payload.lang = 'klingon'; break;
        case 'missing-field': delete payload.collectedAt; break;
        case 'pii-ssn': payload.text = `${text} call me 078-05-1120`; break;
        case 'bad-annotator': anns[1]!.annotator = 'Bob'; break;
        case 'text-too-long': payload.text = 'x'.repeat(2001); break;
        case 'bad-uri': payload.source = 'not a uri'; break;
      }
    } else if (i % mislabelEvery === mislabelEvery - 1) {
      // Chosen by index, not by the PRNG, so adding this kind left every other line of the dataset as it was.
      mislabeled = true;
      const wrong = cls === 'neutral' ? 'positive' : 'neutral';
      for (const a of sample.annotations as Array<{ labels: { classes: string[] } }>) a.labels.classes = [wrong];
    }
    out.push({ line: JSON.stringify(sample), defect, conflict, mislabeled });
  }
  // Exact resubmissions (no-ops) and revised resubmissions (new revisions) of clean lines.
  const clean = out.filter((l) => !l.defect && !l.conflict && !l.mislabeled);
  for (let k = 0; k < Math.min(20, clean.length); k++) {
    const l = clean[Math.floor(rnd() * clean.length)]!;
    if (k % 2 === 0) out.push({ line: l.line });
    else {
      const s = JSON.parse(l.line) as { payload: { rating: number } };
      s.payload.rating = s.payload.rating === 5 ? 4 : 2;
      out.push({ line: JSON.stringify(s) });
    }
  }
  return out;
}
