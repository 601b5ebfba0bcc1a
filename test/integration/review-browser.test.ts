import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { chromium, type Browser } from 'playwright-core';
import { ingestFile } from '../../src/cli/ingest';
import { putObject } from '../../src/clients/minio';
import { issueToken } from '../../src/http/auth';
import { setMember } from '../../src/store/review';
import { workflowIds } from '../../workflows/definitions';
import { createTestProject, harness, REPO, uid, waitUntil, type Harness } from './helpers';

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
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'qcflow-browser-')), 'in.jsonl');
  writeFileSync(file, lines.join('\n') + '\n');
  const r = await ingestFile(h.cfg, h.client, h.store, { project, file, batchSize: 100, wait: true });
  assert.equal(r.counts.review, 2);
}

test('a reviewer signs in, opens a task with the image and every annotator\'s boxes, and approves it with the keyboard', async () => {
  const project = await createTestProject(h.pool, `t-${uid()}`, { ontology: { classes: ['car', 'dog'] }, qcPolicy: LINEAR });
  await setMember(h.pool, { project, user: 'vera', role: 'reviewer' }, 'test');
  await ingestImages(project);
  await waitUntil('two review tasks', async () => Number((await h.pool.query<{ n: string }>('SELECT count(*) AS n FROM review_tasks WHERE project_id = $1', [project])).rows[0]!.n) === 2);

  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${h.server!.url}/queue`);
  assert.match(page.url(), /\/login\?next=/, 'an anonymous visitor is sent to sign in');
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
  assert.equal(await page.locator('figure svg rect').count(), 2, 'one box per annotator');
  await waitUntil('the script fitted the boxes to the image', async () => (await page.locator('figure svg').getAttribute('viewBox')) === '0 0 320 200', 10_000);
  const strokes = await page.locator('figure svg rect').evaluateAll((rs) => rs.map((r) => r.getAttribute('stroke')));
  assert.notEqual(strokes[0], strokes[1], 'annotators get distinct colours');
  assert.match(await page.locator('body').innerText(), /layer2_conflict[\s\S]*ann-1[\s\S]*ann-2/);
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
  assert.match(await page.locator('[role=status]').innerText(), new RegExp(`Task ${taskId}: approve recorded`));
  const { rows } = await h.pool.query<{ sample_id: string; decision: string; decided_by: string }>('SELECT sample_id, decision, decided_by FROM review_tasks WHERE id = $1', [taskId]);
  assert.deepEqual([rows[0]!.decision, rows[0]!.decided_by], ['approve', 'vera']);
  await h.client.workflow.getHandle(workflowIds.review(rows[0]!.sample_id)).result();
  assert.equal((await h.pool.query<{ status: string }>('SELECT status FROM samples WHERE id = $1', [rows[0]!.sample_id])).rows[0]!.status, 'accepted');
  assert.deepEqual(errors, [], 'no script errors on the pages');
  await context.close();
});
