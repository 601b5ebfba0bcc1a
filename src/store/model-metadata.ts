import type { Pool, PoolClient } from 'pg';
import { withTransaction } from '../clients/pg';
import { checkMetadata, compileMetadataSchema, MetadataError, type ModelMetadata } from '../models/metadata';
import { audit } from './audit';
import { recordModelEvent } from './model-lifecycle';

type Db = Pool | PoolClient;

/** The tenant's metadata schema, or undefined when it has none (any object is taken). */
export async function metadataSchemaOf(db: Db, tenant: string): Promise<Record<string, unknown> | undefined> {
  const { rows } = await db.query<{ schema: Record<string, unknown> }>('SELECT schema FROM tenant_metadata_schemas WHERE tenant = $1', [tenant]);
  return rows[0]?.schema;
}

/**
 * Sets (or, with null, removes) a tenant's metadata schema. Versions already registered keep their metadata;
 * the ids of those that do not fit the new schema are returned, so whoever changes it sees what it leaves out.
 */
export async function setMetadataSchema(pool: Pool, tenant: string, schema: Record<string, unknown> | null, actor: string): Promise<{ nonConforming: string[] }> {
  if (schema === null) {
    await pool.query('DELETE FROM tenant_metadata_schemas WHERE tenant = $1', [tenant]);
    await audit(pool, { actor, action: 'model.metadata-schema.remove', subject: tenant });
    return { nonConforming: [] };
  }
  const validate = compileMetadataSchema(schema);
  await pool.query(
    `INSERT INTO tenant_metadata_schemas (tenant, schema, updated_by) VALUES ($1, $2, $3)
     ON CONFLICT (tenant) DO UPDATE SET schema = EXCLUDED.schema, updated_by = EXCLUDED.updated_by, updated_at = now()`,
    [tenant, JSON.stringify(schema), actor],
  );
  await audit(pool, { actor, action: 'model.metadata-schema.set', subject: tenant, details: { schema } });
  const { rows } = await pool.query<{ id: string; metadata: ModelMetadata }>(`SELECT id, metadata FROM model_versions WHERE tenant = $1 AND stage <> 'archived' ORDER BY id`, [tenant]);
  return { nonConforming: rows.filter((r) => !validate(r.metadata)).map((r) => r.id) };
}

/** Replaces a version's metadata if it fits its tenant's schema, with a model event saying who and why. */
export async function setVersionMetadata(pool: Pool, versionId: string, metadata: unknown, actor: string, reason: string): Promise<void> {
  await withTransaction(pool, async (c) => {
    const v = (await c.query<{ tenant: string; metadata: ModelMetadata }>('SELECT tenant, metadata FROM model_versions WHERE id = $1 FOR UPDATE', [versionId])).rows[0];
    if (!v) throw new MetadataError(`model version ${versionId} does not exist; see qcflow model list`);
    const checked = checkMetadata(metadata, await metadataSchemaOf(c, v.tenant), v.tenant);
    await c.query('UPDATE model_versions SET metadata = $2 WHERE id = $1', [versionId, JSON.stringify(checked)]);
    await recordModelEvent(c, { versionId, kind: 'metadata', from: JSON.stringify(v.metadata), to: JSON.stringify(checked), actor, reason });
  });
}
