import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Pool } from 'pg';
import type { ObjectStore } from '../src/clients/minio';
import type { Logger } from '../src/clients/logger';
import { getProject } from '../src/store/projects';
import { pinnedBatchPolicy } from '../src/store/batches';
import { PolicyError, resolvePolicy, type QcPolicy } from '../src/qc/policy';
import type { ProjectDefinition } from '../src/projects/definition';

/** What activities need from the outside world; built once per worker. */
export interface ActivityDeps {
  pool: Pool;
  store: ObjectStore;
  log: Logger;
  /** Scratch space for release files before upload. */
  tmpDir: string;
  /** Where layer-3 activities go: the batch pins it with its models. */
  inferenceQueue: string;
}

/** Which batch of which project an activity works on: the input of most batch activities. */
export interface BatchKey {
  project: string;
  batchId: string;
}

/** Error type for input that no retry can fix; listed as non-retryable in every activity's retry policy. */
export const BAD_INPUT = 'BadInput';

export function badInput(message: string, details?: unknown): ApplicationFailure {
  return ApplicationFailure.create({ type: BAD_INPUT, message, nonRetryable: true, details: details === undefined ? undefined : [details] });
}

export async function requireProject(deps: ActivityDeps, id: string): Promise<ProjectDefinition> {
  const p = await getProject(deps.pool, id);
  if (!p) throw badInput(`project ${JSON.stringify(id)} does not exist; create it first with: qcflow project create --name ${id} --schema schema.json`);
  return p;
}

/** Heartbeats when running inside an activity; a no-op when called directly (scripts, tests). */
export function heartbeat(details?: unknown): void {
  try {
    Context.current().heartbeat(details);
  } catch {
    /* not in an activity context */
  }
}

export function lastHeartbeat<T>(): T | undefined {
  try {
    return Context.current().info.heartbeatDetails as T | undefined;
  } catch {
    return undefined;
  }
}

/** The project's policy, or a non-retryable error naming the bad field (a retry cannot fix a bad policy). */
export function policyOf(project: ProjectDefinition): QcPolicy {
  try {
    return resolvePolicy(project.qcPolicy);
  } catch (err) {
    if (err instanceof PolicyError) throw badInput(`project ${project.id}: ${err.message}`);
    throw err;
  }
}

/** The policy a batch is judged by: pinned when it was staged, so every layer of the batch sees the same one. */
export async function batchPolicy(deps: Pick<ActivityDeps, 'pool'>, key: BatchKey, project: ProjectDefinition): Promise<QcPolicy> {
  const current = policyOf(project);
  return (await pinnedBatchPolicy(deps.pool, key.project, key.batchId, current)) ?? current;
}
