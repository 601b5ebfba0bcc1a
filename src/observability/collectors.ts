import { temporal } from '@temporalio/proto';
import { optionalTsToMs, tsToMs } from '@temporalio/common/lib/time';
import type { WorkflowService } from '@temporalio/client';
import type { CacheStats } from '../clients/onnx-sessions';
import type { Pool } from 'pg';
import { reviewBacklog } from '../store/review';
import { scrapedGauge } from './metrics';

/** Two gauges read from one source: one read serves both within a scrape (a second). */
function oncePerScrape<T>(read: () => Promise<T>): () => Promise<T> {
  let last: { at: number; value: Promise<T> } | undefined;
  return () => {
    if (!last || Date.now() - last.at > 1000) last = { at: Date.now(), value: read() };
    return last.value;
  };
}

/** Review queue size and oldest open task's age per project, read from Postgres at scrape time. */
export function collectReviewQueue(db: Pool): void {
  const read = oncePerScrape(() => reviewBacklog(db));
  scrapedGauge('qcflow_review_queue_size', 'Open review tasks per project.', ['project'], async () =>
    (await read()).map((r) => ({ labels: { project: r.project }, value: r.open })));
  scrapedGauge('qcflow_review_oldest_age_seconds', 'Age of the oldest open review task per project.', ['project'], async () =>
    (await read()).map((r) => ({ labels: { project: r.project }, value: r.oldestSeconds })));
}

export type TaskQueueKind = 'workflow' | 'activity';

export interface TaskQueueStats {
  taskQueue: string;
  kind: TaskQueueKind;
  backlog: number;
  backlogAgeSeconds: number;
  pollers: Array<{ identity: string; lastAccessAgeSeconds: number | null }>;
}

const KINDS: Record<TaskQueueKind, temporal.api.enums.v1.TaskQueueType> = {
  workflow: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
  activity: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
};

/** A task queue's backlog and pollers as the Temporal server reports them (approximate, as the server says). */
export async function describeTaskQueue(service: WorkflowService, namespace: string, taskQueue: string, kind: TaskQueueKind): Promise<TaskQueueStats> {
  const r = await service.describeTaskQueue({ namespace, taskQueue: { name: taskQueue }, taskQueueType: KINDS[kind], reportStats: true });
  const now = Date.now() / 1000;
  return {
    taskQueue, kind,
    backlog: Number(r.stats?.approximateBacklogCount ?? 0),
    backlogAgeSeconds: (optionalTsToMs(r.stats?.approximateBacklogAge) ?? 0) / 1000,
    pollers: (r.pollers ?? []).map((p) => ({ identity: p.identity ?? '', lastAccessAgeSeconds: p.lastAccessTime ? now - tsToMs(p.lastAccessTime) / 1000 : null })),
  };
}

interface WatchedQueue { service: WorkflowService; namespace: string; taskQueue: string; kind: TaskQueueKind }
const watched = new Set<WatchedQueue>();
let backlogGauges = false;

/**
 * Backlog per task queue (what a HorizontalPodAutoscaler scales workers on) and its age, read from the
 * Temporal server at scrape time. Several workers in one process (the demo, tests) add their queues to
 * the same gauges; the returned function takes them out again.
 */
export function collectTaskQueueBacklog(service: WorkflowService, namespace: string, queues: Array<{ taskQueue: string; kind: TaskQueueKind }>): () => void {
  const added = queues.map((q) => ({ service, namespace, ...q }));
  for (const q of added) watched.add(q);
  if (!backlogGauges) {
    backlogGauges = true;
    const read = oncePerScrape(async () => {
      const stats = await Promise.all([...watched].map((q) => describeTaskQueue(q.service, q.namespace, q.taskQueue, q.kind).catch(() => undefined)));
      return stats.filter((x): x is TaskQueueStats => !!x);
    });
    scrapedGauge('qcflow_task_queue_backlog', 'Tasks waiting in a Temporal task queue (approximate, from DescribeTaskQueue).', ['task_queue', 'kind'], async () =>
      (await read()).map((s) => ({ labels: { task_queue: s.taskQueue, kind: s.kind }, value: s.backlog })));
    scrapedGauge('qcflow_task_queue_backlog_age_seconds', 'Age of the oldest task waiting in a Temporal task queue.', ['task_queue', 'kind'], async () =>
      (await read()).map((s) => ({ labels: { task_queue: s.taskQueue, kind: s.kind }, value: s.backlogAgeSeconds })));
  }
  return () => {
    for (const q of added) watched.delete(q);
  };
}

/** The onnxruntime session cache's counts (hits, misses, loads joined, evictions) and what it holds. */
export function collectSessionCache(stats: () => CacheStats): void {
  scrapedGauge('qcflow_onnx_session_cache_events', 'Session cache lookups since the worker started, by result.', ['event'], async () => {
    const s = stats();
    return (['hits', 'misses', 'coalesced', 'evictions', 'loadFailures'] as const).map((event) => ({ labels: { event }, value: s[event] }));
  });
  scrapedGauge('qcflow_onnx_sessions_loaded', 'onnxruntime sessions resident in the cache, and their ONNX bytes.', ['what'], async () => {
    const s = stats();
    return [{ labels: { what: 'sessions' }, value: s.sessions }, { labels: { what: 'bytes' }, value: s.bytes }];
  });
}
