import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import pino from 'pino';
import { bagOfWordsTextModel, linearFeaturesModel, tinyColorCnn, transformerTextModel } from '../../src/onnx/reference-models';
import { decodeModel, OnnxFormatError } from '../../src/onnx/proto';
import { createAdapter } from '../../src/qc/inference/adapters';
import { parseModelManifest } from '../../src/qc/inference/manifest';
import { normalizedEntropy, scoreSample, softmax } from '../../src/qc/inference/scoring';
import { ModelIntegrityError, ModelLoadError, SessionCache } from '../../src/clients/onnx-sessions';
import { sha256Hex } from '../../src/util/canonical-json';

const silent = pino({ level: 'silent' });
const CUES = { cat: ['cat', 'meow'], dog: ['dog', 'bark'] };

test('softmax and normalised entropy', () => {
  const p = softmax([1000, 1000]);
  assert.deepEqual(p, [0.5, 0.5]);
  assert.equal(normalizedEntropy(p), 1);
  assert.equal(normalizedEntropy([1, 0, 0]), 0);
  const q = softmax([2, 1, 0]);
  assert.ok(Math.abs(q.reduce((a, b) => a + b, 0) - 1) < 1e-12 && q[0]! > q[1]! && q[1]! > q[2]!);
});

test('scoreSample: consensus probability, top-k disagreement finding, ensemble spread, NaN and unknown labels', () => {
  const labels = ['cat', 'dog', 'bird'];
  const agree = scoreSample([{ modelVersion: 'm1', logits: [5, 0, 0] }], labels, ['cat'], 2);
  assert.ok(agree.passed && agree.score! > 0.98 && agree.findings.length === 0);
  const disagree = scoreSample([{ modelVersion: 'm1', logits: [0, 5, 1] }], labels, ['cat'], 2);
  assert.equal(disagree.passed, false);
  assert.deepEqual(disagree.top.map((t) => t.label), ['dog', 'bird']);
  assert.match(disagree.findings[0]!.message, /model gives cat p=0\.00\d; its top labels: dog 0\.97\d, bird 0\.01\d$/);
  // Two members that disagree: the mean is unsure, the spread and the epistemic part are large.
  const ens = scoreSample([{ modelVersion: 'a', logits: [8, 0, 0] }, { modelVersion: 'b', logits: [0, 8, 0] }], labels, ['cat'], 3);
  assert.ok(Math.abs(ens.score! - 0.5) < 0.01 && ens.spread! > 0.49 && ens.epistemic! > 0.5, JSON.stringify(ens));
  const same = scoreSample([{ modelVersion: 'a', logits: [8, 0, 0] }, { modelVersion: 'b', logits: [8, 0, 0] }], labels, ['cat'], 3);
  assert.ok(same.spread! < 1e-12 && same.epistemic! < 1e-12);
  const nan = scoreSample([{ modelVersion: 'm1', logits: [NaN, 0, 0] }], labels, ['cat'], 2);
  assert.equal(nan.score, null);
  assert.equal(nan.findings[0]!.rule, 'layer3.nan_output');
  const unknown = scoreSample([{ modelVersion: 'm1', logits: [1, 0, 0] }], labels, ['fish'], 2);
  assert.equal(unknown.score, null);
  assert.equal(unknown.findings[0]!.rule, 'layer3.label_not_in_model');
  // A multi-label consensus scores the mass on its labels.
  const multi = scoreSample([{ modelVersion: 'm1', logits: [3, 3, -10] }], labels, ['cat', 'dog'], 2);
  assert.ok(multi.score! > 0.999 && multi.passed);
});

test('text adapter: int64 ids, mask and type ids, padded and truncated to maxLength keeping [SEP]', async () => {
  const m = bagOfWordsTextModel({ cues: CUES, maxLength: 6 });
  const a = createAdapter(m.manifest.adapter, m.tokenizer);
  const p = await a.prepare([{ payload: { text: 'Cat MEOW' } }, { payload: { text: 'dog bark dog bark dog bark' } }, { payload: { text: 42 } }]);
  assert.deepEqual(p.rows, [0, 1]);
  assert.deepEqual(p.feeds.input_ids!.dims, [2, 6]);
  // [CLS]=2 cat=4 meow=5 [SEP]=3 then [PAD]=0; the long one keeps 5 tokens and its final [SEP].
  assert.deepEqual(Array.from(p.feeds.input_ids!.data as BigInt64Array, Number), [2, 4, 5, 3, 0, 0, 2, 6, 7, 6, 7, 3]);
  assert.deepEqual(Array.from(p.feeds.attention_mask!.data as BigInt64Array, Number), [1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1]);
  assert.equal(p.feeds.token_type_ids!.type, 'int64');
  assert.equal(p.rejected[0]!.index, 2);
  assert.match(p.rejected[0]!.finding.message, /non-empty string at \/payload\/text; got number/);
  assert.throws(() => createAdapter(m.manifest.adapter), /needs the model's tokenizer\.json/);
});

test('image adapter: decode, resize and normalise to NCHW float32; features adapter: named numeric fields', async () => {
  const c = tinyColorCnn({ size: 4 });
  const a = createAdapter(parseModelManifest(c.manifest).adapter);
  const green = await sharp({ create: { width: 9, height: 7, channels: 4, background: { r: 0, g: 255, b: 0, alpha: 1 } } }).png().toBuffer();
  const gray = await sharp({ create: { width: 5, height: 5, channels: 3, background: { r: 128, g: 128, b: 128 } } }).toColourspace('b-w').png().toBuffer();
  const p = await a.prepare([{ payload: {}, image: green }, { payload: {} }, { payload: {}, image: gray }]);
  assert.deepEqual(p.feeds.pixel_values!.dims, [2, 3, 4, 4]);
  const d = p.feeds.pixel_values!.data as Float32Array;
  assert.deepEqual([d[0], d[16], d[32]], [-1, 1, -1]);
  assert.ok(Math.abs(d[48]! - (128 / 255 - 0.5) / 0.5) < 1e-6, 'grey image becomes three equal channels');
  assert.deepEqual(p.rejected.map((r) => r.index), [1]);

  const f = linearFeaturesModel({ fields: ['/size/w', '/size/h'], labels: ['small', 'large'], weights: [[-1, 1], [-1, 1]] });
  const fp = await createAdapter(f.manifest.adapter).prepare([{ payload: { size: { w: 3, h: 4 } } }, { payload: { size: { w: 3, h: null } } }]);
  assert.deepEqual(Array.from(fp.feeds.features!.data as Float32Array), [3, 4]);
  assert.match(fp.rejected[0]!.finding.message, /finite number at \/payload\/size\/h; got null/);
});

test('manifest: defaults fill only the matching adapter kind; errors name the field', () => {
  const img = parseModelManifest({ labels: ['a', 'b'], adapter: { kind: 'image', width: 8, height: 8 } });
  assert.deepEqual(img.adapter, { kind: 'image', width: 8, height: 8, mediaIndex: 0, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
  assert.deepEqual(parseModelManifest({ labels: ['a', 'b'], adapter: { kind: 'text' } }).adapter, { kind: 'text', textPointer: '/text', maxLength: 128 });
  assert.throws(() => parseModelManifest({ labels: ['a', 'b'], adapter: { kind: 'image', width: 8 } }), /\/manifest\/adapter\/height is required/);
  assert.throws(() => parseModelManifest({ labels: ['a'], adapter: { kind: 'features', fields: ['/x'] } }), /\/manifest\/labels must NOT have fewer than 2 items/);
  assert.throws(() => decodeModel(Buffer.from('not a model at all')), OnnxFormatError);
});

test('session cache: coalesced loads, LRU eviction by count and by bytes, sha256 verification, provider fallback', async () => {
  const models = [bagOfWordsTextModel({ cues: CUES }), tinyColorCnn(), linearFeaturesModel({ fields: ['/x'], labels: ['a', 'b'], weights: [[1, -1]] })].map((m) => m.onnx);
  const shas = models.map(sha256Hex);
  let loads = 0;
  const loader = (i: number) => async () => { loads++; await new Promise((r) => setTimeout(r, 20)); return models[i]!; };
  // 'cuda' is not in this CPU build of onnxruntime-node: the cache falls back to cpu and says so.
  const cache = new SessionCache({ providers: ['cuda', 'cpu'], intraOpThreads: 1, maxSessions: 2, maxBytes: 1e9, log: silent });
  const used = await Promise.all([0, 0, 0].map(() => cache.with(shas[0]!, loader(0), async (s) => s.provider)));
  assert.deepEqual(used, ['cpu', 'cpu', 'cpu']);
  assert.equal(loads, 1);
  assert.deepEqual({ ...cache.stats(), bytes: 0 }, { hits: 0, misses: 1, coalesced: 2, evictions: 0, loadFailures: 0, sessions: 1, bytes: 0, skippedProviders: ['cuda'] });
  await cache.with(shas[1]!, loader(1), async () => undefined);
  await cache.with(shas[0]!, loader(0), async () => undefined); // model 0 is now the most recently used
  await cache.with(shas[2]!, loader(2), async () => undefined); // evicts model 1
  await cache.with(shas[0]!, loader(0), async () => undefined);
  assert.equal(cache.stats().hits, 2);
  assert.equal(cache.stats().evictions, 1);
  assert.equal(loads, 3);
  await cache.with(shas[1]!, loader(1), async () => undefined);
  assert.equal(loads, 4, 'the evicted model is loaded again');

  // A session evicted while in use still runs to the end of its user.
  const tight = new SessionCache({ providers: ['cpu'], intraOpThreads: 1, maxSessions: 10, maxBytes: models[0]!.byteLength, log: silent });
  const result = await tight.with(shas[0]!, loader(0), async (s) => {
    await tight.with(shas[2]!, loader(2), async () => undefined);
    const ids = { type: 'int64' as const, data: BigInt64Array.from([2n, 4n, 3n]), dims: [1, 3] };
    const mask = { type: 'int64' as const, data: BigInt64Array.from([1n, 1n, 1n]), dims: [1, 3] };
    return (await s.session.run({ input_ids: ids, attention_mask: mask }, ['logits'])).outputs.logits!.data;
  });
  assert.deepEqual(Array.from(result as Float32Array), [3, 0]);
  assert.equal(tight.stats().sessions, 1);
  assert.ok(tight.stats().evictions >= 1);

  await assert.rejects(cache.with('0'.repeat(64), loader(0), async () => undefined), ModelIntegrityError);
  const junk = Buffer.from('junk');
  await assert.rejects(cache.with(sha256Hex(junk), async () => junk, async () => undefined), (err: Error) => err instanceof ModelLoadError && /any of \[cpu\]: cpu: /.test(err.message));
  assert.equal(cache.stats().loadFailures, 2);
  assert.equal(cache.stats().skippedProviders.join(), 'cuda', 'a provider that failed where a later one worked is not retried for every model');
  await cache.close();
  await tight.close();
});

test('the transformer text reference model (the layer-3 bench model) follows its cue words through the text adapter', async () => {
  const m = transformerTextModel({ cues: CUES, maxLength: 16 });
  const adapter = createAdapter(parseModelManifest(m.manifest).adapter, m.tokenizer);
  const texts = Object.entries(CUES).map(([label, words]) => ({ label, text: `${words[0]} and ${words[1]}` }));
  const p = await adapter.prepare(texts.map((t) => ({ payload: { text: t.text } })));
  const s = await ort.InferenceSession.create(m.onnx);
  const out = await s.run({
    input_ids: new ort.Tensor('int64', p.feeds.input_ids!.data, p.feeds.input_ids!.dims),
    attention_mask: new ort.Tensor('int64', p.feeds.attention_mask!.data, p.feeds.attention_mask!.dims),
  });
  const logits = out.logits!.data as Float32Array;
  const C = m.manifest.labels.length;
  texts.forEach((t, i) => {
    const row = Array.from(logits.subarray(i * C, (i + 1) * C));
    assert.equal(m.manifest.labels[row.indexOf(Math.max(...row))], t.label, t.text);
  });
});
