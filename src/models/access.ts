import type { Actor } from '../review/decisions';
import type { Stage } from './lifecycle';

/**
 * Who may do what in the model registry. A token limited to a tenant sees only that tenant's models;
 * another tenant's are not there at all (404, never 403, so a name does not leak). Viewers read;
 * publishers validate, canary, step back and set aliases other than `production`; admins also promote to
 * production, archive and move `production`. An unlimited token (no tenant) needs the registry role admin.
 */
export type RegistryDenial = { status: 403 | 404; message: string } | undefined;

export function visibleTenant(actor: Actor, tenant: string): boolean {
  if (!actor.modelRole) return false;
  return actor.tenant === undefined ? actor.modelRole === 'admin' : actor.tenant === tenant;
}

const notFound = (what: string): RegistryDenial => ({ status: 404, message: `${what} does not exist (or is not in your tenant)` });

export function denyRead(actor: Actor, tenant: string, what: string): RegistryDenial {
  return visibleTenant(actor, tenant) ? undefined : notFound(what);
}

const ADMIN_STAGES: readonly Stage[] = ['production', 'archived'];

export function denyStage(actor: Actor, tenant: string, what: string, to: Stage): RegistryDenial {
  if (!visibleTenant(actor, tenant)) return notFound(what);
  if (actor.modelRole === 'admin') return undefined;
  if (actor.modelRole === 'publisher' && !ADMIN_STAGES.includes(to)) return undefined;
  return { status: 403, message: `moving a version to ${to} needs the registry role ${ADMIN_STAGES.includes(to) ? 'admin' : 'publisher or admin'}; yours is ${actor.modelRole}` };
}

/** Registering versions and editing their metadata: publishers and admins of the tenant. */
export function denyPublish(actor: Actor, tenant: string, what: string): RegistryDenial {
  if (!visibleTenant(actor, tenant)) return notFound(what);
  if (actor.modelRole === 'admin' || actor.modelRole === 'publisher') return undefined;
  return { status: 403, message: `${what}: registering versions and editing their metadata needs the registry role publisher or admin; yours is ${actor.modelRole}` };
}

/** A tenant's metadata schema binds everyone who publishes in it: admins only. */
export function denyTenantAdmin(actor: Actor, tenant: string, what: string): RegistryDenial {
  if (!visibleTenant(actor, tenant)) return notFound(what);
  if (actor.modelRole === 'admin') return undefined;
  return { status: 403, message: `${what}: changing it needs the registry role admin; yours is ${actor.modelRole}` };
}

export function denyAlias(actor: Actor, tenant: string, what: string, alias: string): RegistryDenial {
  if (!visibleTenant(actor, tenant)) return notFound(what);
  if (actor.modelRole === 'admin' || (actor.modelRole === 'publisher' && alias !== 'production')) return undefined;
  return { status: 403, message: `setting the ${alias} alias needs the registry role ${alias === 'production' ? 'admin' : 'publisher or admin'}; yours is ${actor.modelRole}` };
}
