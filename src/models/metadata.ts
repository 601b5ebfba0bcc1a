import type { ValidateFunction } from 'ajv';
import { ajvErrorsToFindings, createAjv } from '../ingest/envelope';

/**
 * Model version metadata (training data, owner, licence, metrics — whatever a tenant agrees to record) is
 * a JSON object. A tenant may require a shape for it with a JSON Schema (draft 2020-12); a version whose
 * metadata does not fit is refused naming each field and rule. Without a schema any object is taken.
 */
export type ModelMetadata = Record<string, unknown>;

/** Refused metadata or a refused schema: `problems` name the field (a JSON pointer under `metadata`) and the rule. */
export class MetadataError extends Error {
  override name = 'MetadataError';
  constructor(message: string, readonly problems: Array<{ field: string; rule: string; message: string }> = []) {
    super(message);
  }
}

export const MAX_METADATA_BYTES = 65_536;

const compiled = new Map<string, ValidateFunction>();

/** Compiles a tenant's schema, or says why it cannot be one: it must compile and describe an object. */
export function compileMetadataSchema(schema: unknown): ValidateFunction {
  if (!schema || typeof schema !== 'object' || Array.isArray(schema)) throw new MetadataError('a metadata schema must be a JSON object (a JSON Schema, draft 2020-12)');
  const type = (schema as { type?: unknown }).type;
  if (type !== 'object') throw new MetadataError(`a metadata schema must have "type": "object" (metadata is an object); it has ${JSON.stringify(type ?? null)}`);
  const key = JSON.stringify(schema);
  let validate = compiled.get(key);
  if (!validate) {
    try {
      validate = createAjv().compile(schema);
    } catch (err) {
      throw new MetadataError(`the metadata schema does not compile: ${(err as Error).message}`);
    }
    compiled.set(key, validate);
  }
  return validate;
}

/** Checks metadata against the tenant's schema (none: any object) and returns it; throws MetadataError otherwise. */
export function checkMetadata(metadata: unknown, schema: unknown | undefined, tenant: string): ModelMetadata {
  if (!metadata || typeof metadata !== 'object' || Array.isArray(metadata)) throw new MetadataError('metadata must be a JSON object', [{ field: 'metadata', rule: 'schema.type', message: 'must be an object' }]);
  const bytes = Buffer.byteLength(JSON.stringify(metadata));
  if (bytes > MAX_METADATA_BYTES) throw new MetadataError(`metadata is ${bytes} bytes of JSON; at most ${MAX_METADATA_BYTES} are kept with a version (put larger documents in storage and record their address)`, [{ field: 'metadata', rule: 'metadata.maxBytes', message: `at most ${MAX_METADATA_BYTES} bytes` }]);
  if (schema === undefined) return metadata as ModelMetadata;
  const validate = compileMetadataSchema(schema);
  if (validate(metadata)) return metadata as ModelMetadata;
  const problems = ajvErrorsToFindings(validate.errors, 'metadata').map((f) => ({ field: f.pointer, rule: f.rule, message: f.message }));
  throw new MetadataError(
    `metadata does not fit tenant ${tenant}'s schema: ${problems.map((p) => `${p.field}: ${p.message} (${p.rule})`).join('; ')}. See it with qcflow model schema show --tenant ${tenant}`,
    problems,
  );
}
