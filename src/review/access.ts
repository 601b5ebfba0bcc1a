import { holdsTask, isClaimable } from './assignment';
import type { Actor, ReviewTask } from './decisions';

export type Membership = ReadonlyMap<string, 'reviewer' | 'lead'>;

/** Why an actor may not do something: the message of a 403. Undefined: allowed. */
export type Denial = string | undefined;

/** Operators and admins see every task; a reviewer sees tasks of their projects that they hold, may claim, or decided. */
export function denyView(actor: Actor, task: ReviewTask, member: Membership, now: Date): Denial {
  if (actor.role !== 'reviewer') return undefined;
  if (!member.has(task.project)) return `${actor.user} is not a member of project ${task.project}`;
  if (holdsTask(task, actor.user, now) || task.decidedBy === actor.user) return undefined;
  if (task.status === 'open' && isClaimable(task, now) && audienceFits(task, member)) return undefined;
  return `task ${task.id} is assigned to someone else`;
}

function audienceFits(task: ReviewTask, member: Membership): boolean {
  return task.audience === 'reviewers' || member.get(task.project) === 'lead';
}

/** Reviewers decide the tasks they hold; admins may decide any (recorded under their name); operators run pipelines, not reviews. */
export function denyDecide(actor: Actor, task: ReviewTask, member: Membership, now: Date): Denial {
  if (actor.role === 'admin') return undefined;
  if (actor.role === 'operator') return 'operators cannot decide reviews; sign in with a reviewer token';
  if (!member.has(task.project)) return `${actor.user} is not a member of project ${task.project}`;
  if (!holdsTask(task, actor.user, now)) return `task ${task.id} is not assigned to or claimed by ${actor.user}${isClaimable(task, now) ? '; claim it first' : ''}`;
  return undefined;
}

export function denyClaim(actor: Actor, task: ReviewTask, member: Membership, now: Date): Denial {
  if (actor.role !== 'reviewer') return 'only reviewers claim tasks';
  if (!member.has(task.project)) return `${actor.user} is not a member of project ${task.project}`;
  if (!audienceFits(task, member)) return `task ${task.id} is escalated to the project's leads`;
  if (holdsTask(task, actor.user, now) && task.claimExpiresAt === null) return undefined;
  if (task.status !== 'open' || !(isClaimable(task, now) || holdsTask(task, actor.user, now))) return `task ${task.id} is held by ${task.assignee ?? 'nobody'} and cannot be claimed`;
  return undefined;
}

/** Managing members and reading QC precision is for operators and admins. */
export function denyManage(actor: Actor): Denial {
  return actor.role === 'reviewer' ? 'reviewers cannot manage projects; this needs an operator or admin token' : undefined;
}
