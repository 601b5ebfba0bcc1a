import type { Ontology } from '../../projects/ontology';
import type { Finding } from '../findings';
import { exclusivePair } from './classes';
import { boxesNear, clusterAcrossAnnotators, fuseBoxes, intervalIou, intervalsNear, iou, medianBox, medianInterval, toTokenInterval, type Box, type Interval } from './matching';
import { said, tally, type AnnotatorLabels, type KindResult, type Tallies } from './types';
import { attributeVote } from './attributes';
import { DEFAULT_ACCURACY, geometryRisk, votePosterior, type FieldRisk } from '../risk';

type Attrs = Record<string, string | number | boolean>;

/** A posterior over the true class given annotators' votes (Dawid–Skene's, see store/reliability classPosterior). */
export type ClassModel = (votes: Array<{ annotator: string; value: string }>) => { classes: string[]; p: number[] } | undefined;

export interface SampleClass {
  value: string;
  votes: Record<string, string>;
}

/** The class of one matched object: the model's posterior where there is one (only classes someone gave can win), else the one-coin vote. */
function objectClassVote(votes: Array<{ annotator: string; value: string }>, weights: Record<string, number>, k: number, model?: ClassModel): { value: string; pWrong: number; model: boolean } {
  const post = model?.(votes);
  if (post) {
    let value = votes[0]!.value;
    let best = -1;
    for (const v of new Set(votes.map((x) => x.value))) {
      const p = post.p[post.classes.indexOf(v)] ?? 0;
      if (p > best) { best = p; value = v; }
    }
    if (best >= 0 && post.classes.includes(value)) return { value, pWrong: 1 - best, model: true };
  }
  const one = votePosterior(votes, weights, k);
  return { value: one.value, pWrong: one.pWrong, model: false };
}

/** A box or span reduced to what matching needs: a shape, a class and optional attributes. */
interface Obj<G> {
  geometry: G;
  cls: string;
  attributes?: Attrs;
}

export interface ConsensusObject<G> {
  geometry: G;
  class: string;
  /** Annotators who drew it, out of those who annotated this kind. */
  support: number;
  attributes?: Attrs;
  /**
   * Drawn by some annotators and not by others, under `splitObjects: 'dontCare'`: released as a region that
   * training and evaluation ignore (PASCAL VOC's `difficult`, KITTI's DontCare) instead of a vote on whether
   * it is there.
   */
  dontCare?: true;
}

/** Annotators' accuracy on objects' attributes and on drawing the objects that are there (class accuracy when absent). */
export interface ObjectAccuracies {
  attributes?: Record<string, number>;
  objects?: Record<string, number>;
  /**
   * On the classes of the objects they drew (a span's entity type): where the batch has no fit of sample
   * classes for an annotator — a project of spans or boxes alone — without it every vote would count as
   * the default accuracy, and two who agree on a type would still leave it 1% in doubt.
   */
  classes?: Record<string, number>;
  /** On the exact bounds of what they drew (spans): whose bounds a split on them goes to. */
  bounds?: Record<string, number>;
}

interface ObjectKind<G> {
  field: 'boxes' | 'spans';
  noun: string;
  similarity: (a: G, b: G) => number;
  /** The matcher's running centre of a cluster (robust to one stray shape). */
  consensus: (gs: G[]) => G;
  /** The released shape: the matched shapes fused with the annotators' reliabilities. */
  fuse: (gs: G[], weights: number[]) => G;
  /**
   * Shapes that are right only exactly (a span's boundaries: "Sporting Gijon", not "Sporting Gi"): the
   * released shape is one the annotators drew, by a reliability-weighted vote, and its risk the vote's —
   * fusing two spans averages their ends into a span nobody drew.
   */
  exactKey?: (g: G) => string;
  /** Two shapes close enough that one unmatched is a displaced drawing of the other, not a missing object. */
  near: (a: G, b: G) => boolean;
  /** How many classes an object of this kind can have (0: unknown). */
  classCount: number;
  /** The annotators' confusion model for these classes (Dawid–Skene), when there is one; the one-coin vote otherwise. */
  classModel?: ClassModel;
  /** The sample's own class and who gave which: a box whose annotators each gave it that class asks the same question. */
  sampleClass?: SampleClass;
  matchAt: number;
  agreeAt: number;
  /** What an object some annotators drew and others did not becomes: a reliability vote on whether it is there, or a don't-care region. */
  splitObjects: SplitObjects;
  /** Share of the consensus objects that may be don't-care regions before the sample goes to a person. */
  maxDontCareShare: number;
}

export type SplitObjects = 'vote' | 'dontCare';

/**
 * Each vote tallied against the winner. An even split says only that one side erred: each side counts half
 * right, where the tie-break would credit whoever it favours (with two annotators, the first, always).
 */
function tallyVotes(t: Tallies, votes: Array<{ annotator: string; value: string }>, winner: string): void {
  const agreeing = votes.filter((v) => v.value === winner).length;
  for (const v of votes) tally(t, v.annotator, 2 * agreeing === votes.length ? 0.5 : v.value === winner);
}

/** The layer-2 policy's say on split objects; absent, they are voted on (what the batch's accuracy pass wants). */
interface SplitPolicy {
  splitObjects?: SplitObjects;
  maxDontCareShare?: number;
}

/**
 * Objects (boxes or spans) across annotators: optimal matching at the match threshold, then per object:
 * - existence: the reliability-weighted vote of those who drew it against those who did not; an object
 *   that probably does not exist leaves the consensus. An annotator whose own unmatched shape lies near
 *   it drew it *displaced* (displaced_object), which is not a vote against it (missing_object); unmatched
 *   shapes of several annotators near one another are one object drawn in different places;
 * - class and attributes: reliability-weighted votes (class_conflict / exclusive_conflict,
 *   attribute_conflict on any dissent);
 * - geometry: scored continuously from the matched shapes' mean overlap (geometry_conflict under the
 *   agree threshold), the released shape fused with reliabilities as weights.
 * Each gives the probability that its consensus is wrong (`risks`).
 */
function checkObjects<G>(
  kind: ObjectKind<G>, perAnnotation: Array<{ annotator: string; i: number; items: Obj<G>[] }>, ontology: Ontology, weights: Record<string, number>,
  accuracy: ObjectAccuracies = {},
): KindResult<ConsensusObject<G>[]> {
  const attributeWeights = accuracy.attributes ?? weights;
  const objectWeights = accuracy.objects ?? weights;
  const boundsWeights = accuracy.bounds ?? objectWeights;
  const classWeights = { ...accuracy.classes, ...weights };
  const findings: Finding[] = [];
  const tallies: Tallies = {};
  const risks: FieldRisk[] = [];
  const known = ontology.classes && new Set(ontology.classes);
  for (const a of perAnnotation) {
    a.items.forEach((o, j) => {
      if (known && kind.field === 'boxes' && !known.has(o.cls)) {
        findings.push({ layer: 2, pointer: `/annotations/${a.i}/labels/${kind.field}/${j}/class`, rule: 'unknown_class', message: `${JSON.stringify(o.cls)} is not a class of the ontology`, annotators: [a.annotator] });
      }
    });
  }
  if (perAnnotation.length === 0) return { findings, consensus: undefined, tallies, risks };

  const clusters = clusterAcrossAnnotators(
    perAnnotation.map((a) => ({ annotator: a.annotator, items: a.items })),
    (x, y) => kind.similarity(x.geometry, y.geometry),
    (ms) => ({ geometry: kind.consensus(ms.map((m) => m.geometry)), cls: ms[0]!.cls }),
    kind.matchAt,
  );
  const multi = perAnnotation.length > 1;
  const centre = clusters.map((c) => kind.consensus(c.members.map((m) => m.item.geometry)));
  // A lone shape near an object its annotator is missing from is that object drawn off target.
  const displacedInto = new Map<number, Array<(typeof clusters)[number]['members'][number]>>();
  const displaced = new Set<number>();
  if (multi) {
    clusters.forEach((s, si) => {
      if (s.members.length !== 1) return;
      const who = s.members[0]!.annotator;
      let best = -1;
      let bestSim = -1;
      clusters.forEach((c, ci) => {
        if (ci === si || c.members.length < 2 || c.members.some((m) => m.annotator === who) || displacedInto.get(ci)?.some((m) => m.annotator === who)) return;
        if (!kind.near(centre[ci]!, s.members[0]!.item.geometry)) return;
        const sim = kind.similarity(centre[ci]!, s.members[0]!.item.geometry);
        if (sim > bestSim) { best = ci; bestSim = sim; }
      });
      if (best >= 0) {
        displacedInto.set(best, [...(displacedInto.get(best) ?? []), s.members[0]!]);
        displaced.add(si);
      }
    });
  }
  // Lone shapes by different annotators near one another (each off target from the rest, so none matched):
  // one object whose place is in doubt, not several objects that each lack two votes and quietly drop.
  const merged = new Set<number>();
  if (multi) {
    const lone = clusters.flatMap((c, i) => (c.members.length === 1 && !displaced.has(i) ? [i] : []));
    for (const i of lone) {
      if (merged.has(i)) continue;
      const group = [clusters[i]!.members[0]!];
      for (const j of lone) {
        const m = clusters[j]!.members[0]!;
        if (j <= i || merged.has(j) || group.some((g) => g.annotator === m.annotator) || !group.some((g) => kind.near(g.item.geometry, m.item.geometry))) continue;
        group.push(m);
        merged.add(j);
      }
      if (group.length > 1) clusters[i] = { ...clusters[i]!, members: group };
    }
  }
  const consensus: ConsensusObject<G>[] = [];
  const dontCare: string[] = [];
  const existence: Tallies = {};
  const classTally: Tallies = {};
  const boundsTally: Tallies = {};
  clusters.forEach((c, ci) => {
    if (displaced.has(ci) || merged.has(ci)) return;
    const ptr = (m: (typeof c.members)[number]): string => `/annotations/${perAnnotation[m.annotation]!.i}/labels/${kind.field}/${m.index}`;
    const who = c.members.map((m) => m.annotator);
    const off = displacedInto.get(ci) ?? [];
    const missing = perAnnotation.filter((a) => !who.includes(a.annotator) && !off.some((m) => m.annotator === a.annotator)).map((a) => a.annotator);
    const label = `${kind.noun} ${consensus.length}`;
    const existenceVotes = [...who, ...off.map((m) => m.annotator)].map((a) => ({ annotator: a, value: 'drawn' })).concat(missing.map((a) => ({ annotator: a, value: 'absent' })));
    const exists = votePosterior(existenceVotes, objectWeights, 2);
    const classVotes = c.members.map((m) => ({ annotator: m.annotator, value: m.item.cls }));
    const clsVote = objectClassVote(classVotes, classWeights, kind.classCount, kind.classModel);
    const sc = kind.sampleClass;
    const sameAsSample = !!sc && clsVote.value === sc.value && c.members.every((m) => sc.votes[m.annotator] === m.item.cls);
    // Every pair's overlap, once: its mean scores the geometry, its minimum decides a geometry_conflict.
    const pairSims = c.members.flatMap((m, x) => c.members.slice(x + 1).map((n) => kind.similarity(m.item.geometry, n.item.geometry)));
    const cls = clsVote.value;
    // The released shape and the probability it is wrong: fused and scored by overlap, or voted when only exact is right.
    // Exact bounds (spans) are voted with the annotators' accuracy at drawing bounds, not at drawing what is there.
    const key = kind.exactKey;
    const boundsVotes = key && c.members.length > 1 ? c.members.map((m) => ({ annotator: m.annotator, value: key(m.item.geometry) })) : undefined;
    const boundsVote = boundsVotes && votePosterior(boundsVotes, boundsWeights, 0);
    const shapeOf = (): { geometry: G; pWrong: number; why: string } => {
      const meanOverlap = pairSims.length > 0 ? pairSims.reduce((a, b) => a + b, 0) / pairSims.length : undefined;
      if (meanOverlap === undefined) return { geometry: c.members[0]!.item.geometry, pWrong: geometryRisk(undefined), why: 'drawn by one annotator only' };
      if (boundsVotes && boundsVote) {
        const drawn = c.members.filter((_, i) => boundsVotes[i]!.value === boundsVote.value);
        return { geometry: drawn[0]!.item.geometry, pWrong: boundsVote.pWrong, why: `bounds as ${drawn.map((m) => m.annotator).join(', ')} drew them${drawn.length < c.members.length ? ` (${c.members.filter((m) => !drawn.includes(m)).map((m) => m.annotator).join(', ')} drew other bounds)` : ''}` };
      }
      return { geometry: kind.fuse(c.members.map((m) => m.item.geometry), c.members.map((m) => weights[m.annotator] ?? DEFAULT_ACCURACY)), pWrong: geometryRisk(meanOverlap), why: `matched shapes overlap ${meanOverlap.toFixed(2)} on average` };
    };
    // One vote per attribute with the annotators' attribute accuracies: the consensus value, its risk, the
    // attribute_conflict finding and who is tallied as dissenting all come from it.
    const attributeVotes = [...new Set(c.members.flatMap((m) => Object.keys(m.item.attributes ?? {})))].sort().map((k) => {
      const values = c.members.map((m) => ({ annotator: m.annotator, value: m.item.attributes?.[k] }));
      return { k, values, vote: attributeVote(values, attributeWeights, ontology.attributes?.[k]?.length ?? 0) };
    });
    // What the batch learns accuracies from.
    if (multi) {
      if (c.members.length > 1) tallyVotes(classTally, classVotes, cls);
      if (boundsVotes && boundsVote) tallyVotes(boundsTally, boundsVotes, boundsVote.value);
      tallyVotes(existence, existenceVotes, exists.value);
    }
    if (multi && missing.length > 0 && kind.splitObjects === 'dontCare') {
      // Whether it is there is the question a don't-care region leaves open, so nothing of it is at risk.
      consensus.push({ geometry: shapeOf().geometry, class: cls, support: c.members.length / perAnnotation.length, dontCare: true });
      dontCare.push(`${kind.noun} ${JSON.stringify(cls)} drawn by ${who.join(', ')}, not by ${missing.join(', ')}`);
    } else if (multi && exists.value !== 'drawn') {
      // Probably not there: out of the consensus; the risk is that it was there after all.
      risks.push({ field: `${kind.field}:dropped:${ci}`, pWrong: exists.pWrong, why: `${kind.noun} ${JSON.stringify(cls)} drawn only by ${who.join(', ')}, not by ${missing.join(', ')}: left out` });
    } else {
      const { geometry, pWrong: geometryWrong, why: geometryWhy } = shapeOf();
      const attributes: Attrs = {};
      for (const { k, values, vote } of attributeVotes) {
        if (vote.value !== undefined) attributes[k] = vote.value;
        risks.push({ field: `${kind.field}:${consensus.length}:attribute:${k}`, pWrong: vote.pWrong, why: `${label} ${k}: ${said(values.map((v) => [v.annotator, v.value]))}` });
      }
      if (multi) risks.push({ field: `${kind.field}:${consensus.length}:exists`, pWrong: exists.pWrong, why: `${label} drawn by ${[...who, ...off.map((m) => `${m.annotator} (displaced)`)].join(', ')}${missing.length ? `; not by ${missing.join(', ')}` : ''}` });
      risks.push({
        field: `${kind.field}:${consensus.length}:class`, pWrong: clsVote.pWrong,
        why: `${label} class: ${said(c.members.map((m) => [m.annotator, m.item.cls]))}${clsVote.model ? ' (Dawid–Skene)' : ''}${sameAsSample ? '; each gave the image the same class, so it is counted there' : ''}`,
        ...(sameAsSample ? { sameAs: 'class' } : {}),
      });
      risks.push({ field: `${kind.field}:${consensus.length}:geometry`, pWrong: geometryWrong, why: `${label} ${geometryWhy}` });
      consensus.push({ geometry, class: cls, support: c.members.length / perAnnotation.length, ...(attributeVotes.length ? { attributes } : {}) });
    }
    if (!multi) return;
    if (missing.length > 0) {
      findings.push({
        layer: 2, pointer: ptr(c.members[0]!), rule: 'missing_object',
        message: `${kind.noun} ${JSON.stringify(cls)} drawn by ${who.join(', ')} has no match from ${missing.join(', ')}`,
        annotators: [...who, ...missing],
      });
      for (const a of missing) tally(tallies, a, false);
    }
    for (const m of off) {
      findings.push({
        layer: 2, pointer: `/annotations/${perAnnotation[m.annotation]!.i}/labels/${kind.field}/${m.index}`, rule: 'displaced_object',
        message: `${kind.noun} ${JSON.stringify(m.item.cls)} by ${m.annotator} is off the one ${who.join(', ')} drew (overlap ${kind.similarity(centre[ci]!, m.item.geometry).toFixed(2)})`,
        annotators: [...who, m.annotator],
      });
      tally(tallies, m.annotator, false);
    }
    const classes = new Set(c.members.map((m) => m.item.cls));
    let geometryOk = true;
    const minSim = Math.min(1, ...pairSims);
    if (minSim < kind.agreeAt - 1e-12) {
      geometryOk = false;
      findings.push({
        layer: 2, pointer: ptr(c.members[0]!), rule: 'geometry_conflict',
        message: `${kind.noun} ${JSON.stringify(cls)} matched across ${who.join(', ')} but overlap is only ${minSim.toFixed(2)} (agree threshold ${kind.agreeAt})`,
        annotators: who,
      });
    }
    if (classes.size > 1) {
      const list = [...classes];
      const exclusive = list.some((p) => list.some((q) => exclusivePair(ontology, p, q)));
      findings.push({
        layer: 2, pointer: ptr(c.members[0]!), rule: exclusive ? 'exclusive_conflict' : 'class_conflict',
        message: `matched ${kind.noun} has different classes: ${said(c.members.map((m) => [m.annotator, m.item.cls]))}`,
        annotators: who,
      });
    }
    const attributeDissent = new Set<string>();
    for (const { k, values, vote } of attributeVotes) {
      if (vote.dissenters.length > 0) {
        findings.push({ layer: 2, pointer: `${ptr(c.members[0]!)}/attributes/${k}`, rule: 'attribute_conflict', message: `matched ${kind.noun} has different ${k}: ${said(values.map((v) => [v.annotator, v.value]))}`, annotators: who });
        for (const a of vote.dissenters) attributeDissent.add(a);
      }
    }
    for (const m of c.members) tally(tallies, m.annotator, geometryOk && m.item.cls === cls && !attributeDissent.has(m.annotator));
  });
  // Released don't-care regions cost training signal, not correctness; past the policy's share of the
  // sample's objects that is too much of it left open, and a person decides.
  if (dontCare.length > 0 && dontCare.length > kind.maxDontCareShare * consensus.length) {
    findings.push({
      layer: 2, pointer: `/annotations`, rule: 'dont_care_share',
      message: `${dontCare.length} of ${consensus.length} ${kind.field} are in doubt (more than ${kind.maxDontCareShare} of them to release as don't-care regions): ${dontCare.join('; ')}`,
    });
  }
  return { findings, consensus, tallies, risks, existence, classes: classTally, bounds: boundsTally };
}

export function checkBoxes(
  anns: AnnotatorLabels[], ontology: Ontology,
  o: { matchIou: number; agreeIou: number; weights: Record<string, number>; accuracy?: ObjectAccuracies; classModel?: ClassModel; sampleClass?: SampleClass } & SplitPolicy,
): KindResult<ConsensusObject<Box>[]> {
  const per = anns.map((a, i) => ({ annotator: a.annotator, i, items: (a.labels.boxes ?? []).map((b) => ({ geometry: { x: b.x, y: b.y, w: b.w, h: b.h }, cls: b.class, attributes: b.attributes })), has: a.labels.boxes !== undefined }))
    .filter((a) => a.has);
  return checkObjects({
    field: 'boxes', noun: 'box', similarity: iou, consensus: medianBox, fuse: fuseBoxes, near: boxesNear, classCount: ontology.classes?.length ?? 0, matchAt: o.matchIou, agreeAt: o.agreeIou,
    splitObjects: o.splitObjects ?? 'vote', maxDontCareShare: o.maxDontCareShare ?? 1,
    ...(o.classModel ? { classModel: o.classModel } : {}), ...(o.sampleClass ? { sampleClass: o.sampleClass } : {}),
  }, per, ontology, o.weights, o.accuracy);
}

export function checkSpans(
  anns: AnnotatorLabels[], ontology: Ontology, o: { matchIou: number; agreeIou: number; weights: Record<string, number>; tokenText?: string; accuracy?: ObjectAccuracies } & SplitPolicy,
): KindResult<ConsensusObject<Interval>[]> {
  // The matcher compares every pair several times; tokenising the text once per distinct span is enough.
  const tokenIntervals = new Map<string, Interval>();
  const toUnit = (s: Interval): Interval => {
    if (o.tokenText === undefined) return s;
    const key = `${s.start}:${s.end}`;
    let t = tokenIntervals.get(key);
    if (!t) tokenIntervals.set(key, (t = toTokenInterval(o.tokenText, s)));
    return t;
  };
  const per = anns.map((a, i) => ({ annotator: a.annotator, i, items: (a.labels.spans ?? []).map((s) => ({ geometry: { start: s.start, end: s.end }, cls: s.label })), has: a.labels.spans !== undefined }))
    .filter((a) => a.has);
  const known = ontology.entities && new Set(ontology.entities);
  const extra: Finding[] = [];
  for (const a of per) {
    a.items.forEach((s, j) => {
      if (known && !known.has(s.cls)) extra.push({ layer: 2, pointer: `/annotations/${a.i}/labels/spans/${j}/label`, rule: 'unknown_class', message: `${JSON.stringify(s.cls)} is not an entity of the ontology`, annotators: [a.annotator] });
    });
  }
  const r = checkObjects(
    {
      field: 'spans', noun: 'span', similarity: (x, y) => intervalIou(toUnit(x), toUnit(y)), consensus: medianInterval, fuse: medianInterval, exactKey: (x) => `${x.start}:${x.end}`,
      near: (x, y) => intervalsNear(toUnit(x), toUnit(y)), classCount: ontology.entities?.length ?? 0, matchAt: o.matchIou, agreeAt: o.agreeIou,
      splitObjects: o.splitObjects ?? 'vote', maxDontCareShare: o.maxDontCareShare ?? 1,
    },
    per, ontology, o.weights, o.accuracy,
  );
  return { ...r, findings: [...extra, ...r.findings] };
}
