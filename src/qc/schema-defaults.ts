import Ajv2020, { type AnySchema } from 'ajv/dist/2020';
import { ajvErrorsToFindings } from '../ingest/envelope';

// useDefaults fills missing fields while validating, so each setting's default lives in its schema only.
const ajv = new Ajv2020({ allErrors: true, strict: false, useDefaults: true });

/**
 * Builds a parser for a settings object (QC policy, plugin config) from a JSON Schema with defaults. It
 * validates a copy, fills the defaults in, and on failure throws `fail(problems)` where each problem names
 * the field (under `pointer`), the message and the rule.
 */
export function parserWithDefaults<T>(schema: AnySchema, pointer: string, fail: (problems: string) => Error): (raw: unknown) => T {
  const validate = ajv.compile(schema);
  return (raw) => {
    const copy = structuredClone(raw ?? {});
    if (!validate(copy)) {
      throw fail(ajvErrorsToFindings(validate.errors, pointer).map((f) => `${f.pointer} ${f.message} (${f.rule})`).join('; '));
    }
    return copy as T;
  };
}
