import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { defaultPayloadConverter } from '@temporalio/common';
import { AesGcmPayloadCodec, ENCRYPTED, parsePayloadKeys, PayloadKeyError } from '../../src/clients/payload-codec';

const key = (): string => randomBytes(32).toString('base64');

test('payloads round-trip sealed; nothing of the value is left in clear', async () => {
  const codec = new AesGcmPayloadCodec(parsePayloadKeys(`k1:${key()}`));
  const plain = defaultPayloadConverter.toPayload({ project: 'secret-project', text: 'patient name Jane Roe' });
  const [sealed] = await codec.encode([plain]);
  assert.equal(Buffer.from(sealed!.metadata!.encoding!).toString(), ENCRYPTED);
  assert.equal(Buffer.from(sealed!.metadata!['encryption-key-id']!).toString(), 'k1');
  assert.ok(!Buffer.from(sealed!.data!).includes('secret-project'));
  const [back] = await codec.decode([sealed!]);
  assert.deepEqual(defaultPayloadConverter.fromPayload(back!), { project: 'secret-project', text: 'patient name Jane Roe' });
  // Two seals of the same value differ (a fresh IV each time).
  const [again] = await codec.encode([plain]);
  assert.notDeepEqual(Buffer.from(again!.data!), Buffer.from(sealed!.data!));
});

test('rotation: the first key seals, an older key later in the list still opens; a dropped key is named', async () => {
  const [old, fresh] = [key(), key()];
  const before = new AesGcmPayloadCodec(parsePayloadKeys(`2025:${old}`));
  const [sealedOld] = await before.encode([defaultPayloadConverter.toPayload('x')]);
  const after = new AesGcmPayloadCodec(parsePayloadKeys(`2026:${fresh},2025:${old}`));
  assert.equal(defaultPayloadConverter.fromPayload((await after.decode([sealedOld!]))[0]!), 'x');
  const [sealedNew] = await after.encode([defaultPayloadConverter.toPayload('y')]);
  assert.equal(Buffer.from(sealedNew!.metadata!['encryption-key-id']!).toString(), '2026');
  const dropped = new AesGcmPayloadCodec(parsePayloadKeys(`2026:${fresh}`));
  await assert.rejects(dropped.decode([sealedOld!]), /sealed with key "2025", which QCFLOW_PAYLOAD_KEYS does not list/);
});

test('a tampered payload or one moved under another key id does not open', async () => {
  const [a, b] = [key(), key()];
  const codec = new AesGcmPayloadCodec(parsePayloadKeys(`a:${a},b:${b}`));
  const [sealed] = await codec.encode([defaultPayloadConverter.toPayload({ n: 1 })]);
  const flipped = Buffer.from(sealed!.data!);
  flipped[20] = flipped[20]! ^ 1;
  await assert.rejects(codec.decode([{ ...sealed!, data: flipped }]), /unable to authenticate|Unsupported state/);
  await assert.rejects(codec.decode([{ ...sealed!, metadata: { ...sealed!.metadata, 'encryption-key-id': Buffer.from('b') } }]), /unable to authenticate|Unsupported state/);
  // Payloads that were never sealed pass through (histories from before encryption was turned on).
  const clear = defaultPayloadConverter.toPayload('old');
  assert.deepEqual(await codec.decode([clear]), [clear]);
});

test('key lists are checked: format, 32-byte keys, unique ids', () => {
  assert.throws(() => parsePayloadKeys('nocolon'), PayloadKeyError);
  assert.throws(() => parsePayloadKeys(`k:${randomBytes(16).toString('base64')}`), /16 bytes; AES-256 needs 32/);
  assert.throws(() => parsePayloadKeys(`k:${key()},k:${key()}`), /twice/);
  assert.equal(parsePayloadKeys(` a:${key()} , b:${key()} `).length, 2);
});
