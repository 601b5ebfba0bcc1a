import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { temporal as proto } from '@temporalio/proto';
import { createTemporalClient } from '../../src/clients/temporal';
import { issueToken } from '../../src/http/auth';
import { workflowIds } from '../../workflows/definitions';
import { createTestProject, harness, ingestLines, validLine, type Harness } from './helpers';

// Every client, worker and the review server of this file seal payloads with this key.
process.env.QCFLOW_PAYLOAD_KEYS = `test-2026:${randomBytes(32).toString('base64')}`;

let h: Harness;
let temporal: Awaited<ReturnType<typeof createTemporalClient>>;
before(async () => {
  h = await harness({ worker: true, server: true });
  temporal = await createTemporalClient(h.cfg);
});
after(async () => {
  await temporal?.connection.close();
  await h.close();
});

/** Every payload a workflow's history holds, as the Temporal server stores it. */
type Found = proto.api.common.v1.IPayload & { where: string };
async function historyPayloads(workflowId: string): Promise<Found[]> {
  const res = await h.client.workflowService.getWorkflowExecutionHistory({ namespace: h.cfg.temporal.namespace, execution: { workflowId } });
  const found: Found[] = [];
  const trail: string[] = [];
  const walk = (v: unknown): void => {
    if (!v || typeof v !== 'object') return;
    if (Array.isArray(v)) return v.forEach(walk);
    const o = v as Record<string, unknown>;
    if ('metadata' in o && 'data' in o && o.metadata && typeof o.metadata === 'object') found.push({ ...(o as proto.api.common.v1.IPayload), where: trail.join('.') });
    else for (const [k, x] of Object.entries(o)) { trail.push(k); walk(x); trail.pop(); }
  };
  walk(res.history?.events);
  return found;
}

test('with QCFLOW_PAYLOAD_KEYS, a batch runs as before and its history holds no payload in clear', async () => {
  const project = await createTestProject(h.pool);
  const r = await ingestLines({ ...h, client: temporal.client }, project, Array.from({ length: 10 }, (_, i) => validLine(i)));
  assert.equal(r.counts.accepted, 10);

  const all = await historyPayloads(workflowIds.qcBatch(project, r.batches[0]!.batchId));
  // Search attributes stay in clear by design: the server indexes them (QcProject, QcStage, QcKind — docs/production.md).
  const payloads = all.filter((p) => !/searchAttributes/.test(p.where));
  assert.ok(all.some((p) => /searchAttributes/.test(p.where)), 'search attributes are there, in clear');
  assert.ok(payloads.length >= 8, `inputs and results of the batch's activities (${payloads.length})`);
  for (const p of payloads) assert.equal(Buffer.from(p.metadata!.encoding!).toString(), 'binary/encrypted', `${p.where} is sealed`);
  assert.ok(!payloads.some((p) => Buffer.from(p.data ?? []).includes(project)), 'the project id is nowhere in clear but the search attributes');

  // The codec endpoint opens them for an operator (the UI's decode), and only for an operator.
  const body = JSON.stringify({ payloads: payloads.slice(0, 1).map((p) => ({
    metadata: Object.fromEntries(Object.entries(p.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')])), data: Buffer.from(p.data!).toString('base64'),
  })) });
  const call = (token: string | undefined, origin?: string) => fetch(`${h.server!.url}/codec/decode`, {
    method: 'POST', body, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...(origin ? { origin } : {}) },
  });
  const operator = issueToken(h.cfg.http.jwtSecret!, { user: 'olga', role: 'operator', ttlSeconds: 600 });
  const res = await call(operator, 'http://127.0.0.1:8233');
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('access-control-allow-origin'), 'http://127.0.0.1:8233');
  const [decoded] = ((await res.json()) as { payloads: Array<{ metadata: Record<string, string>; data: string }> }).payloads;
  assert.equal(Buffer.from(decoded!.metadata.encoding!, 'base64').toString(), 'json/plain');
  assert.match(Buffer.from(decoded!.data, 'base64').toString(), new RegExp(project));

  assert.equal((await call(issueToken(h.cfg.http.jwtSecret!, { user: 'rita', role: 'reviewer', ttlSeconds: 600 }))).status, 403);
  assert.equal((await call(undefined)).status, 401);
  const other = await call(operator, 'https://evil.example');
  assert.equal(other.headers.get('access-control-allow-origin'), null, 'no CORS grant for an origin not configured');
  const preflight = await fetch(`${h.server!.url}/codec/decode`, { method: 'OPTIONS', headers: { origin: 'http://127.0.0.1:8233', 'access-control-request-method': 'POST' } });
  assert.equal(preflight.status, 204);
  assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /Authorization/);
});
