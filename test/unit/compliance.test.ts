import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkCompliance, compileCompliance, ProjectSpecError, resolvePointer } from '../../src/qc/compliance';
import { checkEnvelope, contentHash, parseLine, sampleId, type IngestSample } from '../../src/ingest/envelope';

const schema = {
  type: 'object',
  required: ['text', 'meta'],
  properties: {
    text: { type: 'string', maxLength: 20 },
    email: { type: 'string', format: 'email' },
    when: { type: 'string', format: 'date-time' },
    meta: { type: 'object', required: ['lang'], properties: { lang: { enum: ['en', 'de'] }, tags: { type: 'array', items: { type: 'string', format: 'uuid' } } } },
  },
};

const sample = (payload: Record<string, unknown>, extra: Partial<IngestSample> = {}): IngestSample => ({ externalId: 's1', payload, annotations: [], ...extra });
const rules = (f: ReturnType<typeof checkCompliance>) => f.findings.map((x) => `${x.pointer} ${x.rule}`).sort();

test('a valid payload passes with no findings', () => {
  const c = compileCompliance({ jsonSchema: schema, regexRules: [] });
  const r = checkCompliance(sample({ text: 'hello', email: 'a@b.co', when: '2026-11-21T10:00:00Z', meta: { lang: 'en' } }), c);
  assert.deepEqual(r, { passed: true, findings: [] });
});

test('format errors name the format and the JSON pointer of the field', () => {
  const c = compileCompliance({ jsonSchema: schema, regexRules: [] });
  const r = checkCompliance(sample({ text: 'hi', email: 'nope', when: 'yesterday', meta: { lang: 'en', tags: ['x'] } }), c);
  assert.equal(r.passed, false);
  assert.deepEqual(rules(r), [
    '/payload/email schema.format.email',
    '/payload/meta/tags/0 schema.format.uuid',
    '/payload/when schema.format.date-time',
  ]);
});

test('nested required and enum errors point into the nested object', () => {
  const c = compileCompliance({ jsonSchema: schema, regexRules: [] });
  const r = checkCompliance(sample({ text: 'x'.repeat(21), meta: { lang: 'xx' } }), c);
  assert.deepEqual(rules(r), ['/payload/meta/lang schema.enum', '/payload/text schema.maxLength']);
  const missing = checkCompliance(sample({ text: 'ok', meta: {} }), c);
  assert.deepEqual(rules(missing), ['/payload/meta/lang schema.required']);
  assert.match(missing.findings[0]!.message, /required/);
});

test('regex rules: forbid, match over wildcard arrays, required, custom message', () => {
  const c = compileCompliance({
    jsonSchema: {},
    regexRules: [
      { name: 'no-ssn', pointer: '/payload/text', pattern: '\\b\\d{3}-\\d{2}-\\d{4}\\b', mode: 'forbid', message: 'redact PII' },
      { name: 'annotator', pointer: '/annotations/*/annotator', pattern: '^ann-\\d+$' },
      { name: 'has-title', pointer: '/payload/title', pattern: '.', required: true },
    ],
  });
  const r = checkCompliance(sample({ text: 'ssn 078-05-1120' }, {
    annotations: [{ annotator: 'ann-1', labels: {} }, { annotator: 'Bob', labels: {} }],
  }), c);
  assert.deepEqual(rules(r), ['/annotations/1/annotator regex.annotator', '/payload/text regex.no-ssn', '/payload/title regex.has-title']);
  assert.equal(r.findings.find((f) => f.rule === 'regex.no-ssn')!.message, 'redact PII');
  const ok = checkCompliance(sample({ text: 'fine', title: 'T' }, { annotations: [{ annotator: 'ann-2', labels: {} }] }), c);
  assert.equal(ok.passed, true);
});

test('bad project specs are refused with the offending rule named', () => {
  assert.throws(() => compileCompliance({ jsonSchema: { type: 'nonsense' }, regexRules: [] }), ProjectSpecError);
  assert.throws(() => compileCompliance({ jsonSchema: {}, regexRules: [{ name: 'r', pointer: '/x', pattern: '(' }] }), /regexRules\[0\]\.pattern/);
  assert.throws(() => compileCompliance({ jsonSchema: {}, regexRules: [{ name: 'r', pointer: 'x', pattern: 'a' }] }), /must start with "\/"/);
  assert.throws(() => compileCompliance({ jsonSchema: {}, regexRules: [{ name: 'a', pointer: '/x', pattern: 'a' }, { name: 'a', pointer: '/y', pattern: 'b' }] }), /used twice/);
});

test('missing media keys are findings', () => {
  const c = compileCompliance({ jsonSchema: {}, regexRules: [] });
  const r = checkCompliance(sample({}, { media: [{ key: 'raw/p/a.png' }, { key: 'raw/p/b.png' }] }), c, ['raw/p/b.png']);
  assert.deepEqual(rules(r), ['/media/1/key media.exists']);
});

test('resolvePointer walks wildcards and escapes keys', () => {
  const hits = resolvePointer({ a: [{ 'b/c': 1 }, { 'b/c': 2 }] }, ['a', '*', 'b/c']);
  assert.deepEqual(hits, [{ pointer: '/a/0/b~1c', value: 1 }, { pointer: '/a/1/b~1c', value: 2 }]);
});

test('envelope: malformed JSON, missing externalId, bad box, bad span order, control characters', () => {
  const bad = parseLine('{"externalId": "x", ');
  assert.equal(bad.ok, false);
  assert.equal(!bad.ok && bad.findings[0]!.rule, 'json.syntax');

  const noId = checkEnvelope({ payload: {} });
  assert.deepEqual(!noId.ok && noId.findings.map((f) => `${f.pointer} ${f.rule}`), ['/externalId schema.required']);

  const box = checkEnvelope({ externalId: 'a', payload: {}, annotations: [{ annotator: 'x', labels: { boxes: [{ x: 0, y: 0, w: -1, h: 1, class: 'c' }] } }] });
  assert.deepEqual(!box.ok && box.findings.map((f) => `${f.pointer} ${f.rule}`), ['/annotations/0/labels/boxes/0/w schema.minimum']);
  assert.equal(!box.ok && box.externalId, 'a');

  const span = checkEnvelope({ externalId: 'a', payload: {}, annotations: [{ annotator: 'x', labels: { spans: [{ start: 5, end: 5, label: 'PER' }] } }] });
  assert.deepEqual(!span.ok && span.findings.map((f) => `${f.pointer} ${f.rule}`), ['/annotations/0/labels/spans/0/end span.order']);

  const ctl = checkEnvelope({ externalId: 'a\u0001b', payload: {} });
  assert.deepEqual(!ctl.ok && ctl.findings.map((f) => `${f.pointer} ${f.rule}`), ['/externalId schema.pattern']);

  const long = checkEnvelope({ externalId: 'x'.repeat(257), payload: {} });
  assert.deepEqual(!long.ok && long.findings.map((f) => f.rule), ['schema.maxLength']);

  const extra = checkEnvelope({ externalId: 'a', payload: {}, surprise: 1 });
  assert.deepEqual(!extra.ok && extra.findings.map((f) => `${f.pointer} ${f.rule}`), ['/surprise schema.additionalProperties']);

  const media = checkEnvelope({ externalId: 'a', payload: {}, media: [{ contentType: 'image/png' }] });
  assert.equal(media.ok, false);
});

test('content hash ignores key order; sample ids differ by content', () => {
  const a: IngestSample = { externalId: 'e', payload: { x: 1, y: 2 } };
  const b: IngestSample = { externalId: 'e', payload: { y: 2, x: 1 } };
  const c: IngestSample = { externalId: 'e', payload: { x: 1, y: 3 } };
  assert.equal(contentHash(a), contentHash(b));
  assert.notEqual(contentHash(a), contentHash(c));
  assert.notEqual(sampleId('p', 'e', contentHash(a)), sampleId('p', 'e', contentHash(c)));
  assert.notEqual(sampleId('p', 'e', contentHash(a)), sampleId('q', 'e', contentHash(a)));
});
