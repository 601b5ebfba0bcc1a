import Ajv2020, { type AnySchema } from 'ajv/dist/2020';
import { ajvErrorsToFindings } from '../../ingest/envelope';

const ajv = new Ajv2020({ allErrors: true, strict: false, useDefaults: true });

/** Builds a plugin's parseConfig from a JSON Schema with defaults; errors name the field under the plugin. */
export function configParser<C>(pluginId: string, schema: AnySchema): (raw: Record<string, unknown>) => C {
  const validate = ajv.compile(schema);
  return (raw) => {
    const copy = structuredClone(raw);
    if (!validate(copy)) {
      const problems = ajvErrorsToFindings(validate.errors, `/plugins/${pluginId}/config`).map((f) => `${f.pointer} ${f.message} (${f.rule})`);
      throw new Error(`invalid config for plugin ${pluginId}: ${problems.join('; ')}`);
    }
    return copy as C;
  };
}
