import type { Labels } from '../../ingest/envelope';
import type { Ontology } from '../../projects/ontology';
import type { AnnotatorLabels, Tallies } from '../consistency/types';
import type { AnySchema } from 'ajv/dist/2020';
import type { Finding } from '../findings';
import type { FieldRisk } from '../risk';
import { parserWithDefaults } from '../schema-defaults';

/** What a plugin sees of one sample. `media` carries bytes only for plugins that ask for them. */
export interface PluginSample {
  sampleId: string;
  payload: Record<string, unknown>;
  annotations: AnnotatorLabels[];
  media: Array<{ key: string; bytes?: Buffer }>;
}

export interface PluginResult {
  sampleId: string;
  findings: Finding[];
  /** The plugin's own quality score in [0, 1], stored with the layer result. */
  score?: number;
  /** What the plugin decided the labels are (e.g. the decoded tag path); merged into layer 2's consensus. */
  consensus?: Record<string, unknown>;
  /** Per-annotator agreement the plugin measured; merged into layer 2's tallies. */
  tallies?: Tallies;
  details?: Record<string, unknown>;
  /** Probability each of its consensus fields is wrong: joins the sample's risk that layer 5 decides on. */
  risks?: FieldRisk[];
}

export interface PluginContext<C> {
  project: string;
  config: C;
  ontology: Ontology;
  /** Annotator weights from the reliability model (1 when unknown). */
  weights: Record<string, number>;
}

/**
 * A QC check beyond the built-in layers. The batch function gets every applicable sample of a batch at once
 * (so it can share work such as a decoder) and must not do I/O: the activity loads what it declares.
 */
export interface QcPlugin<C = unknown> {
  id: string;
  description: string;
  /** Which layer's result its findings join: 1 fails the sample (rejected), 2 is a conflict (review). */
  layer: 1 | 2;
  /** Runs only on samples whose annotations use one of these label kinds; all samples when absent. */
  labelKinds?: Array<keyof Labels>;
  /** Whether the activity must load each sample's media bytes from object storage. */
  needsMedia?: boolean;
  /**
   * Rules of its layer-2 findings that its `risks` weigh (disagreement a vote settles): they are recorded
   * but decided by the sample's risk. Any other layer-2 finding sends the sample to a person.
   */
  settledByRisk?: string[];
  /** Validates the project's config for it; throws an Error naming the field when invalid. */
  parseConfig(raw: Record<string, unknown>): C;
  run(batch: PluginSample[], ctx: PluginContext<C>): PluginResult[] | Promise<PluginResult[]>;
}

/** A plugin's parseConfig from a JSON Schema with defaults; errors name the field under the plugin. */
export function pluginConfigParser<C>(pluginId: string, schema: AnySchema): (raw: Record<string, unknown>) => C {
  return parserWithDefaults<C>(schema, `/plugins/${pluginId}/config`, (problems) => new Error(`invalid config for plugin ${pluginId}: ${problems}`));
}
