import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isStage, STAGES, transitionProblem } from '../../src/models/lifecycle';
import { denyAlias, denyPublish, denyRead, denyStage, denyTenantAdmin, visibleTenant } from '../../src/models/access';
import { checkMetadata, compileMetadataSchema, MAX_METADATA_BYTES, type MetadataError } from '../../src/models/metadata';
import type { ModelRole } from '../../src/review/decisions';

test('model lifecycle: forward one stage at a time, back from canary, archive from anywhere, never out of archived', () => {
  const allowed = STAGES.flatMap((from) => STAGES.filter((to) => !transitionProblem(from, to)).map((to) => `${from}→${to}`));
  assert.deepEqual(allowed, [
    'registered→validated', 'registered→archived', 'validated→canary', 'validated→archived',
    'canary→validated', 'canary→production', 'canary→archived', 'production→archived',
  ]);
  assert.match(transitionProblem('validated', 'production')!, /from validated it can become canary or archived/);
  assert.match(transitionProblem('archived', 'registered')!, /stays archived/);
  assert.equal(isStage('canary'), true);
  assert.equal(isStage('beta'), false);
});

test('registry access: a tenant sees only itself (404 elsewhere); viewer reads, publisher up to canary and non-production aliases, admin all', () => {
  const a = (modelRole?: 'viewer' | 'publisher' | 'admin', tenant?: string) => ({ user: 'u', role: 'operator' as const, ...(modelRole ? { modelRole } : {}), ...(tenant ? { tenant } : {}) });
  assert.equal(visibleTenant(a('viewer', 'acme'), 'acme'), true);
  assert.equal(visibleTenant(a('admin', 'acme'), 'beta'), false);
  assert.equal(visibleTenant(a('admin'), 'beta'), true, 'an admin without a tenant sees all');
  assert.equal(visibleTenant(a('publisher'), 'beta'), false, 'only an admin may go without a tenant');
  assert.equal(visibleTenant(a(undefined, 'acme'), 'acme'), false, 'no registry role, no registry');
  assert.equal(denyStage(a('admin', 'acme'), 'beta', 'm', 'validated')?.status, 404);
  assert.equal(denyStage(a('viewer', 'acme'), 'acme', 'm', 'validated')?.status, 403);
  assert.equal(denyStage(a('publisher', 'acme'), 'acme', 'm', 'canary'), undefined);
  assert.match(denyStage(a('publisher', 'acme'), 'acme', 'm', 'production')!.message, /needs the registry role admin; yours is publisher/);
  assert.equal(denyAlias(a('publisher', 'acme'), 'acme', 'm', 'candidate'), undefined);
  assert.equal(denyAlias(a('publisher', 'acme'), 'acme', 'm', 'production')?.status, 403);
  assert.equal(denyRead(a('viewer', 'acme'), 'acme', 'm'), undefined);
});

test('registry access: publishing and metadata need publisher or admin of the tenant; a tenant\'s metadata schema needs its admin', () => {
  const a = (modelRole: ModelRole, tenant: string | null = 'acme') => ({ user: 'u', role: 'operator' as const, tenant: tenant ?? undefined, modelRole });
  assert.equal(denyPublish(a('viewer'), 'acme', 'x')?.status, 403);
  assert.equal(denyPublish(a('publisher'), 'acme', 'x'), undefined);
  assert.equal(denyPublish(a('admin'), 'beta', 'x')?.status, 404);
  assert.equal(denyTenantAdmin(a('publisher'), 'acme', 'x')?.status, 403);
  assert.equal(denyTenantAdmin(a('admin'), 'acme', 'x'), undefined);
  assert.equal(denyTenantAdmin(a('admin', null), 'beta', 'x'), undefined, 'a registry admin of every tenant');
});

test('metadata: any object without a schema; a schema must describe an object and compile; problems name field and rule; 64 KiB at most', () => {
  assert.deepEqual(checkMetadata({ a: 1 }, undefined, 't'), { a: 1 });
  assert.throws(() => checkMetadata([1], undefined, 't'), /metadata must be a JSON object/);
  assert.throws(() => checkMetadata({ blob: 'x'.repeat(MAX_METADATA_BYTES) }, undefined, 't'), /at most 65536/);
  assert.throws(() => compileMetadataSchema({ type: 'array' }), /must have "type": "object"/);
  assert.throws(() => compileMetadataSchema({ type: 'object', properties: { a: { minimum: 'zero' } } }), /does not compile/);
  const schema = { type: 'object', required: ['licence'], properties: { licence: { enum: ['apache-2.0', 'mit'] }, params: { type: 'integer' } } };
  assert.throws(() => checkMetadata({ licence: 'gpl', params: 1.5 }, schema, 'acme'), (err: MetadataError) => {
    assert.deepEqual(err.problems.map((p) => `${p.field} ${p.rule}`).sort(), ['metadata/licence schema.enum', 'metadata/params schema.type']);
    assert.match(err.message, /tenant acme's schema/);
    return true;
  });
  assert.deepEqual(checkMetadata({ licence: 'mit' }, schema, 'acme'), { licence: 'mit' });
});
