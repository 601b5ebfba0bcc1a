/**
 * Round-robin over a project's reviewers (sorted by id): the first one after `last`, wrapping around, that is
 * not excluded. Excluded users (earlier assignees of the same sample) are skipped while anyone else is left,
 * so an escalated task goes to someone new; when everyone is excluded the rotation simply continues.
 */
export function nextAssignee(members: readonly string[], last: string | undefined, exclude: readonly string[] = []): string | undefined {
  if (members.length === 0) return undefined;
  const sorted = [...new Set(members)].sort();
  const start = last === undefined ? 0 : sorted.findIndex((m) => m > last);
  const order = start < 0 ? sorted : [...sorted.slice(start), ...sorted.slice(0, start)];
  return order.find((m) => !exclude.includes(m)) ?? order[0];
}

/** Whether a task can be claimed now: nobody holds it, or the holder's claim has run out. */
export function isClaimable(task: { assignee: string | null; claimExpiresAt: string | Date | null }, now: Date): boolean {
  if (task.assignee === null) return true;
  return task.claimExpiresAt !== null && new Date(task.claimExpiresAt).getTime() <= now.getTime();
}

/** Whether `user` holds the task now: assigned to them, or claimed by them and the claim still runs. */
export function holdsTask(task: { assignee: string | null; claimExpiresAt: string | Date | null }, user: string, now: Date): boolean {
  if (task.assignee !== user) return false;
  return task.claimExpiresAt === null || new Date(task.claimExpiresAt).getTime() > now.getTime();
}
