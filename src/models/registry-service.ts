import type { Pool } from 'pg';
import type { Actor } from '../review/decisions';
import { getModelVersion, listModelVersions, type ModelVersionRow } from '../store/models';
import { aliasesOf, LifecycleError, lineage, modelEvents, moveStage, setAlias, type Lineage, type ModelEvent } from '../store/model-lifecycle';
import { denyAlias, denyPublish, denyRead, denyStage, denyTenantAdmin, visibleTenant, type RegistryDenial } from './access';
import { MetadataError } from './metadata';
import { metadataSchemaOf, setMetadataSchema, setVersionMetadata } from '../store/model-metadata';
import type { Stage } from './lifecycle';

/** A refused registry request: `status` is the HTTP status; the message says what to do. */
export class RegistryError extends Error {
  override name = 'RegistryError';
  constructor(readonly status: 400 | 403 | 404 | 409 | 422, message: string, readonly findings?: MetadataError['problems']) {
    super(message);
  }
}

const refuse = (d: RegistryDenial): void => {
  if (d) throw new RegistryError(d.status, d.message);
};

/** Model registry operations for the API and the CLI: one place for tenant isolation and registry roles. */
export class ModelRegistryService {
  constructor(private readonly pool: Pool) {}

  private async version(actor: Actor, id: string): Promise<ModelVersionRow> {
    const v = await getModelVersion(this.pool, id);
    // Missing and invisible answer alike.
    if (!v || !visibleTenant(actor, v.tenant)) throw new RegistryError(404, `model version ${id} does not exist (or is not in your tenant)`);
    return v;
  }

  async list(actor: Actor, f: { tenant?: string; name?: string; stage?: Stage; alias?: string }): Promise<ModelVersionRow[]> {
    if (f.tenant) refuse(denyRead(actor, f.tenant, `tenant ${f.tenant}`));
    const rows = await listModelVersions(this.pool, { ...f, tenant: f.tenant ?? actor.tenant });
    return rows.filter((v) => visibleTenant(actor, v.tenant));
  }

  async show(actor: Actor, id: string): Promise<ModelVersionRow & { aliases: Record<string, string>; events: ModelEvent[] }> {
    const v = await this.version(actor, id);
    return { ...v, aliases: await aliasesOf(this.pool, v.tenant, v.name), events: await modelEvents(this.pool, id) };
  }

  async lineage(actor: Actor, id: string): Promise<Lineage> {
    const v = await this.version(actor, id);
    const l = await lineage(this.pool, id);
    // Relatives in another tenant stay invisible too.
    const mine = (x: { id: string }): boolean => x.id.startsWith(`${v.tenant}/`);
    return { ancestors: l.ancestors.filter(mine), descendants: l.descendants.filter(mine), usedBy: l.usedBy };
  }

  async moveStage(actor: Actor, id: string, to: Stage, reason: string): Promise<{ from: Stage; to: Stage }> {
    const v = await this.version(actor, id);
    refuse(denyStage(actor, v.tenant, `model version ${id}`, to));
    return this.lifecycle(() => moveStage(this.pool, id, to, actor.user, reason));
  }

  async setAlias(actor: Actor, id: string, alias: string, reason: string): Promise<void> {
    const v = await this.version(actor, id);
    refuse(denyAlias(actor, v.tenant, `model version ${id}`, alias));
    await this.lifecycle(() => setAlias(this.pool, id, alias, actor.user, reason));
  }

  /** Who may register into `tenant`: refuses others (404 for an invisible tenant) before anything is uploaded. */
  mayPublish(actor: Actor, tenant: string): void {
    refuse(denyPublish(actor, tenant, `tenant ${tenant}`));
  }

  /** Who may start a rollout of `id`: it ends by moving production, so a registry admin of its tenant. */
  mayPromote(actor: Actor, tenant: string, id: string): void {
    refuse(denyStage(actor, tenant, `model version ${id}`, 'production'));
  }

  async setMetadata(actor: Actor, id: string, metadata: unknown, reason: string): Promise<void> {
    const v = await this.version(actor, id);
    refuse(denyPublish(actor, v.tenant, `model version ${id}`));
    await this.lifecycle(() => setVersionMetadata(this.pool, id, metadata, actor.user, reason));
  }

  async metadataSchema(actor: Actor, tenant: string): Promise<{ tenant: string; schema: Record<string, unknown> | null }> {
    refuse(denyRead(actor, tenant, `tenant ${tenant}`));
    return { tenant, schema: (await metadataSchemaOf(this.pool, tenant)) ?? null };
  }

  /** Sets (null: removes) the tenant's metadata schema; says which registered versions it leaves out. */
  async setMetadataSchema(actor: Actor, tenant: string, schema: Record<string, unknown> | null): Promise<{ nonConforming: string[] }> {
    refuse(denyTenantAdmin(actor, tenant, `the metadata schema of tenant ${tenant}`));
    return this.lifecycle(() => setMetadataSchema(this.pool, tenant, schema, actor.user));
  }

  private async lifecycle<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof LifecycleError) throw new RegistryError(409, err.message);
      if (err instanceof MetadataError) throw new RegistryError(422, err.message, err.problems);
      throw err;
    }
  }
}
