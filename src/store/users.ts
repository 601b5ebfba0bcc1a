import type { Pool } from 'pg';
import type { Role } from '../review/decisions';
import { audit } from './audit';

export interface StoredUser {
  user: string;
  role: Role;
  passwordHash: string;
  disabled: boolean;
}

export async function getUser(pool: Pool, user: string): Promise<StoredUser | undefined> {
  const { rows } = await pool.query<{ user_id: string; role: Role; password_hash: string; disabled: boolean }>('SELECT user_id, role, password_hash, disabled FROM users WHERE user_id = $1', [user]);
  const r = rows[0];
  return r && { user: r.user_id, role: r.role, passwordHash: r.password_hash, disabled: r.disabled };
}

/** Adds a user or sets their role and password, with an audit record (never the hash). */
export async function upsertUser(pool: Pool, u: { user: string; role: Role; passwordHash: string }, actor: string): Promise<void> {
  await pool.query(
    `INSERT INTO users (user_id, role, password_hash) VALUES ($1, $2, $3)
     ON CONFLICT (user_id) DO UPDATE SET role = EXCLUDED.role, password_hash = EXCLUDED.password_hash, disabled = false, updated_at = now()`,
    [u.user, u.role, u.passwordHash],
  );
  await audit(pool, { actor, action: 'user.set', subject: u.user, details: { role: u.role } });
}

export async function disableUser(pool: Pool, user: string, actor: string): Promise<boolean> {
  const { rowCount } = await pool.query('UPDATE users SET disabled = true, updated_at = now() WHERE user_id = $1 AND NOT disabled', [user]);
  if (rowCount) await audit(pool, { actor, action: 'user.disable', subject: user, details: {} });
  return (rowCount ?? 0) > 0;
}
