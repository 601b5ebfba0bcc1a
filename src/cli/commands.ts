import { SingleBar, Presets } from 'cli-progress';
import type { Client } from '@temporalio/client';
import { failureMessage } from '../util/errors';
import type { Config } from '../clients/config';
import { createObjectStore, type ObjectStore } from '../clients/minio';
import { createPool, type Pool } from '../clients/pg';
import { createTemporalClient } from '../clients/temporal';
import { validateProjectDefinition } from '../projects/definition';
import { countReleasable, dispositionReasons, nextReleaseVersion, projectStatus, recentBatches, upsertProject, getProject } from '../store/projects';
import { malformedLines } from '../store/batches';
import { latestWindow, openAlerts } from '../store/quality';
import { STREAM } from '../qc/decay';
import { listResamples, type ResampleRequest } from '../store/resamples';
import { reviewSummary } from '../store/review';
import { age } from '../http/html';
import { datasetRelease } from '../../workflows';
import { intakeStatsQuery, workflowIds, type BatchCounts, type IntakeStats, type ReleaseSummary } from '../../workflows/definitions';
import { releaseMetadata } from '../../workflows/metadata';
import { resolveJwtSecret, tokenVerifier } from '../http/auth';
import type { Actor } from '../review/decisions';
import { ingestFile, type IngestProgress, type IngestResult } from './ingest';
import { ping } from '../store/database-admin';
import { CliError, readJsonFile } from './input';

/** Clients for commands that talk to a running stack; the error says how to start one. */
export interface Services {
  cfg: Config;
  pool: Pool;
  store: ObjectStore;
  client: Client;
  close(): Promise<void>;
}

export async function connectServices(cfg: Config): Promise<Services> {
  if (!cfg.databaseUrl) throw new CliError('DATABASE_URL is not set and no stack is running: start one with `qcflow dev` (or `npm run demo -- --keep`)');
  const pool = createPool(cfg.databaseUrl, 4);
  try {
    await ping(pool);
  } catch (err) {
    await pool.end();
    throw new CliError(`cannot reach Postgres (${(err as Error).message}); start the stack with \`qcflow dev\` or fix DATABASE_URL`);
  }
  let temporal;
  try {
    temporal = await createTemporalClient(cfg);
  } catch (err) {
    await pool.end();
    throw new CliError(`cannot reach Temporal at ${cfg.temporal.address} (${(err as Error).message}); start the stack with \`qcflow dev\``);
  }
  return {
    cfg, pool, store: createObjectStore(cfg.minio), client: temporal.client,
    async close() {
      await temporal.connection.close();
      await pool.end();
    },
  };
}

/** Who a CLI change is recorded as in audit and event logs: the shell's user. */
export const cliActor = (): string => process.env.USER ?? 'cli';

/**
 * Who the CLI is in the model registry. With QCFLOW_TOKEN holding a token that has a registry role, the
 * token's principal, limited to its tenant and role exactly as the API limits it; otherwise the operator
 * (registry admin of every tenant). The CLI reaches Postgres itself, so this is a guard against acting on
 * the wrong tenant, not a security boundary: that is the API (src/http/models-api.ts).
 */
export function cliRegistryActor(cfg: Config): Actor {
  const token = process.env.QCFLOW_TOKEN;
  if (token) {
    let actor: Actor;
    try {
      actor = tokenVerifier(resolveJwtSecret(cfg))(token);
    } catch (err) {
      throw new CliError(`QCFLOW_TOKEN: ${(err as Error).message}`);
    }
    // A reviewer's token (no registry role) is for the review commands; it does not limit the operator here.
    if (actor.modelRole) return actor;
  }
  return { user: cliActor(), role: 'admin', modelRole: 'admin' };
}

export async function createProject(s: Services, o: { name: string; schema: string; rules?: string; ontology?: string; policy?: string }): Promise<void> {
  const def = validateProjectDefinition({
    id: o.name,
    jsonSchema: readJsonFile(o.schema, 'schema'),
    regexRules: o.rules ? readJsonFile(o.rules, 'rules') : [],
    ontology: o.ontology ? readJsonFile(o.ontology, 'ontology') : {},
    qcPolicy: o.policy ? readJsonFile(o.policy, 'policy') : {},
  });
  await upsertProject(s.pool, def, cliActor());
}

/** On stderr; redrawn on a terminal, printed every 2 s otherwise (CI, pipes). */
const BAR_OPTIONS = { noTTYOutput: true, notTTYSchedule: 2000, stream: process.stderr };

/** A status line that rewrites itself on a terminal and prints every 2 s otherwise (CI, pipes). */
export function statusLine(label: string): { update(text: string): void; stop(): void } {
  const bar = new SingleBar({ ...BAR_OPTIONS, format: `${label} {text}`, hideCursor: true });
  let started = false;
  return {
    update(text) {
      if (!started) { bar.start(1, 0, { text }); started = true; } else bar.update(0, { text });
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}

/** A progress bar on a terminal, periodic log lines otherwise (CI, pipes). */
export function progressReporter(label: string): { update(p: IngestProgress): void; stop(): void } {
  const bar = new SingleBar({
    ...BAR_OPTIONS,
    format: `${label} {phase} [{bar}] {percentage}% | {value}/{total} {unit} | accepted {accepted} rejected {rejected} dup {duplicates}`,
  }, Presets.shades_classic);
  let started = false;
  let phase = '';
  return {
    update(p) {
      const payload = { phase: p.phase, unit: p.phase === 'staging' ? 'bytes' : 'batches', accepted: p.counts?.accepted ?? 0, rejected: p.counts?.rejected ?? 0, duplicates: p.counts?.duplicates ?? 0 };
      if (!started || phase !== p.phase) {
        if (started) bar.stop();
        bar.start(p.total, p.done, payload);
        started = true;
        phase = p.phase;
      } else bar.update(p.done, payload);
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

export async function ingest(s: Services, o: { project: string; file: string; batchSize: number; wait: boolean; progress: boolean }): Promise<IngestResult> {
  if (!(await getProject(s.pool, o.project))) throw new CliError(`project ${o.project} does not exist; create it with: qcflow project create --name ${o.project} --schema schema.json`);
  const reporter = o.progress ? progressReporter(o.project) : undefined;
  try {
    return await ingestFile(s.cfg, s.client, s.store, { ...o, onProgress: reporter?.update });
  } finally {
    reporter?.stop();
  }
}

export async function release(s: Services, o: { project: string; version?: string }): Promise<ReleaseSummary> {
  if (!(await getProject(s.pool, o.project))) throw new CliError(`project ${o.project} does not exist`);
  if (!o.version && (await countReleasable(s.pool, o.project)) === 0) {
    throw new CliError(`project ${o.project} has no accepted, unreleased samples; ingest and QC some first (qcflow ingest), then release`);
  }
  const version = o.version ?? (await nextReleaseVersion(s.pool, o.project));
  try {
    return await s.client.workflow.execute(datasetRelease, {
      workflowId: workflowIds.release(o.project, version),
      taskQueue: s.cfg.taskQueues.cpu,
      args: [{ project: o.project, version }],
      ...releaseMetadata(o.project, version),
    });
  } catch (err) {
    throw new CliError(`release ${o.project}/${version} failed: ${failureMessage(err)}`);
  }
}

export async function intakeStats(s: Services, project: string): Promise<IntakeStats | undefined> {
  try {
    return await s.client.workflow.getHandle(workflowIds.intake(project)).query(intakeStatsQuery);
  } catch {
    return undefined;
  }
}

export function formatCounts(c: Partial<BatchCounts> & Record<string, number | undefined>): string {
  return Object.entries(c).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`).join(' ');
}

export async function status(s: Services, project?: string): Promise<string> {
  const rows = await projectStatus(s.pool, project);
  if (rows.length === 0) return project ? `no project ${project}` : 'no projects yet: qcflow project create --name NAME --schema schema.json';
  const out: string[] = [];
  for (const r of rows) {
    out.push(`project ${r.project}`);
    out.push(`  samples   ${formatCounts(r.counts) || '(none)'}  malformed-lines=${r.rejectedLines}`);
    const refused = await malformedLines(s.pool, r.project, { limit: 5 });
    for (const l of refused.lines) out.push(`  malformed batch ${l.batchId} line ${l.lineNo}${l.externalId ? ` (${l.externalId})` : ''}: ${l.reason}`);
    if (refused.total > refused.lines.length) out.push(`  malformed … ${refused.total - refused.lines.length} more: GET /api/projects/${r.project}/malformed-lines on the review server`);
    const st = await intakeStats(s, r.project);
    if (st) out.push(`  intake    running=${st.running} queued=${st.queued} completed=${st.completed} failed=${st.failed} duplicate-batches=${st.duplicateBatches} generation=${st.generation}`);
    for (const e of st?.recentErrors ?? []) out.push(`  error     ${e}`);
    const reasons = await dispositionReasons(s.pool, r.project);
    if (Object.keys(reasons).length) out.push(`  reasons   ${formatCounts(reasons)}`);
    const rv = await reviewSummary(s.pool, r.project);
    if (rv.open) out.push(`  review    ${rv.open} open task(s), oldest ${age(rv.oldest!.toISOString())}, ${rv.overdue} overdue, ${rv.unassigned} unassigned: qcflow review list --project ${r.project}`);
    const open = await listResamples(s.pool, { project: r.project, limit: 0 });
    if (open.total) out.push(`  resample  ${open.total} request(s): qcflow resamples --project ${r.project}`);
    const stream = await latestWindow(s.pool, r.project, STREAM);
    if (stream) {
      const w = stream.summary;
      const ks = w.ks ? ` ks-D=${fmt(w.ks.d)} p=${w.ks.p.toExponential(2)} (${w.ks.method}, ${w.ks.n} recent vs ${w.ks.m} reference scores)` : ` (${w.note ?? 'no layer-3 scores to compare'})`;
      out.push(`  stability ${fmt(w.stability)}${ks} after batch ${stream.batchId}`);
    }
    for (const a of await openAlerts(s.pool, r.project)) {
      const slope = a.slope === null ? '' : ` trend ${a.slope >= 0 ? '+' : ''}${a.slope.toFixed(4)}/batch`;
      out.push(`  alert     ${a.subject === STREAM ? 'stream' : `annotator ${a.subject}`} ${a.metric} ${fmt(a.shortValue)} recent vs ${fmt(a.referenceValue)} reference (worse by ${fmt(a.delta)} > ${a.threshold})${slope} since batch ${a.openedBatch}`);
    }
    for (const b of await recentBatches(s.pool, r.project, 5)) {
      const ag = b.agreement;
      const stats = ag ? ` kappa=${fmt(ag.fleissKappa)} alpha=${fmt(ag.krippendorffAlpha)} conflicts=${ag.conflicts}` : '';
      out.push(`  batch     ${b.batchId} ${b.status}${stats} ${formatCounts(b.counts)}`);
      for (const f of b.findings) out.push(`    finding ${f.source} ${f.rule}: ${f.message}`);
    }
    for (const rel of r.releases) out.push(`  release   ${rel.version} ${rel.status} samples=${rel.sampleCount} ${rel.manifestKey ?? ''}`);
  }
  return out.join('\n');
}

const fmt = (x: number | null): string => (x === null ? 'n/a' : x.toFixed(3));

export async function resamples(s: Services, o: { project: string; batch?: string; limit: number }): Promise<{ total: number; items: ResampleRequest[] }> {
  if (!(await getProject(s.pool, o.project))) throw new CliError(`project ${o.project} does not exist`);
  return listResamples(s.pool, { project: o.project, batchId: o.batch, limit: o.limit });
}

export function formatResamples(r: { total: number; items: ResampleRequest[] }): string {
  const lines = r.items.map((x) => `${x.externalId}\t${x.batchId}\t${x.notifiedAt ? 'notified' : 'pending'}\t${x.reasons.join('; ')}`);
  return [`${r.total} resample request(s)${r.items.length < r.total ? `, newest ${r.items.length} shown` : ''}`, ...lines].join('\n');
}
