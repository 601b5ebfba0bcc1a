import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { createSigner } from 'fast-jwt';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import sharp from 'sharp';
import { chromium, type Browser } from 'playwright-core';
import { generateDemoLines } from '../../src/demo/dataset';
import { putObject } from '../../src/clients/minio';
import { issueToken } from '../../src/http/auth';
import { setMember } from '../../src/store/review';
import { workflowIds } from '../../workflows/definitions';
import { createTestProject, harness, ingestLines, REPO, uid, waitUntil, type Harness } from './helpers';

/** These tests exercise review, not routing: the linear policy sends every layer-2 conflict to a person, whatever a risk estimate would make of two annotators. */
const LINEAR = { fusion: { mode: 'linear' } };

const CHROMIUM = process.env.QCFLOW_CHROMIUM ?? '/usr/bin/chromium';
/** Screenshots land here (CI keeps the folder as the test's artifact). */
const ARTIFACTS = process.env.QCFLOW_TEST_ARTIFACTS ?? path.join(REPO, 'test-artifacts');

let h: Harness;
let browser: Browser;
before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium), or set QCFLOW_CHROMIUM`);
  h = await harness({ worker: true, review: true, server: true });
  // Root in a container has no user namespace for Chromium's sandbox.
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
});
after(async () => {
  await browser?.close();
  await h?.close();
});

/** Ingests JSONL lines into a project through the real pipeline and waits for QC, 100 lines a batch unless told. */
const ingest = (project: string, lines: string[], batchSize = 100) => ingestLines(h, project, lines, batchSize);

const reviewTaskCount = async (project: string): Promise<number> =>
  Number((await h.pool.query<{ n: string }>('SELECT count(*) AS n FROM review_tasks WHERE project_id = $1', [project])).rows[0]!.n);

/** Two street photos with two annotators' boxes that disagree: layer 2 sends both to review. */
async function ingestImages(project: string): Promise<void> {
  const lines: string[] = [];
  for (const id of ['street-1', 'street-2']) {
    const png = await sharp({ create: { width: 320, height: 200, channels: 3, background: { r: 200, g: 210, b: 220 } } })
      .composite([{ input: { create: { width: 120, height: 60, channels: 3, background: { r: 200, g: 30, b: 30 } } }, left: 60, top: 90 }])
      .png().toBuffer();
    const key = `raw/${project}/${id}.png`;
    await putObject(h.store, key, png, 'image/png');
    lines.push(JSON.stringify({
      externalId: id, payload: { text: 'a red car on a street', lang: 'en' }, media: [{ key }],
      annotations: [
        { annotator: 'ann-1', labels: { boxes: [{ x: 60, y: 90, w: 120, h: 60, class: 'car' }] } },
        { annotator: 'ann-2', labels: { boxes: [{ x: 90, y: 80, w: 140, h: 80, class: 'car' }] } },
      ],
    }));
  }
  const r = await ingest(project, lines);
  assert.equal(r.counts.review, 2);
}

test('a reviewer signs in, opens a task with the image and every annotator\'s boxes, and approves it with the keyboard', async () => {
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: { classes: ['car', 'dog'] }, qcPolicy: LINEAR });
  await setMember(h.pool, { project, user: 'vera', role: 'reviewer' }, 'test');
  await ingestImages(project);
  await waitUntil('two review tasks', async () => (await reviewTaskCount(project)) === 2);

  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${h.server!.url}/queue`);
  assert.match(page.url(), /\/login\?next=/, 'an anonymous visitor is sent to sign in');
  // People sign in with a name and password; a token is the other way in, behind one click.
  await page.locator('summary', { hasText: 'Sign in with a token instead' }).click();
  // Keyboard only from here: type the token, Tab to the button, Enter.
  await page.locator('#token').fill(issueToken(h.cfg.http.jwtSecret!, { user: 'vera', role: 'reviewer', ttlSeconds: 600 }));
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/queue/);
  assert.equal(await page.locator('tbody tr').count(), 2);
  await page.keyboard.press('Enter'); // "Start reviewing" has focus
  await page.waitForURL(/\/tasks\/\d+/);
  const taskId = /\/tasks\/(\d+)/.exec(page.url())![1]!;
  // No inline script may run (CSP script-src 'self'); the page's own script comes from the server.
  const res = await fetch(page.url(), { headers: { cookie: (await context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ') } });
  assert.match(res.headers.get('content-security-policy') ?? '', /script-src 'self';/);
  assert.doesNotMatch(await res.text(), /<script>|onload=/);

  // (No DOM lib in this tsconfig: the page-side callbacks type the element structurally.)
  type Img = { complete: boolean; naturalWidth: number; onload: unknown };
  await page.locator('figure img').evaluate((img: Img) => (img.complete ? undefined : new Promise((r) => { img.onload = r; })));
  assert.ok(await page.locator('figure img').evaluate((img: Img) => img.naturalWidth === 320), 'the image loads from its presigned MinIO URL');
  assert.equal(await page.locator('figure svg.boxes rect.annotator').count(), 2, 'one box per annotator');
  assert.equal(await page.locator('figure svg.boxes rect.consensus').count(), 1, 'and the fused box');
  await waitUntil('the script fitted the boxes to the image', async () => (await page.locator('figure svg.boxes').getAttribute('viewBox')) === '0 0 320 200', 10_000);
  const strokes = await page.locator('figure svg.boxes rect.annotator').evaluateAll((rs) => rs.map((r) => r.getAttribute('stroke')));
  assert.notEqual(strokes[0], strokes[1], 'annotators get distinct colours');
  assert.match(await page.locator('body').innerText(), /layer2_conflict[\s\S]*ann-1[\s\S]*ann-2/);
  // Said in words, and the disagreement shown where it is: the boxes row differs for both annotators.
  assert.match(await page.locator('#why').innerText(), /too much doubt|break the project/);
  assert.match(await page.locator('#comparison').innerText(), /boxes[\s\S]*car \(overlap 0\.\d+\)/);
  // Both drew the car, too far apart to match: one object whose place is in doubt, not two each missed by the other.
  assert.match(await page.locator('body').innerText(), /geometry_conflict[^\n]*overlap is only 0\.42/);
  // The correction starts from the consensus (the two boxes fused), in the shape a correction takes.
  assert.deepEqual(JSON.parse(await page.locator('#labels').inputValue()), { boxes: [{ x: 75, y: 85, w: 130, h: 70, class: 'car' }] });

  mkdirSync(ARTIFACTS, { recursive: true });
  const shot = path.join(ARTIFACTS, 'review-task.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(statSync(shot).size > 10_000);

  // A form post without the CSRF token is refused, with the session cookie and all; nothing changes.
  const cookie = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
  const forged = await fetch(`${h.server!.url}/tasks/${taskId}/decide`, { method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: 'decision=reject', redirect: 'manual' });
  assert.equal(forged.status, 403);
  assert.equal((await h.pool.query<{ status: string }>('SELECT status FROM review_tasks WHERE id = $1', [taskId])).rows[0]!.status, 'open');

  await page.keyboard.press('a');
  // After deciding, the next task opens.
  await page.waitForURL((u) => /\/tasks\/\d+/.test(u.pathname) && !u.pathname.endsWith(`/${taskId}`));
  assert.match(await page.locator('div.note[role=status]').innerText(), new RegExp(`Task ${taskId}: approve recorded`));
  const { rows } = await h.pool.query<{ sample_id: string; decision: string; decided_by: string }>('SELECT sample_id, decision, decided_by FROM review_tasks WHERE id = $1', [taskId]);
  assert.deepEqual([rows[0]!.decision, rows[0]!.decided_by], ['approve', 'vera']);
  await h.client.workflow.getHandle(workflowIds.review(rows[0]!.sample_id)).result();
  assert.equal((await h.pool.query<{ status: string }>('SELECT status FROM samples WHERE id = $1', [rows[0]!.sample_id])).rows[0]!.status, 'accepted');
  assert.deepEqual(errors, [], 'no script errors on the pages');
  await context.close();
});

// ---- the demo project's rules and ontology, text samples that two annotators label differently

const DEMO = path.join(REPO, 'demo');
const readJson = <T>(f: string): T => JSON.parse(readFileSync(path.join(DEMO, f), 'utf8')) as T;
const SENTENCES = ['the price was fair but the staff were rude', 'great quality, terrible delivery', 'it works', 'meh'];

/** A demo-rules project whose four samples each go to review, all assigned to `rita`; resolves to task ids by external id. */
async function demoTasks(): Promise<{ project: string; tasks: Record<string, string> }> {
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: readJson('ontology.json'), regexRules: readJson('rules.json'), qcPolicy: LINEAR });
  await setMember(h.pool, { project, user: 'rita', role: 'reviewer' }, 'test');
  const lines = SENTENCES.map((text, i) => JSON.stringify({
    externalId: `review-${i}`, payload: { text, lang: 'en' },
    annotations: [
      { annotator: 'ann-1', labels: { classes: ['positive'], attributes: { topic: 'price' } } },
      { annotator: 'ann-2', labels: { classes: ['negative'], attributes: { topic: 'quality' } } },
    ],
  }));
  const r = await ingest(project, lines);
  assert.equal(r.counts.review, SENTENCES.length);
  await waitUntil('four review tasks', async () => (await reviewTaskCount(project)) === SENTENCES.length);
  const { rows } = await h.pool.query<{ id: string; external_id: string }>('SELECT t.id::text AS id, s.external_id FROM review_tasks t JOIN samples s ON s.id = t.sample_id WHERE t.project_id = $1', [project]);
  return { project, tasks: Object.fromEntries(rows.map((r) => [r.external_id, r.id])) };
}
let demo: ReturnType<typeof demoTasks> | undefined;
const demoProject = (): ReturnType<typeof demoTasks> => (demo ??= demoTasks());

async function signedIn(viewport = { width: 1366, height: 768 }, user = 'rita', hasTouch = false) {
  const context = await browser.newContext({ viewport, hasTouch, isMobile: hasTouch });
  await context.addCookies([{ name: 'qcflow_session', value: issueToken(h.cfg.http.jwtSecret!, { user, role: 'reviewer', ttlSeconds: 600 }), url: h.server!.url }]);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  return { context, page, errors };
}

const taskRow = async (id: string) => (await h.pool.query<{ status: string; decision: string | null; labels: unknown; comment: string | null }>('SELECT status, decision, labels, comment FROM review_tasks WHERE id = $1', [id])).rows[0]!;

test('on the demo project, a reviewer corrects class and attribute with the editor, not JSON; the annotator-id rule does not refuse it; the decided task shows the record', async () => {
  const { tasks } = await demoProject();
  const id = tasks['review-0']!;
  const { context, page, errors } = await signedIn();
  await page.goto(`${h.server!.url}/tasks/${id}`);
  // The disagreement is shown field by field, with each annotator's record.
  const table = await page.locator('#comparison').innerText();
  assert.match(table, /ann-1\s+\d+% accurate/, 'each annotator with their estimated accuracy');
  for (const field of ['class', 'attribute topic']) {
    assert.ok(await page.locator('#comparison tr', { has: page.locator(`th:text-is("${field}")`) }).locator('td.differs').count() >= 1, `${field} is marked as differing`);
  }
  assert.match(await page.locator('#differ-count').innerText(), /2 of 2 fields differ/);
  await page.keyboard.press('c');
  await page.locator('#edit-classes input[value=neutral]').check();
  await page.locator('#edit-attributes select').selectOption('service');
  assert.deepEqual(JSON.parse(await page.locator('#labels').inputValue()), { classes: ['neutral'], attributes: { topic: 'service' } });
  await page.locator('#comment').fill('mixed: price fair, staff rude');
  // Enter in the note does not submit the form (its first button is Approve).
  await page.locator('#comment').press('Enter');
  assert.equal((await taskRow(id)).status, 'open');
  assert.match(page.url(), new RegExp(`/tasks/${id}$`));
  await page.locator('#comment').focus();
  await page.keyboard.press('Control+Enter');
  await page.waitForURL((u) => !u.pathname.endsWith(`/${id}`));
  await waitUntil('the correction applied', async () => (await taskRow(id)).status === 'decided');
  const row = await taskRow(id);
  assert.deepEqual([row.decision, row.labels, row.comment], ['correct', { classes: ['neutral'], attributes: { topic: 'service' } }, 'mixed: price fair, staff rude']);
  await page.goto(`${h.server!.url}/tasks/${id}`);
  const record = await page.locator('#record').innerText();
  assert.match(record, /correct by rita[\s\S]*mixed: price fair, staff rude[\s\S]*class: neutral[\s\S]*topic: service/);
  assert.deepEqual(errors, []);
  await context.close();
});

test('exclusive classes stay exclusive in the editor; a refresh keeps the draft labels and note; a refused correction keeps the note', async () => {
  const { tasks } = await demoProject();
  const id = tasks['review-1']!;
  const { context, page, errors } = await signedIn();
  await page.goto(`${h.server!.url}/tasks/${id}`);
  await page.keyboard.press('c');
  await page.keyboard.press('2'); // start from ann-2's labels
  assert.deepEqual(JSON.parse(await page.locator('#labels').inputValue()), { classes: ['negative'], attributes: { topic: 'quality' } });
  // Single-label: picking a class replaces the other.
  await page.locator('#edit-classes input[value=positive]').check();
  assert.deepEqual(JSON.parse(await page.locator('#labels').inputValue()).classes, ['positive']);
  await page.locator('#comment').fill('delivery, not quality');
  await page.reload();
  assert.match(await page.locator('#restored').innerText(), /restored/);
  assert.deepEqual(JSON.parse(await page.locator('#labels').inputValue()), { classes: ['positive'], attributes: { topic: 'quality' } });
  assert.equal(await page.locator('#comment').inputValue(), 'delivery, not quality');
  // A class outside the ontology, typed as JSON: refused with the field named, and nothing typed is lost.
  await page.locator('#json-box summary').click();
  await page.locator('#labels').fill('{"classes":["angry"]}');
  await page.locator('#correct').click();
  await page.waitForLoadState();
  assert.match(await page.locator('[role=alert]').first().innerText(), /\/labels\/classes\/0[\s\S]*unknown_class/);
  assert.equal(await page.locator('#comment').inputValue(), 'delivery, not quality');
  assert.equal(await page.locator('#labels').inputValue(), '{"classes":["angry"]}');
  assert.equal((await taskRow(id)).status, 'open');
  assert.deepEqual(errors, []);
  await context.close();
});

test('a session that ends mid-task keeps the decision: sign-in returns to the task, which offers the decision and note again; nothing was recorded meanwhile', async () => {
  const { tasks } = await demoProject();
  const id = tasks['review-2']!;
  const { context, page, errors } = await signedIn();
  await page.goto(`${h.server!.url}/tasks/${id}`);
  await page.locator('#comment').fill('spam, not a review');
  await page.locator('#comment').press('Escape');
  // The session ends: the cookie now holds an expired token.
  const expired = createSigner({ key: h.cfg.http.jwtSecret!, algorithm: 'HS256' })({ sub: 'rita', role: 'reviewer', exp: Math.floor(Date.now() / 1000) - 60 });
  await context.addCookies([{ name: 'qcflow_session', value: expired, url: h.server!.url }]);
  await page.keyboard.press('r');
  await page.waitForLoadState();
  assert.match(await page.locator('[role=alert]').innerText(), /decision was NOT recorded/);
  assert.equal((await taskRow(id)).status, 'open', 'nothing recorded');
  await page.locator('summary', { hasText: 'Sign in with a token instead' }).click();
  await page.locator('#token').fill(issueToken(h.cfg.http.jwtSecret!, { user: 'rita', role: 'reviewer', ttlSeconds: 600 }));
  await page.locator('#token-form button[type=submit]').click();
  await page.waitForURL(new RegExp(`/tasks/${id}$`));
  assert.match(await page.locator('#restored').innerText(), /Your decision “reject” was not recorded/);
  assert.equal(await page.locator('#comment').inputValue(), 'spam, not a review');
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'review-session-ended.png'), fullPage: true });
  await page.locator('#resend').click();
  await page.waitForURL((u) => !u.pathname.endsWith(`/${id}`));
  await waitUntil('the reject applied', async () => (await taskRow(id)).status === 'decided');
  assert.deepEqual([(await taskRow(id)).decision, (await taskRow(id)).comment], ['reject', 'spam, not a review']);
  // Sent once: the kept decision is gone, so the task page (now decided) offers nothing.
  await page.goto(`${h.server!.url}/tasks/${id}`);
  assert.equal(await page.locator('#resend').count(), 0);
  assert.deepEqual(errors, []);
  await context.close();
});

test('on a phone (390×844) the task fits the width and the decision buttons are on screen without scrolling', async () => {
  const { tasks } = await demoProject();
  const id = tasks['review-3']!;
  const { context, page, errors } = await signedIn({ width: 390, height: 844 }, 'rita', true);
  await page.goto(`${h.server!.url}/tasks/${id}`);
  const width = await page.evaluate('document.documentElement.scrollWidth');
  assert.ok(Number(width) <= 390, `no horizontal scroll (page is ${String(width)} px wide)`);
  const approve = await page.locator('#approve').boundingBox();
  assert.ok(approve && approve.y + approve.height <= 844 && approve.height >= 44, `approve is on screen and a touch target: ${JSON.stringify(approve)}`);
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'review-phone.png') });
  await page.locator('#approve').tap();
  await page.waitForURL((u) => !u.pathname.endsWith(`/${id}`));
  await waitUntil('the approval applied', async () => (await taskRow(id)).status === 'decided');
  assert.deepEqual(errors, []);
  await context.close();
});

test('boxes are corrected on the image: start from the consensus, move a box with the keyboard, draw a new one with the pointer', async () => {
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: { classes: ['car', 'dog'] }, qcPolicy: LINEAR });
  await setMember(h.pool, { project, user: 'bo', role: 'reviewer' }, 'test');
  await ingestImages(project);
  await waitUntil('two review tasks', async () => (await reviewTaskCount(project)) === 2);
  const id = (await h.pool.query<{ id: string }>('SELECT min(id)::text AS id FROM review_tasks WHERE project_id = $1', [project])).rows[0]!.id;
  const { context, page, errors } = await signedIn({ width: 1366, height: 900 }, 'bo');
  await page.goto(`${h.server!.url}/tasks/${id}`);
  await page.keyboard.press('c');
  await page.keyboard.press('0');
  await waitUntil('the editor fitted the image', async () => (await page.locator('svg.draft').getAttribute('viewBox')) === '0 0 320 200', 10_000);
  assert.equal(await page.locator('svg.draft rect.box').count(), 1);
  // Select the fused box, then Shift+Right ×2 (+20 px) and Alt+Down (1 px taller).
  await page.locator('svg.draft rect.box').click();
  await page.keyboard.press('Shift+ArrowRight');
  await page.keyboard.press('Shift+ArrowRight');
  await page.keyboard.press('Alt+ArrowDown');
  let labels = JSON.parse(await page.locator('#labels').inputValue()) as { boxes: Array<{ x: number; y: number; w: number; h: number; class: string }> };
  assert.deepEqual(labels.boxes[0], { x: 95, y: 85, w: 130, h: 71, class: 'car' });
  // Draw a second box in the empty top-left corner: the image is shown 1:1, so screen pixels are image pixels.
  const svg = (await page.locator('svg.draft').boundingBox())!;
  const scale = svg.width / 320;
  await page.mouse.move(svg.x + 10 * scale, svg.y + 10 * scale);
  await page.mouse.down();
  await page.mouse.move(svg.x + 30 * scale, svg.y + 25 * scale, { steps: 4 });
  await page.mouse.move(svg.x + 50 * scale, svg.y + 40 * scale, { steps: 4 });
  await page.mouse.up();
  labels = JSON.parse(await page.locator('#labels').inputValue()) as typeof labels;
  assert.equal(labels.boxes.length, 2);
  const drawn = labels.boxes[1]!;
  assert.ok(Math.abs(drawn.x - 10) <= 2 && Math.abs(drawn.y - 10) <= 2 && Math.abs(drawn.w - 40) <= 2 && Math.abs(drawn.h - 30) <= 2, JSON.stringify(drawn));
  // Drag the new box's bottom-right corner 10 px further out: the top-left corner stays put.
  const corner = (await page.locator('svg.draft rect.handle[data-corner="1,1"]').boundingBox())!;
  await page.mouse.move(corner.x + corner.width / 2, corner.y + corner.height / 2);
  await page.mouse.down();
  await page.mouse.move(corner.x + corner.width / 2 + 10 * scale, corner.y + corner.height / 2 + 10 * scale, { steps: 4 });
  await page.mouse.up();
  const resized = (JSON.parse(await page.locator('#labels').inputValue()) as typeof labels).boxes[1]!;
  assert.ok(Math.abs(resized.x - drawn.x) <= 1 && Math.abs(resized.w - (drawn.w + 10)) <= 2 && Math.abs(resized.h - (drawn.h + 10)) <= 2, `${JSON.stringify(drawn)} → ${JSON.stringify(resized)}`);
  await page.locator('#edit-boxes .row').nth(1).locator('select').first().selectOption('dog');
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'review-box-editor.png'), fullPage: true });
  await page.keyboard.press('Control+Enter');
  await page.waitForURL((u) => !u.pathname.endsWith(`/${id}`));
  await waitUntil('the correction applied', async () => (await taskRow(id)).status === 'decided');
  const stored = (await taskRow(id)).labels as typeof labels;
  assert.deepEqual(stored.boxes[0], { x: 95, y: 85, w: 130, h: 71, class: 'car' });
  assert.equal(stored.boxes[1]!.class, 'dog');
  assert.deepEqual(errors, []);
  await context.close();
});

test('the queue counts, filters by annotator, external id and reason, sorts, and says who holds each task', async () => {
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: readJson('ontology.json'), qcPolicy: LINEAR });
  for (const user of ['quinn', 'pat']) await setMember(h.pool, { project, user, role: 'reviewer' }, 'test');
  const lines = ['a-1', 'a-2', 'b-1', 'b-2'].map((id) => {
    const [x, y] = id.startsWith('a') ? ['ann-1', 'ann-2'] : ['ann-3', 'ann-4'];
    return JSON.stringify({ externalId: `queue-${id}`, payload: { text: `sample ${id}`, lang: 'en' }, annotations: [{ annotator: x, labels: { classes: ['positive'] } }, { annotator: y, labels: { classes: ['negative'] } }] });
  });
  assert.equal((await ingest(project, lines)).counts.review, 4);
  await waitUntil('four review tasks', async () => (await reviewTaskCount(project)) === 4);

  const { context, page, errors } = await signedIn({ width: 1366, height: 768 }, 'quinn');
  await page.goto(`${h.server!.url}/queue?project=${project}`);
  // Round-robin gave two tasks to each reviewer: quinn holds two; the project has four open.
  assert.match(await page.locator('#counts').innerText(), /2 held by you · 4 open in your projects · 0 decided by you today/);
  assert.equal(await page.locator('#tasks tbody tr').count(), 2, 'tasks assigned to pat are not quinn\'s to take');
  await page.locator('#filters select[name=project]').selectOption(project);
  await page.locator('#filters input[name=annotator]').fill('ann-3');
  await page.locator('#filters button[type=submit]').click();
  await page.waitForURL(/annotator=ann-3/);
  const held = (await page.locator('#tasks tbody tr').allInnerTexts()).join('\n');
  assert.doesNotMatch(held, /queue-a-/, 'only samples ann-3 labelled');
  await page.goto(`${h.server!.url}/queue?project=${project}&q=nothing-like-this`);
  assert.match(await page.locator('#showing').innerText(), /Nothing matches/);
  await page.goto(`${h.server!.url}/queue?project=${project}&reason=audit`);
  assert.match(await page.locator('#showing').innerText(), /Nothing matches/);
  await context.close();

  // An operator sees every task and who holds it.
  const op = await signedIn({ width: 1366, height: 768 }, 'olive');
  await op.context.clearCookies();
  await op.context.addCookies([{ name: 'qcflow_session', value: issueToken(h.cfg.http.jwtSecret!, { user: 'olive', role: 'operator', ttlSeconds: 600 }), url: h.server!.url }]);
  await op.page.goto(`${h.server!.url}/queue?project=${project}&q=queue-&sort=risk`);
  assert.match(await op.page.locator('#showing').innerText(), /Showing 1–4 of 4/);
  const holders = await op.page.locator('#tasks tbody tr td:nth-child(8)').allInnerTexts();
  assert.deepEqual(holders.map((t) => t.replace(/ \(assigned\)/, '')).sort(), ['pat', 'pat', 'quinn', 'quinn']);
  mkdirSync(ARTIFACTS, { recursive: true });
  await op.page.screenshot({ path: path.join(ARTIFACTS, 'review-queue.png'), fullPage: true });
  assert.deepEqual([...errors, ...op.errors], []);
  await op.context.close();
});

test('undo: the last decision is taken back with one key within its window, through the workflow, exactly once; the sample comes back to the same reviewer; history lists it', async () => {
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: readJson('ontology.json'), qcPolicy: { ...LINEAR, review: { undoSeconds: 4 } } });
  await setMember(h.pool, { project, user: 'uma', role: 'reviewer' }, 'test');
  await setMember(h.pool, { project, user: 'ulf', role: 'reviewer' }, 'test');
  const lines = ['u-1', 'u-2', 'u-3', 'u-4'].map((id) => JSON.stringify({ externalId: id, payload: { text: `sample ${id}`, lang: 'en' }, annotations: [{ annotator: 'ann-1', labels: { classes: ['positive'] } }, { annotator: 'ann-2', labels: { classes: ['negative'] } }] }));
  assert.equal((await ingest(project, lines)).counts.review, 4);
  await waitUntil('four review tasks', async () => (await reviewTaskCount(project)) === 4);
  const mine = (await h.pool.query<{ id: string; sample_id: string }>(`SELECT id::text AS id, sample_id FROM review_tasks WHERE project_id = $1 AND assignee = 'uma' ORDER BY id`, [project])).rows;
  assert.equal(mine.length, 2);
  const [first, second] = mine as [{ id: string; sample_id: string }, { id: string; sample_id: string }];

  const { context, page, errors } = await signedIn({ width: 1366, height: 768 }, 'uma');
  await page.goto(`${h.server!.url}/tasks/${first.id}`);
  await page.keyboard.press('a');
  await page.waitForURL((u) => !u.pathname.endsWith(`/${first.id}`));
  assert.match(await page.locator('#undo-form').innerText(), new RegExp(`approve on task #${first.id} takes effect in \\d s`));
  assert.match(await page.locator('#history').innerText(), new RegExp(`#${first.id}[\\s\\S]*approve \\(can be undone\\)`));
  await page.keyboard.press('u');
  await page.waitForURL((u) => /\/tasks\/\d+/.test(u.pathname) && (u.searchParams.get('note') ?? '').includes('taken back'));
  const reopened = /\/tasks\/(\d+)/.exec(page.url())![1]!;
  assert.notEqual(reopened, first.id, 'the next round is a new task');
  assert.match(await page.locator('.note[role=status]').first().innerText(), /your approve was taken back/);
  assert.match(await page.locator('#why').innerText(), /took their decision back/);
  const rows = (await h.pool.query<{ round: number; status: string; assignee: string; reason: string }>('SELECT round, status, assignee, reason FROM review_tasks WHERE sample_id = $1 ORDER BY round', [first.sample_id])).rows;
  assert.deepEqual(rows.map((r) => [r.round, r.status, r.assignee, r.reason]), [[0, 'undone', 'uma', 'layer2_conflict'], [1, 'open', 'uma', 'undone']]);

  // Exactly once: the same undo again (page or API) is refused and changes nothing.
  const token = issueToken(h.cfg.http.jwtSecret!, { user: 'uma', role: 'reviewer', ttlSeconds: 600 });
  const api = (id: string, who = token) => fetch(`${h.server!.url}/api/tasks/${id}/undo`, { method: 'POST', headers: { authorization: `Bearer ${who}` } });
  const again = await api(first.id);
  assert.equal(again.status, 409);
  assert.match(((await again.json()) as { error: { message: string } }).error.message, /was undone already/);
  // Someone else cannot take back uma's decision.
  await page.keyboard.press('r'); // reject the reopened task
  await page.waitForURL((u) => !u.pathname.endsWith(`/${reopened}`));
  assert.equal((await api(reopened, issueToken(h.cfg.http.jwtSecret!, { user: 'ulf', role: 'reviewer', ttlSeconds: 600 }))).status, 403);
  // Deciding the next task closes the way back to the one before.
  await page.goto(`${h.server!.url}/tasks/${second.id}`);
  await page.keyboard.press('s');
  await page.waitForURL((u) => !u.pathname.endsWith(`/${second.id}`));
  const late = await api(reopened);
  assert.equal(late.status, 409);
  assert.match(((await late.json()) as { error: { message: string } }).error.message, /only your latest decision can be undone/);
  // The window closes on its own and the decisions take effect: the reject, not the undone approve.
  const outcome = await h.client.workflow.getHandle(workflowIds.review(first.sample_id)).result();
  assert.deepEqual([outcome.decision, outcome.status], ['reject', 'rejected']);
  assert.equal((await h.pool.query<{ status: string }>('SELECT status FROM samples WHERE id = $1', [first.sample_id])).rows[0]!.status, 'rejected');
  const undos = (await h.pool.query<{ n: string }>(`SELECT count(*) AS n FROM audit_log WHERE action = 'review.undo' AND subject = $1`, [first.sample_id])).rows[0]!.n;
  assert.equal(Number(undos), 1);
  await h.client.workflow.getHandle(workflowIds.review(second.sample_id)).result();
  const closed = await api(second.id);
  assert.equal(closed.status, 409);
  assert.match(((await closed.json()) as { error: { message: string } }).error.message, /has taken effect/);
  assert.deepEqual(errors, []);
  await context.close();
});

test('the quality dashboard draws the demo stream: agreement and speed heatmaps per annotator, the rushing annotator fast at the end, queue age, throughput, precision', async () => {
  const policy = readJson<Record<string, unknown>>('policy.json');
  delete policy.layer3; // no layer-3 model in this test
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: readJson('ontology.json'), regexRules: readJson('rules.json'), qcPolicy: policy });
  await setMember(h.pool, { project, user: 'dana', role: 'reviewer' }, 'test');
  const lines = generateDemoLines(600).map((l) => l.line);
  const r = await ingest(project, lines, 200);
  assert.ok(r.counts.review > 0, JSON.stringify(r.counts));
  await waitUntil('a review task', async () => (await reviewTaskCount(project)) > 0);
  const task = (await h.pool.query<{ id: string }>(`SELECT min(id)::text AS id FROM review_tasks WHERE project_id = $1`, [project])).rows[0]!.id;
  const decided = await fetch(`${h.server!.url}/api/tasks/${task}/decision`, { method: 'POST', headers: { authorization: `Bearer ${issueToken(h.cfg.http.jwtSecret!, { user: 'dana', role: 'reviewer', ttlSeconds: 600 })}`, 'content-type': 'application/json' }, body: JSON.stringify({ decision: 'approve' }) });
  assert.equal(decided.status, 200);

  const { context, page, errors } = await signedIn({ width: 1366, height: 900 }, 'dana');
  await page.goto(`${h.server!.url}/queue`);
  await page.locator('#dashboards a', { hasText: project }).click();
  await page.waitForURL(new RegExp(`/projects/${project}/dashboard$`));
  // One window per batch (three), three annotators who label every sample: nine coloured cells at least
  // (the demo's malformed annotator ids add a row of their own).
  for (const id of ['heatmap-agreement', 'heatmap-speed']) {
    assert.ok(await page.locator(`#${id} rect[fill]:not([fill="#f1f1f1"])`).count() >= 9, id);
    assert.match(await page.locator(`#${id}`).innerHTML(), /ann-1[\s\S]*ann-2[\s\S]*ann-3/);
  }
  // ann-3 rushes through the last third: their last window's median time is well under the others'.
  const api = await (await fetch(`${h.server!.url}/api/projects/${project}/dashboard`, { headers: { authorization: `Bearer ${issueToken(h.cfg.http.jwtSecret!, { user: 'olga', role: 'operator', ttlSeconds: 600 })}` } })).json() as { heatmap: { rows: Array<{ annotator: string; cells: Array<{ medianMs: number | null }> }> } };
  const last = (a: string) => api.heatmap.rows.find((x) => x.annotator === a)!.cells.at(-1)!.medianMs!;
  assert.ok(last('ann-3') < last('ann-1') / 3, `ann-3 ${last('ann-3')} ms vs ann-1 ${last('ann-1')} ms`);
  assert.equal(await page.locator('#throughput rect').count(), 14, 'fourteen days of decisions');
  assert.match(await page.locator('#throughput').innerHTML(), /<title>[^<]*: 1<\/title>/, "today's decision is drawn");
  assert.ok(await page.locator('#queue-age rect').count() === 5);
  assert.match(await page.locator('#stability').innerText(), /^(n\/a|\d\.\d{3})$/);
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'quality-dashboard.png'), fullPage: true });
  // A reviewer of another project may not look.
  const other = await signedIn({ width: 800, height: 600 }, 'stranger');
  const res = await other.page.goto(`${h.server!.url}/projects/${project}/dashboard`);
  assert.equal(res?.status(), 403);
  await other.context.close();
  assert.deepEqual(errors, []);
  await context.close();
});

/** Runs the qcflow CLI against the test stack with `stdin` piped in. */
function cli(args: string[], stdin = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: REPO, env: { ...process.env, QCFLOW_LOG_LEVEL: 'silent' } });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

test('people sign in with a name and password set by `qcflow user set`; a wrong password or a disabled account is refused without saying which', async () => {
  const user = `pia-${uid()}`;
  const short = await cli(['user', 'set', '--user', user, '--role', 'reviewer'], 'short\n');
  assert.notEqual(short.code, 0);
  assert.match(short.stderr, /at least 10 characters/);
  const set = await cli(['user', 'set', '--user', user, '--role', 'reviewer'], 'correct horse battery\n');
  assert.equal(set.code, 0, set.stderr);
  const stored = (await h.pool.query<{ password_hash: string }>('SELECT password_hash FROM users WHERE user_id = $1', [user])).rows[0]!.password_hash;
  assert.match(stored, /^scrypt\$32768\$8\$1\$/);
  assert.ok(!stored.includes('horse'), 'only the hash is stored');

  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${h.server!.url}/queue`);
  await page.locator('#username').fill(user);
  await page.locator('#password').fill('wrong horse battery');
  await page.locator('#sign-in').click();
  await page.waitForLoadState();
  assert.match(await page.locator('[role=alert]').innerText(), /name and password do not match/);
  assert.equal(await page.locator('#username').inputValue(), user, 'the name is kept');
  await page.locator('#password').fill('correct horse battery');
  await page.locator('#sign-in').click();
  await page.waitForURL(/\/queue/);
  assert.match(await page.locator('header').innerText(), new RegExp(user));
  assert.equal(Number(await page.evaluate('document.documentElement.scrollWidth')) <= 390, true, 'sign-in and queue fit a phone');
  // An unknown name gets the same answer as a wrong password.
  const anon = await browser.newContext();
  const p2 = await anon.newPage();
  await p2.goto(`${h.server!.url}/login`);
  await p2.locator('#username').fill(`nobody-${uid()}`);
  await p2.locator('#password').fill('correct horse battery');
  await p2.locator('#sign-in').click();
  await p2.waitForLoadState();
  assert.match(await p2.locator('[role=alert]').innerText(), /name and password do not match/);
  assert.equal((await cli(['user', 'disable', '--user', user])).code, 0);
  await p2.locator('#username').fill(user);
  await p2.locator('#password').fill('correct horse battery');
  await p2.locator('#sign-in').click();
  await p2.waitForLoadState();
  assert.match(await p2.locator('[role=alert]').innerText(), /do not match an active account/);
  await anon.close();
  assert.deepEqual(errors, []);
  await context.close();
});

test('multi-label classes keep exclusive groups exclusive as you pick; spans are added from a text selection', async () => {
  const ontology = { classes: ['positive', 'negative', 'sarcastic'], multiLabel: true, exclusive: [['positive', 'negative']], entities: ['PRODUCT', 'PERSON'] };
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology, qcPolicy: LINEAR });
  await setMember(h.pool, { project, user: 'sam', role: 'reviewer' }, 'test');
  const text = 'the phone Anna bought broke';
  const line = JSON.stringify({
    externalId: 'spans-1', payload: { text, lang: 'en' },
    annotations: [
      { annotator: 'ann-1', labels: { classes: ['negative'], spans: [{ start: 4, end: 9, label: 'PRODUCT' }] } },
      { annotator: 'ann-2', labels: { classes: ['positive', 'sarcastic'], spans: [{ start: 4, end: 9, label: 'PERSON' }] } },
    ],
  });
  assert.equal((await ingest(project, [line], 10)).counts.review, 1);
  await waitUntil('the task', async () => (await reviewTaskCount(project)) === 1);
  const id = (await h.pool.query<{ id: string }>('SELECT id::text AS id FROM review_tasks WHERE project_id = $1', [project])).rows[0]!.id;
  const { context, page, errors } = await signedIn({ width: 1366, height: 900 }, 'sam');
  await page.goto(`${h.server!.url}/tasks/${id}`);
  assert.match(await page.locator('#comparison').innerText(), /spans[\s\S]*“phone” PRODUCT[\s\S]*“phone” PERSON/);
  // Before any editing the text shows the spans given; "phone", typed two ways, is marked disputed with who said what.
  const disputed = page.locator('#sample-text mark.disputed');
  assert.equal(await disputed.count(), 1);
  assert.equal(await disputed.innerText(), 'phone');
  assert.match((await disputed.getAttribute('title')) ?? '', /PRODUCT \(ann-1\)[\s\S]*PERSON \(ann-2\)/);
  await page.keyboard.press('c');
  await page.keyboard.press('2'); // ann-2: positive + sarcastic
  await page.locator('#edit-classes input[value=negative]').check();
  let labels = JSON.parse(await page.locator('#labels').inputValue()) as { classes: string[]; spans: Array<{ start: number; end: number; label: string }> };
  assert.deepEqual([...labels.classes].sort(), ['negative', 'sarcastic'], 'negative replaced positive (exclusive); sarcastic stayed');
  // Select "Anna" in the sample text and add it as a PERSON span.
  await page.evaluate(`(() => { const el = document.getElementById('sample-text'); const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    let node, offset = 0; const r = document.createRange(); let set = 0;
    while ((node = walker.nextNode())) { const len = node.textContent.length;
      if (!set && offset + len > 10) { r.setStart(node, 10 - offset); set = 1; }
      if (set && offset + len >= 14) { r.setEnd(node, 14 - offset); break; }
      offset += len; }
    const sel = getSelection(); sel.removeAllRanges(); sel.addRange(r); })()`);
  await page.locator('#edit-spans select[aria-label="new span label"]').selectOption('PERSON');
  await page.locator('#add-span').click();
  labels = JSON.parse(await page.locator('#labels').inputValue()) as typeof labels;
  assert.deepEqual(labels.spans, [{ start: 4, end: 9, label: 'PERSON' }, { start: 10, end: 14, label: 'PERSON' }]);
  assert.equal(text.slice(10, 14), 'Anna');
  await page.locator('#edit-spans select[aria-label="span 1 label"]').selectOption('PRODUCT');
  assert.equal(await page.locator('#sample-text mark').count(), 2, 'the draft spans are marked in the text');
  await page.keyboard.press('Control+Enter');
  await page.waitForURL((u) => !u.pathname.endsWith(`/${id}`));
  await waitUntil('the correction applied', async () => (await taskRow(id)).status === 'decided');
  const stored = (await taskRow(id)).labels as typeof labels;
  assert.deepEqual(stored.spans, [{ start: 4, end: 9, label: 'PRODUCT' }, { start: 10, end: 14, label: 'PERSON' }]);
  assert.deepEqual([...stored.classes].sort(), ['negative', 'sarcastic']);
  assert.deepEqual(errors, []);
  await context.close();
});
