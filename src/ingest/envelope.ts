import Ajv2020, { type ErrorObject } from 'ajv/dist/2020';
import { safeText, unstorable } from './storable';
import { MEDIA_TYPES } from './keys';
import addFormats from 'ajv-formats';
import type { Finding } from '../qc/findings';
import { canonicalJson, sha256Hex } from '../util/canonical-json';

/** Labels one annotator gave one sample; every kind is optional, the project's ontology says which it uses. */
export interface Labels {
  classes?: string[];
  boxes?: Array<{ x: number; y: number; w: number; h: number; class: string; attributes?: Record<string, string | number | boolean> }>;
  spans?: Array<{ start: number; end: number; label: string }>;
  tags?: string[];
  attributes?: Record<string, string | number | boolean>;
}

export interface Annotation {
  annotator: string;
  submittedAt?: string;
  durationMs?: number;
  labels: Labels;
}

export type MediaRef = { key: string } | { contentType: string; base64: string };

/** One sample as upstream systems send it (one JSONL line or one element of a submitSamples signal). */
export interface IngestSample {
  externalId: string;
  payload: Record<string, unknown>;
  media?: MediaRef[];
  annotations?: Annotation[];
}

/** Largest inline media file; bigger ones must be uploaded to MinIO first and referenced by key. */
export const MAX_INLINE_MEDIA_BYTES = 4 * 1024 * 1024;

const attributeValues = { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean'] } } as const;

export const ENVELOPE_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  required: ['externalId', 'payload'],
  additionalProperties: false,
  properties: {
    externalId: { type: 'string', minLength: 1, maxLength: 256, pattern: '^[^\\p{C}]+$' },
    payload: { type: 'object' },
    media: {
      type: 'array',
      maxItems: 64,
      items: {
        oneOf: [
          {
            type: 'object', required: ['key'], additionalProperties: false,
            properties: { key: { type: 'string', minLength: 1, maxLength: 1024, pattern: '^[^/\\p{C}][^\\p{C}]*$' } },
          },
          {
            type: 'object', required: ['contentType', 'base64'], additionalProperties: false,
            properties: {
              contentType: { enum: MEDIA_TYPES },
              base64: { type: 'string', maxLength: Math.ceil((MAX_INLINE_MEDIA_BYTES * 4) / 3) + 4, pattern: '^[A-Za-z0-9+/]*={0,2}$' },
            },
          },
        ],
      },
    },
    annotations: {
      type: 'array',
      maxItems: 100,
      items: {
        type: 'object',
        required: ['annotator', 'labels'],
        additionalProperties: false,
        properties: {
          annotator: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[^\\p{C}]+$' },
          submittedAt: { type: 'string', format: 'date-time' },
          durationMs: { type: 'integer', minimum: 0 },
          labels: {
            type: 'object',
            additionalProperties: false,
            properties: {
              classes: { type: 'array', items: { type: 'string', minLength: 1 } },
              boxes: {
                type: 'array',
                items: {
                  type: 'object', required: ['x', 'y', 'w', 'h', 'class'], additionalProperties: false,
                  properties: {
                    x: { type: 'number' }, y: { type: 'number' },
                    w: { type: 'number', minimum: 0 }, h: { type: 'number', minimum: 0 },
                    class: { type: 'string', minLength: 1 },
                    attributes: attributeValues,
                  },
                },
              },
              spans: {
                type: 'array',
                items: {
                  type: 'object', required: ['start', 'end', 'label'], additionalProperties: false,
                  properties: { start: { type: 'integer', minimum: 0 }, end: { type: 'integer', minimum: 0 }, label: { type: 'string', minLength: 1 } },
                },
              },
              tags: { type: 'array', items: { type: 'string', minLength: 1 } },
              attributes: attributeValues,
            },
          },
        },
      },
    },
  },
} as const;

export function createAjv(): Ajv2020 {
  const ajv = new Ajv2020({ allErrors: true, strict: false, unicodeRegExp: true });
  addFormats(ajv);
  return ajv;
}

const envelopeAjv = createAjv();
const validateEnvelopeSchema = envelopeAjv.compile(ENVELOPE_SCHEMA);

/** Turns ajv errors into findings whose pointer names the offending field (for `required`, the missing one). */
export function ajvErrorsToFindings(errors: ErrorObject[] | null | undefined, prefix = ''): Finding[] {
  const out: Finding[] = [];
  const seen = new Set<string>();
  for (const e of errors ?? []) {
    // oneOf branches report every branch's errors; the summary line is enough for a human.
    if (e.schemaPath.includes('/oneOf/') && !e.schemaPath.endsWith('/oneOf')) continue;
    let pointer = prefix + e.instancePath;
    if (e.keyword === 'required') pointer += `/${(e.params as { missingProperty: string }).missingProperty}`;
    if (e.keyword === 'additionalProperties') pointer += `/${(e.params as { additionalProperty: string }).additionalProperty}`;
    const rule = e.keyword === 'format' ? `schema.format.${(e.params as { format: string }).format}` : `schema.${e.keyword}`;
    const message = e.keyword === 'required' ? 'is required' : e.keyword === 'additionalProperties' ? 'is not allowed here' : (e.message ?? 'is invalid');
    const key = `${pointer}|${rule}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ layer: 1, pointer, rule, message });
  }
  return out;
}

export type ParsedLine =
  | { ok: true; sample: IngestSample }
  | { ok: false; externalId: string | undefined; findings: Finding[] };

/** Validates the envelope qcflow requires of every project's samples (layer 1, part one). */
export function checkEnvelope(value: unknown): ParsedLine {
  if (!validateEnvelopeSchema(value)) {
    const raw = value as { externalId?: unknown; media?: unknown } | null;
    const externalId = raw && typeof raw === 'object' && typeof raw.externalId === 'string' ? raw.externalId.slice(0, 256) : undefined;
    // oneOf only says "must match exactly one schema"; an oversized inline upload deserves its own words.
    const tooBig: Finding[] = (Array.isArray(raw?.media) ? raw.media : []).flatMap((m: unknown, i: number) => {
      const b64 = m && typeof m === 'object' ? (m as { base64?: unknown }).base64 : undefined;
      const bytes = typeof b64 === 'string' ? Math.floor((b64.length * 3) / 4) : 0;
      return bytes > MAX_INLINE_MEDIA_BYTES
        ? [{ layer: 1 as const, pointer: `/media/${i}/base64`, rule: 'media.size', message: `inline media is ${(bytes / 2 ** 20).toFixed(1)} MiB, over the ${MAX_INLINE_MEDIA_BYTES / 2 ** 20} MiB limit; upload it to raw/<project>/ and send {"key": …}` }]
        : [];
    });
    return { ok: false, externalId, findings: [...tooBig, ...ajvErrorsToFindings(validateEnvelopeSchema.errors)] };
  }
  const sample = value as unknown as IngestSample;
  const findings: Finding[] = [];
  (sample.annotations ?? []).forEach((a, i) =>
    (a.labels.spans ?? []).forEach((s, j) => {
      if (s.end <= s.start) {
        findings.push({ layer: 1, pointer: `/annotations/${i}/labels/spans/${j}/end`, rule: 'span.order', message: `end (${s.end}) must be greater than start (${s.start})` });
      }
    }),
  );
  if (findings.length > 0) return { ok: false, externalId: sample.externalId, findings };
  return { ok: true, sample };
}

/** Parses one JSONL line; a syntax error or an unstorable value becomes a finding instead of an exception. */
export function parseLine(line: string): ParsedLine {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    return { ok: false, externalId: undefined, findings: [{ layer: 1, pointer: '', rule: 'json.syntax', message: `not valid JSON: ${safeText((err as Error).message)}` }] };
  }
  const bad = unstorable(value);
  if (bad) {
    const raw = value as { externalId?: unknown } | null;
    const externalId = raw && typeof raw === 'object' && typeof raw.externalId === 'string' ? safeText(raw.externalId.slice(0, 256)) : undefined;
    return { ok: false, externalId, findings: [bad] };
  }
  return checkEnvelope(value);
}

/** Identity of a sample's content: equal hashes under the same external id are the same revision. */
export function contentHash(sample: IngestSample): string {
  return sha256Hex(canonicalJson({ payload: sample.payload, media: sample.media ?? [], annotations: sample.annotations ?? [] }));
}

export function sampleId(project: string, externalId: string, hash: string): string {
  return sha256Hex(`${project}\n${externalId}\n${hash}`).slice(0, 32);
}
