import { chmodSync, existsSync, mkdtempSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { embeddedDatabaseUrl, minioCredentialsFile, type Config } from '../clients/config';
import type { Logger } from '../clients/logger';
import { createPool } from '../clients/pg';
import { migrate } from '../store/migrations';
import { createObjectStore, ensureBucket } from '../clients/minio';
import { freePort, portInUse, stopOnSignal, type ManagedProcess } from './process';
import { ensureProgram } from './binaries';
import { minioReady, postgresReachable, startMinio, startPostgres, startTemporal, temporalReady } from './services';

export interface Stack {
  cfg: Config;
  databaseUrl: string;
  uiUrl: string;
  /** Names of the services this process started (the rest were already running and are left alone). */
  started: string[];
  stop(): Promise<void>;
  /**
   * Crashes a service this process started and brings it back after `downMs`, on the same data: Postgres
   * by an immediate shutdown (SIGQUIT, as `pg_ctl stop -m immediate`), the others by SIGKILL. For fault
   * benchmarks and tests.
   */
  restart(service: 'postgres' | 'minio' | 'temporal', downMs?: number): Promise<void>;
}

export interface StackOptions {
  /** A throwaway stack on free ports in a temp dir, removed on stop (tests). */
  ephemeral?: boolean;
  /** false: no Temporal dev server (`qcflow cluster` runs the real server on this stack's Postgres). */
  temporal?: boolean;
}

/**
 * Brings up Temporal, MinIO and Postgres, reusing any that already answer at the configured address,
 * then applies migrations and ensures the bucket. Idempotent: running it twice starts nothing twice.
 */
export async function startStack(base: Config, log: Logger, opts: StackOptions = {}): Promise<Stack> {
  const procs: ManagedProcess[] = [];
  /** How to start each service this process started again (same options, same data). */
  const starters = new Map<string, () => Promise<unknown>>();
  let cfg: Config = base;
  let tempDir: string | undefined;
  let outsideDataDir: string | undefined;
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
  // A new state dir is private (0700): it holds the database logins, the JWT secret, MinIO's objects and
  // the Temporal history. As root the Postgres cluster then lives outside it (see postgresDataDir).
  if (!existsSync(cfg.stateDir)) mkdirSync(cfg.stateDir, { recursive: true, mode: 0o700 });
  else if (!opts.ephemeral) tightenStateDir(cfg.stateDir, log);
  const logDir = path.join(cfg.stateDir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const stopAll = async (): Promise<void> => {
    for (const p of [...procs].reverse()) await p.stop();
    procs.length = 0;
    if (tempDir) rmSync(tempDir, { recursive: true, force: true });
    // A throwaway cluster kept outside its temp dir (see postgresDataDir) goes with it.
    if (tempDir && outsideDataDir) for (const d of [outsideDataDir, `${outsideDataDir}-socket`]) rmSync(d, { recursive: true, force: true });
  };
  // Everything spawned is tracked at once, so a start that fails, times out or is interrupted stops it too.
  const ctx = { log, timeoutMs: cfg.startTimeoutMs, track: (p: ManagedProcess) => procs.push(p) };
  const releaseSignals = stopOnSignal(stopAll, log);
  try {
    const [host, portText] = cfg.temporal.address.split(':') as [string, string];
    let databaseUrl = cfg.databaseUrl ?? embeddedDatabaseUrl(cfg);
    const need = {
      postgres: !(await postgresReachable(databaseUrl)),
      minio: !(await minioReady(cfg.minio.endPoint, cfg.minio.port).catch(() => false)),
      temporal: opts.temporal !== false && !(await temporalReady(cfg.temporal.address).catch(() => false)),
    };
    if (!need.postgres) log.info({ url: redact(databaseUrl) }, 'using a PostgreSQL that is already running (left running at exit)');
    if (!need.minio) log.info({ port: cfg.minio.port }, 'using a MinIO that is already running (left running at exit)');
    if (!need.temporal && opts.temporal !== false) log.info({ address: cfg.temporal.address }, 'using a Temporal server that is already running (left running at exit)');
    // A port that answers but not as the expected server is someone else's: say so rather than start a
    // second server that cannot bind, or talk to the wrong program.
    const ports: Array<[boolean, string, string, number, string]> = [
      [need.postgres && !cfg.databaseUrl, 'PostgreSQL', '127.0.0.1', cfg.embeddedPostgresPort, 'QCFLOW_PG_PORT'],
      [need.minio, 'MinIO', cfg.minio.endPoint, cfg.minio.port, 'MINIO_PORT'],
      [need.temporal, 'Temporal', host, Number(portText), 'TEMPORAL_ADDRESS'],
    ];
    for (const [needed, what, h, port, setting] of ports) {
      if (needed && await portInUse(h, port)) {
        throw new Error(`port ${h}:${port} is in use by a program that does not answer as ${what}; stop it, or set ${setting} to a free port`);
      }
    }
    // Build missing binaries before any server starts: a server started beside a Go build on a 2-core
    // machine can take minutes to answer.
    if (need.temporal) await ensureProgram('temporal', cfg.binCacheDir, log);
    if (need.minio) await ensureProgram('minio', cfg.binCacheDir, log);

    const starts: Array<Promise<void>> = [];
    if (need.postgres) {
      if (cfg.databaseUrl) log.warn({ url: redact(cfg.databaseUrl) }, 'DATABASE_URL is not reachable; starting the embedded PostgreSQL instead');
      const pgOptions = { port: cfg.embeddedPostgresPort, stateDir: cfg.stateDir, logDir, fast: !!opts.ephemeral };
      starters.set('postgres', () => startPostgres(pgOptions, ctx));
      starts.push(startPostgres(pgOptions, ctx).then((pg) => {
        databaseUrl = pg.url;
        if (pg.dataDir !== path.join(cfg.stateDir, 'postgres')) outsideDataDir = pg.dataDir;
      }));
    }
    if (need.minio) {
      // A data dir gets its own root keys unless the environment names some (see minioCredentialsFile); one
      // from before that, on the fixed default keys anyone could read in the source, gets new ones now
      // (MinIO takes new root keys at a restart and keeps its objects).
      const ownKeys = !process.env.MINIO_ACCESS_KEY && !process.env.MINIO_SECRET_KEY && !existsSync(minioCredentialsFile(cfg.stateDir));
      if (ownKeys) {
        if (existsSync(path.join(cfg.stateDir, 'minio'))) log.warn({ stateDir: cfg.stateDir }, 'this MinIO data dir still uses the default root keys; generating its own');
        const keys = { accessKey: `qcflow-${randomBytes(4).toString('hex')}`, secretKey: randomBytes(24).toString('base64url') };
        writeFileSync(minioCredentialsFile(cfg.stateDir), JSON.stringify(keys), { mode: 0o600 });
        cfg = { ...cfg, minio: { ...cfg.minio, ...keys } };
      }
      const minioOptions = {
        host: cfg.minio.endPoint, port: cfg.minio.port, consolePort: cfg.minio.consolePort,
        dataDir: path.join(cfg.stateDir, 'minio'), accessKey: cfg.minio.accessKey, secretKey: cfg.minio.secretKey,
        binCacheDir: cfg.binCacheDir, logDir,
      };
      starters.set('minio', () => startMinio(minioOptions, ctx));
      starts.push(startMinio(minioOptions, ctx).then(() => undefined));
    }
    if (need.temporal) {
      const temporalOptions = {
        host, port: Number(portText), uiPort: cfg.temporal.uiPort, namespace: cfg.temporal.namespace,
        dbFile: opts.ephemeral ? undefined : path.join(cfg.stateDir, 'temporal.sqlite'),
        binCacheDir: cfg.binCacheDir, logDir,
      };
      starters.set('temporal', () => startTemporal(temporalOptions, ctx));
      starts.push(startTemporal(temporalOptions, ctx).then(() => undefined));
    }

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
    releaseSignals();
    return {
      cfg,
      databaseUrl,
      uiUrl: `http://${host}:${cfg.temporal.uiPort}`,
      started: procs.map((p) => p.name),
      stop: stopAll,
      async restart(service, downMs = 0) {
        const proc = procs.find((p) => p.name === service);
        const start = starters.get(service);
        if (!proc || !start) throw new Error(`${service} was not started by this process; restart it where it runs`);
        log.warn({ service, downMs }, 'crashing a service on purpose');
        await proc.kill(service === 'postgres' ? 'SIGQUIT' : 'SIGKILL');
        procs.splice(procs.indexOf(proc), 1);
        await new Promise((r) => setTimeout(r, downMs));
        await start();
        log.info({ service }, 'service back');
      },
    };
  } catch (err) {
    await stopAll();
    releaseSignals();
    throw err;
  }
}


/**
 * A state dir from before they were made private (0755, its Temporal history, MinIO objects and logs
 * world-readable) is closed to other users: 0700, or — as root with the Postgres cluster inside, which the
 * postgres user must reach — 0711 with everything in it but the cluster closed.
 */
export function tightenStateDir(stateDir: string, log: Logger): void {
  const st = statSync(stateDir);
  if ((st.mode & 0o077) === 0 || st.uid !== process.getuid?.()) return;
  const clusterInside = process.getuid?.() === 0 && existsSync(path.join(stateDir, 'postgres', 'PG_VERSION'));
  if (!clusterInside) {
    chmodSync(stateDir, 0o700);
  } else {
    chmodSync(stateDir, 0o711);
    for (const name of readdirSync(stateDir)) {
      if (name === 'postgres' || name === 'postgres-socket') continue;
      const p = path.join(stateDir, name);
      chmodSync(p, statSync(p).isDirectory() ? 0o700 : 0o600);
    }
  }
  log.warn({ stateDir, mode: clusterInside ? '0711 (the cluster inside stays reachable by postgres)' : '0700' }, 'the state dir was readable by other users; closed it');
}

export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}
