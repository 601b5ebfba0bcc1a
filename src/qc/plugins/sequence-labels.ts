import { checkTags, type TagScheme } from '../consistency/tags';
import { pluginConfigParser } from './types';
import type { QcPlugin } from './types';

export interface SequenceLabelsConfig {
  scheme: TagScheme;
  minAgreement: number;
}

/** BIO/BIOES validity of every annotator's tags, and the Viterbi-decoded consensus path across them. */
export const sequenceLabelsPlugin: QcPlugin<SequenceLabelsConfig> = {
  id: 'sequence-labels',
  description: 'invalid BIO/BIOES transitions; consensus tag path by Viterbi over the allowed-transition lattice',
  layer: 2,
  labelKinds: ['tags'],
  settledByRisk: ['tag_conflict'],
  parseConfig: pluginConfigParser<SequenceLabelsConfig>('sequence-labels', {
    type: 'object',
    additionalProperties: false,
    properties: {
      scheme: { enum: ['BIO', 'BIOES'], default: 'BIO' },
      minAgreement: { type: 'number', minimum: 0, maximum: 1, default: 1 },
    },
  }),
  run(batch, ctx) {
    return batch.map((s) => {
      const r = checkTags(s.annotations, { scheme: ctx.config.scheme, entities: ctx.ontology.entities, minAgreement: ctx.config.minAgreement, weights: ctx.weights });
      return { sampleId: s.sampleId, findings: r.findings, score: r.agreement, tallies: r.tallies, consensus: r.consensus ? { tags: r.consensus } : undefined, risks: r.risks };
    });
  },
};
