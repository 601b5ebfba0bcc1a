import { checkEnvelope, type IngestSample, type Labels } from '../ingest/envelope';
import { checkCompliance, type CompiledCompliance } from '../qc/compliance';
import { checkConsistency } from '../qc/consistency';
import type { Finding } from '../qc/findings';
import type { QcPolicy } from '../qc/policy';
import type { Ontology } from '../projects/definition';

/** The annotator name a reviewer's correction is stored under, so a release shows who set the final labels. */
export const reviewerAnnotator = (user: string): string => `review:${user}`;

/**
 * A correction must pass what an ingested sample passes: the envelope's label shape, the project's layer-1
 * rules (which may look at annotations) and layer 2's ontology checks. Pointers are relative to the
 * submitted labels (`/labels/classes/0`), so the reviewer sees which field broke which rule.
 */
export function checkCorrection(input: {
  sample: Pick<IngestSample, 'externalId' | 'payload' | 'media'>;
  labels: unknown;
  reviewer: string;
  compliance: CompiledCompliance;
  ontology: Ontology;
  layer2: QcPolicy['layer2'];
}): Finding[] {
  const candidate = { externalId: input.sample.externalId, payload: input.sample.payload, media: input.sample.media ?? [], annotations: [{ annotator: reviewerAnnotator(input.reviewer), labels: input.labels }] };
  const envelope = checkEnvelope(candidate);
  const relabel = (f: Finding): Finding => ({ ...f, pointer: f.pointer.replace(/^\/annotations\/0\/labels/, '/labels') });
  if (!envelope.ok) return envelope.findings.map(relabel);
  const sample = envelope.sample;
  const layer1 = checkCompliance(sample, input.compliance).findings;
  const labels = input.labels as Labels;
  const layer2 = checkConsistency({ annotations: [{ annotator: reviewerAnnotator(input.reviewer), labels }], payload: sample.payload, ontology: input.ontology, policy: input.layer2, weights: {} }).findings;
  return [...layer1, ...layer2].map(relabel);
}

export function describeFindings(findings: Finding[]): string {
  return findings.map((f) => `${f.pointer || '/'}: ${f.rule}: ${f.message}`).join('; ');
}
