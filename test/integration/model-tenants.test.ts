import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { issueToken } from '../../src/http/auth';
import type { ModelRole } from '../../src/review/decisions';
import type { ModelManifest } from '../../src/qc/inference/manifest';
import { insertModelVersion, modelVersionId } from '../../src/store/models';
import { harness, uid, type Harness } from './helpers';

let h: Harness;
before(async () => {
  h = await harness({ worker: false, server: true });
});
after(() => h.close());

const MANIFEST = { labels: ['a', 'b'], adapter: { kind: 'features', fields: ['/features'] } } as unknown as ModelManifest;
async function version(tenant: string, name: string, v: string, parentId: string | null = null): Promise<string> {
  const id = modelVersionId(tenant, name, v);
  await insertModelVersion(h.pool, { id, tenant, name, version: v, sha256: createHash('sha256').update(id).digest('hex'), objectKey: `models/${id}.onnx`, bytes: 1, manifest: MANIFEST, tokenizerKey: null, tokenizerSha256: null, precision: 'fp32', parentId, goldenKey: null, metrics: {} }, 'test');
  return id;
}
const token = (tenant: string | undefined, modelRole: ModelRole | undefined, user = 'u') => issueToken(h.cfg.http.jwtSecret!, { user, role: 'operator', ttlSeconds: 600, tenant, modelRole });
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
