import type { Pool, PoolClient } from 'pg';
import { withTransaction } from '../clients/pg';
import { ALIAS_PATTERN, transitionProblem, type Stage } from '../models/lifecycle';

type Db = Pool | PoolClient;

/** A refused lifecycle request: the message says what is allowed. */
export class LifecycleError extends Error {
  override name = 'LifecycleError';
}

export interface ModelEvent {
  versionId: string;
  kind: 'stage' | 'alias' | 'metadata';
  from: string | null;
  to: string;
  actor: string;
  reason: string;
  at: Date;
}

export async function recordModelEvent(c: PoolClient, e: Omit<ModelEvent, 'at'>): Promise<void> {
  await c.query('INSERT INTO model_events (version_id, kind, from_value, to_value, actor, reason) VALUES ($1, $2, $3, $4, $5, $6)', [e.versionId, e.kind, e.from, e.to, e.actor, e.reason]);
}

async function moveAliasIn(c: PoolClient, versionId: string, alias: string, actor: string, reason: string): Promise<void> {
  if (!ALIAS_PATTERN.test(alias)) throw new LifecycleError(`alias ${JSON.stringify(alias)} must match ${ALIAS_PATTERN.source}`);
  const v = (await c.query<{ tenant: string; name: string; stage: Stage }>('SELECT tenant, name, stage FROM model_versions WHERE id = $1', [versionId])).rows[0];
  if (!v) throw new LifecycleError(`model version ${versionId} does not exist; see qcflow model list`);
  if (v.stage === 'archived') throw new LifecycleError(`model version ${versionId} is archived; an alias cannot name it`);
  const before = (await c.query<{ version_id: string }>('SELECT version_id FROM model_aliases WHERE tenant = $1 AND name = $2 AND alias = $3 FOR UPDATE', [v.tenant, v.name, alias])).rows[0];
  if (before?.version_id === versionId) return;
  await c.query(
    `INSERT INTO model_aliases (tenant, name, alias, version_id, updated_by) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (tenant, name, alias) DO UPDATE SET version_id = EXCLUDED.version_id, updated_by = EXCLUDED.updated_by, updated_at = now()`,
    [v.tenant, v.name, alias, versionId, actor],
  );
  await recordModelEvent(c, { versionId, kind: 'alias', from: before?.version_id ?? null, to: alias, actor, reason });
}

/**
 * Moves a version to `to` if its lifecycle allows it, with an event. Reaching production also moves the
 * model's `production` alias to it and archives nothing: the previous production version keeps its stage
 * until someone archives it, so a rollback has somewhere to go. All in one transaction.
 */
export async function moveStage(pool: Pool, versionId: string, to: Stage, actor: string, reason: string): Promise<{ from: Stage; to: Stage }> {
  return withTransaction(pool, async (c) => {
    const v = (await c.query<{ stage: Stage }>('SELECT stage FROM model_versions WHERE id = $1 FOR UPDATE', [versionId])).rows[0];
    if (!v) throw new LifecycleError(`model version ${versionId} does not exist; see qcflow model list`);
    const problem = transitionProblem(v.stage, to);
    if (problem) throw new LifecycleError(`${versionId}: ${problem}`);
    await c.query('UPDATE model_versions SET stage = $2 WHERE id = $1', [versionId, to]);
    await recordModelEvent(c, { versionId, kind: 'stage', from: v.stage, to, actor, reason });
    if (to === 'production') await moveAliasIn(c, versionId, 'production', actor, reason);
    if (to === 'archived') {
      const named = await c.query<{ alias: string }>('DELETE FROM model_aliases WHERE version_id = $1 RETURNING alias', [versionId]);
      for (const a of named.rows) await recordModelEvent(c, { versionId, kind: 'alias', from: versionId, to: `${a.alias} (removed)`, actor, reason: `${reason} (archived: its aliases go)` });
    }
    return { from: v.stage, to };
  });
}

/** Points `alias` of the version's model at it, atomically, with an event. */
export async function setAlias(pool: Pool, versionId: string, alias: string, actor: string, reason: string): Promise<void> {
  await withTransaction(pool, (c) => moveAliasIn(c, versionId, alias, actor, reason));
}

export async function aliasesOf(db: Db, tenant: string, name: string): Promise<Record<string, string>> {
  const { rows } = await db.query<{ alias: string; version_id: string }>('SELECT alias, version_id FROM model_aliases WHERE tenant = $1 AND name = $2 ORDER BY alias', [tenant, name]);
  return Object.fromEntries(rows.map((r) => [r.alias, r.version_id]));
}

export async function modelEvents(db: Db, versionId: string): Promise<ModelEvent[]> {
  const { rows } = await db.query<{ version_id: string; kind: ModelEvent['kind']; from_value: string | null; to_value: string; actor: string; reason: string; at: Date }>(
    'SELECT version_id, kind, from_value, to_value, actor, reason, at FROM model_events WHERE version_id = $1 ORDER BY id', [versionId],
  );
  return rows.map((r) => ({ versionId: r.version_id, kind: r.kind, from: r.from_value, to: r.to_value, actor: r.actor, reason: r.reason, at: r.at }));
}

export interface Lineage {
  /** Parent, grandparent, … (quantized from, fine-tuned from). */
  ancestors: Array<{ id: string; precision: string; stage: Stage }>;
  descendants: Array<{ id: string; parentId: string; precision: string; stage: Stage }>;
  /** Projects whose samples this version scored, and the releases those samples went into. */
  usedBy: Array<{ project: string; samples: number; releases: string[] }>;
}

export async function lineage(db: Db, versionId: string): Promise<Lineage> {
  const ancestors = await db.query<{ id: string; precision: string; stage: Stage }>(
    `WITH RECURSIVE up AS (SELECT parent_id AS id, 1 AS depth FROM model_versions WHERE id = $1 AND parent_id IS NOT NULL
       UNION ALL SELECT m.parent_id, up.depth + 1 FROM up JOIN model_versions m ON m.id = up.id WHERE m.parent_id IS NOT NULL AND up.depth < 100)
     SELECT m.id, m.precision, m.stage FROM up JOIN model_versions m ON m.id = up.id ORDER BY up.depth`, [versionId],
  );
  const descendants = await db.query<{ id: string; parent_id: string; precision: string; stage: Stage }>(
    `WITH RECURSIVE down AS (SELECT id, parent_id, 1 AS depth FROM model_versions WHERE parent_id = $1
       UNION ALL SELECT m.id, m.parent_id, down.depth + 1 FROM down JOIN model_versions m ON m.parent_id = down.id WHERE down.depth < 100)
     SELECT m.id, m.parent_id, m.precision, m.stage FROM down JOIN model_versions m ON m.id = down.id ORDER BY down.depth, m.id`, [versionId],
  );
  const used = await db.query<{ project_id: string; samples: string; releases: string[] }>(
    `SELECT s.project_id, count(*) AS samples, COALESCE(array_agg(DISTINCT r.version) FILTER (WHERE r.version IS NOT NULL), '{}') AS releases
     FROM qc_results q JOIN samples s ON s.id = q.sample_id LEFT JOIN releases r ON r.id = s.release_id
     WHERE q.layer = 3 AND $1 = ANY(string_to_array(q.model_version, '+')) GROUP BY s.project_id ORDER BY s.project_id`, [versionId],
  );
  return {
    ancestors: ancestors.rows,
    descendants: descendants.rows.map((r) => ({ id: r.id, parentId: r.parent_id, precision: r.precision, stage: r.stage })),
    usedBy: used.rows.map((r) => ({ project: r.project_id, samples: Number(r.samples), releases: r.releases })),
  };
}
