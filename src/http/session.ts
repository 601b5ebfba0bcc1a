import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../clients/logger';
import { ReviewError, type ReviewService } from '../review/service';
import { RegistryError, type ModelRegistryService } from '../models/registry-service';
import type { Actor } from '../review/decisions';
import type { PayloadCodec } from '@temporalio/common';
import { AuthError, type TokenVerifier } from './auth';

/** Who is asking, for the pages (session cookie) and the API (bearer token), and how refusals are worded. */

export const SESSION_COOKIE = 'qcflow_session';

export interface ServerDeps {
  reviews: ReviewService;
  /** The model registry's API (tenant-isolated); absent: not served. */
  models?: ModelRegistryService;
  verify: TokenVerifier;
  /** People's sign-in by name and password (users table); absent: tokens only. */
  signIn?: (user: string, password: string) => Promise<Actor | undefined>;
  /** Signs the session token a successful password sign-in gets. */
  issue?: (actor: Actor) => string;
  log: Logger;
  /** Cookies marked Secure (serve behind TLS). */
  secureCookies?: boolean;
  /** Where payloads are encrypted: the remote codec endpoint for the Temporal UI (/codec/decode). */
  codec?: { codec: PayloadCodec; origins: string[] };
}

export function describeError(err: Error & { validation?: unknown; statusCode?: number }): { status: number; message: string; findings?: unknown } {
  if (err instanceof AuthError) return { status: 401, message: err.message };
  if (err instanceof ReviewError) return { status: err.status, message: err.message, findings: err.findings };
  if (err instanceof RegistryError) return { status: err.status, message: err.message, findings: err.findings };
  // Schema validation: fastify's message names the field and the rule (`body/decision must be equal to one of the allowed values`).
  if (err.validation) return { status: 400, message: err.message };
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) return { status: err.statusCode, message: err.message };
  return { status: 500, message: 'internal error; the server log has the details' };
}

/** The bearer token's actor, or 401. */
export function bearerActor(deps: ServerDeps, req: FastifyRequest): Actor {
  const header = req.headers.authorization;
  const m = header && /^Bearer\s+(\S+)$/i.exec(header);
  if (!m) throw new AuthError('missing `Authorization: Bearer <token>`; get one with: qcflow token issue --user <you> --role reviewer');
  return deps.verify(m[1]!);
}

/**
 * Who the session cookie names, or '' without one: what CSRF tokens are bound to. Read without verifying
 * the signature or expiry — a forged cookie gains nothing here (every page still verifies it), and an
 * expired session must still reach the page that says so rather than a bare CSRF refusal.
 */
export function sessionSubject(req: FastifyRequest): string {
  const token = req.cookies[SESSION_COOKIE];
  const payload = token?.split('.')[1];
  if (!payload) return '';
  try {
    const sub = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { sub?: unknown }).sub;
    return typeof sub === 'string' ? sub : '';
  } catch {
    return '';
  }
}

/** What a CSRF token is bound to; never empty (the token library binds nothing to an empty string). */
export const csrfUser = (subject: string): string => (subject ? `user:${subject}` : 'signed-out');

/** A CSRF token for a page, bound to its user; `signedOut` when the response clears the session cookie. */
export function csrfToken(req: FastifyRequest, reply: FastifyReply, signedOut = false): string {
  return reply.generateCsrf({ userInfo: csrfUser(signedOut ? '' : sessionSubject(req)) });
}

/** The signed-in page user, or undefined (the caller redirects to sign-in). A bad cookie is cleared. */
export function cookieActor(deps: ServerDeps, req: FastifyRequest, reply: FastifyReply): Actor | undefined {
  const token = req.cookies[SESSION_COOKIE];
  if (!token) return undefined;
  try {
    return deps.verify(token);
  } catch (err) {
    if (!(err instanceof AuthError)) throw err;
    void reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return undefined;
  }
}
