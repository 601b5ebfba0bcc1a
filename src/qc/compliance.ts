import type { ValidateFunction } from 'ajv';
import { ajvErrorsToFindings, createAjv, type IngestSample } from '../ingest/envelope';
import { canonicalJson, sha256Hex } from '../util/canonical-json';
import { RE2JS } from 're2js';
import type { Finding } from './findings';

/**
 * A named regex rule. `pointer` is a JSON pointer into the sample ({externalId, payload, media, annotations});
 * a `*` segment walks every element of an array or value of an object.
 * mode `match`: every string found must match; `forbid`: none may match.
 * `required`: the pointer must resolve to at least one string.
 */
export interface RegexRule {
  name: string;
  pointer: string;
  pattern: string;
  flags?: string;
  mode?: 'match' | 'forbid';
  required?: boolean;
  message?: string;
}

export interface ComplianceSpec {
  jsonSchema: Record<string, unknown>;
  regexRules: RegexRule[];
}

export interface ComplianceResult {
  passed: boolean;
  findings: Finding[];
}

export class ProjectSpecError extends Error {
  override name = 'ProjectSpecError';
}

const RULE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export interface CompiledRule extends RegexRule {
  /** Whether the pattern matches anywhere in the string, in time linear in its length. */
  test: (value: string) => boolean;
  segments: string[];
}

export interface CompiledCompliance {
  validatePayload: ValidateFunction;
  rules: CompiledRule[];
}

export function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new ProjectSpecError(`pointer ${JSON.stringify(pointer)} must start with "/"`);
  return pointer.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** Compiles and checks a project's layer-1 spec; every problem names the rule index or the schema. */
export function compileCompliance(spec: ComplianceSpec): CompiledCompliance {
  const ajv = createAjv();
  let validatePayload: ValidateFunction;
  try {
    validatePayload = ajv.compile(spec.jsonSchema);
  } catch (err) {
    throw new ProjectSpecError(`jsonSchema does not compile: ${(err as Error).message}`);
  }
  if (!Array.isArray(spec.regexRules)) throw new ProjectSpecError('regexRules must be an array');
  const names = new Set<string>();
  const rules = spec.regexRules.map((r, i): CompiledRule => {
    const where = `regexRules[${i}]`;
    if (typeof r !== 'object' || r === null) throw new ProjectSpecError(`${where} must be an object`);
    if (typeof r.name !== 'string' || !RULE_NAME.test(r.name)) throw new ProjectSpecError(`${where}.name must match ${RULE_NAME}`);
    if (names.has(r.name)) throw new ProjectSpecError(`${where}.name ${JSON.stringify(r.name)} is used twice`);
    names.add(r.name);
    if (typeof r.pointer !== 'string') throw new ProjectSpecError(`${where}.pointer must be a JSON pointer string`);
    if (r.mode !== undefined && r.mode !== 'match' && r.mode !== 'forbid') throw new ProjectSpecError(`${where}.mode must be "match" or "forbid"`);
    // RE2 semantics (re2js): matching time is linear in the input whatever the pattern, so no rule like
    // (a+)+$ can pin the shared worker — JavaScript regexes backtrack and cannot be interrupted.
    let re: RE2JS;
    try {
      re = RE2JS.compile(r.pattern, re2Flags(r.flags ?? '', where));
    } catch (err) {
      if (err instanceof ProjectSpecError) throw err;
      throw new ProjectSpecError(`${where}.pattern is not a regular expression qcflow can run in linear time (RE2 syntax: no lookaround, no backreferences; \\d \\s \\w are ASCII): ${(err as Error).message}`);
    }
    return { ...r, test: (v) => re.test(v), segments: parsePointer(r.pointer) };
  });
  return { validatePayload, rules };
}

/** JavaScript regex flags as RE2's: i, m and s carry over; u is always on (RE2 matches code points); g and y mean nothing to a test. */
function re2Flags(flags: string, where: string): number {
  let out = 0;
  for (const f of flags) {
    if (f === 'i') out |= RE2JS.CASE_INSENSITIVE;
    else if (f === 'm') out |= RE2JS.MULTILINE;
    else if (f === 's') out |= RE2JS.DOTALL;
    else if (!'guy'.includes(f)) throw new ProjectSpecError(`${where}.flags: ${JSON.stringify(f)} is not supported (use i, m, s, u)`);
  }
  return out;
}

const cache = new Map<string, CompiledCompliance>();

/** Compiled specs are cached by content so a worker compiles each project's schema once. */
export function compiledFor(spec: ComplianceSpec): CompiledCompliance {
  const key = sha256Hex(canonicalJson(spec));
  let hit = cache.get(key);
  if (!hit) {
    hit = compileCompliance(spec);
    if (cache.size > 256) cache.clear();
    cache.set(key, hit);
  }
  return hit;
}

/** Every value at `segments` below `root`, with its concrete pointer. */
export function resolvePointer(root: unknown, segments: string[], prefix = ''): Array<{ pointer: string; value: unknown }> {
  if (segments.length === 0) return [{ pointer: prefix, value: root }];
  const [head, ...rest] = segments;
  if (root === null || typeof root !== 'object') return [];
  const escape = (s: string): string => s.replace(/~/g, '~0').replace(/\//g, '~1');
  if (head === '*') {
    const entries = Array.isArray(root) ? root.map((v, i) => [String(i), v] as const) : Object.entries(root as Record<string, unknown>);
    return entries.flatMap(([k, v]) => resolvePointer(v, rest, `${prefix}/${escape(k)}`));
  }
  const child = (root as Record<string, unknown>)[head as string];
  if (child === undefined) return [];
  return resolvePointer(child, rest, `${prefix}/${escape(head as string)}`);
}

/** The first value at a JSON pointer (wildcards allowed) below `root`, or undefined. */
export function valueAtPointer(root: unknown, pointer: string): unknown {
  return resolvePointer(root, parsePointer(pointer))[0]?.value;
}

/** Layer 1 on one sample: the project's JSON Schema on `payload`, then its regex rules. Pure. */
export function checkCompliance(sample: IngestSample, compiled: CompiledCompliance, missingMedia: string[] = []): ComplianceResult {
  const findings: Finding[] = [];
  if (!compiled.validatePayload(sample.payload)) {
    findings.push(...ajvErrorsToFindings(compiled.validatePayload.errors, '/payload'));
  }
  for (const rule of compiled.rules) {
    const hits = resolvePointer(sample, rule.segments);
    const strings = hits.filter((h): h is { pointer: string; value: string } => typeof h.value === 'string');
    if (rule.required && strings.length === 0) {
      findings.push({ layer: 1, pointer: rule.pointer, rule: `regex.${rule.name}`, message: rule.message ?? 'is required by this rule but missing' });
      continue;
    }
    for (const { pointer, value } of strings) {
      const matched = rule.test(value);
      const forbid = rule.mode === 'forbid';
      if (matched === forbid) {
        findings.push({
          layer: 1,
          pointer,
          rule: `regex.${rule.name}`,
          message: rule.message ?? (forbid ? `must not match /${rule.pattern}/` : `must match /${rule.pattern}/`),
        });
      }
    }
  }
  (sample.media ?? []).forEach((m, i) => {
    if ('key' in m && missingMedia.includes(m.key)) {
      findings.push({ layer: 1, pointer: `/media/${i}/key`, rule: 'media.exists', message: `object ${JSON.stringify(m.key)} is not in the object store` });
    }
  });
  return { passed: findings.length === 0, findings };
}
