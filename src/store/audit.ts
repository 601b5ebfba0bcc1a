import type { Pool, PoolClient } from 'pg';

/** Who did what to which subject: every write of audit_log goes through here. */
export async function audit(db: Pool | PoolClient, e: { actor: string; action: string; project?: string; subject: string; details?: Record<string, unknown> }): Promise<void> {
  await db.query('INSERT INTO audit_log (actor, action, project_id, subject, details) VALUES ($1, $2, $3, $4, $5)', [e.actor, e.action, e.project ?? null, e.subject, JSON.stringify(e.details ?? {})]);
}
