import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isStage, STAGES, transitionProblem } from '../../src/models/lifecycle';
import { denyAlias, denyRead, denyStage, visibleTenant } from '../../src/models/access';

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
