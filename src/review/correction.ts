import { checkEnvelope, type IngestSample, type Labels } from '../ingest/envelope';
import { checkCompliance, compiledFor } from '../qc/compliance';
import { checkConsistency, type Consensus } from '../qc/consistency';
import type { Finding } from '../qc/findings';
import type { QcPolicy } from '../qc/policy';
import type { ProjectDefinition } from '../projects/definition';

/** The annotator name a reviewer's correction is stored under, so a release shows who set the final labels. */
export const reviewerAnnotator = (user: string): string => `review:${user}`;

/**
 * A correction must pass the label rules an ingested sample passes: the envelope's label shape, the
 * project's layer-1 rules where they look at labels, and layer 2's ontology checks. Layer-1 findings about
 * anything else — who annotated (an annotator-id pattern would refuse `review:<user>`), the record, its
 * media — are not the reviewer's doing: the sample passed them at ingest and a correction changes none of
 * them. Pointers are relative to the submitted labels (`/labels/classes/0`), so the reviewer sees which
 * field broke which rule.
 */
export function checkCorrection(input: {
  sample: Pick<IngestSample, 'externalId' | 'payload' | 'media'>;
  labels: unknown;
  reviewer: string;
  project: Pick<ProjectDefinition, 'jsonSchema' | 'regexRules' | 'ontology'>;
  layer2: QcPolicy['layer2'];
}): Finding[] {
  const candidate = { externalId: input.sample.externalId, payload: input.sample.payload, media: input.sample.media ?? [], annotations: [{ annotator: reviewerAnnotator(input.reviewer), labels: input.labels }] };
  const envelope = checkEnvelope(candidate);
  const relabel = (f: Finding): Finding => ({ ...f, pointer: f.pointer.replace(/^\/annotations\/0\/labels/, '/labels') });
  if (!envelope.ok) return envelope.findings.map(relabel);
  const sample = envelope.sample;
  const layer1 = checkCompliance(sample, compiledFor({ jsonSchema: input.project.jsonSchema, regexRules: input.project.regexRules })).findings
    .filter((f) => f.pointer === '/annotations/0/labels' || f.pointer.startsWith('/annotations/0/labels/'));
  const labels = input.labels as Labels;
  const layer2 = checkConsistency({ annotations: [{ annotator: reviewerAnnotator(input.reviewer), labels }], payload: sample.payload, ontology: input.project.ontology, policy: input.layer2, weights: {} }).findings;
  return [...layer1, ...layer2].map(relabel);
}

/** A reviewer's labels in layer 2's consensus shape (full support), which is what releases carry as the labels to train on. */
export function labelsAsConsensus(labels: Labels): Consensus {
  const out: Consensus = {};
  if (labels.classes) out.classes = { classes: labels.classes, support: 1 };
  if (labels.boxes) out.boxes = labels.boxes.map((b) => ({ geometry: { x: b.x, y: b.y, w: b.w, h: b.h }, class: b.class, support: 1, ...(b.attributes ? { attributes: b.attributes } : {}) }));
  if (labels.spans) out.spans = labels.spans.map((sp) => ({ geometry: { start: sp.start, end: sp.end }, class: sp.label, support: 1 }));
  if (labels.attributes) out.attributes = labels.attributes;
  return out;
}

/**
 * Layer 2's consensus as labels a reviewer can edit: the starting point of a correction. Don't-care regions
 * (`splitObjects: dontCare`) are left out: they are the crowd's doubt, not a label a person gives, and
 * as plain boxes a correction started from the consensus would release every one as an object. The page
 * draws them apart (`dontCareRegions`); a reviewer who sees an object there draws it.
 */
export function consensusAsLabels(c: Consensus): Labels {
  const out: Labels = {};
  if (c.classes) out.classes = c.classes.classes;
  if (c.boxes) out.boxes = c.boxes.filter((b) => !b.dontCare).map((b) => ({ ...b.geometry, class: b.class, ...(b.attributes ? { attributes: b.attributes } : {}) }));
  if (c.spans) out.spans = c.spans.map((sp) => ({ start: sp.geometry.start, end: sp.geometry.end, label: sp.class }));
  if (c.attributes) out.attributes = c.attributes;
  return out;
}
