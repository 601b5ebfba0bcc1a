import { loadConfig } from '../clients/config';
import { getLogger } from '../clients/logger';
import { migrate } from '../store/migrations';
import { createObjectStore, ensureBucket } from '../clients/minio';
import { createPool } from '../clients/pg';

/** Applies migrations and ensures the bucket against external services (docker-compose, production). */
async function main(): Promise<void> {
  const cfg = loadConfig();
  const log = getLogger(cfg, 'migrate');
  if (!cfg.databaseUrl) throw new Error('DATABASE_URL must be set');
  const pool = createPool(cfg.databaseUrl, 1);
  try {
    log.info({ applied: await migrate(pool) }, 'migrations applied');
  } finally {
    await pool.end();
  }
  await ensureBucket(createObjectStore(cfg.minio));
}

main().catch((err: unknown) => {
  process.stderr.write(`migrate: ${(err as Error).message}\n`);
  process.exit(1);
});
