import type { Labels } from '../../ingest/envelope';
import type { Ontology } from '../../projects/ontology';
import type { Tallies } from '../consistency/types';
import type { Finding } from '../findings';
import type { FieldRisk } from '../risk';
import type { QcPolicy } from '../policy';
import { imageQualityPlugin } from './image-quality';
import { sequenceLabelsPlugin } from './sequence-labels';
import type { PluginSample, QcPlugin } from './types';

export type { PluginSample, QcPlugin, PluginResult } from './types';

/** Every plugin qcflow knows, by id; a project's policy picks from these and configures them. */
const REGISTRY = new Map<string, QcPlugin<unknown>>();

export function registerPlugin<C>(p: QcPlugin<C>): void {
  if (REGISTRY.has(p.id)) throw new Error(`plugin ${p.id} is registered twice`);
  REGISTRY.set(p.id, p);
}

registerPlugin(sequenceLabelsPlugin);
registerPlugin(imageQualityPlugin);

export interface ConfiguredPlugin {
  plugin: QcPlugin<unknown>;
  config: unknown;
}

/** Resolves a policy's plugin list against the registry; unknown ids and bad configs throw naming them. */
export function configurePlugins(policy: Pick<QcPolicy, 'plugins'>): ConfiguredPlugin[] {
  return policy.plugins.map((entry, i) => {
    const plugin = REGISTRY.get(entry.id);
    if (!plugin) throw new Error(`/qcPolicy/plugins/${i}/id: unknown plugin ${JSON.stringify(entry.id)}; known: ${[...REGISTRY.keys()].join(', ')}`);
    return { plugin, config: plugin.parseConfig(entry.config ?? {}) };
  });
}

export function appliesTo(plugin: QcPlugin<unknown>, s: PluginSample): boolean {
  if (!plugin.labelKinds) return true;
  return s.annotations.some((a) => plugin.labelKinds!.some((k: keyof Labels) => a.labels[k] !== undefined));
}

export interface PluginOutcome {
  /** Findings per sample id, each tagged with its plugin and layer. */
  findings: Map<string, Finding[]>;
  /** Per sample, per plugin: the annotator agreement the plugin measured. */
  tallies: Map<string, Record<string, Tallies>>;
  scores: Map<string, Record<string, number>>;
  details: Map<string, Record<string, unknown>>;
  consensus: Map<string, Record<string, unknown>>;
  /** Per sample: the plugins' field risks, which join layer 2's. */
  risks: Map<string, FieldRisk[]>;
  /** Per sample: rules of layer-2 findings no plugin's risk settles (a person must). */
  blocking: Map<string, string[]>;
  /** Plugins that threw: recorded on the batch, the other checks go on. */
  errors: Array<{ plugin: string; message: string }>;
}

/** Runs each configured plugin on the samples it applies to; a plugin that throws costs only its own results. */
export async function runPlugins(configured: ConfiguredPlugin[], samples: PluginSample[], ctx: { project: string; ontology: Ontology; weights: Record<string, number> }): Promise<PluginOutcome> {
  const out: PluginOutcome = { findings: new Map(), tallies: new Map(), scores: new Map(), details: new Map(), consensus: new Map(), risks: new Map(), blocking: new Map(), errors: [] };
  for (const { plugin, config } of configured) {
    const batch = samples.filter((s) => appliesTo(plugin, s));
    if (batch.length === 0) continue;
    let results;
    try {
      results = await plugin.run(batch, { ...ctx, config });
    } catch (err) {
      out.errors.push({ plugin: plugin.id, message: err instanceof Error ? err.message : String(err) });
      continue;
    }
    for (const r of results) {
      const fs = out.findings.get(r.sampleId) ?? [];
      fs.push(...r.findings.map((f) => ({ ...f, layer: plugin.layer, plugin: plugin.id })));
      out.findings.set(r.sampleId, fs);
      if (r.tallies && Object.keys(r.tallies).length > 0) out.tallies.set(r.sampleId, { ...out.tallies.get(r.sampleId), [plugin.id]: r.tallies });
      if (r.score !== undefined) out.scores.set(r.sampleId, { ...out.scores.get(r.sampleId), [plugin.id]: r.score });
      if (r.consensus) out.consensus.set(r.sampleId, { ...out.consensus.get(r.sampleId), ...r.consensus });
      if (r.details) out.details.set(r.sampleId, { ...out.details.get(r.sampleId), [plugin.id]: r.details });
      if (r.risks?.length) out.risks.set(r.sampleId, [...(out.risks.get(r.sampleId) ?? []), ...r.risks]);
      const blocking = plugin.layer === 2 ? r.findings.filter((f) => !plugin.settledByRisk?.includes(f.rule)).map((f) => f.rule) : [];
      if (blocking.length) out.blocking.set(r.sampleId, [...new Set([...(out.blocking.get(r.sampleId) ?? []), ...blocking])]);
    }
  }
  return out;
}
