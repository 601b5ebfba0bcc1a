import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { createSigner, createVerifier, TokenError } from 'fast-jwt';
import type { Config } from '../clients/config';
import { MODEL_ROLES, ROLES, type Actor, type ModelRole, type Role } from '../review/decisions';

/** A request without a valid token: 401, and nothing happens. */
export class AuthError extends Error {
  override name = 'AuthError';
}

/** What a user id may look like: the `sub` of a token, a member of a project, a password account. */
export const USER_ID = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;

/**
 * The HS256 secret: QCFLOW_JWT_SECRET, or a random one kept (mode 0600) in the state dir so the dev stack,
 * the CLI and the tests on one machine agree without configuration.
 */
export function resolveJwtSecret(cfg: Pick<Config, 'http' | 'stateDir'>): string {
  if (cfg.http.jwtSecret) return cfg.http.jwtSecret;
  const file = path.join(cfg.stateDir, 'jwt-secret');
  if (!existsSync(file)) {
    mkdirSync(cfg.stateDir, { recursive: true });
    try {
      writeFileSync(file, randomBytes(48).toString('base64url'), { flag: 'wx', mode: 0o600 });
    } catch (err) {
      // Another process created it first: use theirs.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    chmodSync(file, 0o600);
  }
  return readFileSync(file, 'utf8').trim();
}

export function parseRole(value: unknown): Role {
  if (typeof value !== 'string' || !(ROLES as readonly string[]).includes(value)) throw new AuthError(`role must be one of ${ROLES.join(', ')}`);
  return value as Role;
}

export function parseModelRole(value: unknown): ModelRole {
  if (typeof value !== 'string' || !(MODEL_ROLES as readonly string[]).includes(value)) throw new AuthError(`model role must be one of ${MODEL_ROLES.join(', ')}`);
  return value as ModelRole;
}

const TENANT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Signs a token for `user` with `role` (and, for the model registry, a tenant and a registry role), valid for ttlSeconds. */
export function issueToken(secret: string, a: { user: string; role: Role; ttlSeconds: number; tenant?: string; modelRole?: ModelRole }): string {
  if (!USER_ID.test(a.user)) throw new AuthError(`user ${JSON.stringify(a.user)} must match ${USER_ID.source}`);
  parseRole(a.role);
  if (a.tenant !== undefined && !TENANT.test(a.tenant)) throw new AuthError(`tenant ${JSON.stringify(a.tenant)} must match ${TENANT.source}`);
  if (a.modelRole !== undefined) parseModelRole(a.modelRole);
  return createSigner({ key: secret, algorithm: 'HS256', expiresIn: a.ttlSeconds * 1000 })({
    sub: a.user, role: a.role, ...(a.tenant ? { tenant: a.tenant } : {}), ...(a.modelRole ? { models: a.modelRole } : {}),
  });
}

export type TokenVerifier = (token: string) => Actor;

/** Verifies signature, algorithm (HS256 only: no `none`, no key confusion), expiry, and the claims qcflow needs. */
export function tokenVerifier(secret: string): TokenVerifier {
  const verify = createVerifier({ key: secret, algorithms: ['HS256'], requiredClaims: ['sub', 'role', 'exp'], clockTolerance: 5_000 });
  return (token) => {
    let claims: { sub?: unknown; role?: unknown; tenant?: unknown; models?: unknown };
    try {
      claims = verify(token) as { sub?: unknown; role?: unknown; tenant?: unknown; models?: unknown };
    } catch (err) {
      if (err instanceof TokenError) {
        const why = err.code === TokenError.codes.expired ? 'the token has expired' : err.code === TokenError.codes.invalidSignature ? 'the token signature is invalid' : `the token is invalid (${err.message})`;
        throw new AuthError(`${why}; get a new one with: qcflow token issue --user <you> --role reviewer`);
      }
      throw err;
    }
    if (typeof claims.sub !== 'string' || !USER_ID.test(claims.sub)) throw new AuthError('the token has no valid `sub` (user) claim');
    if (claims.tenant !== undefined && (typeof claims.tenant !== 'string' || !TENANT.test(claims.tenant))) throw new AuthError('the token has an invalid `tenant` claim');
    return {
      user: claims.sub, role: parseRole(claims.role),
      ...(typeof claims.tenant === 'string' ? { tenant: claims.tenant } : {}), ...(claims.models !== undefined ? { modelRole: parseModelRole(claims.models) } : {}),
    };
  };
}
