import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../clients/logger';

/** Pinned so every machine runs the same servers. The Temporal CLI tag has no replace directive in go.mod. */
export const GO_PROGRAMS = {
  temporal: 'github.com/temporalio/cli/cmd/temporal@v1.5.1',
  minio: 'github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c',
  // `qcflow cluster`: the server and UI the CLI embeds (Server 1.29.1, UI 2.42.1), run on their own, and
  // the server's schema tool for its Postgres databases.
  'temporal-server': 'go.temporal.io/server/cmd/server@v1.29.1',
  'temporal-sql-tool': 'go.temporal.io/server/cmd/tools/sql@v1.29.1',
  'temporal-ui-server': 'github.com/temporalio/ui-server/v2/cmd/server@v2.42.1',
  // Validates deploy/k8s in the tests.
  kubeconform: 'github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0',
} as const;

export type ProgramName = keyof typeof GO_PROGRAMS;

export class MissingToolError extends Error {
  override name = 'MissingToolError';
}

export function onPath(name: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const found = r.stdout.trim();
  return r.status === 0 && found ? found : undefined;
}

function findGo(): string | undefined {
  return onPath('go') ?? (existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined);
}

/**
 * Finds `name` on PATH or in the cache; otherwise builds it with `go install` into the cache.
 * A first build takes minutes, so it is announced and its output streamed to the log.
 */
export async function ensureProgram(name: ProgramName, cacheDir: string, log: Logger): Promise<string> {
  const cached = path.join(cacheDir, name);
  if (existsSync(cached)) return cached;
  const fromPath = onPath(name);
  if (fromPath) return fromPath;
  const go = findGo();
  if (!go) {
    throw new MissingToolError(
      `${name} is not on PATH and Go is not installed to build it. Install Go 1.24+ (https://go.dev/doc/install, or apt-get install golang-go) ` +
        `or put a ${name} binary on PATH, then run again.`,
    );
  }
  mkdirSync(cacheDir, { recursive: true });
  // go install names a binary after its package's folder (two of these are "server"): each builds into a
  // folder of its own and is renamed into the cache.
  const buildDir = mkdtempSync(path.join(cacheDir, `.build-${name}-`));
  const built = path.join(buildDir, path.basename(GO_PROGRAMS[name].split('@')[0]!));
  log.info({ program: GO_PROGRAMS[name], into: cacheDir }, `installing ${name} with go install (first time only, takes several minutes)`);
  const started = Date.now();
  await new Promise<void>((resolve, reject) => {
    const child = spawn(go, ['install', GO_PROGRAMS[name]], {
      env: { ...process.env, GOBIN: buildDir, GOFLAGS: `${process.env.GOFLAGS ?? ''} -buildvcs=false`.trim() },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let tail = '';
    const onData = (b: Buffer): void => {
      const text = b.toString();
      tail = (tail + text).slice(-4000);
      for (const line of text.split('\n')) if (line.trim()) log.debug({ program: name }, line.trim());
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const ticker = setInterval(() => log.info({ program: name, elapsedS: Math.round((Date.now() - started) / 1000) }, `still building ${name}…`), 30_000);
    child.on('error', (err) => {
      clearInterval(ticker);
      reject(err);
    });
    child.on('close', (code) => {
      clearInterval(ticker);
      if (code === 0 && existsSync(built)) resolve();
      else reject(new MissingToolError(`go install ${GO_PROGRAMS[name]} failed (exit ${code}):\n${tail}`));
    });
  }).finally(() => {
    if (existsSync(built)) renameSync(built, cached);
    rmSync(buildDir, { recursive: true, force: true });
  });
  log.info({ program: name, path: cached, seconds: Math.round((Date.now() - started) / 1000) }, `${name} installed`);
  return cached;
}

/** Debian's PostgreSQL server binaries (initdb, pg_ctl, postgres), newest version first. */
export function findPostgresBinDir(): string | undefined {
  const fromPath = onPath('initdb');
  if (fromPath && existsSync(path.join(path.dirname(fromPath), 'postgres'))) return path.dirname(fromPath);
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const r = spawnSync('ls', [root], { encoding: 'utf8' });
  const versions = r.stdout.split('\n').filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const dir = path.join(root, v, 'bin');
    if (existsSync(path.join(dir, 'initdb')) && existsSync(path.join(dir, 'postgres'))) return dir;
  }
  return undefined;
}
