import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Pool } from 'pg';
import { withClient } from '../clients/pg';

export const MIGRATIONS_DIR = path.resolve(__dirname, '..', '..', 'migrations');

/** Arbitrary but fixed: serialises concurrent `migrate` calls from several processes. */
const LOCK_KEY = 727_272_001;

/**
 * Applies forward-only migrations (NNN_name.sql) in order, each in its own transaction.
 * An applied file whose content changed is refused: fix forward with a new file.
 */
export async function migrate(pool: Pool, dir = MIGRATIONS_DIR): Promise<string[]> {
  const files = (await fs.readdir(dir)).filter((f) => /^\d{3}_[\w-]+\.sql$/.test(f)).sort();
  const applied: string[] = [];
  await withClient(pool, async (client) => {
    try {
      await client.query('SELECT pg_advisory_lock($1)', [LOCK_KEY]);
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        name text PRIMARY KEY, sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
      const { rows } = await client.query<{ name: string; sha256: string }>('SELECT name, sha256 FROM schema_migrations');
      const done = new Map(rows.map((r) => [r.name, r.sha256]));
      const { createHash } = await import('node:crypto');
      for (const file of files) {
        const sql = await fs.readFile(path.join(dir, file), 'utf8');
        const sha = createHash('sha256').update(sql).digest('hex');
        const prior = done.get(file);
        if (prior !== undefined) {
          if (prior !== sha) throw new Error(`migration ${file} was changed after it was applied; add a new migration instead`);
          continue;
        }
        await client.query('BEGIN');
        try {
          await client.query(sql);
          await client.query('INSERT INTO schema_migrations (name, sha256) VALUES ($1, $2)', [file, sha]);
          await client.query('COMMIT');
          applied.push(file);
        } catch (err) {
          await client.query('ROLLBACK');
          throw new Error(`migration ${file} failed: ${(err as Error).message}`);
        }
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [LOCK_KEY]).catch(() => undefined);
    }
  });
  return applied;
}
