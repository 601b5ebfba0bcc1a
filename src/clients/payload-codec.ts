import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';

/**
 * AES-256-GCM for every payload qcflow puts in Temporal (workflow inputs, signals, results, history), so
 * sample fields and ids are not stored in clear on the Temporal server. Each payload names the key that
 * sealed it: the first key encodes, every key listed decodes, so a key is rotated by putting a new one
 * first and dropping the old one once no open workflow holds payloads sealed with it.
 */
export const ENCRYPTED = 'binary/encrypted';
const KEY_ID = 'encryption-key-id';
const CIPHER = 'encryption-cipher';

export interface PayloadKey {
  id: string;
  key: Buffer;
}

export class PayloadKeyError extends Error {
  override name = 'PayloadKeyError';
}

/** `id:base64key[,id:base64key…]`, each key 32 bytes (`openssl rand -base64 32`). */
export function parsePayloadKeys(text: string): PayloadKey[] {
  const keys = text.split(',').map((s) => s.trim()).filter(Boolean).map((entry) => {
    const m = /^([A-Za-z0-9._-]{1,64}):([A-Za-z0-9+/=_-]+)$/.exec(entry);
    if (!m) throw new PayloadKeyError(`QCFLOW_PAYLOAD_KEYS entry ${JSON.stringify(entry.slice(0, 12))}… must be keyId:base64key`);
    const key = Buffer.from(m[2]!, 'base64');
    if (key.length !== 32) throw new PayloadKeyError(`QCFLOW_PAYLOAD_KEYS key ${m[1]} is ${key.length} bytes; AES-256 needs 32 (make one with: openssl rand -base64 32)`);
    return { id: m[1]!, key };
  });
  if (new Set(keys.map((k) => k.id)).size !== keys.length) throw new PayloadKeyError('QCFLOW_PAYLOAD_KEYS names a key id twice');
  return keys;
}

const text = (s: string): Uint8Array => Buffer.from(s);

export class AesGcmPayloadCodec implements PayloadCodec {
  private readonly byId: Map<string, Buffer>;

  constructor(private readonly keys: PayloadKey[]) {
    if (keys.length === 0) throw new PayloadKeyError('at least one payload key is needed');
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const { id, key } = this.keys[0]!;
    return payloads.map((p) => {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      // The key id is authenticated too: a payload moved under another key id does not decrypt.
      cipher.setAAD(Buffer.from(id));
      const sealed = Buffer.concat([iv, cipher.update(temporal.api.common.v1.Payload.encode(p).finish()), cipher.final(), cipher.getAuthTag()]);
      return { metadata: { encoding: text(ENCRYPTED), [KEY_ID]: text(id), [CIPHER]: text('AES256GCM') }, data: sealed };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      if (Buffer.from(p.metadata?.encoding ?? []).toString() !== ENCRYPTED) return p;
      const id = Buffer.from(p.metadata?.[KEY_ID] ?? []).toString();
      const key = this.byId.get(id);
      if (!key) throw new PayloadKeyError(`a payload is sealed with key ${JSON.stringify(id)}, which QCFLOW_PAYLOAD_KEYS does not list; add it back (later in the list: it decodes, the first key encodes)`);
      const data = Buffer.from(p.data ?? []);
      const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, 12));
      decipher.setAAD(Buffer.from(id));
      decipher.setAuthTag(data.subarray(data.length - 16));
      const plain = Buffer.concat([decipher.update(data.subarray(12, data.length - 16)), decipher.final()]);
      return temporal.api.common.v1.Payload.decode(plain);
    });
  }
}

/** Temporal's remote codec protocol (the UI and `temporal` CLI's --codec-endpoint): payloads as JSON with base64 bytes. */
export interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}

export const payloadFromJson = (p: JsonPayload): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  data: Buffer.from(p.data ?? '', 'base64'),
});

export const payloadToJson = (p: Payload): JsonPayload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? []).toString('base64')])),
  data: Buffer.from(p.data ?? []).toString('base64'),
});
