/**
 * `npm run bench -- queue` (ephemeral stack, Postgres only matters): the review queue at scale. One
 * project holds 1,000, then 10,000, then 100,000 open review tasks (each sample with a layer-5 risk, a
 * tenth overdue, ages spread over a week); for each size the bench times, median of 7 after a warm-up:
 *  - the first page of 50 by `priority` (what "Start reviewing" and the queue page use: due soon first, then
 *    likeliest wrong, from the risk kept on each task) and by `risk`;
 *  - the baseline in the same run: the same page by `oldest` (the queue's index order; the same total count);
 *  - the counts bar (`queueCounts`) and `claimNextTask` (taken and released again, so the queue stays put).
 * One JSON line per size.
 */
import { loadConfig } from '../src/clients/config';
import { getLogger } from '../src/clients/logger';
import { createPool, type Pool } from '../src/clients/pg';
import { startStack } from '../src/infra/stack';
import { validateProjectDefinition } from '../src/projects/definition';
import { upsertProject } from '../src/store/projects';
import { claimNextTask, listTasks, queueCounts, type QueueSort } from '../src/store/review';

const log = getLogger(loadConfig(), 'bench.queue');

/** Adds open tasks up to `total` (ids continue from `from`), with samples and layer-5 risks, in one statement each. */
async function grow(pool: Pool, project: string, from: number, total: number): Promise<void> {
  const args = [project, from, total];
  await pool.query(
    `INSERT INTO samples (id, project_id, external_id, revision, content_hash, payload, batch_id, status)
     SELECT $1 || '-' || i, $1, 'ext-' || i, 1, md5(i::text), '{}'::jsonb, 'b' || (i / 1000), 'review' FROM generate_series($2::int, $3::int - 1) i`, args);
  await pool.query(
    `INSERT INTO qc_results (sample_id, layer, passed, score, findings, details)
     SELECT $1 || '-' || i, 5, false, 0.5, '[]'::jsonb, jsonb_build_object('reason', 'uncertain', 'risk', jsonb_build_object('pWrong', (hashtext(i::text) & 65535) / 65536.0))
     FROM generate_series($2::int, $3::int - 1) i`, args);
  await pool.query(
    `INSERT INTO review_tasks (sample_id, project_id, round, reason, audience, task_token, status, created_at, due_at, risk)
     SELECT $1 || '-' || i, $1, 0, 'uncertain', 'reviewers', '\\x00', 'open', now() - make_interval(mins => (hashtext('c' || i) & 8191)),
            now() + make_interval(mins => CASE WHEN i % 10 = 0 THEN -30 ELSE (hashtext('d' || i) & 4095) END), (hashtext(i::text) & 65535) / 65536.0
     FROM generate_series($2::int, $3::int - 1) i`, args);
  await pool.query('VACUUM ANALYZE review_tasks');
  await pool.query('VACUUM ANALYZE qc_results');
}

async function medianMs(fn: () => Promise<unknown>, runs = 7): Promise<number> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  times.sort((a, b) => a - b);
  return +times[Math.floor(runs / 2)]!.toFixed(2);
}

export async function queueBench(): Promise<void> {
  const stack = await startStack(loadConfig(), log, { ephemeral: true });
  const pool = createPool(stack.databaseUrl, 2);
  try {
    const project = 'queue-bench';
    await upsertProject(pool, validateProjectDefinition({ id: project, jsonSchema: { type: 'object' } }), 'bench');
    let have = 0;
    for (const size of [1_000, 10_000, 100_000]) {
      await grow(pool, project, have, size);
      have = size;
      const page = (sort: QueueSort) => () => listTasks(pool, { projects: [project], status: 'open', holder: 'rev-1', claimable: true, sort, limit: 50 });
      const first = await page('priority')();
      if (first.total !== size || first.tasks.length !== 50) throw new Error(`the queue listed ${first.tasks.length} of ${first.total}, expected 50 of ${size}`);
      const claimMs = await medianMs(async () => {
        const t = await claimNextTask(pool, [{ project, ttlSeconds: 600 }], 'rev-2');
        if (!t) throw new Error('nothing to claim');
        await pool.query('UPDATE review_tasks SET assignee = NULL, claim_expires_at = NULL WHERE id = $1', [t.id]);
      });
      console.log(JSON.stringify({
        bench: 'review.queue', openTasks: size, pageSize: 50,
        priorityPageMs: await medianMs(page('priority')), riskPageMs: await medianMs(page('risk')),
        baseline: 'the same page by oldest (index order)', baselineOldestPageMs: await medianMs(page('oldest')),
        countsMs: await medianMs(() => queueCounts(pool, { user: 'rev-1', projects: [project] })), claimNextMs: claimMs,
      }));
    }
  } finally {
    await pool.end().catch(() => undefined);
    await stack.stop();
  }
}
