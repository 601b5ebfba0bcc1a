import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLine } from '../../src/ingest/envelope';
import { decodeUtf8Line, safeText, unstorable } from '../../src/ingest/storable';
import { mediaKeyProblem, servedTypeOf } from '../../src/ingest/keys';
import { validateProjectDefinition } from '../../src/projects/definition';
import { checkCompliance, compileCompliance, ProjectSpecError } from '../../src/qc/compliance';

const line = (payload: unknown, externalId = 'x-1'): string => JSON.stringify({ externalId, payload, annotations: [] });

test('unstorable values are findings naming the field and the rule, at any depth, without recursion', () => {
  assert.deepEqual(parseLine(line({ text: 'a\u0000b' })), { ok: false, externalId: 'x-1', findings: [{ layer: 1, pointer: '/payload/text', rule: 'json.nul', message: 'the value contains U+0000 (NUL), which cannot be stored; remove it upstream' }] });
  const sur = parseLine(line({ text: 'x\ud800y' }));
  assert.equal(!sur.ok && sur.findings[0]!.rule, 'json.surrogate');
  assert.equal(!sur.ok && sur.findings[0]!.pointer, '/payload/text');
  // A valid pair is a character, not a problem.
  assert.equal(parseLine(line({ text: 'emoji \ud83d\ude00' })).ok, true);
  const key = parseLine(JSON.stringify({ externalId: 'k', payload: { ['a\u0000']: 1 } }));
  assert.equal(!key.ok && key.findings[0]!.rule, 'json.nul');
  const nulId = parseLine(line({ text: 'ok' }, 'id\u0000x'));
  assert.equal(!nulId.ok && nulId.externalId, 'id\ufffdx', 'the id is kept for the rejection row, made storable');
  // 10,000 levels: JSON.parse copes; hashing would overflow the stack; the check is iterative.
  const deep = '{"externalId":"d","payload":' + '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000) + '}';
  const d = parseLine(deep);
  assert.equal(!d.ok && d.findings[0]!.rule, 'json.depth');
  assert.match(!d.ok ? d.findings[0]!.pointer : '', /^\/payload(\/a){63}$/);
  assert.equal(unstorable({ a: [[[[1]]]] }, 4)?.rule, 'json.depth');
  assert.equal(unstorable({ a: [[[1]]] }, 4), undefined);
  // A raw NUL byte is not JSON at all, and the message about it is storable.
  const raw = parseLine('{"externalId":"r","payload":{"text":"a\u0000b"}}');
  assert.equal(!raw.ok && raw.findings[0]!.rule, 'json.syntax');
  assert.equal(safeText('a\u0000b\udc00c'), 'a\ufffdb\ufffdc');
});

test('media keys must lie under the sample\'s own project', () => {
  assert.equal(mediaKeyProblem('p', 'raw/p/s/0.png'), undefined);
  assert.match(mediaKeyProblem('p', 'releases/demo/v1/data.jsonl')!, /must lie under raw\/p\//);
  assert.match(mediaKeyProblem('p', 'raw/other/x.png')!, /must lie under raw\/p\//);
  assert.match(mediaKeyProblem('p', 'raw/p/../demo/x.png')!, /"\.\."/);
  assert.match(mediaKeyProblem('p', '../../etc/passwd')!, /must lie under/);
  assert.match(mediaKeyProblem('p', 'raw/p//x.png')!, /empty/);
});

test('a regex rule runs in linear time whatever its pattern: (a+)+$ on 40 a\'s and a ! answers at once', { timeout: 20_000 }, () => {
  const project = (pattern: string, flags?: string) => validateProjectDefinition({ id: 'p', jsonSchema: { type: 'object' }, regexRules: [{ name: 'r', pointer: '/payload/text', pattern, ...(flags ? { flags } : {}) }] });
  const sample = (text: string) => ({ externalId: 'x', payload: { text }, annotations: [] });
  // A backtracking engine takes about 2^40 steps here (the test would time out); RE2 takes one pass.
  const evil = compileCompliance({ jsonSchema: { type: 'object' }, regexRules: project('(a+)+$').regexRules });
  assert.equal(checkCompliance(sample(`${'a'.repeat(40)}!`), evil).passed, false);
  assert.equal(checkCompliance(sample('aaaa'), evil).passed, true);
  // What RE2 cannot run in linear time is refused when the project is saved, naming the rule and why.
  assert.throws(() => project('(?<=a)b'), (e: Error) => e instanceof ProjectSpecError && /regexRules\[0\]\.pattern is not a regular expression qcflow can run in linear time \(RE2 syntax: no lookaround, no backreferences/.test(e.message));
  assert.throws(() => project('(a)\\1'), ProjectSpecError);
  assert.throws(() => project('a', 'x'), /regexRules\[0\]\.flags: "x" is not supported/);
  // Flags carry over.
  const ci = compileCompliance({ jsonSchema: { type: 'object' }, regexRules: project('^abc$', 'i').regexRules });
  assert.equal(checkCompliance(sample('ABC'), ci).passed, true);
  const ssn = compileCompliance({ jsonSchema: { type: 'object' }, regexRules: [{ name: 'no-ssn', pointer: '/payload/text', pattern: '\\b\\d{3}-\\d{2}-\\d{4}\\b', mode: 'forbid' }] });
  assert.equal(checkCompliance(sample('call 123-45-6789 now'), ssn).passed, false);
  assert.equal(checkCompliance(sample('order 1234-56-7890'), ssn).passed, true);
});

test('inline media is limited to types reviewers view; stored objects are served as downloads of a known type', () => {
  const html = parseLine(JSON.stringify({ externalId: 'h', payload: {}, media: [{ contentType: 'text/html', base64: 'PGgxPmhpPC9oMT4=' }] }));
  assert.equal(html.ok, false);
  assert.match(!html.ok ? JSON.stringify(html.findings) : '', /\/media\/0/);
  assert.equal(parseLine(JSON.stringify({ externalId: 'p', payload: {}, media: [{ contentType: 'image/png', base64: 'iVBORw0KGgo=' }] })).ok, true);
  assert.equal(servedTypeOf('raw/p/s/0.png'), 'image/png');
  assert.equal(servedTypeOf('raw/p/s/photo.JPEG'), 'image/jpeg');
  assert.equal(servedTypeOf('raw/p/s/page.html'), 'application/octet-stream');
  assert.equal(servedTypeOf('raw/p/s/noext'), 'application/octet-stream');
});

test('invalid UTF-8 is refused, not replaced; an oversized inline upload says the limit', () => {
  const bad = decodeUtf8Line(Buffer.from([0x7b, 0x22, 0x61, 0xff, 0x22, 0x7d]).toString('latin1'));
  assert.equal(bad.finding?.rule, 'utf8.invalid');
  assert.equal(bad.text, '{"a\ufffd"}');
  assert.deepEqual(decodeUtf8Line(Buffer.from('{"text":"ça va 😀"}', 'utf8').toString('latin1')), { text: '{"text":"ça va 😀"}' });
  const big = parseLine(JSON.stringify({ externalId: 'b', payload: {}, media: [{ contentType: 'image/png', base64: 'A'.repeat(6 * 2 ** 20) }] }));
  assert.equal(!big.ok && big.findings[0]!.rule, 'media.size');
  assert.match(!big.ok ? big.findings[0]!.message : '', /inline media is 4\.5 MiB, over the 4 MiB limit/);
});
