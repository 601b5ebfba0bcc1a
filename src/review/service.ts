import { ActivityNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import type { Pool } from 'pg';
import type { Logger } from '../clients/logger';
import type { ObjectStore } from '../clients/minio';
import type { Labels } from '../ingest/envelope';
import type { Finding } from '../qc/findings';
import type { Consensus } from '../qc/consistency';
import { resolvePolicy, type QcPolicy } from '../qc/policy';
import { getProject, projectIds } from '../store/projects';
import { malformedLines, type MalformedLine } from '../store/batches';
import { sampleForReview, sampleRecord } from '../store/samples';
import {
  abortDecision, beginDecision, calibrationRows, claimNextTask, claimTask, decidedSince, decisionRecord, decisionsPerDay, getTask, laterRound, listMembers,
  listTasks, openTaskAges, precisionRows, projectsOf, queueCounts, recentDecisions, removeMember, setMember,
  type MemberRole, type QueueCounts, type QueueFilter, type QueueSort, type QueueTask, type RecentDecision,
} from '../store/review';
import { denyClaim, denyDecide, denyManage, denyView, type Membership } from './access';
import { checkCorrection, consensusAsLabels } from './correction';
import { describeFindings } from '../qc/findings';
import { DECISIONS, type Actor, type DecisionInput, type ReviewDecisionRef, type ReviewTask } from './decisions';
import { qcPrecision, type PrecisionReport } from './precision';
import { servedTypeOf } from '../ingest/keys';
import type { Ontology } from '../projects/ontology';
import { annotatorAccuracies } from '../store/reliability';
import { latestWindow, openAlerts, projectBuckets, type DecayAlert } from '../store/quality';
import { ageBands, qualityHeatmap, streamSeries, type QualityHeatmap } from '../qc/dashboard';
import { STREAM, type SubjectSummary } from '../qc/decay';
import { undoDecisionUpdate, workflowIds } from '../../workflows/definitions';

/** A refused request: `status` is the HTTP status, `message` says what to do; `findings` name fields for 422. */
export class ReviewError extends Error {
  override name = 'ReviewError';
  constructor(readonly status: 400 | 403 | 404 | 409 | 422 | 503, message: string, readonly findings?: Finding[]) {
    super(message);
  }
}

export interface LayerResult {
  layer: number;
  passed: boolean;
  score: number | null;
  findings: Finding[];
  details: Record<string, unknown>;
  modelVersion: string | null;
}

/** Everything a reviewer needs to decide: the sample, each annotation, every layer's findings. */
export interface TaskDetail {
  task: ReviewTask;
  sample: { id: string; externalId: string; payload: Record<string, unknown>; media: Array<{ key: string; url: string }> };
  annotations: Array<{ annotator: string; labels: Labels }>;
  layers: LayerResult[];
  /** Layer 2's consensus as labels: what `approve` keeps (with `dontCareRegions`), and the starting point of a correction. */
  consensus: Labels | null;
  /** Consensus boxes that approve releases as don't-care regions (`splitObjects: dontCare`); not in `consensus`. */
  dontCareRegions: Array<{ x: number; y: number; w: number; h: number; class: string }>;
  /** What the actor may do with the task now. */
  can: { decide: boolean; claim: boolean };
  /** The project's ontology: what the label editor offers. */
  ontology: Ontology;
  /** Each annotator's estimated accuracy in the project; absent for one without a record yet. */
  reliability: Record<string, number>;
  /** A decided task's record: the labels a correction set, and why a correction did not take effect. */
  record?: { labels: Labels | null; refused?: string };
}

export interface DecisionResult {
  taskId: string;
  /** `decided`: this request decided the task; `already_decided`: it had been, and nothing changed. */
  result: 'decided' | 'already_decided';
  decision: string;
  decidedBy: string;
  message: string;
}

const MEDIA_URL_TTL_SECONDS = 15 * 60;
/** The newest layer-4 buckets a dashboard reads: enough for weeks of batches, bounded whatever the history. */
const DASHBOARD_BUCKETS = 5000;

export interface ProjectDashboard {
  project: string;
  heatmap: QualityHeatmap;
  stream: ReturnType<typeof streamSeries>;
  streamWindow: SubjectSummary | null;
  alerts: DecayAlert[];
  /** Open tasks per AGE_BANDS band. */
  openAges: number[];
  throughput: Array<{ day: string; n: number }>;
  precision: PrecisionReport;
}

export interface QueueQuery {
  project?: string;
  filter?: QueueFilter;
  sort?: QueueSort;
  limit?: number;
  offset?: number;
}

/**
 * Review operations shared by the web page, the JSON API and (through the API) the CLI: one place for
 * the access rules, so every surface refuses the same things with the same message.
 */
export class ReviewService {
  constructor(private readonly d: { pool: Pool; store: ObjectStore; temporal: Client; log: Logger; now?: () => Date }) {}

  private now(): Date {
    return this.d.now?.() ?? new Date();
  }

  private async membership(actor: Actor): Promise<Membership> {
    return actor.role === 'reviewer' ? projectsOf(this.d.pool, actor.user) : new Map();
  }

  private async load(actor: Actor, id: string): Promise<{ task: ReviewTask; member: Membership }> {
    const task = await getTask(this.d.pool, id);
    if (!task) throw new ReviewError(404, `review task ${id} does not exist`);
    const member = await this.membership(actor);
    const denied = denyView(actor, task, member, this.now());
    if (denied) throw new ReviewError(403, denied);
    return { task, member };
  }

  /**
   * A queue page: for a reviewer, the tasks they hold, then those they may claim, in their projects; for
   * operators and admins, all active tasks. Narrowed by `filter`, ordered by `sort` (default: priority,
   * the order "Start reviewing" takes them in), with the counts a reviewer tracks progress by.
   */
  async queue(actor: Actor, o: QueueQuery = {}): Promise<{ tasks: QueueTask[]; total: number; counts: QueueCounts; projects: string[] }> {
    const limit = Math.min(Math.max(o.limit ?? 100, 1), 1000);
    const page = { filter: o.filter, sort: o.sort ?? 'priority', limit, offset: Math.max(o.offset ?? 0, 0) };
    if (actor.role !== 'reviewer') {
      const { tasks, total } = await listTasks(this.d.pool, { project: o.project, status: 'active', ...page });
      return { tasks, total, counts: await queueCounts(this.d.pool, { user: actor.user, projects: o.project ? [o.project] : undefined }), projects: await projectIds(this.d.pool) };
    }
    const member = await this.membership(actor);
    const projects = [...member.keys()].filter((p) => !o.project || p === o.project);
    const { tasks, total } = await listTasks(this.d.pool, { projects, status: 'active', holder: actor.user, claimable: true, ...page });
    return { tasks, total, counts: await queueCounts(this.d.pool, { user: actor.user, projects }), projects: [...member.keys()].sort() };
  }

  async detail(actor: Actor, id: string): Promise<TaskDetail> {
    const { task, member } = await this.load(actor, id);
    const s = (await sampleForReview(this.d.pool, task.sampleId))!;
    const keys = s.media.flatMap((m) => ('key' in m ? [m.key] : []));
    // Served as a download of a known media type, whatever type the object was stored with: opened on its
    // own, it is never rendered as a page (an <img> still shows it).
    const media = await Promise.all(keys.map(async (key) => ({
      key,
      url: await this.d.store.client.presignedGetObject(this.d.store.bucket, key, MEDIA_URL_TTL_SECONDS, {
        'response-content-type': servedTypeOf(key), 'response-content-disposition': 'attachment',
      }),
    })));
    const l2 = s.layers.find((l) => l.layer === 2);
    // Layer 2 wrote this shape (ConsistencyResult.consensus, or a correction's labelsAsConsensus).
    const l2Consensus = l2?.details?.consensus as Consensus | undefined;
    const now = this.now();
    const project = await getProject(this.d.pool, task.project);
    const decided = task.status === 'decided' || task.status === 'deciding';
    return {
      task,
      sample: { id: task.sampleId, externalId: s.externalId, payload: s.payload, media },
      annotations: s.annotations,
      layers: s.layers.map((l) => ({ layer: l.layer, passed: l.passed, score: l.score, findings: l.findings, details: l.details ?? {}, modelVersion: l.model_version })),
      consensus: l2Consensus ? consensusAsLabels(l2Consensus) : null,
      dontCareRegions: (l2Consensus?.boxes ?? []).filter((b) => b.dontCare).map((b) => ({ ...b.geometry, class: b.class })),
      can: { decide: task.status === 'open' && !denyDecide(actor, task, member, now), claim: task.status === 'open' && !denyClaim(actor, task, member, now) && task.assignee !== actor.user },
      ontology: project?.ontology ?? {},
      reliability: await annotatorAccuracies(this.d.pool, task.project, s.annotations.map((a) => a.annotator)),
      ...(decided ? { record: await decisionRecord(this.d.pool, id) } : {}),
    };
  }

  async claim(actor: Actor, id: string): Promise<ReviewTask> {
    const { task, member } = await this.load(actor, id);
    const denied = denyClaim(actor, task, member, this.now());
    if (denied) throw new ReviewError(task.status === 'open' ? 403 : 409, denied);
    if (task.assignee === actor.user && task.claimExpiresAt === null) return task;
    const claimed = await claimTask(this.d.pool, id, actor.user, await this.claimTtl(task.project));
    if (!claimed) throw new ReviewError(409, `task ${id} was claimed by someone else a moment ago; open your queue for the next one`);
    return claimed;
  }

  /** The next task for this reviewer: one they hold, else the first claimable one by priority (claimed now). Undefined: nothing to do. */
  async next(actor: Actor, o: { project?: string } = {}): Promise<ReviewTask | undefined> {
    if (actor.role !== 'reviewer') throw new ReviewError(403, 'only reviewers have a queue to work through');
    const member = await this.membership(actor);
    const projects = [...member.keys()].filter((p) => !o.project || p === o.project);
    const held = await listTasks(this.d.pool, { projects, status: 'open', holder: actor.user, sort: 'priority', limit: 1 });
    if (held.tasks[0]) return held.tasks[0];
    const withTtl = await Promise.all(projects.map(async (p) => ({ project: p, ttlSeconds: await this.claimTtl(p) })));
    return claimNextTask(this.d.pool, withTtl, actor.user);
  }

  private async claimTtl(project: string): Promise<number> {
    return (await this.reviewPolicy(project))?.claimTtlSeconds ?? 900;
  }

  /** The project's review policy as it is now; undefined once the project is gone. */
  private async reviewPolicy(project: string): Promise<QcPolicy['review'] | undefined> {
    const p = await getProject(this.d.pool, project);
    return p && resolvePolicy(p.qcPolicy).review;
  }

  private async precisionReport(project: string): Promise<PrecisionReport> {
    return qcPrecision(await precisionRows(this.d.pool, project), await calibrationRows(this.d.pool, project));
  }

  /**
   * Decides a task: checks access and (for `correct`) the labels, records the decision, then completes the
   * waiting Temporal activity with ids only. A task decided before is a no-op that says by whom.
   */
  async decide(actor: Actor, id: string, input: DecisionInput): Promise<DecisionResult> {
    if (!(DECISIONS as readonly string[]).includes(input.decision)) throw new ReviewError(400, `/decision must be one of ${DECISIONS.join(', ')}`);
    if (input.decision === 'correct' && input.labels === undefined) throw new ReviewError(400, '/labels is required when the decision is correct');
    if (input.decision !== 'correct' && input.labels !== undefined) throw new ReviewError(400, `/labels is only accepted with decision correct, not ${input.decision}`);
    const task = await getTask(this.d.pool, id);
    if (!task) throw new ReviewError(404, `review task ${id} does not exist`);
    const member = await this.membership(actor);
    const already = (t: ReviewTask): DecisionResult => ({
      taskId: id, result: 'already_decided', decision: t.decision!, decidedBy: t.decidedBy!,
      message: `task ${id} was already decided (${t.decision} by ${t.decidedBy} at ${t.decidedAt}); nothing changed`,
    });
    if (task.status === 'decided' || task.status === 'deciding') {
      const denied = denyView(actor, task, member, this.now());
      if (denied) throw new ReviewError(403, denied);
      return already(task);
    }
    const denied = denyDecide(actor, task, member, this.now());
    if (denied) throw new ReviewError(403, denied);
    if (task.status === 'expired') throw new ReviewError(409, `task ${id} passed its SLA and was escalated; open your queue for current tasks`);
    if (input.decision === 'correct') await this.checkCorrection(task, actor.user, input.labels);

    const token = await beginDecision(this.d.pool, id, { user: actor.user, decision: input.decision, labels: input.labels, comment: input.comment });
    if (!token) {
      const now = await getTask(this.d.pool, id);
      if (now && (now.status === 'decided' || now.status === 'deciding')) return already(now);
      throw new ReviewError(409, `task ${id} is no longer open (${now?.status ?? 'gone'}); open your queue for current tasks`);
    }
    const ref: ReviewDecisionRef = { taskId: id, decision: input.decision };
    try {
      await this.d.temporal.activity.complete(token, ref);
    } catch (err) {
      if (err instanceof ActivityNotFoundError) {
        // The SLA timer fired between the check and the completion: the workflow has moved on.
        await abortDecision(this.d.pool, id, 'expired');
        throw new ReviewError(409, `task ${id} passed its SLA and was escalated just now; your decision was not recorded`);
      }
      await abortDecision(this.d.pool, id, 'open');
      this.d.log.error({ taskId: id, err: (err as Error).message }, 'could not complete the review activity');
      throw new ReviewError(503, `the decision could not be delivered to Temporal (${(err as Error).message}); nothing changed, try again`);
    }
    this.d.log.info({ taskId: id, sampleId: task.sampleId, decision: input.decision, user: actor.user }, 'review decided');
    return { taskId: id, result: 'decided', decision: input.decision, decidedBy: actor.user, message: `task ${id}: ${input.decision} recorded` };
  }

  /** Why `actor` cannot take back the decision of task `id` now; undefined when they can. */
  private async undoRefusal(actor: Actor, task: ReviewTask): Promise<string | undefined> {
    if (task.decidedBy !== actor.user) return `only ${task.decidedBy ?? 'the reviewer who decides it'} can take back the decision on task ${task.id}`;
    if (task.status !== 'deciding') return `the decision on task ${task.id} can no longer be undone: it ${task.status === 'undone' ? 'was undone already' : 'has taken effect (its undo window closed)'}`;
    if (await decidedSince(this.d.pool, actor.user, task.id)) return `you have decided another task since task ${task.id}; only your latest decision can be undone`;
    return undefined;
  }

  /** The decision `actor` may still take back, with the seconds left of its window; undefined when there is none. */
  async undoable(actor: Actor, id: string): Promise<{ taskId: string; decision: string; secondsLeft: number } | undefined> {
    const task = await getTask(this.d.pool, id);
    if (!task?.decision || task.decidedAt === null || (await this.undoRefusal(actor, task))) return undefined;
    const window = (await this.reviewPolicy(task.project))?.undoSeconds ?? 0;
    const secondsLeft = Math.floor(window - (this.now().getTime() - new Date(task.decidedAt).getTime()) / 1000);
    return secondsLeft > 0 ? { taskId: id, decision: task.decision, secondsLeft } : undefined;
  }

  /**
   * Takes back the actor's latest decision while its undo window is open, through the review workflow (an
   * Update its validator accepts once). The sample's next round goes back to the actor; that task is
   * returned once the workflow has opened it (undefined if it takes longer than a few seconds).
   */
  async undo(actor: Actor, id: string): Promise<{ taskId: string; undone: true; next?: ReviewTask; message: string }> {
    const task = await getTask(this.d.pool, id);
    if (!task) throw new ReviewError(404, `review task ${id} does not exist`);
    const refused = await this.undoRefusal(actor, task);
    if (refused) throw new ReviewError(task.decidedBy === actor.user ? 409 : 403, refused);
    try {
      await this.d.temporal.workflow.getHandle(workflowIds.review(task.sampleId)).executeUpdate(undoDecisionUpdate, { args: [{ taskId: id, user: actor.user }], updateId: `undo-${id}` });
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) throw new ReviewError(409, `${(err.cause)?.message ?? err.message}; nothing changed`);
      throw err;
    }
    this.d.log.info({ taskId: id, sampleId: task.sampleId, user: actor.user }, 'review decision undone');
    let next: ReviewTask | undefined;
    for (let i = 0; i < 50 && !next; i++) {
      next = await laterRound(this.d.pool, task.sampleId, task.round);
      if (!next) await new Promise((r) => setTimeout(r, 100));
    }
    return { taskId: id, undone: true, ...(next ? { next } : {}), message: `task ${id}: your ${task.decision} was taken back; the sample is ${next ? `task ${next.id}` : 'back in your queue in a moment'}` };
  }

  async history(actor: Actor, limit = 10): Promise<RecentDecision[]> {
    return recentDecisions(this.d.pool, actor.user, limit);
  }

  private async checkCorrection(task: ReviewTask, reviewer: string, labels: unknown): Promise<void> {
    const project = await getProject(this.d.pool, task.project);
    if (!project) throw new ReviewError(404, `project ${task.project} no longer exists`);
    const findings = checkCorrection({
      sample: (await sampleRecord(this.d.pool, task.sampleId))!, labels, reviewer,
      project, layer2: resolvePolicy(project.qcPolicy).layer2,
    });
    if (findings.length) throw new ReviewError(422, `the correction was refused: ${describeFindings(findings)}`, findings);
  }

  async members(actor: Actor, project: string): Promise<Array<{ user: string; role: MemberRole }>> {
    this.manage(actor);
    await this.requireProject(project);
    return listMembers(this.d.pool, project);
  }

  async setMember(actor: Actor, m: { project: string; user: string; role: MemberRole }): Promise<void> {
    this.manage(actor);
    await this.requireProject(m.project);
    await setMember(this.d.pool, m, actor.user);
  }

  async removeMember(actor: Actor, m: { project: string; user: string }): Promise<boolean> {
    this.manage(actor);
    return removeMember(this.d.pool, m, actor.user);
  }

  async precision(actor: Actor, project: string): Promise<PrecisionReport> {
    this.manage(actor);
    await this.requireProject(project);
    return this.precisionReport(project);
  }

  /**
   * What a project's quality dashboard draws (operators, admins, and the project's own members): annotator
   * agreement and speed over data time, open decay alerts, the stream's stability, the review queue's age
   * and throughput, and how often reviewers uphold auto-accepted samples.
   */
  async dashboard(actor: Actor, project: string): Promise<ProjectDashboard> {
    if (actor.role === 'reviewer' && !(await this.membership(actor)).has(project)) throw new ReviewError(403, `you are not a member of project ${project}; ask an operator to add you`);
    await this.requireProject(project);
    const buckets = await projectBuckets(this.d.pool, project, DASHBOARD_BUCKETS);
    return {
      project,
      heatmap: qualityHeatmap(buckets, { stream: STREAM, columns: 8, maxRows: 30 }),
      stream: streamSeries(buckets, STREAM),
      streamWindow: (await latestWindow(this.d.pool, project, STREAM))?.summary ?? null,
      alerts: await openAlerts(this.d.pool, project),
      openAges: ageBands(await openTaskAges(this.d.pool, project)),
      throughput: await decisionsPerDay(this.d.pool, project, 14),
      precision: await this.precisionReport(project),
    };
  }

  /** Lines of a project refused before they became samples, with why (operator, admin). */
  async malformedLines(actor: Actor, project: string, o: { batchId?: string; limit: number }): Promise<{ total: number; lines: MalformedLine[] }> {
    this.manage(actor);
    await this.requireProject(project);
    return malformedLines(this.d.pool, project, o);
  }

  private manage(actor: Actor): void {
    const denied = denyManage(actor);
    if (denied) throw new ReviewError(403, denied);
  }

  private async requireProject(project: string): Promise<void> {
    if (!(await getProject(this.d.pool, project))) throw new ReviewError(404, `project ${project} does not exist`);
  }
}
