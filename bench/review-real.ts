/**
 * `npm run bench -- review-real`: QC and the review page on what users bring — a real street photo
 * (1920×1208 JPEG) annotated by 18 people with boxes (bench/real-boxes.ts; the folder from
 * github.com/ZJW-92/Image_Annotation `data/`, read from QCFLOW_REAL_BOXES and not committed: it carries no
 * licence). Every choice of three of the 18 is one sample (816), run end to end on an ephemeral stack with
 * the default policy; each consensus is judged against the whole crowd's objects, beside the plain
 * two-of-three vote in the same run. Then a reviewer opens review tasks in Chromium at desktop and phone
 * size: load time, every annotator's box drawn where the person drew it, no horizontal scroll, and one
 * correction made on the image (start from the consensus, nudge a box, Ctrl+Enter) that must be stored as
 * made. Beside it the peer, Label Studio (PyPI, Community edition; bench/labelstudio.ts), gets the same photo
 * and the first task's three people's boxes and is opened the same way. Prints JSON lines; screenshots land
 * in test-artifacts/.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { Client } from '@temporalio/client';
import { loadConfig, type Config } from '../src/clients/config';
import { getLogger } from '../src/clients/logger';
import { createPool, type Pool } from '../src/clients/pg';
import { createObjectStore, putObject, type ObjectStore } from '../src/clients/minio';
import { createTemporalClient } from '../src/clients/temporal';
import { startStack } from '../src/infra/stack';
import { ingestFile } from '../src/cli/ingest';
import { issueToken } from '../src/http/auth';
import { startReviewServer } from '../src/http/start';
import { upsertProject } from '../src/store/projects';
import { setMember } from '../src/store/review';
import { validateProjectDefinition } from '../src/projects/definition';
import { startCpuWorker } from '../workers/cpu';
import { startReviewWorker } from '../workers/review';
import { combinations, judgeBoxes, readJudgements, referenceObjects, twoOfThree, type Judgement, type Verdict } from './real-boxes';
import { labelStudioTask, startLabelStudio } from './labelstudio';
import { readConll, spanDifference, type Span } from './real-spans';
import { labelRisk, type SampleRisk } from '../src/qc/risk';

const log = getLogger(loadConfig(), 'bench.review-real');
const CHROMIUM = process.env.QCFLOW_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = path.join(__dirname, '..', 'test-artifacts');

const tally = (vs: Verdict[]) => Object.fromEntries(['right', 'ignored', 'missed', 'invented', 'class'].map((k) => [k, vs.filter((v) => v === k).length]));
const share = (n: number, d: number) => (d ? +(n / d).toFixed(4) : null);
const quartiles = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return [0.25, 0.5, 0.75].map((q) => +(s[Math.floor(q * (s.length - 1))] ?? NaN).toFixed(3)); };

export async function reviewRealBench(): Promise<void> {
  const dir = process.env.QCFLOW_REAL_BOXES;
  if (!dir || !existsSync(dir)) {
    console.log(JSON.stringify({ bench: 'review.real', skipped: 'set QCFLOW_REAL_BOXES to the data/ folder of github.com/ZJW-92/Image_Annotation (the JPEG and its *_judgements.json)' }));
    return;
  }
  const files = readdirSync(dir);
  const jpeg = files.find((f) => f.endsWith('.jpg'));
  const json = files.find((f) => f.endsWith('_judgements.json'));
  if (!jpeg || !json) throw new Error(`${dir} holds no .jpg and *_judgements.json`);
  const { judgements, dropped } = readJudgements(JSON.parse(readFileSync(path.join(dir, json), 'utf8')));
  const reference = referenceObjects(judgements);
  const crowd = judgements.length;
  const triples = combinations(crowd, 3);
  const people = judgements.map((j) => judgeBoxes(j.boxes, reference, crowd));
  const clean = (t: number[]) => t.every((i) => people[i] === 'right');

  const cfg = loadConfig();
  const stack = await startStack(cfg, log, { ephemeral: true });
  const scfg = { ...stack.cfg, http: { ...stack.cfg.http, port: 0, jwtSecret: randomBytes(32).toString('hex') } };
  const pool = createPool(stack.databaseUrl, 4);
  const workers = [await startCpuWorker(scfg), await startReviewWorker(scfg)];
  const server = await startReviewServer(scfg, log);
  const { client, connection } = await createTemporalClient(scfg);
  const store = createObjectStore(scfg.minio);
  try {
    // The default policy, then split objects released as don't-care regions: the same samples, side by side.
    // And the latter with a 5% error budget, to see what a looser project would accept and how wrong that is.
    const policies: Array<[string, Record<string, unknown>]> = [
      ['street', {}],
      ['street-dontcare', { layer2: { splitObjects: 'dontCare' } }],
      ['street-dontcare-5pct', { layer2: { splitObjects: 'dontCare' }, fusion: { risk: { targetErrorRate: 0.05, maxSampleRisk: 0.1 } } }],
      // A budget per label (an object each) rather than per photo, with either policy for split objects.
      ['street-per-label', { fusion: { risk: { per: 'label' } } }],
      ['street-dontcare-per-label', { layer2: { splitObjects: 'dontCare' }, fusion: { risk: { per: 'label' } } }],
    ];
    for (const [project, qcPolicy] of policies) {
      await upsertProject(pool, validateProjectDefinition({ id: project, jsonSchema: { type: 'object' }, regexRules: [], ontology: { classes: ['Vehicle', 'TwoWheeler', 'Pedestrian'] }, qcPolicy }), 'bench');
      await setMember(pool, { project, user: 'rev', role: 'reviewer' }, 'bench');
      // Media live under the project's own prefix.
      const key = `raw/${project}/${jpeg}`;
      await putObject(store, key, readFileSync(path.join(dir, jpeg)), 'image/jpeg');
      const lines = triples.map((t) => JSON.stringify({
        externalId: `crowd-${t.map((i) => i + 1).join('-')}`, payload: { scene: path.basename(jpeg, '.jpg') }, media: [{ key }],
        annotations: t.map((i) => ({ annotator: judgements[i]!.annotator, labels: { boxes: judgements[i]!.boxes } })),
      }));
      const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'qcflow-review-real-')), `${project}.jsonl`);
      writeFileSync(file, lines.join('\n') + '\n');
      const t0 = Date.now();
      const result = await ingestFile(scfg, client, store, { project, file, batchSize: 272, wait: true });
      const seconds = (Date.now() - t0) / 1000;
      if (result.failedBatches.length || result.counts.staged !== triples.length) throw new Error(`of ${triples.length} samples ${result.counts.staged} staged (${result.counts.malformed} malformed); batches failed: ${result.failedBatches.join(', ') || 'none'}`);

      const { rows } = await pool.query<{ external_id: string; status: string; reason: string | null; p_wrong: string | null; boxes: Array<{ geometry: { x: number; y: number; w: number; h: number }; class: string; dontCare?: boolean }> | null; rules: string[] | null }>(
        `SELECT s.external_id, s.status, q5.details->>'reason' AS reason, q5.details->'risk'->>'pWrong' AS p_wrong, q2.details->'consensus'->'boxes' AS boxes,
                (SELECT array_agg(DISTINCT f->>'rule') FROM jsonb_array_elements(q2.findings) f) AS rules
         FROM samples s LEFT JOIN qc_results q2 ON q2.sample_id = s.id AND q2.layer = 2 LEFT JOIN qc_results q5 ON q5.sample_id = s.id AND q5.layer = 5
         WHERE s.project_id = $1`, [project]);
      const byId = new Map(rows.map((r) => [r.external_id, r]));
      const verdicts = triples.map((t) => {
        const r = byId.get(`crowd-${t.map((i) => i + 1).join('-')}`);
        const consensus = (r?.boxes ?? []).map((b) => ({ ...b.geometry, class: b.class, ...(b.dontCare ? { dontCare: true } : {}) }));
        return { t, status: r?.status ?? 'missing', consensus, pWrong: Number(r?.p_wrong ?? NaN), qcflow: judgeBoxes(consensus, reference, crowd), baseline: judgeBoxes(twoOfThree(t.map((i) => judgements[i]!)), reference, crowd), rules: r?.rules ?? [] };
      });
      const accepted = verdicts.filter((v) => ['accepted', 'released'].includes(v.status));
      const toPeople = verdicts.filter((v) => v.status === 'review');
      const ruleCounts: Record<string, number> = {};
      for (const v of toPeople) for (const rule of v.rules) ruleCounts[rule] = (ruleCounts[rule] ?? 0) + 1;
      const cleanOnes = verdicts.filter((v) => clean(v.t));
      console.log(JSON.stringify({
        bench: 'review.real.qc', policy: qcPolicy, image: jpeg, people: crowd, dropped,
        crowdObjects: reference.map((r) => ({ class: r.class, support: r.support, box: [r.box.x, r.box.y, r.box.w, r.box.h].map(Math.round) })),
        peopleAgainstCrowd: tally(people), samples: triples.length, seconds: +seconds.toFixed(1),
        statuses: Object.fromEntries([...new Set(verdicts.map((v) => v.status))].map((s) => [s, verdicts.filter((v) => v.status === s).length])),
        consensusAgainstCrowd: { qcflow: tally(verdicts.map((v) => v.qcflow)), baselineTwoOfThree: tally(verdicts.map((v) => v.baseline)) },
        accepted: accepted.length, acceptedVerdicts: tally(accepted.map((v) => v.qcflow)),
        acceptedPredictedWrong: share(accepted.reduce((n, v) => n + v.pWrong, 0), accepted.length),
        acceptedWrong: share(accepted.filter((v) => !['right', 'ignored'].includes(v.qcflow)).length, accepted.length),
        dontCarePerAccepted: share(accepted.reduce((n, v) => n + v.consensus.filter((b) => b.dontCare).length, 0), accepted.length),
        cleanSamples: cleanOnes.length, cleanToPeople: share(cleanOnes.filter((v) => v.status === 'review').length, cleanOnes.length),
        reviewFindings: ruleCounts,
        reviewReasons: Object.fromEntries([...new Set(rows.filter((r) => r.status === 'review').map((r) => r.reason ?? '?'))].map((k) => [k, rows.filter((r) => r.status === 'review' && (r.reason ?? '?') === k).length])),
        pWrongQuartiles: quartiles(rows.map((r) => Number(r.p_wrong ?? NaN)).filter((x) => Number.isFinite(x))),
      }));
    }

    const triple = (externalId: string) => externalId.replace('crowd-', '').split('-').map((k) => judgements[Number(k) - 1]!);
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    try {
      const first = await reviewInBrowser(browser, pool, server.url, scfg.http.jwtSecret, 'street', (id) => triple(id).flatMap((j) => j.boxes));
      await peerLabelStudio(browser, { image: readFileSync(path.join(dir, jpeg)), fileName: jpeg, annotations: triple(first) });
      await reviewRealText({ cfg: scfg, client, store, pool, browser, url: server.url });
    } finally {
      await browser.close();
    }
  } finally {
    await server.close();
    for (const w of workers) await w.shutdown();
    await connection.close();
    await pool.end().catch(() => undefined);
    await stack.stop();
  }
}

interface Rect { x: number; y: number; w: number; h: number }

/** Opens review tasks as a reviewer would, measures the page, and makes one correction on the image; resolves to the first task's external id. */
async function reviewInBrowser(browser: Browser, pool: Pool, url: string, secret: string, project: string, boxesOf: (externalId: string) => Rect[]): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const { rows: tasks } = await pool.query<{ id: string; external_id: string }>(
    `SELECT t.id::text AS id, s.external_id FROM review_tasks t JOIN samples s ON s.id = t.sample_id
     WHERE t.project_id = $1 AND t.status = 'open' ORDER BY t.risk DESC NULLS LAST, t.id LIMIT 5`, [project]);
  for (const [n, viewport] of VIEWPORTS) {
    const { context, page } = await signedIn(browser, url, secret, viewport, n === 1);
    const bytes = countBytes(page);
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const loads: number[] = [];
    let worstOffset = 0;
    let drawnTotal = 0;
    let storedTotal = 0;
    for (const t of tasks) {
      const t0 = Date.now();
      await page.goto(`${url}/tasks/${t.id}`);
      // (No DOM lib here: the page-side checks are expressions.)
      await page.waitForFunction("(() => { const img = document.querySelector('figure img'); return !!img && img.complete && img.naturalWidth > 0 && !!document.querySelector('figure svg.boxes')?.getAttribute('viewBox'); })()");
      loads.push(Date.now() - t0);
      if (loads.length === 1) { await page.waitForLoadState('networkidle'); bytes.first = bytes.total; }
      const drawn = await page.locator('figure svg.boxes rect.annotator').evaluateAll((rs) => rs.map((r) => ['x', 'y', 'width', 'height'].map((a) => Number(r.getAttribute(a)))));
      const stored = boxesOf(t.external_id).map((b) => [b.x, b.y, b.w, b.h]);
      drawnTotal += drawn.length;
      storedTotal += stored.length;
      stored.forEach((s, i) => s.forEach((v, k) => { worstOffset = Math.max(worstOffset, Math.abs(v - (drawn[i]?.[k] ?? Infinity))); }));
    }
    const width = Number(await page.evaluate('document.documentElement.scrollWidth'));
    const approve = await page.locator('#approve').boundingBox();
    await page.screenshot({ path: path.join(ARTIFACTS, `review-real-${n ? 'phone' : 'desktop'}.png`), fullPage: n === 0 });
    console.log(JSON.stringify({
      bench: 'review.real.page', viewport: `${viewport.width}x${viewport.height}`, tasks: tasks.length,
      loadMs: spread(loads),
      boxesDrawnOfStored: `${drawnTotal}/${storedTotal}`, annotatorsAtOnce: 3, worstBoxOffsetPx: worstOffset, pageWidth: width, approveBottom: approve ? Math.round(approve.y + approve.height) : null,
      firstTaskKiB: Math.round(bytes.first / 1024), scriptErrors: errors.length,
    }));
    await context.close();
  }
  await correctOnTheImage(browser, pool, url, secret, tasks[0]!.id);
  await dontCareShown(browser, pool, url, secret);
  return tasks[0]!.external_id;
}

const VIEWPORTS = [[0, { width: 1366, height: 768 }], [1, { width: 390, height: 844 }]] as const;

/** A browser context signed in as the bench's reviewer (a session cookie, as the sign-in page sets it). */
async function signedIn(browser: Browser, url: string, secret: string, viewport: { width: number; height: number }, touch = false): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport, hasTouch: touch, isMobile: touch });
  await context.addCookies([{ name: 'qcflow_session', value: issueToken(secret, { user: 'rev', role: 'reviewer', ttlSeconds: 3600 }), url }]);
  return { context, page: await context.newPage() };
}

const spread = (ms: number[]) => ({ median: [...ms].sort((a, b) => a - b)[ms.length >> 1], max: Math.max(...ms) });

/** Bytes of response bodies the page has received (the first task's load is kept in `first`). */
function countBytes(page: Page): { total: number; first: number } {
  const c = { total: 0, first: 0 };
  page.on('requestfinished', (req) => { void req.sizes().then((s) => { c.total += s.responseBodySize; }, () => undefined); });
  return c;
}

/**
 * The peer: Label Studio with the same photo and the same three people's boxes (one annotation each),
 * opened in the same Chromium at the same sizes, measured the same way where it can be: time until the
 * boxes are listed, how many of the boxes one view shows, page width, where its Update button ends, bytes.
 */
async function peerLabelStudio(browser: Browser, o: { image: Buffer; fileName: string; annotations: Judgement[] }): Promise<void> {
  const ls = await startLabelStudio();
  if ('skipped' in ls) { console.log(JSON.stringify({ bench: 'review.real.peer', peer: 'Label Studio', skipped: ls.skipped })); return; }
  try {
    const t = await labelStudioTask(ls, { ...o, width: 1920, height: 1208, classes: ['Vehicle', 'TwoWheeler', 'Pedestrian'] });
    const total = o.annotations.reduce((n, a) => n + a.boxes.length, 0);
    for (const [n, viewport] of VIEWPORTS) {
      const context = await browser.newContext({ viewport, hasTouch: n === 1, isMobile: n === 1 });
      const page = await context.newPage();
      await page.goto(`${ls.url}/user/login/`);
      await page.locator('input[name=email]').fill(ls.email);
      await page.locator('input[name=password]').fill(ls.password);
      await page.locator('input[name=password]').press('Enter');
      await page.waitForURL((u) => !u.pathname.startsWith('/user/login'));
      const bytes = countBytes(page);
      const t0 = Date.now();
      await page.goto(t.page);
      // The image is drawn on a canvas (Konva) with the boxes; the region list beside it needs room.
      await page.locator('canvas').first().waitFor({ timeout: 120_000 });
      await page.locator('.lsf-outliner-item').first().waitFor({ timeout: n === 0 ? 120_000 : 10_000 }).catch(() => undefined);
      const loadMs = Date.now() - t0;
      await page.waitForLoadState('networkidle');
      const listed = await page.locator('.lsf-outliner-item').count();
      const width = Number(await page.evaluate('document.documentElement.scrollWidth'));
      const update = await page.locator('button', { hasText: /^\s*(Update|Submit)\s*$/ }).first().boundingBox({ timeout: 5000 }).catch(() => null);
      await page.screenshot({ path: path.join(ARTIFACTS, `labelstudio-${n ? 'phone' : 'desktop'}.png`) });
      let compareAll: boolean | undefined;
      if (n === 0) {
        // Its way to see every annotator: Compare All, the annotations side by side (one image each).
        const button = page.getByText('Compare All');
        compareAll = (await button.count()) > 0;
        if (compareAll) { await button.first().click(); await page.waitForTimeout(2000); await page.screenshot({ path: path.join(ARTIFACTS, 'labelstudio-compare-all.png') }); }
      }
      console.log(JSON.stringify({
        bench: 'review.real.peer', peer: 'Label Studio (PyPI label-studio, Community)', viewport: `${viewport.width}x${viewport.height}`,
        loadMs, boxesListedOfStored: `${listed}/${total}`, annotatorsAtOnce: 1, compareAll, pageWidth: width,
        updateBottom: update ? Math.round(update.y + update.height) : null, firstTaskKiB: Math.round(bytes.total / 1024),
      }));
      await context.close();
    }
  } finally {
    await ls.stop();
  }
}

/** Starts from the consensus, moves its first box 20 px right with the keyboard, sends the correction, and checks what was stored. */
async function correctOnTheImage(browser: Browser, pool: Pool, url: string, secret: string, id: string): Promise<void> {
  const { context, page } = await signedIn(browser, url, secret, { width: 1366, height: 900 });
  await page.goto(`${url}/tasks/${id}`);
  const t0 = Date.now();
  await page.keyboard.press('c');
  await page.keyboard.press('0');
  await page.waitForFunction("!!document.querySelector('svg.draft')?.getAttribute('viewBox')");
  const before = JSON.parse(await page.locator('#labels').inputValue()) as { boxes: Array<Rect & { class: string }> };
  await page.locator('svg.draft rect.box').first().click();
  await page.keyboard.press('Shift+ArrowRight');
  await page.keyboard.press('Shift+ArrowRight');
  const sent = JSON.parse(await page.locator('#labels').inputValue()) as typeof before;
  await page.screenshot({ path: path.join(ARTIFACTS, 'review-real-correction.png'), fullPage: true });
  await page.keyboard.press('Control+Enter');
  await page.waitForURL((u) => !u.pathname.endsWith(`/${id}`));
  const ms = Date.now() - t0;
  let stored: unknown;
  for (let i = 0; i < 120 && stored === undefined; i++) {
    const r = (await pool.query<{ status: string; labels: unknown }>('SELECT status, labels FROM review_tasks WHERE id = $1', [id])).rows[0];
    if (r?.status === 'decided') stored = r.labels; else await new Promise((res) => setTimeout(res, 250));
  }
  const moved = sent.boxes[0]!.x - before.boxes[0]!.x;
  console.log(JSON.stringify({
    bench: 'review.real.correction', task: id, boxes: before.boxes.length, firstBoxMovedPx: moved,
    storedAsSent: JSON.stringify(stored) === JSON.stringify(sent), othersUnchanged: JSON.stringify(sent.boxes.slice(1)) === JSON.stringify(before.boxes.slice(1)),
    keysToDecisionMs: ms,
  }));
  await context.close();
}

/** On a task of the don't-care project: each region the consensus releases as don't-care is drawn as one, the rest as consensus. */
async function dontCareShown(browser: Browser, pool: Pool, url: string, secret: string): Promise<void> {
  const { rows } = await pool.query<{ id: string; flags: boolean[] }>(
    `SELECT t.id::text AS id, (SELECT array_agg(coalesce((b->>'dontCare')::boolean, false)) FROM jsonb_array_elements(q2.details->'consensus'->'boxes') b) AS flags
     FROM review_tasks t JOIN qc_results q2 ON q2.sample_id = t.sample_id AND q2.layer = 2
     WHERE t.project_id = 'street-dontcare' AND t.status = 'open' ORDER BY t.id LIMIT 1`);
  const task = rows[0];
  if (!task) return;
  const { context, page } = await signedIn(browser, url, secret, { width: 1366, height: 900 });
  await page.goto(`${url}/tasks/${task.id}`);
  const drawn = await page.locator('figure svg.boxes rect.consensus').evaluateAll((rs) => rs.map((r) => (r.getAttribute('class') ?? '').includes('dont-care')));
  // A correction starts from the consensus without its don't-care regions (they would be released as objects).
  const draft = JSON.parse(await page.locator('#labels').inputValue()) as { boxes?: unknown[] };
  await page.screenshot({ path: path.join(ARTIFACTS, 'review-real-dont-care.png'), fullPage: true });
  const dontCare = task.flags.filter(Boolean).length;
  console.log(JSON.stringify({
    bench: 'review.real.dont-care-page', task: task.id, consensusBoxes: task.flags.length, dontCare,
    drawnAsStored: drawn.filter(Boolean).length === dontCare && drawn.length === task.flags.length,
    correctionStartsWith: (draft.boxes ?? []).length, startsWithoutDontCare: (draft.boxes ?? []).length === task.flags.length - dontCare,
  }));
  await context.close();
}

/**
 * Long texts with many spans, annotated twice for real: each CoNLL-2003 test document with its original
 * entities and CoNLL++'s corrections as two annotations (QCFLOW_CONLL_TEST, QCFLOW_CONLLPP_TEST). Documents
 * the two agree on are clean; where they differ CoNLL++ is right. Then the review page on the longest
 * disputed documents: load time, and whether the reviewer is shown which spans differ.
 */
async function reviewRealText(o: { cfg: Config; client: Client; store: ObjectStore; pool: Pool; browser: Browser; url: string }): Promise<void> {
  const original = process.env.QCFLOW_CONLL_TEST;
  const corrected = process.env.QCFLOW_CONLLPP_TEST;
  if (!original || !corrected || !existsSync(original) || !existsSync(corrected)) {
    console.log(JSON.stringify({ bench: 'review.real.text', skipped: 'set QCFLOW_CONLL_TEST (a CoNLL-2003 English test file) and QCFLOW_CONLLPP_TEST (data/conllpp_test.txt of github.com/ZihanWangKi/CrossWeigh)' }));
    return;
  }
  const a = readConll(readFileSync(original, 'utf8'));
  const b = readConll(readFileSync(corrected, 'utf8'));
  if (a.length !== b.length || a.some((d, i) => d.text !== b[i]!.text)) throw new Error('the two CoNLL files do not hold the same documents and tokens');
  // The default budget (per sample), then the same documents under a budget per label (an entity each).
  let docs: Array<{ i: number; clean: boolean }> = [];
  for (const [project, qcPolicy] of [['news', {}], ['news-per-label', { fusion: { risk: { per: 'label' } } }]] as const) {
    await upsertProject(o.pool, validateProjectDefinition({ id: project, jsonSchema: { type: 'object' }, regexRules: [], ontology: { entities: ['PER', 'LOC', 'ORG', 'MISC'] }, qcPolicy }), 'bench');
    await setMember(o.pool, { project, user: 'rev', role: 'reviewer' }, 'bench');
    const lines = a.map((d, i) => JSON.stringify({
      externalId: `conll-test-${i}`, payload: { text: d.text, lang: 'en' },
      annotations: [{ annotator: 'conll2003', labels: { spans: d.spans } }, { annotator: 'conllpp', labels: { spans: b[i]!.spans } }],
    }));
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'qcflow-review-real-')), `${project}.jsonl`);
    writeFileSync(file, lines.join('\n') + '\n');
    const result = await ingestFile(o.cfg, o.client, o.store, { project, file, batchSize: 231, wait: true });
    if (result.failedBatches.length || result.counts.staged !== a.length) throw new Error(`of ${a.length} documents ${result.counts.staged} staged (${result.counts.malformed} malformed)`);
    const { rows } = await o.pool.query<{ external_id: string; status: string; reason: string | null; risk: SampleRisk | null; spans: Array<{ geometry: { start: number; end: number }; class: string }> | null }>(
      `SELECT s.external_id, s.status, q5.details->>'reason' AS reason, q5.details->'risk' AS risk, q2.details->'consensus'->'spans' AS spans
       FROM samples s LEFT JOIN qc_results q2 ON q2.sample_id = s.id AND q2.layer = 2 LEFT JOIN qc_results q5 ON q5.sample_id = s.id AND q5.layer = 5
       WHERE s.project_id = $1`, [project]);
    const byId = new Map(rows.map((r) => [r.external_id, r]));
    const judged = a.map((d, i) => {
      const r = byId.get(`conll-test-${i}`);
      const diff = spanDifference(d.spans, b[i]!.spans);
      const consensus: Span[] = (r?.spans ?? []).map((x) => ({ start: x.geometry.start, end: x.geometry.end, label: x.class }));
      const wrong = spanDifference(consensus, b[i]!.spans);
      const label = r?.risk ? labelRisk(r.risk) : { expectedWrong: NaN, labels: 0 };
      return {
        i, spans: b[i]!.spans.length, clean: diff.onlyA.length + diff.onlyB.length === 0, status: r?.status ?? 'missing', reason: r?.reason ?? '?',
        pWrong: r?.risk?.pWrong ?? NaN, wrongEntities: wrong.onlyA.length + wrong.onlyB.length, predictedWrongEntities: label.expectedWrong,
      };
    });
    docs = judged;
    const clean = judged.filter((d) => d.clean);
    const disputed = judged.filter((d) => !d.clean);
    const accepted = judged.filter((d) => ['accepted', 'released'].includes(d.status));
    const entities = accepted.reduce((n, d) => n + d.spans, 0);
    console.log(JSON.stringify({
      bench: 'review.real.text', policy: qcPolicy, documents: judged.length, spans: judged.reduce((n, d) => n + d.spans, 0), longestChars: Math.max(...a.map((d) => d.text.length)),
      clean: clean.length, cleanToPeople: share(clean.filter((d) => d.status === 'review').length, clean.length),
      cleanRiskQuartiles: quartiles(clean.map((d) => d.pWrong)),
      disputed: disputed.length, disputedToPeople: share(disputed.filter((d) => d.status === 'review').length, disputed.length),
      accepted: accepted.length, acceptedDocumentsWrong: accepted.filter((d) => d.wrongEntities > 0).length,
      acceptedEntities: entities, acceptedEntitiesWrong: { predicted: share(accepted.reduce((n, d) => n + d.predictedWrongEntities, 0), entities), actual: share(accepted.reduce((n, d) => n + d.wrongEntities, 0), entities) },
      reasons: Object.fromEntries([...new Set(judged.map((d) => `${d.status}:${d.reason}`))].map((k) => [k, judged.filter((d) => `${d.status}:${d.reason}` === k).length])),
    }));
  }

  // The page on the five disputed documents with the most spans.
  const { rows: tasks } = await o.pool.query<{ id: string; external_id: string }>(
    `SELECT t.id::text AS id, s.external_id FROM review_tasks t JOIN samples s ON s.id = t.sample_id WHERE t.project_id = 'news' AND t.status = 'open'`);
  const longest = tasks.map((t) => ({ ...t, i: Number(t.external_id.replace('conll-test-', '')) }))
    .filter((t) => !docs[t.i]!.clean).sort((x, y) => b[y.i]!.spans.length - b[x.i]!.spans.length).slice(0, 5);
  const { context, page } = await signedIn(o.browser, o.url, o.cfg.http.jwtSecret!, { width: 1366, height: 768 });
  const loads: number[] = [];
  let named = 0;
  let marked = 0;
  let differing = 0;
  let rowChars = 0;
  for (const t of longest) {
    const t0 = Date.now();
    await page.goto(`${o.url}/tasks/${t.id}`);
    await page.locator('#comparison').waitFor();
    loads.push(Date.now() - t0);
    const row = await page.locator('#comparison tr', { hasText: 'spans' }).first().innerText();
    rowChars = Math.max(rowChars, row.length);
    // Is each differing entity named on its own, not just somewhere in a list of every span?
    const diff = spanDifference(a[t.i]!.spans, b[t.i]!.spans);
    const text = a[t.i]!.text;
    // Which characters of the text lie in a mark the page calls disputed (a span split by another's bounds is marked in pieces).
    const pieces = await page.evaluate<Array<[number, boolean]>>(`Array.from(document.getElementById('sample-text').childNodes).map((n) => [n.textContent.length, n.nodeName === 'MARK' && n.classList.contains('disputed')])`);
    const inDisputed = new Set<number>();
    let at = 0;
    for (const [len, disputed] of pieces) { if (disputed) for (let k = 0; k < len; k++) inDisputed.add(at + k); at += len; }
    for (const s of [...diff.onlyA, ...diff.onlyB]) {
      differing++;
      if ((await page.locator('#comparison .span-diff', { hasText: text.slice(s.start, s.end) }).count()) > 0) named++;
      if (s.start < s.end && Array.from({ length: s.end - s.start }, (_, k) => s.start + k).every((c) => inDisputed.has(c))) marked++;
    }
  }
  await page.screenshot({ path: path.join(ARTIFACTS, 'review-real-text.png'), fullPage: true });
  console.log(JSON.stringify({
    bench: 'review.real.text-page', tasks: longest.length, spansPerTask: longest.map((t) => b[t.i]!.spans.length),
    loadMs: spread(loads),
    spansRowChars: rowChars, differingSpansNamedApart: `${named}/${differing}`, differingSpansMarkedInText: `${marked}/${differing}`,
  }));
  await context.close();
}
