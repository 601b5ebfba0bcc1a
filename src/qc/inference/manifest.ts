import { parserWithDefaults } from '../schema-defaults';

/**
 * What a registered model version needs besides its ONNX file: how to turn a sample into input tensors
 * (the adapter) and what its output classes mean (the label map, in logit order).
 */
export type AdapterSpec =
  | {
      kind: 'text';
      /** JSON pointer into the sample payload. */
      textPointer: string;
      /** Sequences are padded and truncated to this many tokens ([CLS] and [SEP] included). */
      maxLength: number;
    }
  | {
      kind: 'image';
      /** Which of the sample's media items is the image. */
      mediaIndex: number;
      width: number;
      height: number;
      /** Per-channel (RGB) normalisation applied to pixel values scaled to [0, 1]. */
      mean: [number, number, number];
      std: [number, number, number];
    }
  | {
      kind: 'features';
      /** JSON pointers into the payload, in the model's feature order. */
      fields: string[];
    };

export interface ModelManifest {
  labels: string[];
  /** Output holding the logits; defaults to the model's first output. */
  output?: string;
  adapter: AdapterSpec;
}

const pointer = { type: 'string', pattern: '^(/[^/]+)+$' } as const;
const rgb = { type: 'array', items: { type: 'number' }, minItems: 3, maxItems: 3 } as const;

export const MODEL_MANIFEST_SCHEMA = {
  type: 'object',
  required: ['labels', 'adapter'],
  additionalProperties: false,
  properties: {
    labels: { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 2, uniqueItems: true },
    output: { type: 'string', minLength: 1 },
    adapter: {
      type: 'object',
      required: ['kind'],
      properties: { kind: { enum: ['text', 'image', 'features'] } },
      // if/then rather than oneOf: ajv fills defaults while evaluating, so only the matching branch may carry them.
      allOf: [
        {
          if: { properties: { kind: { const: 'text' } } },
          then: {
            properties: { kind: true, textPointer: { ...pointer, default: '/text' }, maxLength: { type: 'integer', minimum: 3, maximum: 8192, default: 128 } },
            additionalProperties: false,
          },
        },
        {
          if: { properties: { kind: { const: 'image' } } },
          then: {
            properties: {
              kind: true, mediaIndex: { type: 'integer', minimum: 0, default: 0 },
              width: { type: 'integer', minimum: 1, maximum: 4096 }, height: { type: 'integer', minimum: 1, maximum: 4096 },
              mean: { ...rgb, default: [0.485, 0.456, 0.406] }, std: { ...rgb, default: [0.229, 0.224, 0.225] },
            },
            required: ['width', 'height'],
            additionalProperties: false,
          },
        },
        {
          if: { properties: { kind: { const: 'features' } } },
          then: {
            properties: { kind: true, fields: { type: 'array', items: pointer, minItems: 1 } },
            required: ['fields'],
            additionalProperties: false,
          },
        },
      ],
    },
  },
} as const;

export class ManifestError extends Error {
  override name = 'ManifestError';
}

/** Validates a model manifest (from `qcflow model register --manifest`) and fills in adapter defaults. */
export const parseModelManifest = parserWithDefaults<ModelManifest>(MODEL_MANIFEST_SCHEMA, '/manifest', (p) => new ManifestError(`invalid model manifest: ${p}`));
