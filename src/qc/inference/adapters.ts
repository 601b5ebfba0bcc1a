import { loadSharp } from '../../util/sharp';
import { Tokenizer } from '@huggingface/tokenizers';
import type { Finding } from '../findings';
import { valueAtPointer } from '../compliance';
import type { AdapterSpec } from './manifest';

/** A tensor as plain data; the inference edge turns it into an onnxruntime Tensor. */
export interface InputTensor {
  type: 'int64' | 'float32';
  data: BigInt64Array | Float32Array;
  dims: number[];
}

export interface AdapterItem {
  payload: unknown;
  /** The image bytes, for image adapters (the activity fetches them). */
  image?: Buffer;
}

/** Tensors for the items that fit the adapter (`rows` maps batch row → item index) and findings for the rest. */
export interface PreparedInputs {
  feeds: Record<string, InputTensor>;
  rows: number[];
  rejected: Array<{ index: number; finding: Finding }>;
}

export interface InputAdapter {
  kind: AdapterSpec['kind'];
  prepare(items: AdapterItem[]): Promise<PreparedInputs>;
}

const badInput = (pointer: string, rule: string, message: string): Finding => ({ layer: 3, pointer, rule: `layer3.${rule}`, message });

export class AdapterError extends Error {
  override name = 'AdapterError';
}

/**
 * text: tokenizer.json via @huggingface/tokenizers; int64 input_ids / attention_mask / token_type_ids padded
 * (with the [PAD] id) and truncated to maxLength, keeping the final special token a truncated sequence ends with.
 */
export function textAdapter(spec: Extract<AdapterSpec, { kind: 'text' }>, tokenizerJson: Record<string, unknown>): InputAdapter {
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(tokenizerJson, { model_max_length: spec.maxLength });
  } catch (err) {
    throw new AdapterError(`tokenizer.json could not be loaded: ${(err as Error).message}`);
  }
  const padId = tokenizer.token_to_id('[PAD]') ?? tokenizer.token_to_id('<pad>') ?? 0;
  const L = spec.maxLength;
  return {
    kind: 'text',
    async prepare(items) {
      const rows: number[] = [];
      const rejected: PreparedInputs['rejected'] = [];
      const encoded: Array<{ ids: number[]; types: number[] }> = [];
      items.forEach((item, index) => {
        const text = valueAtPointer(item.payload, spec.textPointer);
        if (typeof text !== 'string' || text.length === 0) {
          rejected.push({ index, finding: badInput(`/payload${spec.textPointer}`, 'bad_input', `text adapter needs a non-empty string at /payload${spec.textPointer}; got ${text === undefined ? 'nothing' : typeof text}`) });
          return;
        }
        const e = tokenizer.encode(text, { return_token_type_ids: true });
        let ids = e.ids;
        let types = e.token_type_ids;
        if (ids.length > L) {
          ids = [...ids.slice(0, L - 1), ids[ids.length - 1]!];
          types = [...types.slice(0, L - 1), types[types.length - 1]!];
        }
        rows.push(index);
        encoded.push({ ids, types });
      });
      const n = rows.length;
      const ids = new BigInt64Array(n * L).fill(BigInt(padId));
      const mask = new BigInt64Array(n * L);
      const types = new BigInt64Array(n * L);
      encoded.forEach((e, r) => {
        for (let t = 0; t < e.ids.length; t++) {
          ids[r * L + t] = BigInt(e.ids[t]!);
          mask[r * L + t] = 1n;
          types[r * L + t] = BigInt(e.types[t]!);
        }
      });
      const dims = [n, L];
      return {
        feeds: { input_ids: { type: 'int64', data: ids, dims }, attention_mask: { type: 'int64', data: mask, dims }, token_type_ids: { type: 'int64', data: types, dims } },
        rows,
        rejected,
      };
    },
  };
}

/** image: sharp decodes (any format it reads), converts to sRGB, resizes to width×height, normalises to NCHW float32. */
export function imageAdapter(spec: Extract<AdapterSpec, { kind: 'image' }>): InputAdapter {
  const { width: W, height: H, mean, std } = spec;
  const plane = W * H;
  return {
    kind: 'image',
    async prepare(items) {
      const decoded = await Promise.all(items.map(async (item, index) => {
        const pointer = `/media/${spec.mediaIndex}`;
        if (!item.image) return { index, finding: badInput(pointer, 'bad_input', `image adapter needs media item ${spec.mediaIndex}; the sample has none (or it is missing from storage)`) };
        try {
          const raw = await (await loadSharp())(item.image).toColourspace('srgb').removeAlpha().resize(W, H, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
          if (raw.info.channels !== 3) return { index, finding: badInput(pointer, 'bad_input', `image decoded to ${raw.info.channels} channels; expected RGB`) };
          return { index, pixels: raw.data };
        } catch (err) {
          return { index, finding: badInput(pointer, 'bad_input', `image could not be decoded: ${(err as Error).message}`) };
        }
      }));
      const ok = decoded.filter((d): d is { index: number; pixels: Buffer } => 'pixels' in d);
      const data = new Float32Array(ok.length * 3 * plane);
      ok.forEach((d, r) => {
        for (let c = 0; c < 3; c++) {
          const base = (r * 3 + c) * plane;
          for (let p = 0; p < plane; p++) data[base + p] = (d.pixels[p * 3 + c]! / 255 - mean[c]!) / std[c]!;
        }
      });
      return {
        feeds: { pixel_values: { type: 'float32', data, dims: [ok.length, 3, H, W] } },
        rows: ok.map((d) => d.index),
        rejected: decoded.flatMap((d) => ('finding' in d && d.finding ? [{ index: d.index, finding: d.finding }] : [])),
      };
    },
  };
}

/** features: named numeric payload fields → float32 [batch, fields]; a missing or non-finite field rejects the sample. */
export function featuresAdapter(spec: Extract<AdapterSpec, { kind: 'features' }>): InputAdapter {
  const F = spec.fields.length;
  return {
    kind: 'features',
    async prepare(items) {
      const rows: number[] = [];
      const rejected: PreparedInputs['rejected'] = [];
      const values: number[][] = [];
      items.forEach((item, index) => {
        const v: number[] = [];
        for (const field of spec.fields) {
          const x = valueAtPointer(item.payload, field);
          if (typeof x !== 'number' || !Number.isFinite(x)) {
            rejected.push({ index, finding: badInput(`/payload${field}`, 'bad_input', `features adapter needs a finite number at /payload${field}; got ${JSON.stringify(x) ?? 'nothing'}`) });
            return;
          }
          v.push(x);
        }
        rows.push(index);
        values.push(v);
      });
      return { feeds: { features: { type: 'float32', data: Float32Array.from(values.flat()), dims: [rows.length, F] } }, rows, rejected };
    },
  };
}

export function createAdapter(spec: AdapterSpec, tokenizerJson?: Record<string, unknown>): InputAdapter {
  switch (spec.kind) {
    case 'text':
      if (!tokenizerJson) throw new AdapterError('text adapter needs the model\'s tokenizer.json; register the model with --tokenizer tokenizer.json');
      return textAdapter(spec, tokenizerJson);
    case 'image':
      return imageAdapter(spec);
    case 'features':
      return featuresAdapter(spec);
  }
}
