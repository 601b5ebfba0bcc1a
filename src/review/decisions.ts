import type { Labels } from '../ingest/envelope';

export const DECISIONS = ['approve', 'reject', 'correct', 'resample'] as const;
export type ReviewDecision = (typeof DECISIONS)[number];

export const ROLES = ['reviewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Who is calling, from a verified token. */
export const MODEL_ROLES = ['viewer', 'publisher', 'admin'] as const;
export type ModelRole = (typeof MODEL_ROLES)[number];

export interface Actor {
  user: string;
  role: Role;
  /** The model-registry tenant the token is limited to; absent: every tenant (for a registry role of admin). */
  tenant?: string;
  /** What the token may do in the model registry (src/models/access.ts); absent: nothing. */
  modelRole?: ModelRole;
}

/** What a reviewer sends: the decision, the corrected labels for `correct`, and an optional note. */
export interface DecisionInput {
  decision: ReviewDecision;
  labels?: Labels;
  comment?: string;
}

/** What completes the waiting human-task activity: ids only; the labels stay in Postgres. */
export interface ReviewDecisionRef {
  taskId: string;
  decision: ReviewDecision;
}

/**
 * Whether a reviewer found the machine's labels wrong: corrected or rejected; approved, right. A resample
 * says the reviewer could not settle it either, which tells nothing about the labels: undefined.
 */
export function foundWrong(decision: ReviewDecision): boolean | undefined {
  return decision === 'resample' ? undefined : decision !== 'approve';
}

/** The sample status each decision leads to. */
export const STATUS_AFTER: Record<ReviewDecision, 'accepted' | 'rejected' | 'resample'> = {
  approve: 'accepted',
  correct: 'accepted',
  reject: 'rejected',
  resample: 'resample',
};

/** The fields of a task a page, the API or a log may show: everything but the Temporal task token. */
export interface ReviewTask {
  id: string;
  sampleId: string;
  project: string;
  round: number;
  reason: string;
  audience: 'reviewers' | 'leads';
  assignee: string | null;
  claimExpiresAt: string | null;
  status: 'open' | 'deciding' | 'decided' | 'expired' | 'undone';
  decision: ReviewDecision | null;
  decidedBy: string | null;
  decidedAt: string | null;
  comment: string | null;
  createdAt: string;
  dueAt: string;
}
