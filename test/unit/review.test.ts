import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSigner } from 'fast-jwt';
import { holdsTask, isClaimable, nextAssignee } from '../../src/review/assignment';
import { denyClaim, denyDecide, denyManage, denyView } from '../../src/review/access';
import { qcPrecision, wilsonInterval } from '../../src/review/precision';
import { formatPrecision } from '../../src/cli/review';
import { checkCorrection, consensusAsLabels, labelsAsConsensus } from '../../src/review/correction';
import { compareLabels, reasonInWords } from '../../src/review/explain';
import { iou } from '../../src/qc/consistency/matching';
import { ageBands, qualityHeatmap, streamSeries } from '../../src/qc/dashboard';
import { AuthError, issueToken, tokenVerifier } from '../../src/http/auth';
import { DUMMY_HASH, hashPassword, verifyPassword } from '../../src/http/passwords';
import { esc, dueIn, html } from '../../src/http/html';
import { parseQueueQuery, queuePage } from '../../src/http/queue-page';
import { taskPage } from '../../src/http/task-page';
import type { TaskDetail } from '../../src/review/service';
import { DEFAULT_POLICY, resolvePolicy } from '../../src/qc/policy';
import type { ReviewTask } from '../../src/review/decisions';

test('round-robin continues after the last assignee, wraps, and skips earlier assignees of the sample while others are left', () => {
  const m = ['carol', 'alice', 'bob'];
  assert.equal(nextAssignee(m, undefined), 'alice');
  assert.equal(nextAssignee(m, 'alice'), 'bob');
  assert.equal(nextAssignee(m, 'carol'), 'alice');
  assert.equal(nextAssignee(m, 'bob', ['carol']), 'alice');
  assert.equal(nextAssignee(m, 'alice', ['alice', 'bob', 'carol']), 'bob', 'everyone excluded: the rotation goes on');
  assert.equal(nextAssignee([], 'alice'), undefined);
  // A departed last assignee (no longer a member) does not stall the rotation.
  assert.equal(nextAssignee(['alice', 'carol'], 'bob'), 'carol');
});

const now = new Date('2026-11-21T12:00:00Z');
const task = (o: Partial<ReviewTask> = {}): ReviewTask => ({
  id: '7', sampleId: 's', project: 'p', round: 0, reason: 'audit', audience: 'reviewers', assignee: null, claimExpiresAt: null, status: 'open',
  decision: null, decidedBy: null, decidedAt: null, comment: null, createdAt: now.toISOString(), dueAt: now.toISOString(), ...o,
});

test('claims hold until they expire; assignments hold until decided', () => {
  const claimed = task({ assignee: 'ann', claimExpiresAt: '2026-11-21T12:05:00Z' });
  assert.equal(holdsTask(claimed, 'ann', now), true);
  assert.equal(isClaimable(claimed, now), false);
  assert.equal(holdsTask(claimed, 'ann', new Date('2026-11-21T12:06:00Z')), false);
  assert.equal(isClaimable(claimed, new Date('2026-11-21T12:06:00Z')), true);
  const assigned = task({ assignee: 'ann' });
  assert.equal(holdsTask(assigned, 'ann', new Date('2030-01-01')), true);
  assert.equal(isClaimable(assigned, now), false);
  assert.equal(isClaimable(task(), now), true);
});

test('access: reviewers act on what they hold in their projects, operators never decide, admins may', () => {
  const member = new Map([['p', 'reviewer' as const]]);
  const lead = new Map([['p', 'lead' as const]]);
  const none = new Map<string, 'reviewer' | 'lead'>();
  const mine = task({ assignee: 'ann' });
  const reviewer = (user: string) => ({ user, role: 'reviewer' as const });
  assert.equal(denyDecide(reviewer('ann'), mine, member, now), undefined);
  assert.match(denyDecide(reviewer('bob'), mine, member, now)!, /not assigned to or claimed by bob/);
  assert.match(denyDecide(reviewer('ann'), mine, none, now)!, /not a member of project p/);
  assert.match(denyDecide({ user: 'op', role: 'operator' }, mine, none, now)!, /operators cannot decide/);
  assert.equal(denyDecide({ user: 'root', role: 'admin' }, mine, none, now), undefined);
  assert.match(denyDecide(reviewer('bob'), task(), member, now)!, /claim it first/);
  assert.equal(denyView(reviewer('bob'), task(), member, now), undefined, 'an unclaimed task is visible to members');
  assert.match(denyView(reviewer('bob'), mine, member, now)!, /assigned to someone else/);
  assert.equal(denyView(reviewer('bob'), task({ status: 'decided', decidedBy: 'bob', assignee: 'bob' }), member, now), undefined);
  const leadsTask = task({ audience: 'leads' });
  assert.match(denyClaim(reviewer('bob'), leadsTask, member, now)!, /escalated to the project's leads/);
  assert.equal(denyClaim(reviewer('lee'), leadsTask, lead, now), undefined);
  assert.match(denyClaim(reviewer('bob'), mine, member, now)!, /held by ann/);
  assert.match(denyManage(reviewer('ann'))!, /operator or admin/);
  assert.equal(denyManage({ user: 'op', role: 'operator' }), undefined);
});

test('Wilson interval matches published values, and precision groups by model version and reason', () => {
  // Wilson (1927) / Newcombe (1998) example: 81 of 263 → [0.2553, 0.3662].
  const [lo, hi] = wilsonInterval(81, 263)!;
  assert.ok(Math.abs(lo - 0.2553) < 5e-4 && Math.abs(hi - 0.3662) < 5e-4, `${lo} ${hi}`);
  const [lo0, hi0] = wilsonInterval(0, 10)!;
  assert.equal(lo0, 0);
  assert.ok(Math.abs(hi0 - 0.2775) < 5e-4);
  assert.equal(wilsonInterval(0, 0), null);
  const r = qcPrecision([
    { reason: 'audit', modelVersion: 'm/1', decision: 'approve', n: 8 },
    { reason: 'audit', modelVersion: 'm/1', decision: 'reject', n: 2 },
    { reason: 'audit', modelVersion: 'm/2', decision: 'approve', n: 5 },
    { reason: 'annotator_alert', modelVersion: 'm/2', decision: 'correct', n: 5 },
  ]);
  assert.equal(r.overall.reviewed, 20);
  assert.equal(r.overall.precision, 13 / 20);
  assert.deepEqual(r.byModelVersion.map((g) => [g.modelVersion, g.precision]), [['m/1', 0.8], ['m/2', 0.5]]);
  assert.equal(r.byReason.annotator_alert!.overturned.correct, 5);
  assert.equal(qcPrecision([]).overall.precision, null);
  assert.deepEqual(qcPrecision([]).calibration, { reviewed: 0, ece: null, rawEce: null, table: [] });
});

test('calibration of the risk estimate against reviewers: bins, observed share overturned, ECE', () => {
  // 10 samples at 0.02 with none overturned, 10 at 0.55 with 5 overturned: |0.02 − 0| and |0.55 − 0.5|.
  const reviews = [
    ...Array.from({ length: 10 }, () => ({ pWrong: 0.02, rawPWrong: 0.001, decision: 'approve' as const })),
    ...Array.from({ length: 5 }, () => ({ pWrong: 0.55, rawPWrong: 0.05, decision: 'approve' as const })),
    ...Array.from({ length: 5 }, () => ({ pWrong: 0.55, rawPWrong: 0.05, decision: 'correct' as const })),
    // A resample says the reviewer could not settle it either: not counted.
    ...Array.from({ length: 3 }, () => ({ pWrong: 0.55, rawPWrong: 0.05, decision: 'resample' as const })),
  ];
  const c = qcPrecision([], reviews).calibration;
  assert.equal(c.reviewed, 20);
  assert.deepEqual(c.table.map((b) => [b.from, b.n, b.predicted, b.observed]), [[0, 10, 0.02, 0], [0.5, 10, 0.55, 0.5]]);
  assert.ok(Math.abs(c.ece! - (0.5 * 0.02 + 0.5 * 0.05)) < 1e-9, String(c.ece));
  // Before recalibration all 20 fall in the first bin: predicted 0.0255 on average, observed 5 of 20.
  assert.ok(Math.abs(c.rawEce! - (0.25 - 0.0255)) < 1e-9, String(c.rawEce));
  assert.match(formatPrecision('p', qcPrecision([], reviews)), /ECE 0\.035 \(the annotator models before recalibration: 0\.225\)\n  p 0\.0–0\.1  n    10  predicted 0\.020  observed 0\.000/);
});

test('a correction must pass the label schema, layer 1 and the ontology; pointers name the submitted field', () => {
  const base = {
    sample: { externalId: 'x', payload: { text: 'hello', lang: 'en' } }, reviewer: 'ann',
    project: { jsonSchema: { type: 'object' }, regexRules: [], ontology: { classes: ['cat', 'dog'] } }, layer2: DEFAULT_POLICY.layer2,
  };
  assert.deepEqual(checkCorrection({ ...base, labels: { classes: ['dog'] } }), []);
  const unknown = checkCorrection({ ...base, labels: { classes: ['unicorn'] } });
  assert.deepEqual(unknown.map((f) => [f.pointer, f.rule]), [['/labels/classes/0', 'unknown_class']]);
  const shape = checkCorrection({ ...base, labels: { classes: 'dog' } });
  assert.deepEqual(shape.map((f) => [f.pointer, f.rule]), [['/labels/classes', 'schema.type']]);
  const two = checkCorrection({ ...base, labels: { classes: ['cat', 'dog'] } });
  assert.deepEqual(two.map((f) => f.rule), ['multiple_classes']);
  const span = checkCorrection({ ...base, labels: { spans: [{ start: 4, end: 2, label: 'PER' }] } });
  assert.deepEqual(span.map((f) => [f.pointer, f.rule]), [['/labels/spans/0/end', 'span.order']]);
  // The demo's rules: an annotator-id pattern (which `review:ann` breaks) is about who annotated, not about
  // the labels; a label rule still applies to the correction.
  const rules = [
    { name: 'annotator-id', pointer: '/annotations/*/annotator', pattern: '^ann-\\d+$', message: 'annotator ids must look like ann-<number>' },
    { name: 'no-other', pointer: '/annotations/*/labels/classes/*', pattern: '^other$', mode: 'forbid' as const, message: 'use a real class' },
  ];
  const ruled = { ...base, project: { ...base.project, regexRules: rules, ontology: { classes: ['cat', 'dog', 'other'] } } };
  assert.deepEqual(checkCorrection({ ...ruled, labels: { classes: ['dog'] } }), []);
  assert.deepEqual(checkCorrection({ ...ruled, labels: { classes: ['other'] } }).map((f) => [f.pointer, f.rule]), [['/labels/classes/0', 'regex.no-other']]);
});

test('labels and layer-2 consensus convert both ways', () => {
  const labels = { classes: ['car'], boxes: [{ x: 1, y: 2, w: 3, h: 4, class: 'car', attributes: { color: 'red' } }], spans: [{ start: 0, end: 5, label: 'PER' }], attributes: { blur: false } };
  const c = labelsAsConsensus(labels);
  assert.deepEqual(c.classes, { classes: ['car'], support: 1 });
  assert.deepEqual(c.boxes![0], { geometry: { x: 1, y: 2, w: 3, h: 4 }, class: 'car', support: 1, attributes: { color: 'red' } });
  assert.deepEqual(consensusAsLabels(c), labels);
});

test('don\'t-care regions: not in the labels a correction starts from, drawn apart, and the reviewer told what approve and a correction release', () => {
  const consensus = {
    boxes: [
      { geometry: { x: 10, y: 10, w: 50, h: 40 }, class: 'Vehicle', support: 1 },
      { geometry: { x: 300, y: 200, w: 12, h: 9 }, class: 'Vehicle', support: 1 / 3, dontCare: true as const },
    ],
  };
  // Before, the second became a plain box in the draft, and a correction released it as an object.
  assert.deepEqual(consensusAsLabels(consensus), { boxes: [{ x: 10, y: 10, w: 50, h: 40, class: 'Vehicle' }] });
  const task: ReviewTask = {
    id: '7', sampleId: 's', project: 'street', round: 0, reason: 'uncertain', audience: 'reviewers', assignee: null, claimExpiresAt: null, status: 'open',
    decision: null, decidedBy: null, decidedAt: null, comment: null, createdAt: new Date().toISOString(), dueAt: new Date(Date.now() + 3600e3).toISOString(),
  };
  const detail: TaskDetail = {
    task, sample: { id: 's', externalId: 'photo-1', payload: {}, media: [{ key: 'street/p.jpg', url: '/m/p.jpg' }] },
    annotations: [{ annotator: 'a', labels: { boxes: [{ x: 10, y: 10, w: 50, h: 40, class: 'Vehicle' }, { x: 300, y: 200, w: 12, h: 9, class: 'Vehicle' }] } }, { annotator: 'b', labels: { boxes: [{ x: 11, y: 10, w: 49, h: 40, class: 'Vehicle' }] } }],
    layers: [], consensus: consensusAsLabels(consensus), dontCareRegions: [{ x: 300, y: 200, w: 12, h: 9, class: 'Vehicle' }],
    can: { decide: true, claim: false }, ontology: { classes: ['Vehicle'] }, reliability: {},
  };
  const page = taskPage({ user: 'r', csrf: 'c', detail });
  assert.equal((page.match(/class="consensus dont-care"/g) ?? []).length, 1);
  assert.equal((page.match(/class="consensus"/g) ?? []).length, 1);
  assert.match(page, /id="dont-care-note">1 region only some annotators drew \(grey, dotted\) is released as don't-care if you approve; a correction holds only the boxes in it/);
  const draft = JSON.parse(page.match(/<textarea id="labels"[^>]*>([^<]*)<\/textarea>/)![1]!.replace(/&quot;/g, '"')) as { boxes: unknown[] };
  assert.equal(draft.boxes.length, 1);
  const data = JSON.parse(page.match(/<script type="application\/json" id="task-data">([^<]*)<\/script>/)![1]!) as { consensus: { boxes: unknown[] }; dontCare: unknown[] };
  assert.deepEqual([data.consensus.boxes.length, data.dontCare.length], [1, 1]);
  // Without doubtful regions there is no note and no grey box.
  const plain = taskPage({ user: 'r', csrf: 'c', detail: { ...detail, dontCareRegions: [] } });
  assert.ok(!plain.includes('dont-care'));
});

test('tokens: HS256 only, expiry, signature, required claims; errors say how to get a new one', () => {
  const secret = 'x'.repeat(40);
  const verify = tokenVerifier(secret);
  assert.deepEqual(verify(issueToken(secret, { user: 'ann', role: 'reviewer', ttlSeconds: 60 })), { user: 'ann', role: 'reviewer' });
  assert.throws(() => verify(issueToken('y'.repeat(40), { user: 'ann', role: 'reviewer', ttlSeconds: 60 })), (e: Error) => e instanceof AuthError && /signature is invalid.*qcflow token issue/.test(e.message));
  const expired = createSigner({ key: secret, algorithm: 'HS256' })({ sub: 'ann', role: 'reviewer', exp: Math.floor(Date.now() / 1000) - 60 });
  assert.throws(() => verify(expired), /has expired/);
  const noExp = createSigner({ key: secret, algorithm: 'HS256', noTimestamp: true })({ sub: 'ann', role: 'reviewer' });
  assert.throws(() => verify(noExp), AuthError);
  const none = createSigner({ algorithm: 'none' })({ sub: 'ann', role: 'admin', exp: Math.floor(Date.now() / 1000) + 60 });
  assert.throws(() => verify(none), AuthError, 'unsigned tokens are refused');
  const badRole = createSigner({ key: secret, algorithm: 'HS256', expiresIn: 60_000 })({ sub: 'ann', role: 'root' });
  assert.throws(() => verify(badRole), /role must be one of reviewer, operator, admin/);
  assert.throws(() => issueToken(secret, { user: 'a b', role: 'reviewer', ttlSeconds: 60 }), /must match/);
  // Registry claims: a tenant and a registry role travel with the token and are checked on the way back.
  assert.deepEqual(verify(issueToken(secret, { user: 'ann', role: 'operator', ttlSeconds: 60, tenant: 'acme', modelRole: 'publisher' })), { user: 'ann', role: 'operator', tenant: 'acme', modelRole: 'publisher' });
  const badModels = createSigner({ key: secret, algorithm: 'HS256', expiresIn: 60_000 })({ sub: 'ann', role: 'operator', models: 'owner' });
  assert.throws(() => verify(badModels), /model role must be one of viewer, publisher, admin/);
  assert.throws(() => issueToken(secret, { user: 'ann', role: 'operator', ttlSeconds: 60, tenant: '../x' }), /tenant/);
});

test('review policy defaults and bounds; html escaping', () => {
  assert.deepEqual(DEFAULT_POLICY.review, { slaSeconds: 86400, maxEscalations: 2, assignment: 'round-robin', claimTtlSeconds: 900, dispatchCheckSeconds: 60, undoSeconds: 10 });
  assert.throws(() => resolvePolicy({ review: { assignment: 'random' } }), /\/qcPolicy\/review\/assignment/);
  assert.throws(() => resolvePolicy({ review: { slaSeconds: 0 } }), /\/qcPolicy\/review\/slaSeconds/);
  assert.equal(esc(`<img src=x onerror="a('b')">&`), '&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;');
  assert.equal(dueIn('2026-11-21T13:00:00Z', now), 'in 60m');
  assert.equal(dueIn('2026-11-21T10:00:00Z', now), 'overdue 2h');
});

test('pages escape by default: interpolated text is escaped, markup built with html`` is not escaped twice', () => {
  const evil = `<img src=x onerror="alert('x')">`;
  const item = html`<li>${evil}</li>`;
  assert.equal(html`<ul>${[item, item]}</ul>`.value, `<ul>${`<li>${esc(evil)}</li>`.repeat(2)}</ul>`);
  assert.equal(html`a${undefined}${null}${false}b${0}`.value, 'ab0');
  // A task whose fields carry markup shows them as text on the queue page.
  const task = { id: '7', sampleId: 's', project: 'p', round: 1, reason: evil, audience: 'reviewers', assignee: `<b>x</b>`, claimExpiresAt: null, status: 'open', decision: null, decidedBy: null, decidedAt: null, comment: null, createdAt: new Date().toISOString(), dueAt: new Date(Date.now() + 60_000).toISOString(), externalId: evil, risk: 0.2 } as const;
  const counts = { mine: 0, open: 1, overdue: 0, decidedToday: 0 };
  const page = queuePage({ user: 'vera', csrf: 'c"srf', tasks: [task], total: 1, counts, projects: ['p'], query: parseQueueQuery({ annotator: evil }), note: evil });
  assert.ok(!page.includes('<img') && !page.includes('<b>x'), page);
  assert.ok(page.includes('&lt;img src=x onerror=&quot;alert(&#39;x&#39;)&quot;&gt;') && page.includes('value="c&quot;srf"'));
});

test('queue links keep their filters; malformed query values are dropped, not refused', () => {
  const q = parseQueueQuery({ project: 'p', reason: 'audit', q: 'street-', age: '60', overdue: '1', sort: 'risk', page: '2', annotator: ' ' });
  assert.deepEqual(q, { project: 'p', filter: { reason: 'audit', annotator: undefined, finding: undefined, externalId: 'street-', minAgeMinutes: 60, overdue: true }, sort: 'risk', limit: 50, offset: 50, page: 2 });
  assert.deepEqual([parseQueueQuery({ sort: 'DROP', page: '-3', age: 'x' }).sort, parseQueueQuery({ page: '-3' }).page, parseQueueQuery({ age: 'x' }).filter?.minAgeMinutes], ['priority', 1, undefined]);
  const counts = { mine: 2, open: 120, overdue: 3, decidedToday: 30 };
  const page = queuePage({ user: 'vera', csrf: 'c', tasks: [], total: 120, counts, projects: ['p'], query: q });
  // Page 2 of 3 links back to page 1 (no page parameter) and on to 3, filters kept.
  assert.match(page, /href="\/queue\?project=p&amp;reason=audit&amp;q=street-&amp;age=60&amp;overdue=1&amp;sort=risk" rel="prev"/);
  assert.match(page, /page=3" rel="next"/);
  assert.match(page, /3 overdue/);
});

test('the comparison marks each annotator\'s field that is not the consensus: classes, attributes, boxes by overlap, spans by text', () => {
  const annotations = [
    { labels: { classes: ['cat'], attributes: { pose: 'sit' }, boxes: [{ x: 0, y: 0, w: 10, h: 10, class: 'cat' }], spans: [{ start: 0, end: 3, label: 'ANI' }] } },
    { labels: { classes: ['dog'], attributes: { pose: 'sit' }, boxes: [{ x: 4, y: 0, w: 10, h: 10, class: 'cat' }], spans: [{ start: 0, end: 3, label: 'ANI' }] } },
  ];
  const consensus = { classes: ['cat'], attributes: { pose: 'sit' }, boxes: [{ x: 0, y: 0, w: 10, h: 10, class: 'cat' }], spans: [{ start: 0, end: 3, label: 'ANI' }] };
  const rows = compareLabels(annotations, consensus, 'cat on a mat');
  assert.deepEqual(rows.map((r) => [r.field, r.consensus, r.values.map((v) => `${v.text}${v.differs ? ' ≠' : ''}`)]), [
    ['class', 'cat', ['cat', 'dog ≠']],
    ['attribute pose', 'sit', ['sit', 'sit']],
    ['boxes', 'cat', ['cat', 'cat (overlap 0.43) ≠']],
    ['spans', '“cat” ANI', ['“cat” ANI', '“cat” ANI']],
  ]);
  assert.equal(iou({ x: 0, y: 0, w: 10, h: 10 }, { x: 5, y: 0, w: 10, h: 10 }), 50 / 150);
  // A missing box differs; without a consensus the first annotator is the reference.
  const none = compareLabels([{ labels: { boxes: [] } }, { labels: { boxes: [{ x: 0, y: 0, w: 1, h: 1, class: 'cat' }] } }], null);
  assert.deepEqual(none[0]!.values.map((v) => v.differs), [false, true]);
  assert.match(reasonInWords('escalated'), /did not decide within the SLA/);
  assert.equal(reasonInWords('something_new'), 'Sent to review (something_new).');
});

test('the dashboard heatmap windows split bucket times into runs, put late batches in data time, and take medians from the time histograms', () => {
  const at = (h: number) => new Date(Date.UTC(2026, 10, 2, h));
  const hist = (bin: number) => Object.assign(new Array(80).fill(0), { [bin]: 10 }) as number[];
  const b = (subject: string, h: number, agreed: number, bin: number) => ({ subject, batchId: `b${h}`, dataTime: at(h), n: 10, l2Compared: 10, l2Agreed: agreed, l3N: 0, l3Sum: 0, timeHist: hist(bin) });
  // Processed out of order: the hour-9 batch arrives last but lands in the first window.
  const buckets = [b('ann-1', 10, 10, 40), b('ann-2', 10, 9, 40), b('ann-1', 11, 10, 40), b('ann-2', 11, 5, 10), b('*', 11, 9, 40), b('ann-1', 9, 8, 40)];
  const h = qualityHeatmap(buckets, { stream: '*', columns: 8, maxRows: 10 });
  assert.deepEqual(h.windows.map((w) => w.getUTCHours()), [9, 10, 11], 'three batches, three windows');
  // Annotators' buckets of one batch differ by seconds; they still share the batch's column.
  const skewed = qualityHeatmap([...buckets, { ...b('ann-3', 11, 7, 10), dataTime: new Date(at(11).getTime() + 3000) }], { stream: '*', columns: 8, maxRows: 10 });
  assert.equal(skewed.windows.length, 3);
  assert.deepEqual(skewed.rows.find((r) => r.annotator === 'ann-3')!.cells.map((c) => c.agreement), [null, null, 0.7]);
  assert.deepEqual(h.rows.map((r) => r.annotator), ['ann-1', 'ann-2'], 'most work first; the stream is not an annotator');
  assert.deepEqual(h.rows[0]!.cells.map((c) => c.agreement), [0.8, 1, 1]);
  assert.deepEqual(h.rows[1]!.cells.map((c) => c.agreement), [null, 0.9, 0.5]);
  assert.ok(h.rows[1]!.cells[2]!.medianMs! < h.rows[1]!.cells[1]!.medianMs! / 10, 'ann-2 rushed at hour 11');
  assert.deepEqual(streamSeries(buckets, '*').map((p) => p.agreement), [0.9]);
  assert.deepEqual(ageBands([10, 4000, 40_000, 100_000, 1e6]), [1, 1, 1, 1, 1]);
});

test('password hashes: scrypt with a random salt, verified in constant time; short passwords refused', async () => {
  const a = await hashPassword('correct horse battery');
  const b = await hashPassword('correct horse battery');
  assert.match(a, /^scrypt\$32768\$8\$1\$[\w-]{22}\$[\w-]{43}$/);
  assert.notEqual(a, b, 'a new salt each time');
  assert.equal(await verifyPassword('correct horse battery', a), true);
  assert.equal(await verifyPassword('correct horse batterY', a), false);
  assert.equal(await verifyPassword('correct horse battery', DUMMY_HASH), false);
  assert.equal(await verifyPassword('x', 'md5$abc'), false, 'an unknown scheme never matches');
  await assert.rejects(hashPassword('short'), /at least 10 characters/);
});

test('a long list of spans is compared span by span: a cell names what differs from the consensus, in text order, not every span', () => {
  const text = 'Japan beat Syria ; China lost to Uzbekistan ; Japan and China meet Kuwait in Asia';
  const at = (word: string, label: string, nth = 0) => { let i = -1; for (let k = 0; k <= nth; k++) i = text.indexOf(word, i + 1); return { start: i, end: i + word.length, label }; };
  const gold = [at('Japan', 'LOC'), at('Syria', 'LOC'), at('China', 'LOC'), at('Uzbekistan', 'LOC'), at('Japan', 'LOC', 1), at('China', 'LOC', 1), at('Kuwait', 'LOC'), at('Asia', 'LOC')];
  // The second "China" called a person, "Asia" left out: the other China is still a LOC, so a list of words would hide it.
  const other = gold.map((s, i) => (i === 5 ? { ...s, label: 'PER' } : s)).filter((_, i) => i !== 7);
  const [row] = compareLabels([{ labels: { spans: gold } }, { labels: { spans: other } }], { spans: gold }, text);
  assert.equal(row!.consensus, '8 spans');
  assert.deepEqual(row!.values[0], { text: 'all 8 as the consensus', differs: false });
  assert.deepEqual(row!.values[1], { text: '6 of 8 as the consensus; differs:', differs: true, parts: ['− “China” LOC', '+ “China” PER', '− “Asia” LOC'] });
});
