import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createSigner } from 'fast-jwt';
import { ingestFile } from '../../src/cli/ingest';
import { issueToken } from '../../src/http/auth';
import { setMember } from '../../src/store/review';
import type { Role } from '../../src/review/decisions';
import { reviewStateQuery, workflowIds, type ReviewOutcome } from '../../workflows/definitions';
import { createTestProject, harness, REPO, uid, waitUntil, type Harness } from './helpers';

/** These tests exercise review, not routing: the linear policy sends every layer-2 conflict to a person, whatever a risk estimate would make of two annotators. */
const LINEAR = { fusion: { mode: 'linear' } };

let h: Harness;
before(async () => {
  h = await harness({ worker: true, review: true, server: true });
});
after(() => h.close());

const ONTOLOGY = { classes: ['cat', 'dog'] };
const token = (user: string, role: Role = 'reviewer', ttlSeconds = 600): string => issueToken(h.cfg.http.jwtSecret!, { user, role, ttlSeconds });

async function api<T = Record<string, unknown>>(method: string, url: string, auth: string | undefined, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${h.server!.url}${url}`, {
    method,
    headers: { ...(auth ? { authorization: `Bearer ${auth}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as T };
}

/** Samples whose two annotators disagree: layer 2 sends every one of them to review. */
async function ingestConflicts(project: string, ids: string[]): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-review-'));
  const file = path.join(dir, 'in.jsonl');
  writeFileSync(file, ids.map((id) => JSON.stringify({
    externalId: id, payload: { text: `text of ${id}`, lang: 'en' },
    annotations: [{ annotator: 'ann-1', labels: { classes: ['cat'] } }, { annotator: 'ann-2', labels: { classes: ['dog'] } }],
  })).join('\n') + '\n');
  const r = await ingestFile(h.cfg, h.client, h.store, { project, file, batchSize: 1000, wait: true });
  assert.equal(r.counts.review, ids.length);
}

interface TaskRow { id: string; sample_id: string; external_id: string; round: number; reason: string; assignee: string | null; status: string; decision: string | null; audience: string }

async function tasks(project: string): Promise<TaskRow[]> {
  const { rows } = await h.pool.query<TaskRow>(
    `SELECT t.id::text, t.sample_id, s.external_id, t.round, t.reason, t.assignee, t.status, t.decision, t.audience
     FROM review_tasks t JOIN samples s ON s.id = t.sample_id WHERE t.project_id = $1 ORDER BY s.external_id, t.round`, [project],
  );
  return rows;
}

async function sampleStatus(project: string, externalId: string): Promise<string> {
  const { rows } = await h.pool.query<{ status: string }>('SELECT status FROM samples WHERE project_id = $1 AND external_id = $2', [project, externalId]);
  return rows[0]!.status;
}

async function reviewResult(sampleId: string): Promise<ReviewOutcome> {
  return h.client.workflow.getHandle(workflowIds.review(sampleId)).result() as Promise<ReviewOutcome>;
}

test('review samples wait for a reviewer; decisions through the API move them on and complete their workflows', async () => {
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: ONTOLOGY, qcPolicy: LINEAR });
  await setMember(h.pool, { project, user: 'alice', role: 'reviewer' }, 'test');
  await setMember(h.pool, { project, user: 'bob', role: 'reviewer' }, 'test');
  await ingestConflicts(project, ['a', 'b', 'c', 'd', 'e']);
  await waitUntil('five review tasks', async () => (await tasks(project)).length === 5);
  const open = await tasks(project);
  // Round-robin: the two reviewers alternate.
  assert.deepEqual(open.map((t) => t.assignee).sort(), ['alice', 'alice', 'alice', 'bob', 'bob']);
  assert.ok(open.every((t) => t.status === 'open' && t.reason === 'layer2_conflict' && t.round === 0));
  // Waiting is real: the sample stays in review and the workflow runs.
  assert.equal(await sampleStatus(project, 'a'), 'review');
  const state = await h.client.workflow.getHandle(workflowIds.review(open[0]!.sample_id)).query(reviewStateQuery);
  assert.equal(state.status, 'waiting');

  const by = (ext: string): TaskRow => open.find((t) => t.external_id === ext)!;
  const as = (t: TaskRow): string => token(t.assignee!);

  // The queue and the task page never carry the Temporal task token.
  const queue = await api<{ tasks: Array<Record<string, unknown>> }>('GET', '/api/tasks', as(by('a')));
  assert.equal(queue.status, 200);
  assert.ok(queue.body.tasks.length >= 2);
  const detail = await api<Record<string, unknown>>('GET', `/api/tasks/${by('a').id}`, as(by('a')));
  assert.equal(detail.status, 200);
  assert.doesNotMatch(JSON.stringify(queue.body) + JSON.stringify(detail.body), /token/i);
  assert.equal((detail.body.annotations as unknown[]).length, 2);
  assert.ok((detail.body.layers as Array<{ layer: number }>).some((l) => l.layer === 2));

  const decide = (t: TaskRow, body: Record<string, unknown>) => api<Record<string, unknown>>('POST', `/api/tasks/${t.id}/decision`, as(t), body);
  assert.equal((await decide(by('a'), { decision: 'approve' })).status, 200);
  assert.equal((await decide(by('b'), { decision: 'reject', comment: 'off-topic' })).status, 200);
  assert.equal((await decide(by('c'), { decision: 'resample' })).status, 200);

  // A correction that breaks the ontology or the label schema is refused with the field and rule; nothing changes.
  const bad = await decide(by('d'), { decision: 'correct', labels: { classes: ['unicorn'] } });
  assert.equal(bad.status, 422);
  assert.match(String((bad.body.error as { message: string }).message), /\/labels\/classes\/0: unknown_class/);
  const badShape = await decide(by('d'), { decision: 'correct', labels: { classes: 'cat' } });
  assert.equal(badShape.status, 422);
  assert.match(String((badShape.body.error as { message: string }).message), /\/labels\/classes: schema\.type/);
  assert.equal((await tasks(project)).find((t) => t.external_id === 'd')!.status, 'open');
  assert.equal((await decide(by('d'), { decision: 'correct', labels: { classes: ['dog'] } })).status, 200);

  const outcomes = await Promise.all(['a', 'b', 'c', 'd'].map((e) => reviewResult(by(e).sample_id)));
  assert.deepEqual(outcomes.map((o) => o.status), ['accepted', 'rejected', 'resample', 'accepted']);
  assert.deepEqual(await Promise.all(['a', 'b', 'c', 'd', 'e'].map((e) => sampleStatus(project, e))), ['accepted', 'rejected', 'resample', 'accepted', 'review']);
  const resample = await h.pool.query<{ reasons: string[] }>('SELECT reasons FROM resample_requests WHERE sample_id = $1', [by('c').sample_id]);
  assert.match(resample.rows[0]!.reasons[0]!, /reviewer .* asked for a resample/);
  // The correction is the final annotation and the consensus a release carries.
  const corrected = await h.pool.query<{ annotator: string; consensus: unknown }>(
    `SELECT a.annotator, q.details->'consensus' AS consensus FROM annotations a JOIN qc_results q ON q.sample_id = a.sample_id AND q.layer = 2
     WHERE a.sample_id = $1 ORDER BY a.ordinal DESC LIMIT 1`, [by('d').sample_id],
  );
  assert.equal(corrected.rows[0]!.annotator, `review:${by('d').assignee}`);
  assert.deepEqual(corrected.rows[0]!.consensus, { classes: { classes: ['dog'], support: 1 } });
  // Every decision is in the audit log with who and when.
  const audit = await h.pool.query<{ actor: string; action: string }>(`SELECT actor, action FROM audit_log WHERE project_id = $1 AND action IN ('review.approve', 'review.reject', 'review.resample', 'review.correct') ORDER BY id`, [project]);
  assert.deepEqual(audit.rows.map((r) => r.action).sort(), ['review.approve', 'review.correct', 'review.reject', 'review.resample']);

  // A second completion is a no-op that says so.
  const again = await decide(by('a'), { decision: 'reject' });
  assert.equal(again.status, 200);
  assert.equal(again.body.result, 'already_decided');
  assert.match(String(again.body.message), /already decided \(approve by/);
  assert.equal(await sampleStatus(project, 'a'), 'accepted');
});

test('401 and 403 change nothing: another project, the wrong role, someone else\'s task, expired, forged and missing tokens', async () => {
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: ONTOLOGY, qcPolicy: LINEAR });
  const other = await createTestProject(h.pool, `t-${uid()}`, { ontology: ONTOLOGY, qcPolicy: LINEAR });
  await setMember(h.pool, { project, user: 'rita', role: 'reviewer' }, 'test');
  await setMember(h.pool, { project, user: 'sam', role: 'reviewer' }, 'test');
  await setMember(h.pool, { project: other, user: 'olga', role: 'reviewer' }, 'test');
  await ingestConflicts(project, ['x']);
  await waitUntil('a review task', async () => (await tasks(project)).length === 1);
  const [t] = await tasks(project);
  const holder = t!.assignee!;
  const stranger = holder === 'rita' ? 'sam' : 'rita';
  const forged = createSigner({ key: 'a-different-secret-that-is-long-enough!!', algorithm: 'HS256', expiresIn: 60_000 })({ sub: holder, role: 'reviewer' });
  const expired = createSigner({ key: h.cfg.http.jwtSecret!, algorithm: 'HS256' })({ sub: holder, role: 'reviewer', exp: Math.floor(Date.now() / 1000) - 3600 });
  const attempts: Array<[string, string | undefined, number]> = [
    ['reviewer of another project', token('olga'), 403],
    ['operator', token('oscar', 'operator'), 403],
    ['same project, not assigned', token(stranger), 403],
    ['expired token', expired, 401],
    ['forged token', forged, 401],
    ['no token', undefined, 401],
  ];
  for (const [who, auth, status] of attempts) {
    const r = await api<{ error: { message: string } }>('POST', `/api/tasks/${t!.id}/decision`, auth, { decision: 'approve' });
    assert.equal(r.status, status, `${who}: ${JSON.stringify(r.body)}`);
    assert.ok(r.body.error.message.length > 10, who);
  }
  assert.equal((await api('GET', `/api/tasks/${t!.id}`, token('olga'))).status, 403);
  assert.equal((await api('PUT', `/api/projects/${project}/members/eve`, token(holder), { role: 'reviewer' })).status, 403);
  assert.equal((await api('GET', `/api/projects/${project}/qc-precision`, token(holder))).status, 403);
  const [still] = await tasks(project);
  assert.equal(still!.status, 'open');
  assert.equal(still!.decision, null);
  assert.equal(await sampleStatus(project, 'x'), 'review');
  // The holder still can.
  assert.equal((await api('POST', `/api/tasks/${t!.id}/decision`, token(holder), { decision: 'approve' })).status, 200);
  await reviewResult(t!.sample_id);
});

test('an SLA timeout escalates to another reviewer, then to the project\'s leads', async () => {
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: ONTOLOGY, qcPolicy: { ...LINEAR, review: { slaSeconds: 3, maxEscalations: 1 } } });
  await setMember(h.pool, { project, user: 'ann', role: 'reviewer' }, 'test');
  await setMember(h.pool, { project, user: 'ben', role: 'reviewer' }, 'test');
  await setMember(h.pool, { project, user: 'lea', role: 'lead' }, 'test');
  await ingestConflicts(project, ['slow']);
  await waitUntil('escalation to the lead', async () => (await tasks(project)).some((t) => t.audience === 'leads'), 60_000);
  const rounds = await tasks(project);
  assert.equal(rounds[0]!.status, 'expired');
  assert.equal(rounds[1]!.reason, 'escalated');
  assert.notEqual(rounds[1]!.assignee, rounds[0]!.assignee, 'the escalated task goes to someone new');
  assert.deepEqual([rounds[0]!.assignee, rounds[1]!.assignee].sort(), ['ann', 'ben']);
  const leadTask = rounds.find((t) => t.audience === 'leads')!;
  assert.equal(leadTask.assignee, 'lea');
  // The expired round can no longer be decided.
  const late = await api<{ error: { message: string } }>('POST', `/api/tasks/${rounds[0]!.id}/decision`, token(rounds[0]!.assignee!), { decision: 'approve' });
  assert.equal(late.status, 409);
  assert.match(late.body.error.message, /passed its SLA and was escalated/);
  assert.equal((await api('POST', `/api/tasks/${leadTask.id}/decision`, token('lea'), { decision: 'reject' })).status, 200);
  const outcome = await reviewResult(leadTask.sample_id);
  assert.equal(outcome.decidedBy, 'lea');
  assert.equal(await sampleStatus(project, 'slow'), 'rejected');
});

test('claim mode: tasks wait unassigned, one reviewer claims, the claim expires, and QC precision counts audit reviews per model version', async () => {
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: ONTOLOGY, qcPolicy: { ...LINEAR, auditShare: 1, review: { assignment: 'claim', claimTtlSeconds: 2 } } });
  await setMember(h.pool, { project, user: 'cara', role: 'reviewer' }, 'test');
  await setMember(h.pool, { project, user: 'dan', role: 'reviewer' }, 'test');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-review-'));
  const file = path.join(dir, 'in.jsonl');
  // Agreeing annotations would be accepted; auditShare 1 sends every one to review as an audit.
  writeFileSync(file, ['p', 'q', 'r'].map((id) => JSON.stringify({ externalId: id, payload: { text: id, lang: 'en' }, annotations: [{ annotator: 'a1', labels: { classes: ['cat'] } }, { annotator: 'a2', labels: { classes: ['cat'] } }] })).join('\n') + '\n');
  await ingestFile(h.cfg, h.client, h.store, { project, file, batchSize: 1000, wait: true });
  await waitUntil('three audit tasks', async () => (await tasks(project)).length === 3);
  assert.ok((await tasks(project)).every((t) => t.assignee === null && t.reason === 'audit'));

  const first = await api<{ task: { id: string; assignee: string; claimExpiresAt: string } }>('POST', '/api/tasks/next', token('cara'), {});
  assert.equal(first.body.task.assignee, 'cara');
  const claimEnds = Date.parse(first.body.task.claimExpiresAt);
  assert.ok(claimEnds > Date.now() && claimEnds <= Date.now() + 2000, `a 2 s claim (until ${first.body.task.claimExpiresAt})`);
  // Held by cara: dan can neither claim nor decide it.
  assert.equal((await api('POST', `/api/tasks/${first.body.task.id}/claim`, token('dan'))).status, 403);
  assert.equal((await api('POST', `/api/tasks/${first.body.task.id}/decision`, token('dan'), { decision: 'approve' })).status, 403);
  // Until the moment the server recorded (same host clock), not a fixed pause.
  await new Promise((r) => setTimeout(r, Math.max(0, claimEnds - Date.now()) + 20));
  // The claim ran out: dan may take it over, and cara no longer decides it.
  assert.equal((await api('POST', `/api/tasks/${first.body.task.id}/claim`, token('dan'))).status, 200);
  assert.equal((await api('POST', `/api/tasks/${first.body.task.id}/decision`, token('cara'), { decision: 'approve' })).status, 403);
  assert.equal((await api('POST', `/api/tasks/${first.body.task.id}/decision`, token('dan'), { decision: 'approve' })).status, 200);

  for (const [user, decision] of [['cara', 'approve'], ['dan', 'reject']] as const) {
    const next = await api<{ task: { id: string } }>('POST', '/api/tasks/next', token(user), {});
    assert.equal((await api('POST', `/api/tasks/${next.body.task.id}/decision`, token(user), { decision })).status, 200);
  }
  await waitUntil('all three applied', async () => (await tasks(project)).every((t) => t.status === 'decided'));
  const report = await api<{ overall: { reviewed: number; upheld: number; precision: number; overturned: { reject: number } }; byModelVersion: unknown[]; byReason: Record<string, unknown> }>(
    'GET', `/api/projects/${project}/qc-precision`, token('olive', 'operator'),
  );
  assert.equal(report.status, 200);
  assert.equal(report.body.overall.reviewed, 3);
  assert.equal(report.body.overall.upheld, 2);
  assert.equal(report.body.overall.overturned.reject, 1);
  assert.ok(Math.abs(report.body.overall.precision - 2 / 3) < 1e-9);
  assert.equal(report.body.byModelVersion.length, 1);
  assert.ok(report.body.byReason.audit);
});

test('the OpenAPI document lists the review routes', async () => {
  const res = await fetch(`${h.server!.url}/openapi.json`);
  const doc = (await res.json()) as { openapi: string; paths: Record<string, unknown> };
  assert.match(doc.openapi, /^3\./);
  for (const p of ['/api/tasks', '/api/tasks/{id}', '/api/tasks/{id}/decision', '/api/tasks/{id}/claim', '/api/projects/{project}/qc-precision']) assert.ok(doc.paths[p], p);
  assert.ok(!doc.paths['/login'], 'pages stay out of the API document');
});

async function cli(args: string[], auth: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      cwd: REPO, env: { ...process.env, QCFLOW_SERVER_URL: h.server!.url, QCFLOW_TOKEN: auth, QCFLOW_LOG_LEVEL: 'silent' },
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('the CLI lists, shows, refuses a bad correction with the reason, and corrects', async () => {
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: ONTOLOGY, qcPolicy: LINEAR });
  await setMember(h.pool, { project, user: 'cli-user', role: 'reviewer' }, 'test');
  await ingestConflicts(project, ['k']);
  await waitUntil('a review task', async () => (await tasks(project)).length === 1);
  const [t] = await tasks(project);
  const auth = token('cli-user');
  const list = await cli(['review', 'list', '--project', project], auth);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, new RegExp(`^${t!.id}\\s+${project}\\s+layer2_conflict`, 'm'));
  const st = await cli(['status', '--project', project], auth);
  assert.match(st.stdout, /review +1 open task\(s\), oldest \d+s, 0 overdue, 0 unassigned/);
  const show = await cli(['review', 'show', t!.id], auth);
  assert.match(show.stdout, /ann-1: \{"classes":\["cat"\]\}/);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-labels-'));
  writeFileSync(path.join(dir, 'bad.json'), JSON.stringify({ classes: ['cat', 'dog'] }));
  writeFileSync(path.join(dir, 'good.json'), JSON.stringify({ classes: ['dog'] }));
  const bad = await cli(['review', 'correct', t!.id, '--labels', path.join(dir, 'bad.json')], auth);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /422: the correction was refused: \/labels\/classes.*multi/);
  const good = await cli(['review', 'correct', t!.id, '--labels', path.join(dir, 'good.json'), '--comment', 'dog, clearly'], auth);
  assert.equal(good.code, 0, good.stderr);
  assert.match(good.stdout, /correct recorded/);
  assert.equal((await reviewResult(t!.sample_id)).status, 'accepted');
  const noToken = await cli(['review', 'list'], '');
  assert.equal(noToken.code, 1);
  assert.match(noToken.stderr, /QCFLOW_TOKEN is not set/);
});

test('backfill starts reviews for samples that waited in review before reviews existed, once', async () => {
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: ONTOLOGY, qcPolicy: LINEAR });
  await setMember(h.pool, { project, user: 'bea', role: 'reviewer' }, 'test');
  const id = `legacy-${uid()}`;
  await h.pool.query(
    `INSERT INTO samples (id, project_id, external_id, revision, content_hash, payload, batch_id, status) VALUES ($1, $2, 'old', 1, 'h', '{"text": "old", "lang": "en"}', 'b0', 'review')`,
    [id, project],
  );
  const env = { ...process.env, QCFLOW_QUEUE_CPU: h.cfg.taskQueues.cpu, QCFLOW_QUEUE_REVIEW: h.cfg.taskQueues.review };
  const run = async () => promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'review', 'backfill', '--project', project], { cwd: REPO, env });
  assert.match((await run()).stdout, /1 review\(s\) started, 0 already running/);
  await waitUntil('the backfilled task', async () => (await tasks(project)).length === 1);
  assert.equal((await tasks(project))[0]!.assignee, 'bea');
  assert.match((await run()).stdout, /0 review\(s\) started, 1 already running/);
});

test('a project without leads keeps escalating among its reviewers', async () => {
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: ONTOLOGY, qcPolicy: { ...LINEAR, review: { slaSeconds: 2, maxEscalations: 0 } } });
  await setMember(h.pool, { project, user: 'solo', role: 'reviewer' }, 'test');
  await ingestConflicts(project, ['n']);
  await waitUntil('an escalated round', async () => (await tasks(project)).length >= 2, 30_000);
  const escalated = (await tasks(project))[1]!;
  assert.deepEqual([escalated.reason, escalated.audience, escalated.assignee], ['escalated', 'reviewers', 'solo']);
  const state = await h.client.workflow.getHandle(workflowIds.review(escalated.sample_id)).query(reviewStateQuery);
  assert.equal(state.audience, 'leads', 'the workflow asked for leads; the task went to a reviewer because there are none');
  assert.equal((await api('POST', `/api/tasks/${escalated.id}/decision`, token('solo'), { decision: 'approve' })).status, 200);
  assert.equal((await reviewResult(escalated.sample_id)).status, 'accepted');
});

test('operators read workflows at a glance: summaries name the project, batch and external id; QcKind separates reviews from the pipeline', async () => {
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: ONTOLOGY, qcPolicy: LINEAR });
  await ingestConflicts(project, ['glance-1', 'glance-2']);
  const { rows } = await h.pool.query<{ id: string }>('SELECT id FROM samples WHERE project_id = $1 ORDER BY external_id', [project]);
  const review = await h.client.workflow.getHandle(workflowIds.review(rows[0]!.id)).describe();
  assert.equal(await review.staticSummary(), `Review of glance-1 (${project}): layer2_conflict`);
  assert.match((await review.staticDetails()) ?? '', /external id glance-1.*SLA 86400 s/);
  const intake = await h.client.workflow.getHandle(workflowIds.intake(project)).describe();
  assert.equal(await intake.staticSummary(), `Intake of ${project}`);
  const kinds = async (query: string): Promise<string[]> => {
    const out: string[] = [];
    for await (const w of h.client.workflow.list({ query })) out.push(w.workflowId);
    return out.sort();
  };
  await waitUntil('visibility has the new workflows', async () => (await kinds(`QcProject = "${project}" AND QcKind = "review"`)).length === 2, 20_000);
  const pipeline = await kinds(`QcProject = "${project}" AND QcKind != "review"`);
  assert.equal(pipeline.length, 2, pipeline.join(', '));
  assert.ok(pipeline.some((id) => id === workflowIds.intake(project)) && pipeline.some((id) => id.startsWith(`qc/${project}/`)));
  const batch = await h.client.workflow.getHandle(pipeline.find((id) => id.startsWith('qc/'))!).describe();
  assert.match((await batch.staticSummary()) ?? '', new RegExp(`^Batch [0-9a-f]+-00000 of ${project}$`));
});

test('Start reviewing takes tasks by priority: with nothing due within the hour, the likeliest wrong first', async () => {
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: ONTOLOGY, qcPolicy: { ...LINEAR, review: { assignment: 'claim' } } });
  await setMember(h.pool, { project, user: 'pri', role: 'reviewer' }, 'test');
  // 'split' is a 1–1 tie (wrong half the time); 'lean' a 2–1 majority, less likely wrong; both conflict, both
  // go to review. 'lean' is ingested first, so oldest-first would take it; priority takes 'split'.
  const vote = (a: string, c: string) => ({ annotator: a, labels: { classes: [c] } });
  for (const line of [
    { externalId: 'lean', payload: { text: 'lean', lang: 'en' }, annotations: [vote('a1', 'cat'), vote('a2', 'cat'), vote('a3', 'dog')] },
    { externalId: 'split', payload: { text: 'split', lang: 'en' }, annotations: [vote('a1', 'cat'), vote('a2', 'dog')] },
  ]) {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'qcflow-review-')), 'in.jsonl');
    writeFileSync(file, `${JSON.stringify(line)}\n`);
    await ingestFile(h.cfg, h.client, h.store, { project, file, batchSize: 1000, wait: true });
    await waitUntil(`the task of ${line.externalId}`, async () => (await tasks(project)).some((t) => t.external_id === line.externalId));
  }
  const queue = await api<{ tasks: Array<{ externalId: string; risk: number }>; total: number }>('GET', `/api/tasks?project=${project}&sort=risk`, token('pri'));
  assert.deepEqual(queue.body.tasks.map((t) => t.externalId), ['split', 'lean']);
  assert.ok(queue.body.tasks[0]!.risk > queue.body.tasks[1]!.risk, JSON.stringify(queue.body.tasks));
  const next = await api<{ task: { id: string } }>('POST', '/api/tasks/next', token('pri'), { project });
  assert.equal((await tasks(project)).find((t) => t.id === next.body.task.id)!.external_id, 'split');
});

test('Start reviewing takes a task due within the hour before a likelier-wrong one with time to spare', async () => {
  const vote = (a: string, c: string) => ({ annotator: a, labels: { classes: [c] } });
  const projectOf = async (review: Record<string, unknown>) => createTestProject(h.pool, `t-${uid()}`, { ontology: ONTOLOGY, qcPolicy: { ...LINEAR, review: { assignment: 'claim', ...review } } });
  const urgent = await projectOf({ slaSeconds: 1800 });
  const relaxed = await projectOf({});
  for (const p of [urgent, relaxed]) await setMember(h.pool, { project: p, user: 'uri', role: 'reviewer' }, 'test');
  const put = async (project: string, line: object) => {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'qcflow-review-')), 'in.jsonl');
    writeFileSync(file, `${JSON.stringify(line)}\n`);
    await ingestFile(h.cfg, h.client, h.store, { project, file, batchSize: 1000, wait: true });
    await waitUntil('its task', async () => (await tasks(project)).length === 1);
  };
  // The relaxed project's task is a 1–1 tie (likelier wrong); the urgent one's a 2–1 majority, due in 30 minutes.
  await put(relaxed, { externalId: 'tie', payload: { text: 'tie', lang: 'en' }, annotations: [vote('a1', 'cat'), vote('a2', 'dog')] });
  await put(urgent, { externalId: 'due-soon', payload: { text: 'due soon', lang: 'en' }, annotations: [vote('a1', 'cat'), vote('a2', 'cat'), vote('a3', 'dog')] });
  const next = await api<{ task: { id: string; project: string } }>('POST', '/api/tasks/next', token('uri'), {});
  assert.equal(next.body.task.project, urgent);
});
