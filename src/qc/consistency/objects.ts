import type { Ontology } from '../../projects/definition';
import type { Finding } from '../findings';
import { exclusivePair } from './classes';
import { clusterAcrossAnnotators, intervalIou, iou, medianBox, medianInterval, toTokenInterval, type Box, type Interval } from './matching';
import { said, tally, valueVote, weightedVote, type AnnotatorLabels, type KindResult, type Tallies } from './types';

type Attrs = Record<string, string | number | boolean>;

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
}

interface ObjectKind<G> {
  field: 'boxes' | 'spans';
  noun: string;
  similarity: (a: G, b: G) => number;
  consensus: (gs: G[]) => G;
  matchAt: number;
  agreeAt: number;
}

/**
 * Objects (boxes or spans) across annotators: optimal matching at the match threshold, then
 * missing_object for clusters some annotators did not draw, class_conflict / exclusive_conflict for
 * matched objects with different classes, geometry_conflict for pairs under the agree threshold, and
 * attribute_conflict for differing attribute values. The consensus keeps the median geometry and the
 * reliability-weighted class.
 */
function checkObjects<G>(
  kind: ObjectKind<G>, perAnnotation: Array<{ annotator: string; i: number; items: Obj<G>[] }>, ontology: Ontology, weights: Record<string, number>,
): KindResult<ConsensusObject<G>[]> {
  const findings: Finding[] = [];
  const tallies: Tallies = {};
  const known = ontology.classes && new Set(ontology.classes);
  for (const a of perAnnotation) {
    a.items.forEach((o, j) => {
      if (known && kind.field === 'boxes' && !known.has(o.cls)) {
        findings.push({ layer: 2, pointer: `/annotations/${a.i}/labels/${kind.field}/${j}/class`, rule: 'unknown_class', message: `${JSON.stringify(o.cls)} is not a class of the ontology`, annotators: [a.annotator] });
      }
    });
  }
  if (perAnnotation.length === 0) return { findings, consensus: undefined, tallies };

  const clusters = clusterAcrossAnnotators(
    perAnnotation.map((a) => ({ annotator: a.annotator, items: a.items })),
    (x, y) => kind.similarity(x.geometry, y.geometry),
    (ms) => ({ geometry: kind.consensus(ms.map((m) => m.geometry)), cls: ms[0]!.cls }),
    kind.matchAt,
  );
  const multi = perAnnotation.length > 1;
  const consensus: ConsensusObject<G>[] = [];
  for (const c of clusters) {
    const ptr = (m: (typeof c.members)[number]): string => `/annotations/${perAnnotation[m.annotation]!.i}/labels/${kind.field}/${m.index}`;
    const geometry = kind.consensus(c.members.map((m) => m.item.geometry));
    const cls = weightedVote(c.members.map((m) => ({ annotator: m.annotator, value: m.item.cls })), weights).value;
    consensus.push({ geometry, class: cls, support: c.members.length / perAnnotation.length, attributes: c.members[0]!.item.attributes });
    if (!multi) continue;
    const who = c.members.map((m) => m.annotator);
    const missing = perAnnotation.filter((a) => !who.includes(a.annotator)).map((a) => a.annotator);
    if (missing.length > 0) {
      findings.push({
        layer: 2, pointer: ptr(c.members[0]!), rule: 'missing_object',
        message: `${kind.noun} ${JSON.stringify(cls)} drawn by ${who.join(', ')} has no match from ${missing.join(', ')}`,
        annotators: [...who, ...missing],
      });
      for (const a of missing) tally(tallies, a, false);
    }
    const classes = new Set(c.members.map((m) => m.item.cls));
    let geometryOk = true;
    let minSim = 1;
    for (let x = 0; x < c.members.length; x++) {
      for (let y = x + 1; y < c.members.length; y++) minSim = Math.min(minSim, kind.similarity(c.members[x]!.item.geometry, c.members[y]!.item.geometry));
    }
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
    const keys = new Set(c.members.flatMap((m) => Object.keys(m.item.attributes ?? {})));
    const attributeDissent = new Set<string>();
    for (const k of [...keys].sort()) {
      const values = c.members.map((m) => ({ annotator: m.annotator, value: m.item.attributes?.[k] }));
      const vote = valueVote(values, weights);
      if (vote.dissenters.length > 0) {
        findings.push({ layer: 2, pointer: `${ptr(c.members[0]!)}/attributes/${k}`, rule: 'attribute_conflict', message: `matched ${kind.noun} has different ${k}: ${said(values.map((v) => [v.annotator, v.value]))}`, annotators: who });
        for (const a of vote.dissenters) attributeDissent.add(a);
      }
    }
    for (const m of c.members) tally(tallies, m.annotator, geometryOk && m.item.cls === cls && !attributeDissent.has(m.annotator));
  }
  return { findings, consensus, tallies };
}

export function checkBoxes(anns: AnnotatorLabels[], ontology: Ontology, o: { matchIou: number; agreeIou: number; weights: Record<string, number> }): KindResult<ConsensusObject<Box>[]> {
  const per = anns.map((a, i) => ({ annotator: a.annotator, i, items: (a.labels.boxes ?? []).map((b) => ({ geometry: { x: b.x, y: b.y, w: b.w, h: b.h }, cls: b.class, attributes: b.attributes })), has: a.labels.boxes !== undefined }))
    .filter((a) => a.has);
  return checkObjects({ field: 'boxes', noun: 'box', similarity: iou, consensus: medianBox, matchAt: o.matchIou, agreeAt: o.agreeIou }, per, ontology, o.weights);
}

export function checkSpans(
  anns: AnnotatorLabels[], ontology: Ontology, o: { matchIou: number; agreeIou: number; weights: Record<string, number>; tokenText?: string },
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
    { field: 'spans', noun: 'span', similarity: (x, y) => intervalIou(toUnit(x), toUnit(y)), consensus: medianInterval, matchAt: o.matchIou, agreeAt: o.agreeIou },
    per, ontology, o.weights,
  );
  return { ...r, findings: [...extra, ...r.findings] };
}
