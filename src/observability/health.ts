import type { Pool } from 'pg';
import type { WorkflowService } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import type { ObjectStore } from '../clients/minio';
import { describeTaskQueue } from './collectors';
import { ping } from '../store/database-admin';

/** What one process can reach and, for a worker, whether it is polling its task queue. */
export interface HealthSources {
  pool?: Pool;
  store?: ObjectStore;
  temporal?: { service: WorkflowService; namespace: string };
  worker?: { worker: Worker; taskQueue: string; kind: 'workflow' | 'activity' };
}

export interface Check {
  ok: boolean;
  ms: number;
  error?: string;
  [k: string]: unknown;
}

export interface HealthReport {
  ok: boolean;
  checks: Record<string, Check>;
}

const TIMEOUT_MS = 2000;

async function timed(fn: () => Promise<Record<string, unknown> | void>): Promise<Check> {
  const t0 = Date.now();
  try {
    const extra = await Promise.race([
      fn(),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS).unref()),
    ]);
    return { ok: true, ms: Date.now() - t0, ...(extra ?? {}) };
  } catch (err) {
    return { ok: false, ms: Date.now() - t0, error: (err as Error).message.split('\n')[0] };
  }
}

/**
 * Readiness: Postgres, MinIO and Temporal answer, and a worker is running and the server sees it polling
 * its task queue. Each check reports its own error, so a failed probe says which dependency to look at.
 */
export async function checkHealth(s: HealthSources): Promise<HealthReport> {
  const checks: Record<string, Promise<Check>> = {};
  if (s.pool) { const pool = s.pool; checks.postgres = timed(() => ping(pool)); }
  if (s.store) {
    const store = s.store;
    checks.minio = timed(async () => {
      if (!(await store.client.bucketExists(store.bucket))) throw new Error(`bucket ${store.bucket} does not exist; run qcflow migrate or start the stack once`);
    });
  }
  if (s.temporal) { const t = s.temporal; checks.temporal = timed(async () => { await t.service.getSystemInfo({}); }); }
  if (s.worker && s.temporal) {
    const { worker, taskQueue, kind } = s.worker;
    const t = s.temporal;
    checks.worker = timed(async () => {
      const status = worker.getStatus();
      if (status.runState !== 'RUNNING') throw new Error(`worker is ${status.runState}`);
      const q = await describeTaskQueue(t.service, t.namespace, taskQueue, kind);
      const identity = worker.options.identity;
      const me = q.pollers.find((p) => p.identity === identity);
      // The server forgets pollers after about five minutes of silence; a worker with free slots polls continuously.
      return {
        taskQueue, identity, inFlightActivities: status.numInFlightActivities, inFlightWorkflowActivations: status.numInFlightWorkflowActivations,
        lastPollAgeSeconds: me?.lastAccessAgeSeconds ?? null, pollers: q.pollers.length, backlog: q.backlog,
      };
    });
  }
  const entries = await Promise.all(Object.entries(checks).map(async ([k, v]) => [k, await v] as const));
  return { ok: entries.every(([, c]) => c.ok), checks: Object.fromEntries(entries) };
}
