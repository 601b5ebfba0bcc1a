import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPool, withTransaction } from '../../src/clients/pg';
import { harness } from './helpers';

test('a connection Postgres drops mid-transaction fails that work only: the process lives and the pool reconnects', async () => {
  const h = await harness({ worker: false });
  const pool = createPool(h.cfg.databaseUrl!, 2);
  try {
    let pidOf: (pid: number) => void = () => undefined;
    const pid = new Promise<number>((r) => { pidOf = r; });
    // Between two statements the client has no query to fail, so the drop arrives as an 'error' event:
    // unobserved, that event ended the worker process (what a Postgres restart did to cpu workers).
    const work = withTransaction(pool, async (c) => {
      pidOf((await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid);
      await new Promise((r) => setTimeout(r, 1500));
      await c.query('SELECT 1');
    });
    await h.pool.query('SELECT pg_terminate_backend($1)', [await pid]);
    await assert.rejects(work, /terminat|Connection|ECONNRESET/i);
    // The broken client was destroyed, not pooled: both pool slots work.
    const again = await Promise.all([pool.query<{ x: number }>('SELECT 1 AS x'), pool.query<{ x: number }>('SELECT 2 AS x')]);
    assert.deepEqual(again.map((r) => r.rows[0]!.x), [1, 2]);
    assert.equal(await withTransaction(pool, async (c) => (await c.query<{ x: number }>('SELECT 3 AS x')).rows[0]!.x), 3);
  } finally {
    await pool.end();
    await h.close();
  }
});
