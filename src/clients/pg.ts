import { Pool, type PoolClient } from 'pg';

export type { Pool, PoolClient };

export function createPool(databaseUrl: string, max = 10): Pool {
  const pool = new Pool({ connectionString: databaseUrl, max, idleTimeoutMillis: 10_000, connectionTimeoutMillis: 10_000 });
  // An idle client losing its server must not crash the process; the next query reconnects.
  pool.on('error', () => undefined);
  return pool;
}

/**
 * A client checked out of the pool, for work that spans statements. While checked out, a client whose
 * server goes away (a Postgres restart) emits 'error' with no pool listener attached: unhandled, that
 * event killed the worker process. Here it is observed, the work in flight fails with the error (and its
 * activity retries), and the broken client is destroyed on release instead of returned to the pool.
 */
export async function withClient<T>(pool: Pool, fn: (c: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (err: Error): void => { broken = err; };
  client.on('error', onError);
  try {
    return await fn(client);
  } catch (err) {
    // An SQL error (a five-character SQLSTATE) leaves the connection usable; anything else may not have.
    const code = (err as { code?: unknown }).code;
    if (!(typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code))) broken ??= err instanceof Error ? err : new Error(String(err));
    throw err;
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}

export async function withTransaction<T>(pool: Pool, fn: (c: PoolClient) => Promise<T>): Promise<T> {
  return withClient(pool, async (client) => {
    await client.query('BEGIN');
    try {
      const out = await fn(client);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  });
}
