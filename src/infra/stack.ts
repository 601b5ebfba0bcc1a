import { chmodSync, mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { embeddedDatabaseUrl, type Config } from '../clients/config';
import type { Logger } from '../clients/logger';
import { createPool } from '../clients/pg';
import { migrate } from '../clients/migrate';
import { createObjectStore, ensureBucket } from '../clients/minio';
import { freePort, type ManagedProcess } from './process';
import { minioReady, postgresReachable, startMinio, startPostgres, startTemporal, temporalReady } from './services';

export interface Stack {
  cfg: Config;
  databaseUrl: string;
  uiUrl: string;
  /** Names of the services this process started (the rest were already running and are left alone). */
  started: string[];
  stop(): Promise<void>;
}

export interface StackOptions {
  /** A throwaway stack on free ports in a temp dir, removed on stop (tests). */
  ephemeral?: boolean;
}

/**
 * Brings up Temporal, MinIO and Postgres, reusing any that already answer at the configured address,
 * then applies migrations and ensures the bucket. Idempotent: running it twice starts nothing twice.
 */
export async function startStack(base: Config, log: Logger, opts: StackOptions = {}): Promise<Stack> {
  const procs: ManagedProcess[] = [];
  let cfg: Config = base;
  let tempDir: string | undefined;
  if (opts.ephemeral) {
    tempDir = mkdtempSync(path.join(os.tmpdir(), 'qcflow-stack-'));
    // mkdtemp is 0700; the postgres user (when we are root) must be able to reach its data dir inside.
    chmodSync(tempDir, 0o755);
    cfg = {
      ...base,
      stateDir: tempDir,
      databaseUrl: undefined,
      embeddedPostgresPort: await freePort(),
      temporal: { ...base.temporal, address: `127.0.0.1:${await freePort()}`, uiPort: await freePort() },
      minio: { ...base.minio, endPoint: '127.0.0.1', port: await freePort(), consolePort: await freePort() },
    };
  }
  const logDir = path.join(cfg.stateDir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const stopAll = async (): Promise<void> => {
    for (const p of [...procs].reverse()) await p.stop();
    if (tempDir) rmSync(tempDir, { recursive: true, force: true });
  };
  try {
    const [host, portText] = cfg.temporal.address.split(':') as [string, string];
    const starts: Array<Promise<void>> = [];

    // Postgres: DATABASE_URL when reachable, else the embedded cluster.
    let databaseUrl = cfg.databaseUrl ?? embeddedDatabaseUrl(cfg);
    starts.push((async () => {
      if (await postgresReachable(databaseUrl)) {
        log.info({ url: redact(databaseUrl) }, 'using running PostgreSQL');
        return;
      }
      if (cfg.databaseUrl) log.warn({ url: redact(cfg.databaseUrl) }, 'DATABASE_URL is not reachable; starting the embedded PostgreSQL instead');
      const pg = await startPostgres({ port: cfg.embeddedPostgresPort, dataDir: path.join(cfg.stateDir, 'postgres'), logDir, fast: !!opts.ephemeral }, log);
      procs.push(pg.proc);
      databaseUrl = pg.url;
    })());

    starts.push((async () => {
      if (await minioReady(cfg.minio.endPoint, cfg.minio.port).catch(() => false)) {
        log.info({ port: cfg.minio.port }, 'using running MinIO');
        return;
      }
      procs.push(await startMinio({
        host: cfg.minio.endPoint, port: cfg.minio.port, consolePort: cfg.minio.consolePort,
        dataDir: path.join(cfg.stateDir, 'minio'), accessKey: cfg.minio.accessKey, secretKey: cfg.minio.secretKey,
        binCacheDir: cfg.binCacheDir, logDir,
      }, log));
    })());

    starts.push((async () => {
      if (await temporalReady(cfg.temporal.address).catch(() => false)) {
        log.info({ address: cfg.temporal.address }, 'using running Temporal server');
        return;
      }
      procs.push(await startTemporal({
        host, port: Number(portText), uiPort: cfg.temporal.uiPort, namespace: cfg.temporal.namespace,
        dbFile: opts.ephemeral ? undefined : path.join(cfg.stateDir, 'temporal.sqlite'),
        binCacheDir: cfg.binCacheDir, logDir,
      }, log));
    })());

    const results = await Promise.allSettled(starts);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;

    const pool = createPool(databaseUrl, 2);
    try {
      const applied = await migrate(pool);
      if (applied.length) log.info({ applied }, 'applied migrations');
    } finally {
      await pool.end();
    }
    await ensureBucket(createObjectStore(cfg.minio));
    cfg = { ...cfg, databaseUrl };
    return {
      cfg,
      databaseUrl,
      uiUrl: `http://${host}:${cfg.temporal.uiPort}`,
      started: procs.map((p) => p.name),
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}
