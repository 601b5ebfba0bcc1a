import { compileCompliance, ProjectSpecError, type RegexRule } from '../qc/compliance';
import { PROJECT_ID } from '../ingest/keys';
import { resolvePolicy } from '../qc/policy';
import { configurePlugins } from '../qc/plugins/registry';
import type { Ontology } from './ontology';

/** A class ontology: which labels exist, which exclude each other, which attribute values are allowed. */
export interface ProjectDefinition {
  id: string;
  jsonSchema: Record<string, unknown>;
  regexRules: RegexRule[];
  ontology: Ontology;
  qcPolicy: Record<string, unknown>;
}

export { PROJECT_ID };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks a project definition before it is stored; each error names the field and the rule it breaks. */
export function validateProjectDefinition(input: {
  id: unknown; jsonSchema?: unknown; regexRules?: unknown; ontology?: unknown; qcPolicy?: unknown;
}): ProjectDefinition {
  if (typeof input.id !== 'string' || !PROJECT_ID.test(input.id)) {
    throw new ProjectSpecError(`project id ${JSON.stringify(input.id)} must match ${PROJECT_ID} (lower-case letters, digits, - and _)`);
  }
  const jsonSchema = input.jsonSchema ?? {};
  if (!isObject(jsonSchema)) throw new ProjectSpecError('jsonSchema must be a JSON object (a JSON Schema, draft 2020-12)');
  const regexRules = input.regexRules ?? [];
  if (!Array.isArray(regexRules)) throw new ProjectSpecError('regexRules must be an array');
  compileCompliance({ jsonSchema, regexRules: regexRules as RegexRule[] });
  const ontology = input.ontology ?? {};
  if (!isObject(ontology)) throw new ProjectSpecError('ontology must be an object');
  const classes = ontology.classes;
  if (classes !== undefined && (!Array.isArray(classes) || !classes.every((c) => typeof c === 'string' && c.length > 0))) {
    throw new ProjectSpecError('ontology.classes must be an array of non-empty strings');
  }
  const known = new Set((classes as string[] | undefined) ?? []);
  const exclusive = ontology.exclusive;
  if (exclusive !== undefined) {
    if (!Array.isArray(exclusive)) throw new ProjectSpecError('ontology.exclusive must be an array of class groups');
    exclusive.forEach((g, i) => {
      if (!Array.isArray(g) || g.length < 2) throw new ProjectSpecError(`ontology.exclusive[${i}] must list at least two classes`);
      for (const c of g) {
        if (typeof c !== 'string' || (known.size > 0 && !known.has(c))) {
          throw new ProjectSpecError(`ontology.exclusive[${i}] names ${JSON.stringify(c)}, which is not in ontology.classes`);
        }
      }
    });
  }
  const attributes = ontology.attributes;
  if (attributes !== undefined) {
    if (!isObject(attributes)) throw new ProjectSpecError('ontology.attributes must map attribute names to allowed values');
    for (const [k, v] of Object.entries(attributes)) {
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new ProjectSpecError(`ontology.attributes.${k} must be an array of strings`);
    }
  }
  if (ontology.multiLabel !== undefined && typeof ontology.multiLabel !== 'boolean') throw new ProjectSpecError('ontology.multiLabel must be true or false');
  const entities = ontology.entities;
  if (entities !== undefined && (!Array.isArray(entities) || !entities.every((c) => typeof c === 'string' && c.length > 0))) {
    throw new ProjectSpecError('ontology.entities must be an array of non-empty strings (span and tag types)');
  }
  const qcPolicy = input.qcPolicy ?? {};
  if (!isObject(qcPolicy)) throw new ProjectSpecError('qcPolicy must be an object');
  try {
    configurePlugins(resolvePolicy(qcPolicy));
  } catch (err) {
    throw new ProjectSpecError((err as Error).message);
  }
  return { id: input.id, jsonSchema, regexRules: regexRules as RegexRule[], ontology: ontology, qcPolicy };
}
