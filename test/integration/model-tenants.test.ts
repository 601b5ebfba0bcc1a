import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { issueToken } from '../../src/http/auth';
import type { ModelRole } from '../../src/review/decisions';
import type { ModelManifest } from '../../src/qc/inference/manifest';
import { insertModelVersion, modelVersionId } from '../../src/store/models';
import { harness, REPO, uid, type Harness } from './helpers';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { registerModel } from '../../src/models/register';
import type { MetadataError } from '../../src/models/metadata';
import { bagOfWordsTextModel } from '../../src/onnx/reference-models';

let h: Harness;
before(async () => {
  h = await harness({ worker: false, server: true });
});
after(() => h.close());

const MANIFEST = { labels: ['a', 'b'], adapter: { kind: 'features', fields: ['/features'] } } as unknown as ModelManifest;
async function version(tenant: string, name: string, v: string, parentId: string | null = null): Promise<string> {
  const id = modelVersionId(tenant, name, v);
  await insertModelVersion(h.pool, { id, tenant, name, version: v, sha256: createHash('sha256').update(id).digest('hex'), objectKey: `models/${id}.onnx`, bytes: 1, manifest: MANIFEST, tokenizerKey: null, tokenizerSha256: null, precision: 'fp32', parentId, goldenKey: null, calibrationKey: null, metrics: {}, metadata: {} }, 'test');
  return id;
}
const token = (tenant: string | undefined, modelRole: ModelRole | undefined, user = 'u') => issueToken(h.cfg.http.jwtSecret!, { user, role: 'operator', ttlSeconds: 600, tenant, modelRole });
async function cli(env: Record<string, string>, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: REPO, env: { ...process.env, QCFLOW_TOKEN: '', QCFLOW_LOG_LEVEL: 'silent', ...env } }).then(
    (r) => ({ code: 0, ...r }), (e: { code: number; stdout: string; stderr: string }) => e,
  );
}
async function api(method: string, url: string, auth: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${h.server!.url}${url}`, { method, headers: { authorization: `Bearer ${auth}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

test('tenants: another tenant\'s models answer 404 on every registry path; registry roles gate stages and aliases', async () => {
  const a = `acme${uid()}`, b = `beta${uid()}`;
  const mine = await version(a, 'sent', '1');
  const child = await version(a, 'sent', '1-int8', mine);
  const theirs = await version(b, 'sent', '1');
  const path = (id: string) => `/api/models/${id}`;
  const viewer = token(a, 'viewer'), publisher = token(a, 'publisher', 'pub'), admin = token(a, 'admin', 'adm'), outsider = token(b, 'admin');

  // Invisible, not forbidden: the same answer as for a model that does not exist.
  for (const [m, url, body] of [['GET', path(mine)], ['GET', `${path(mine)}/lineage`], ['POST', `${path(mine)}/stage`, { to: 'validated', reason: 'x' }], ['PUT', `${path(mine)}/aliases/candidate`, { reason: 'x' }]] as const) {
    const r = await api(m, url, outsider, body);
    assert.equal(r.status, 404, `${m} ${url}`);
    assert.match(String((r.body.error as { message: string }).message), /does not exist \(or is not in your tenant\)/);
  }
  assert.equal((await api('GET', path(`${a}/sent/nope`), viewer)).status, 404);
  const listed = (await api('GET', '/api/models', viewer)).body.versions as Array<{ id: string }>;
  assert.deepEqual(listed.map((v) => v.id).sort(), [mine, child].sort());
  assert.equal((await api('GET', `/api/models?tenant=${b}`, viewer)).status, 404, 'naming another tenant is a 404 too');
  assert.equal((await api('GET', path(theirs), viewer)).status, 404);
  assert.equal((await api('GET', '/api/models', token(undefined, undefined))).body.versions instanceof Array, true);
  assert.deepEqual((await api('GET', '/api/models', token(undefined, undefined))).body.versions, [], 'no registry role: nothing visible');

  // Roles: a viewer reads; a publisher validates and canaries; production and archive need admin.
  assert.equal((await api('POST', `${path(mine)}/stage`, viewer, { to: 'validated', reason: 'x' })).status, 403);
  assert.equal((await api('POST', `${path(mine)}/stage`, publisher, { to: 'validated', reason: 'golden ok' })).status, 200);
  assert.equal((await api('POST', `${path(mine)}/stage`, publisher, { to: 'canary', reason: 'rollout' })).status, 200);
  assert.equal((await api('POST', `${path(mine)}/stage`, publisher, { to: 'production', reason: 'x' })).status, 403);
  assert.equal((await api('PUT', `${path(mine)}/aliases/production`, publisher, { reason: 'x' })).status, 403);
  assert.equal((await api('PUT', `${path(mine)}/aliases/candidate`, publisher, { reason: 'under test' })).status, 200);
  const skipped = await api('POST', `${path(child)}/stage`, admin, { to: 'production', reason: 'x' });
  assert.equal(skipped.status, 409);
  assert.match(String((skipped.body.error as { message: string }).message), /from registered it can become validated or archived/);
  assert.equal((await api('POST', `${path(mine)}/stage`, admin, { to: 'production', reason: 'won' })).status, 200);
  const shown = (await api('GET', path(mine), viewer)).body as { stage: string; aliases: Record<string, string>; events: Array<{ actor: string }> };
  assert.equal(shown.stage, 'production');
  assert.deepEqual(shown.aliases, { candidate: mine, production: mine });
  assert.deepEqual(shown.events.map((e) => e.actor), ['pub', 'pub', 'pub', 'adm', 'adm']);
  const lineage = (await api('GET', `${path(mine)}/lineage`, viewer)).body as { descendants: Array<{ id: string }> };
  assert.deepEqual(lineage.descendants.map((d) => d.id), [child]);
  // A registry admin without a tenant sees every tenant.
  const all = (await api('GET', '/api/models', token(undefined, 'admin'))).body.versions as Array<{ id: string }>;
  assert.ok(all.some((v) => v.id === theirs) && all.some((v) => v.id === mine));
});

test('metadata: a tenant\'s JSON Schema refuses non-conforming metadata naming field and rule (register, API, CLI); admins set it, others cannot see or touch it', async () => {
  const a = `acme${uid()}`, b = `beta${uid()}`;
  const schemaUrl = (t: string) => `/api/tenants/${t}/metadata-schema`;
  const admin = token(a, 'admin', 'adm'), publisher = token(a, 'publisher', 'pub'), outsider = token(b, 'admin');
  const old = await version(a, 'sent', '1');
  const schema = {
    type: 'object', required: ['dataset', 'owner'], additionalProperties: true,
    properties: { dataset: { type: 'string', minLength: 1 }, owner: { type: 'string', format: 'email' }, accuracy: { type: 'number', minimum: 0, maximum: 1 } },
  };
  // Only the tenant's admin sets it; another tenant's admin does not find the tenant; a schema that is not one is refused.
  assert.equal((await api('PUT', schemaUrl(a), publisher, { schema })).status, 403);
  assert.equal((await api('PUT', schemaUrl(a), outsider, { schema })).status, 404);
  assert.equal((await api('GET', schemaUrl(a), outsider)).status, 404);
  const notASchema = await api('PUT', schemaUrl(a), admin, { schema: { type: 'object', properties: { x: { type: 'strnig' } } } });
  assert.equal(notASchema.status, 422);
  assert.match(String((notASchema.body.error as { message: string }).message), /does not compile/);
  const set = await api('PUT', schemaUrl(a), admin, { schema });
  assert.equal(set.status, 200);
  assert.deepEqual(set.body.nonConforming, [old], 'versions registered before it that do not fit are named');
  assert.deepEqual((await api('GET', schemaUrl(a), publisher)).body.schema, schema);

  // Registration checks it before anything is uploaded.
  const m = bagOfWordsTextModel({ cues: { pos: ['good'], neg: ['bad'] } });
  const reg = (version: string, metadata: unknown, tenant = a) => registerModel(h.pool, h.store, { tenant, name: 'sent', version, onnx: m.onnx, manifest: m.manifest, tokenizer: m.tokenizer, metadata }, 'test');
  await assert.rejects(reg('2', { owner: 'not-an-email', accuracy: 1.5 }), (err: MetadataError) => {
    assert.deepEqual(err.problems.map((p) => [p.field, p.rule]).sort(), [['metadata/accuracy', 'schema.maximum'], ['metadata/dataset', 'schema.required'], ['metadata/owner', 'schema.format.email']]);
    assert.match(err.message, /metadata\/dataset: is required \(schema\.required\)/);
    return true;
  });
  assert.equal((await api('GET', `/api/models/${a}/sent/2`, admin)).status, 404, 'nothing was registered');
  const ok = await reg('2', { dataset: 'reviews-2026-10', owner: 'ml@acme.example', accuracy: 0.91 });
  assert.deepEqual(ok.metadata, { dataset: 'reviews-2026-10', owner: 'ml@acme.example', accuracy: 0.91 });
  assert.deepEqual((await reg('1', { anything: true }, b)).metadata, { anything: true }, 'a tenant without a schema takes any object');

  // Editing: checked the same way (422 with findings), recorded as an event with who and why.
  const url = `/api/models/${ok.id}/metadata`;
  const bad = await api('PUT', url, publisher, { metadata: { dataset: '' , owner: 'ml@acme.example' }, reason: 'typo' });
  assert.equal(bad.status, 422);
  assert.deepEqual((bad.body.error as { findings: Array<{ field: string; rule: string }> }).findings.map((f) => [f.field, f.rule]), [['metadata/dataset', 'schema.minLength']]);
  assert.equal((await api('PUT', url, token(a, 'viewer'), { metadata: { dataset: 'x', owner: 'ml@acme.example' }, reason: 'x' })).status, 403);
  assert.equal((await api('PUT', url, outsider, { metadata: { dataset: 'x', owner: 'ml@acme.example' }, reason: 'x' })).status, 404);
  assert.equal((await api('PUT', url, publisher, { metadata: { dataset: 'reviews-2026-11', owner: 'ml@acme.example' }, reason: 'retrained on November' })).status, 200);
  const shown = (await api('GET', `/api/models/${ok.id}`, publisher)).body as { metadata: Record<string, unknown>; events: Array<{ kind: string; actor: string; reason: string; to: string }> };
  assert.deepEqual(shown.metadata, { dataset: 'reviews-2026-11', owner: 'ml@acme.example' });
  assert.deepEqual(shown.events.filter((e) => e.kind === 'metadata').map((e) => [e.actor, e.reason, JSON.parse(e.to).dataset]), [['pub', 'retrained on November', 'reviews-2026-11']]);

  // The CLI: the same check, the same words.
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'qcflow-meta-')), 'm.json');
  writeFileSync(file, JSON.stringify({ owner: 'ml@acme.example' }));
  const refused = await cli({}, 'model', 'metadata', ok.id, '--file', file, '--reason', 'cli');
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /metadata\/dataset: is required \(schema\.required\)/);
});

test('the CLI with a tenant-limited QCFLOW_TOKEN acts as that token: other tenants\' models are not found, roles gate moves; without one it is the operator', async () => {
  const a = `acme${uid()}`, b = `beta${uid()}`;
  const mine = await version(a, 'cli', '1');
  const theirs = await version(b, 'cli', '1');
  const as = (t: string) => ({ QCFLOW_TOKEN: t, QCFLOW_JWT_SECRET: h.cfg.http.jwtSecret! });
  const viewer = as(token(a, 'viewer', 'vic'));
  const listed = await cli(viewer, 'model', 'list');
  assert.equal(listed.code, 0, listed.stderr);
  assert.ok(listed.stdout.includes(mine) && !listed.stdout.includes(theirs), listed.stdout);
  for (const args of [['show', theirs], ['lineage', theirs], ['promote', theirs, '--to', 'validated', '--reason', 'x'], ['alias', theirs, '--alias', 'candidate', '--reason', 'x']]) {
    const r = await cli(viewer, 'model', ...args);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.stderr, /does not exist \(or is not in your tenant\).*limits this CLI to tenant/, args.join(' '));
  }
  const denied = await cli(viewer, 'model', 'promote', mine, '--to', 'validated', '--reason', 'x');
  assert.match(denied.stderr, /needs the registry role publisher or admin; yours is viewer/);
  const moved = await cli(as(token(a, 'publisher', 'pat')), 'model', 'promote', mine, '--to', 'validated', '--reason', 'golden ok');
  assert.equal(moved.code, 0, moved.stderr);
  const shown = JSON.parse((await cli({}, 'model', 'show', theirs)).stdout) as { id: string };
  assert.equal(shown.id, theirs, 'no token: the operator sees every tenant');
  const events = JSON.parse((await cli({}, 'model', 'show', mine)).stdout) as { events: Array<{ actor: string }> };
  assert.deepEqual(events.events.map((e) => e.actor), ['pat'], 'the token\'s user is who the event names');
  const bogus = await cli({ QCFLOW_TOKEN: 'not.a.token', QCFLOW_JWT_SECRET: h.cfg.http.jwtSecret! }, 'model', 'list');
  assert.match(bogus.stderr, /QCFLOW_TOKEN: /);
});
