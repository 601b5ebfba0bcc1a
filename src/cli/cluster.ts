import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Config } from '../clients/config';
import type { Logger } from '../clients/logger';
import { startCluster } from '../infra/cluster';
import { CliError } from './input';
import { waitForInterrupt } from './demo';

/** What `cluster up` leaves for `cluster status` and `cluster down`: who owns the cluster and where each process answers. */
interface ClusterFile {
  pid: number;
  temporal: string;
  ui: string;
  review: string;
  logs: string;
  processes: Array<{ name: string; pid: number | undefined; metrics?: string }>;
}

const fileOf = (cfg: Config): string => path.join(cfg.stateDir, 'cluster.json');

function readClusterFile(cfg: Config): ClusterFile | undefined {
  const f = fileOf(cfg);
  if (!existsSync(f)) return undefined;
  const c = JSON.parse(readFileSync(f, 'utf8')) as ClusterFile;
  try {
    process.kill(c.pid, 0);
    return c;
  } catch {
    rmSync(f, { force: true }); // its owner is gone
    return undefined;
  }
}

/** Starts the cluster and holds it until Ctrl-C or `qcflow cluster down`. */
export async function clusterUp(cfg: Config, log: Logger, cpuWorkers: number): Promise<void> {
  const running = readClusterFile(cfg);
  if (running) throw new CliError(`a cluster is already running (pid ${running.pid}); see qcflow cluster status, or stop it with qcflow cluster down`);
  const c = await startCluster(cfg, log, { cpuWorkers });
  const info: ClusterFile = {
    pid: process.pid, temporal: c.cfg.temporal.address, ui: c.uiUrl, review: c.reviewUrl, logs: c.logDir,
    processes: c.members.map((m) => ({ name: m.name, pid: m.proc.child.pid, metrics: m.metricsUrl })),
  };
  writeFileSync(fileOf(cfg), JSON.stringify(info, null, 2), { mode: 0o600 });
  process.stdout.write(`qcflow cluster is up (Temporal server on Postgres, ${cpuWorkers} qc-cpu workers)\n${formatCluster(info)}press Ctrl-C or run qcflow cluster down to stop\n`);
  await waitForInterrupt(log, c);
  rmSync(fileOf(cfg), { force: true });
}

export async function clusterDown(cfg: Config): Promise<string> {
  const c = readClusterFile(cfg);
  if (!c) return 'no cluster is running\n';
  process.kill(c.pid, 'SIGTERM');
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    try {
      process.kill(c.pid, 0);
    } catch {
      return 'cluster stopped\n';
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new CliError(`the cluster's owner (pid ${c.pid}) did not stop within 120 s; its logs are in ${c.logs}`);
}

function formatCluster(c: ClusterFile): string {
  return [
    `  Temporal:    ${c.temporal}`, `  Temporal UI: ${c.ui}`, `  Review:      ${c.review}`, `  Logs:        ${c.logs}`,
    ...c.processes.map((p) => `  ${p.name.padEnd(16)} pid ${String(p.pid ?? '-').padEnd(8)} ${p.metrics ? `${p.metrics}/metrics` : ''}`),
  ].join('\n') + '\n';
}

/** Each process's /health, one line each. */
export async function clusterStatus(cfg: Config): Promise<string> {
  const c = readClusterFile(cfg);
  if (!c) return 'no cluster is running (start one with qcflow cluster up)\n';
  const lines = await Promise.all(c.processes.filter((p) => p.metrics && p.name !== 'temporal-server').map(async (p) => {
    const h = await fetch(`${p.metrics}/health`, { signal: AbortSignal.timeout(3000) })
      .then(async (r) => (await r.json()) as { ok: boolean; checks: Record<string, { ok: boolean; error?: string }> })
      .catch((err: unknown) => ({ ok: false, checks: { process: { ok: false, error: (err as Error).message } } }));
    const failed = Object.entries(h.checks).filter(([, v]) => !v.ok).map(([k, v]) => `${k}: ${v.error ?? 'failed'}`);
    return `  ${p.name.padEnd(16)} ${h.ok ? 'healthy' : `UNHEALTHY  ${failed.join('; ')}`}`;
  }));
  return formatCluster(c) + lines.join('\n') + '\n';
}
