import type { Pool, PoolClient } from 'pg';
import { nextAssignee } from '../review/assignment';
import { audit } from './audit';
import { foundWrong, type ReviewDecision, type ReviewTask } from '../review/decisions';
import type { ReviewedEstimate } from '../qc/stats/recalibration';
import type { Labels, MediaRef } from '../ingest/envelope';
import type { CalibrationRow, PrecisionRow } from '../review/precision';

type Queryable = Pool | PoolClient;

/** Every column of review_tasks except the Temporal task token, which only the decision path reads. */
const TASK_COLUMNS = `t.id::text AS id, t.sample_id, t.project_id, t.round, t.reason, t.audience, t.assignee, t.claim_expires_at, t.status,
  t.decision, t.decided_by, t.decided_at, t.comment, t.created_at, t.due_at`;

interface TaskRow {
  id: string; sample_id: string; project_id: string; round: number; reason: string; audience: ReviewTask['audience'];
  assignee: string | null; claim_expires_at: Date | null; status: ReviewTask['status']; decision: ReviewTask['decision'];
  decided_by: string | null; decided_at: Date | null; comment: string | null; created_at: Date; due_at: Date;
}

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

function toTask(r: TaskRow): ReviewTask {
  return {
    id: r.id, sampleId: r.sample_id, project: r.project_id, round: r.round, reason: r.reason, audience: r.audience,
    assignee: r.assignee, claimExpiresAt: iso(r.claim_expires_at), status: r.status, decision: r.decision,
    decidedBy: r.decided_by, decidedAt: iso(r.decided_at), comment: r.comment, createdAt: r.created_at.toISOString(), dueAt: r.due_at.toISOString(),
  };
}

// ---- membership

export type MemberRole = 'reviewer' | 'lead';

export async function setMember(pool: Pool, m: { project: string; user: string; role: MemberRole }, actor: string): Promise<void> {
  await pool.query(
    `INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, $3) ON CONFLICT (project_id, user_id) DO UPDATE SET role = EXCLUDED.role`,
    [m.project, m.user, m.role],
  );
  await audit(pool, { actor, action: 'member.set', project: m.project, subject: m.user, details: { role: m.role } });
}

export async function removeMember(pool: Pool, m: { project: string; user: string }, actor: string): Promise<boolean> {
  const r = await pool.query('DELETE FROM project_members WHERE project_id = $1 AND user_id = $2', [m.project, m.user]);
  if (r.rowCount) await audit(pool, { actor, action: 'member.remove', project: m.project, subject: m.user, details: {} });
  return (r.rowCount ?? 0) > 0;
}

export async function listMembers(pool: Queryable, project: string): Promise<Array<{ user: string; role: MemberRole }>> {
  const { rows } = await pool.query<{ user_id: string; role: MemberRole }>('SELECT user_id, role FROM project_members WHERE project_id = $1 ORDER BY user_id', [project]);
  return rows.map((r) => ({ user: r.user_id, role: r.role }));
}

/** Projects `user` belongs to (as reviewer or lead). */
export async function projectsOf(pool: Queryable, user: string): Promise<Map<string, MemberRole>> {
  const { rows } = await pool.query<{ project_id: string; role: MemberRole }>('SELECT project_id, role FROM project_members WHERE user_id = $1', [user]);
  return new Map(rows.map((r) => [r.project_id, r.role]));
}

// ---- tasks

export interface OpenTaskInput {
  project: string;
  sampleId: string;
  round: number;
  reason: string;
  audience: ReviewTask['audience'];
  /** Round-robin assignment now, or leave it to be claimed (first-round tasks of a `claim` project). */
  assign: boolean;
  slaSeconds: number;
  taskToken: Uint8Array;
  /** Which dispatch of the round this is (0 unless the workflow found an earlier one never recorded). */
  dispatch?: number;
  /** The reviewer who took back the previous round's decision: the task goes back to them. */
  assignTo?: string;
}

/**
 * Records the task a human-task activity waits on. A retried activity (same sample and round) gets a new
 * Temporal task token but keeps its row and assignee; a new round is assigned round-robin to someone who
 * has not had this sample yet. Returns the task as stored.
 */
export async function openTask(c: PoolClient, t: OpenTaskInput): Promise<{ task: ReviewTask; created: boolean; stale?: boolean }> {
  const dispatch = t.dispatch ?? 0;
  const existing = await c.query<TaskRow>(
    `UPDATE review_tasks t SET task_token = $3, dispatch = $4 WHERE sample_id = $1 AND round = $2 AND dispatch <= $4 RETURNING ${TASK_COLUMNS}`,
    [t.sampleId, t.round, Buffer.from(t.taskToken), dispatch],
  );
  if (existing.rows[0]) return { task: toTask(existing.rows[0]), created: false };
  // A later dispatch of this round recorded the task already: this one was given up on, its token is dead.
  const later = await c.query<TaskRow>(`SELECT ${TASK_COLUMNS} FROM review_tasks t WHERE sample_id = $1 AND round = $2`, [t.sampleId, t.round]);
  if (later.rows[0]) return { task: toTask(later.rows[0]), created: false, stale: true };
  let assignee: string | null = t.assignTo ?? null;
  let audience = t.audience;
  if (t.assign && !assignee) {
    const withRole = async (role: MemberRole): Promise<string[]> =>
      (await c.query<{ user_id: string }>('SELECT user_id FROM project_members WHERE project_id = $1 AND role = $2', [t.project, role])).rows.map((r) => r.user_id);
    let members = await withRole(audience === 'leads' ? 'lead' : 'reviewer');
    if (members.length === 0 && audience === 'leads') {
      // A project without leads keeps escalating among its reviewers rather than leaving the task to nobody.
      audience = 'reviewers';
      members = await withRole('reviewer');
    }
    // Serialises assignment per project and audience, so two tasks opened at once do not go to the same person.
    await c.query(`INSERT INTO review_cursors (project_id, audience, last_user) VALUES ($1, $2, '') ON CONFLICT DO NOTHING`, [t.project, audience]);
    const cursor = await c.query<{ last_user: string }>('SELECT last_user FROM review_cursors WHERE project_id = $1 AND audience = $2 FOR UPDATE', [t.project, audience]);
    const earlier = await c.query<{ assignee: string }>('SELECT DISTINCT assignee FROM review_tasks WHERE sample_id = $1 AND assignee IS NOT NULL', [t.sampleId]);
    assignee = nextAssignee(members, cursor.rows[0]!.last_user || undefined, earlier.rows.map((e) => e.assignee)) ?? null;
    if (assignee) await c.query('UPDATE review_cursors SET last_user = $3 WHERE project_id = $1 AND audience = $2', [t.project, audience, assignee]);
  }
  const { rows } = await c.query<TaskRow>(
    `INSERT INTO review_tasks AS t (sample_id, project_id, round, reason, audience, task_token, assignee, due_at, dispatch, risk)
     VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8), $9, ${RISK_OF_SAMPLE('$1')}) RETURNING ${TASK_COLUMNS}`,
    [t.sampleId, t.project, t.round, t.reason, audience, Buffer.from(t.taskToken), assignee, t.slaSeconds, dispatch],
  );
  return { task: toTask(rows[0]!), created: true };
}

/** Whether dispatch `dispatch` (or a later one) of a review round recorded its task. */
export async function taskRecorded(db: Queryable, t: { sampleId: string; round: number; dispatch: number }): Promise<boolean> {
  const { rows } = await db.query('SELECT 1 FROM review_tasks WHERE sample_id = $1 AND round = $2 AND dispatch >= $3', [t.sampleId, t.round, t.dispatch]);
  return rows.length > 0;
}

export async function getTask(db: Queryable, id: string): Promise<ReviewTask | undefined> {
  if (!/^\d{1,18}$/.test(id)) return undefined;
  const { rows } = await db.query<TaskRow>(`SELECT ${TASK_COLUMNS} FROM review_tasks t WHERE t.id = $1`, [id]);
  return rows[0] && toTask(rows[0]);
}

/** What a decided task recorded beyond its row: the corrected labels, and why a correction did not take effect. */
export async function decisionRecord(db: Queryable, id: string): Promise<{ labels: Labels | null; refused?: string }> {
  const { rows } = await db.query<{ labels: Labels | null; outcome: { refused?: string } | null }>('SELECT labels, outcome FROM review_tasks WHERE id = $1', [id]);
  const r = rows[0];
  return { labels: r?.labels ?? null, ...(r?.outcome?.refused ? { refused: r.outcome.refused } : {}) };
}

/** What a reviewer narrows a queue to. */
export interface QueueFilter {
  reason?: string;
  /** Samples this annotator labelled. */
  annotator?: string;
  /** A finding rule of any layer: exact (`layer2.geometry_conflict`) or its last part (`geometry_conflict`). */
  finding?: string;
  /** External ids starting with this. */
  externalId?: string;
  /** Waiting at least this long. */
  minAgeMinutes?: number;
  overdue?: boolean;
}

export const QUEUE_SORTS = ['priority', 'oldest', 'due', 'risk'] as const;
/**
 * `priority`, what "Start reviewing" takes: tasks overdue or due within the hour first, soonest first (the
 * SLA); then the rest by how likely their labels are wrong, so a reviewer's time goes where errors are.
 */
export type QueueSort = (typeof QUEUE_SORTS)[number];

export interface TaskFilter {
  /** Only these projects (a reviewer's memberships); undefined: all. */
  projects?: string[];
  project?: string;
  status?: ReviewTask['status'] | 'active';
  /** Tasks held by this user, or (with `claimable`) also those anyone in the project may claim. Held ones come first. */
  holder?: string;
  claimable?: boolean;
  filter?: QueueFilter;
  sort?: QueueSort;
  limit: number;
  offset?: number;
}

/** A task as a queue lists it: with its sample's external id and the estimated probability its labels are wrong. */
export interface QueueTask extends ReviewTask {
  externalId: string;
  risk: number | null;
}

/**
 * The estimated probability the sample's labels are wrong — layer 5's (recalibrated) when there is one, else
 * layer 2's — as it was when the task opened: kept on the task (migration 015), so the queue does not read
 * qc_results for every open task.
 */
const RISK_OF_SAMPLE = (sampleId: string): string => `(SELECT (q.details->'risk'->>'pWrong')::float8 FROM qc_results q
  WHERE q.sample_id = ${sampleId} AND q.layer IN (2, 5) AND q.details->'risk'->>'pWrong' IS NOT NULL ORDER BY q.layer DESC LIMIT 1)`;

const ORDER: Record<QueueSort, string> = {
  priority: `(t.due_at <= now() + interval '1 hour') DESC, CASE WHEN t.due_at <= now() + interval '1 hour' THEN t.due_at END, risk DESC NULLS LAST, t.created_at, t.id`,
  oldest: 't.created_at, t.id',
  due: 't.due_at, t.id',
  risk: 'risk DESC NULLS LAST, t.created_at, t.id',
};

const likePrefix = (s: string): string => `${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/** One page of tasks in the asked order (default: oldest first), and how many match in all. */
export async function listTasks(db: Queryable, f: TaskFilter): Promise<{ tasks: QueueTask[]; total: number }> {
  const where: string[] = [];
  const args: unknown[] = [];
  const arg = (v: unknown): string => `$${args.push(v)}`;
  if (f.projects) where.push(`t.project_id = ANY(${arg(f.projects)})`);
  if (f.project) where.push(`t.project_id = ${arg(f.project)}`);
  if (f.status === 'active') where.push(`t.status IN ('open', 'deciding')`);
  else if (f.status) where.push(`t.status = ${arg(f.status)}`);
  let heldFirst = '';
  if (f.holder) {
    const held = `(t.assignee = ${arg(f.holder)} AND (t.claim_expires_at IS NULL OR t.claim_expires_at > now()))`;
    where.push(f.claimable ? `(${held} OR (t.status = 'open' AND t.audience = 'reviewers' AND (t.assignee IS NULL OR t.claim_expires_at <= now())))` : held);
    heldFirst = `${held} DESC, `;
  }
  const q = f.filter ?? {};
  if (q.reason) where.push(`t.reason = ${arg(q.reason)}`);
  if (q.annotator) where.push(`EXISTS (SELECT 1 FROM annotations a WHERE a.sample_id = t.sample_id AND a.annotator = ${arg(q.annotator)})`);
  if (q.finding) {
    const rule = arg(q.finding);
    where.push(`EXISTS (SELECT 1 FROM qc_results q, jsonb_array_elements(q.findings) fd WHERE q.sample_id = t.sample_id AND (fd->>'rule' = ${rule} OR fd->>'rule' LIKE '%.' || ${rule}))`);
  }
  if (q.externalId) where.push(`s.external_id LIKE ${arg(likePrefix(q.externalId))}`);
  if (q.minAgeMinutes) where.push(`t.created_at <= now() - make_interval(mins => ${arg(q.minAgeMinutes)})`);
  if (q.overdue) where.push('t.due_at < now()');
  const { rows } = await db.query<TaskRow & { external_id: string; risk: number | null; total: string }>(
    `SELECT ${TASK_COLUMNS}, s.external_id, t.risk, count(*) OVER () AS total
     FROM review_tasks t JOIN samples s ON s.id = t.sample_id ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
     ORDER BY ${heldFirst}${ORDER[f.sort ?? 'oldest']} LIMIT ${arg(f.limit)} OFFSET ${arg(f.offset ?? 0)}`,
    args,
  );
  return { tasks: rows.map((r) => ({ ...toTask(r), externalId: r.external_id, risk: r.risk })), total: Number(rows[0]?.total ?? 0) };
}

export interface QueueCounts {
  /** Open tasks this user holds. */
  mine: number;
  /** Open tasks in the projects (all of a reviewer's, or all) … */
  open: number;
  /** … of which past their SLA. */
  overdue: number;
  /** Decisions by this user since midnight UTC. */
  decidedToday: number;
}

export async function queueCounts(db: Queryable, o: { user: string; projects?: string[] }): Promise<QueueCounts> {
  const { rows } = await db.query<{ mine: string; open: string; overdue: string; decided_today: string }>(
    `SELECT count(*) FILTER (WHERE status = 'open' AND assignee = $1 AND (claim_expires_at IS NULL OR claim_expires_at > now())) AS mine,
            count(*) FILTER (WHERE status = 'open') AS open,
            count(*) FILTER (WHERE status = 'open' AND due_at < now()) AS overdue,
            count(*) FILTER (WHERE decided_by = $1 AND decided_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS decided_today
     FROM review_tasks WHERE ($2::text[] IS NULL OR project_id = ANY($2))`,
    [o.user, o.projects ?? null],
  );
  const r = rows[0]!;
  return { mine: Number(r.mine), open: Number(r.open), overdue: Number(r.overdue), decidedToday: Number(r.decided_today) };
}

/** Claims one open task for `user` if nobody holds it (or the claim ran out); returns it, or undefined if someone else holds it. */
export async function claimTask(pool: Pool, id: string, user: string, ttlSeconds: number): Promise<ReviewTask | undefined> {
  const { rows } = await pool.query<TaskRow>(
    `UPDATE review_tasks t SET assignee = $2, claim_expires_at = now() + make_interval(secs => $3)
     WHERE t.id = $1 AND t.status = 'open' AND (t.assignee IS NULL OR t.claim_expires_at <= now() OR (t.assignee = $2 AND t.claim_expires_at IS NOT NULL))
     RETURNING ${TASK_COLUMNS}`,
    [id, user, ttlSeconds],
  );
  if (rows[0]) await audit(pool, { actor: user, action: 'review.claim', project: rows[0].project_id, subject: rows[0].sample_id, details: { taskId: id, until: iso(rows[0].claim_expires_at) } });
  return rows[0] && toTask(rows[0]);
}

/** Claims the first claimable task of the given projects by priority (QueueSort); SKIP LOCKED so two reviewers never get the same one. */
export async function claimNextTask(pool: Pool, projects: Array<{ project: string; ttlSeconds: number }>, user: string): Promise<ReviewTask | undefined> {
  if (projects.length === 0) return undefined;
  const { rows } = await pool.query<{ id: string; project_id: string }>(
    `SELECT t.id::text AS id, t.project_id, t.risk FROM review_tasks t
     WHERE t.project_id = ANY($1) AND t.status = 'open' AND t.audience = 'reviewers' AND (t.assignee IS NULL OR t.claim_expires_at <= now())
     ORDER BY ${ORDER.priority} LIMIT 1 FOR UPDATE OF t SKIP LOCKED`,
    [projects.map((p) => p.project)],
  );
  if (!rows[0]) return undefined;
  const ttl = projects.find((p) => p.project === rows[0]!.project_id)!.ttlSeconds;
  return claimTask(pool, rows[0].id, user, ttl);
}

/**
 * First half of a decision: marks the open task `deciding` with who decided what, and hands back the
 * Temporal task token to complete it with. Undefined when the task is no longer open (decided, or escalated).
 */
export async function beginDecision(pool: Pool, id: string, d: { user: string; decision: string; labels?: unknown; comment?: string }): Promise<Buffer | undefined> {
  const { rows } = await pool.query<{ task_token: Buffer }>(
    `UPDATE review_tasks SET status = 'deciding', decision = $3, decided_by = $2, decided_at = now(), labels = $4, comment = $5
     WHERE id = $1 AND status = 'open' RETURNING task_token`,
    [id, d.user, d.decision, d.labels === undefined ? null : JSON.stringify(d.labels), d.comment ?? null],
  );
  return rows[0]?.task_token;
}

/** Undoes beginDecision when Temporal could not be told: the task is open again (`expired` when its activity is gone). */
export async function abortDecision(pool: Pool, id: string, status: 'open' | 'expired'): Promise<void> {
  await pool.query(
    `UPDATE review_tasks SET status = $2, decision = NULL, decided_by = NULL, decided_at = NULL, labels = NULL, comment = NULL WHERE id = $1 AND status = 'deciding'`,
    [id, status],
  );
}

/** Decided reviews of samples layer 5 would have accepted (audit share, alerted annotators), grouped for qcPrecision. */
export async function precisionRows(db: Queryable, project: string): Promise<PrecisionRow[]> {
  const { rows } = await db.query<{ reason: string; model_version: string | null; decision: PrecisionRow['decision']; n: string }>(
    `SELECT q5.details->>'reason' AS reason, q3.model_version, t.decision, count(*) AS n
     FROM review_tasks t
     JOIN qc_results q5 ON q5.sample_id = t.sample_id AND q5.layer = 5
     LEFT JOIN qc_results q3 ON q3.sample_id = t.sample_id AND q3.layer = 3
     WHERE t.project_id = $1 AND t.status = 'decided' AND t.outcome IS NULL AND q5.details->>'reason' IN ('audit', 'annotator_alert')
     GROUP BY 1, 2, 3`,
    [project],
  );
  return rows.map((r) => ({ reason: r.reason, modelVersion: r.model_version, decision: r.decision, n: Number(r.n) }));
}

/** Decided reviews of samples with a layer-5 risk estimate, for its calibration against reviewers. */
export async function calibrationRows(db: Queryable, project: string): Promise<CalibrationRow[]> {
  const { rows } = await db.query<{ p: number; raw: number; decision: CalibrationRow['decision'] }>(
    `SELECT (q5.details->'risk'->>'pWrong')::float AS p, COALESCE((q5.details->'risk'->'raw'->>'pWrong')::float, (q5.details->'risk'->>'pWrong')::float) AS raw, t.decision
     FROM review_tasks t JOIN qc_results q5 ON q5.sample_id = t.sample_id AND q5.layer = 5
     WHERE t.project_id = $1 AND t.status = 'decided' AND t.outcome IS NULL AND q5.details->'risk'->>'pWrong' IS NOT NULL`,
    [project],
  );
  return rows.map((r) => ({ pWrong: r.p, rawPWrong: r.raw, decision: r.decision }));
}

/**
 * Of the `limit` most recently decided reviews, those that settled whether the labels were wrong, with layer 5's
 * primary estimate before recalibration: what the next batch's recalibration is fitted on.
 */
export async function recalibrationRows(db: Queryable, project: string, limit: number): Promise<ReviewedEstimate[]> {
  const { rows } = await db.query<{ p: number; contested: boolean; decision: ReviewDecision }>(
    `SELECT COALESCE(q5.details->'risk'->'raw'->>'primary', q5.details->'risk'->>'primary', q5.details->'risk'->>'pWrong')::float AS p,
            COALESCE((q5.details->'risk'->>'contested')::boolean, false) AS contested, t.decision
     FROM review_tasks t JOIN qc_results q5 ON q5.sample_id = t.sample_id AND q5.layer = 5
     WHERE t.project_id = $1 AND t.status = 'decided' AND t.outcome IS NULL AND q5.details->'risk'->>'pWrong' IS NOT NULL
     ORDER BY t.decided_at DESC NULLS LAST, t.id DESC LIMIT $2`,
    [project, limit],
  );
  return rows.flatMap((r) => {
    const wrong = foundWrong(r.decision);
    return wrong === undefined ? [] : [{ p: r.p, contested: r.contested, wrong }];
  });
}

/** Open review tasks of a project at a glance (for `qcflow status`). */
export async function reviewSummary(db: Queryable, project: string): Promise<{ open: number; overdue: number; unassigned: number; oldest: Date | null }> {
  const { rows } = await db.query<{ open: string; overdue: string; unassigned: string; oldest: Date | null }>(
    `SELECT count(*) AS open, count(*) FILTER (WHERE due_at < now()) AS overdue,
            count(*) FILTER (WHERE assignee IS NULL OR claim_expires_at <= now()) AS unassigned, min(created_at) AS oldest
     FROM review_tasks WHERE project_id = $1 AND status IN ('open', 'deciding')`, [project],
  );
  const r = rows[0]!;
  return { open: Number(r.open), overdue: Number(r.overdue), unassigned: Number(r.unassigned), oldest: r.oldest };
}

/** Every project's review backlog (the /metrics gauges): open tasks and the age of the oldest, per project. */
export async function reviewBacklog(db: Queryable): Promise<Array<{ project: string; open: number; oldestSeconds: number }>> {
  const { rows } = await db.query<{ project_id: string; open: string; oldest_s: number }>(
    `SELECT project_id, count(*) AS open, extract(epoch FROM now() - min(created_at))::float8 AS oldest_s
     FROM review_tasks WHERE status IN ('open', 'deciding') GROUP BY project_id`,
  );
  return rows.map((r) => ({ project: r.project_id, open: Number(r.open), oldestSeconds: r.oldest_s }));
}

// ---- the review workflow's writes

/** A page of a project's (or one batch's) samples waiting in review, in id order after `after`, with layer 5's reason. */
export async function reviewSamplesPage(db: Queryable, q: { project: string; batchId?: string; after: string; limit: number }): Promise<Array<{ id: string; externalId: string; reason: string }>> {
  const { rows } = await db.query<{ id: string; externalId: string; reason: string }>(
    `SELECT s.id, s.external_id AS "externalId", COALESCE(q.details->>'reason', 'review') AS reason FROM samples s
     LEFT JOIN qc_results q ON q.sample_id = s.id AND q.layer = 5
     WHERE s.project_id = $1 AND ($2::text IS NULL OR s.batch_id = $2) AND s.status = 'review' AND s.id > $3 ORDER BY s.id LIMIT $4`,
    [q.project, q.batchId ?? null, q.after, q.limit],
  );
  return rows;
}

/** The round's task can no longer be decided (its SLA ran out), with an audit record. */
export async function expireTask(c: PoolClient, sampleId: string, round: number): Promise<void> {
  const { rows } = await c.query<{ id: string; project_id: string; assignee: string | null }>(
    `UPDATE review_tasks SET status = 'expired' WHERE sample_id = $1 AND round = $2 AND status IN ('open', 'deciding') RETURNING id::text, project_id, assignee`,
    [sampleId, round],
  );
  if (rows[0]) await audit(c, { actor: 'qcflow', action: 'review.expire', project: rows[0].project_id, subject: sampleId, details: { taskId: rows[0].id, round, assignee: rows[0].assignee } });
}

export interface RecordedDecision {
  sampleId: string; project: string; round: number; reason: string; status: string; decision: ReviewDecision | null;
  decidedBy: string | null; decidedAt: Date | null; labels: unknown; comment: string | null; refused?: string;
  sample: { externalId: string; batchId: string; payload: Record<string, unknown>; media: MediaRef[] };
}

/** A task's recorded decision and its sample, both locked for the transaction that applies it. */
export async function lockDecision(c: PoolClient, taskId: string): Promise<RecordedDecision | undefined> {
  const t = (await c.query<{
    sample_id: string; project_id: string; round: number; reason: string; status: string; decision: ReviewDecision | null;
    decided_by: string | null; decided_at: Date | null; labels: unknown; comment: string | null; outcome: { refused?: string } | null;
  }>('SELECT sample_id, project_id, round, reason, status, decision, decided_by, decided_at, labels, comment, outcome FROM review_tasks WHERE id = $1 FOR UPDATE', [taskId])).rows[0];
  if (!t) return undefined;
  const s = (await c.query<{ external_id: string; batch_id: string; payload: Record<string, unknown>; media: MediaRef[] }>(
    'SELECT external_id, batch_id, payload, media FROM samples WHERE id = $1 FOR UPDATE', [t.sample_id],
  )).rows[0]!;
  return {
    sampleId: t.sample_id, project: t.project_id, round: t.round, reason: t.reason, status: t.status, decision: t.decision, decidedBy: t.decided_by,
    decidedAt: t.decided_at, labels: t.labels, comment: t.comment, ...(t.outcome?.refused ? { refused: t.outcome.refused } : {}),
    sample: { externalId: s.external_id, batchId: s.batch_id, payload: s.payload, media: s.media },
  };
}

/** A correction that no longer passes the project's checks: the task ends decided but refused, with an audit record. */
export async function refuseCorrection(c: PoolClient, taskId: string, d: RecordedDecision, refused: string, findings: unknown): Promise<void> {
  await c.query(`UPDATE review_tasks SET status = 'decided', outcome = $2 WHERE id = $1`, [taskId, JSON.stringify({ refused, findings })]);
  await audit(c, { actor: d.decidedBy!, action: 'review.correct_refused', project: d.project, subject: d.sampleId, details: { taskId, findings } });
}

/**
 * A reviewer's corrected labels: stored as an annotation of `annotator`, and as layer 2's consensus (what
 * releases carry), the machine's kept beside it as `machineConsensus`.
 */
export async function storeCorrection(c: PoolClient, x: { sampleId: string; annotator: string; labels: unknown; consensus: unknown; decidedBy: string; decidedAt: Date | null }): Promise<void> {
  await c.query(
    `INSERT INTO annotations (sample_id, ordinal, annotator, labels, submitted_at)
     SELECT $1, COALESCE(max(ordinal), -1) + 1, $2, $3, $4 FROM annotations WHERE sample_id = $1`,
    [x.sampleId, x.annotator, JSON.stringify(x.labels), x.decidedAt],
  );
  await c.query(
    `INSERT INTO qc_results (sample_id, layer, passed, score, findings, details) VALUES ($1, 2, true, 1, '[]', jsonb_build_object('consensus', $2::jsonb, 'correctedBy', $3::text))
     ON CONFLICT (sample_id, layer) DO UPDATE SET details = qc_results.details || jsonb_build_object('consensus', $2::jsonb, 'machineConsensus', qc_results.details->'consensus', 'correctedBy', $3::text)`,
    [x.sampleId, JSON.stringify(x.consensus), x.decidedBy],
  );
}

/** The decision takes effect: the sample leaves review for `status`, the task is decided, with an audit record. */
export async function finishDecision(c: PoolClient, taskId: string, d: RecordedDecision, status: string): Promise<void> {
  await c.query(`UPDATE samples SET status = $2, decided_at = now(), updated_at = now() WHERE id = $1 AND status = 'review'`, [d.sampleId, status]);
  await c.query(`UPDATE review_tasks SET status = 'decided' WHERE id = $1`, [taskId]);
  await audit(c, {
    actor: d.decidedBy!, action: `review.${d.decision}`, project: d.project, subject: d.sampleId,
    details: { taskId, round: d.round, reason: d.reason, decidedAt: d.decidedAt?.toISOString(), comment: d.comment, status },
  });
}

/** A decision taken back within the undo window: the task ends `undone`, never applied, with an audit record. */
export async function undoDecision(c: PoolClient, taskId: string, user: string): Promise<boolean> {
  const { rows } = await c.query<{ project_id: string; sample_id: string; decision: string }>(
    `UPDATE review_tasks SET status = 'undone' WHERE id = $1 AND status = 'deciding' RETURNING project_id, sample_id, decision`, [taskId],
  );
  const r = rows[0];
  if (r) await audit(c, { actor: user, action: 'review.undo', project: r.project_id, subject: r.sample_id, details: { taskId, decision: r.decision } });
  return r !== undefined;
}

/** The task of a sample's round after `round`, once the workflow has opened it. */
export async function laterRound(db: Queryable, sampleId: string, round: number): Promise<ReviewTask | undefined> {
  const { rows } = await db.query<TaskRow>(`SELECT ${TASK_COLUMNS} FROM review_tasks t WHERE t.sample_id = $1 AND t.round > $2 ORDER BY t.round LIMIT 1`, [sampleId, round]);
  return rows[0] && toTask(rows[0]);
}

/** Whether `user` decided any task after task `taskId`: only one's latest decision can be taken back. */
export async function decidedSince(db: Queryable, user: string, taskId: string): Promise<boolean> {
  const { rows } = await db.query(
    'SELECT 1 FROM review_tasks t, review_tasks d WHERE d.id = $2 AND t.decided_by = $1 AND t.id <> d.id AND t.decided_at >= d.decided_at LIMIT 1', [user, taskId],
  );
  return rows.length > 0;
}

export interface RecentDecision {
  taskId: string;
  externalId: string;
  project: string;
  decision: ReviewDecision;
  status: ReviewTask['status'];
  decidedAt: string;
}

/** A reviewer's latest decisions, newest first: the page's history. */
export async function recentDecisions(db: Queryable, user: string, limit: number): Promise<RecentDecision[]> {
  const { rows } = await db.query<{ id: string; external_id: string; project_id: string; decision: ReviewDecision; status: ReviewTask['status']; decided_at: Date }>(
    `SELECT t.id::text AS id, s.external_id, t.project_id, t.decision, t.status, t.decided_at FROM review_tasks t JOIN samples s ON s.id = t.sample_id
     WHERE t.decided_by = $1 AND t.decided_at IS NOT NULL ORDER BY t.decided_at DESC LIMIT $2`, [user, limit],
  );
  return rows.map((r) => ({ taskId: r.id, externalId: r.external_id, project: r.project_id, decision: r.decision, status: r.status, decidedAt: r.decided_at.toISOString() }));
}

/** How long each open task of a project has waited, in seconds. */
export async function openTaskAges(db: Queryable, project: string): Promise<number[]> {
  const { rows } = await db.query<{ s: number }>(`SELECT extract(epoch FROM now() - created_at)::float8 AS s FROM review_tasks WHERE project_id = $1 AND status = 'open'`, [project]);
  return rows.map((r) => r.s);
}

/** Decisions per UTC day over the last `days` days, oldest first (days without any included). */
export async function decisionsPerDay(db: Queryable, project: string, days: number): Promise<Array<{ day: string; n: number }>> {
  const { rows } = await db.query<{ day: string; n: string }>(
    `SELECT to_char(d, 'YYYY-MM-DD') AS day, count(t.id) AS n
     FROM generate_series(date_trunc('day', now() AT TIME ZONE 'UTC') - make_interval(days => $2 - 1), date_trunc('day', now() AT TIME ZONE 'UTC'), interval '1 day') d
     LEFT JOIN review_tasks t ON t.project_id = $1 AND t.decided_at IS NOT NULL AND t.status <> 'undone'
       AND date_trunc('day', t.decided_at AT TIME ZONE 'UTC') = d
     GROUP BY d ORDER BY d`, [project, days],
  );
  return rows.map((r) => ({ day: r.day, n: Number(r.n) }));
}

/** Samples of a project waiting in review, and how many of them have their task recorded. */
export async function reviewCoverage(db: Queryable, project: string): Promise<{ waiting: number; recorded: number }> {
  const { rows } = await db.query<{ waiting: string; tasks: string }>(
    `SELECT (SELECT count(*) FROM samples WHERE project_id = $1 AND status = 'review') AS waiting,
            (SELECT count(DISTINCT t.sample_id) FROM review_tasks t JOIN samples x ON x.id = t.sample_id WHERE t.project_id = $1 AND x.status = 'review') AS tasks`, [project],
  );
  return { waiting: Number(rows[0]!.waiting), recorded: Number(rows[0]!.tasks) };
}

/** How many of these tasks are decided. */
export async function decidedCount(db: Queryable, taskIds: string[]): Promise<number> {
  const { rows } = await db.query<{ n: string }>(`SELECT count(*) AS n FROM review_tasks WHERE id = ANY($1) AND status = 'decided'`, [taskIds]);
  return Number(rows[0]!.n);
}

export async function openTaskCount(db: Queryable, project: string): Promise<number> {
  const { rows } = await db.query<{ n: string }>(`SELECT count(*) AS n FROM review_tasks WHERE project_id = $1 AND status = 'open'`, [project]);
  return Number(rows[0]!.n);
}
