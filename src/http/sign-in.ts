import type { Pool } from 'pg';
import type { Actor } from '../review/decisions';
import { getUser } from '../store/users';
import { DUMMY_HASH, verifyPassword } from './passwords';

/** Checks a person's name and password; the actor when they match an enabled user, else undefined (never which part was wrong). */
export function passwordSignIn(pool: Pool): (user: string, password: string) => Promise<Actor | undefined> {
  return async (user, password) => {
    const stored = user ? await getUser(pool, user) : undefined;
    // An unknown name costs one scrypt like a known one, so timing does not tell which names exist.
    const ok = await verifyPassword(password, stored?.passwordHash ?? DUMMY_HASH);
    return ok && stored && !stored.disabled ? { user: stored.user, role: stored.role } : undefined;
  };
}
