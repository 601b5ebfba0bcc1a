import { audit } from './audit';
import type { Pool } from 'pg';
import type { ProjectDefinition } from '../projects/definition';

export async function upsertProject(pool: Pool, p: ProjectDefinition, actor: string): Promise<void> {
  await pool.query(
    `INSERT INTO projects (id, json_schema, regex_rules, ontology, qc_policy) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (id) DO UPDATE SET json_schema = EXCLUDED.json_schema, regex_rules = EXCLUDED.regex_rules,
       ontology = EXCLUDED.ontology, qc_policy = EXCLUDED.qc_policy, updated_at = now()`,
    [p.id, JSON.stringify(p.jsonSchema), JSON.stringify(p.regexRules), JSON.stringify(p.ontology), JSON.stringify(p.qcPolicy)],
  );
  await audit(pool, { actor, action: 'project.upsert', project: p.id, subject: p.id });
}

export async function projectIds(pool: Pool): Promise<string[]> {
  return (await pool.query<{ id: string }>('SELECT id FROM projects ORDER BY id')).rows.map((r) => r.id);
}

export async function getProject(pool: Pool, id: string): Promise<ProjectDefinition | undefined> {
  const { rows } = await pool.query<{ id: string; json_schema: ProjectDefinition['jsonSchema']; regex_rules: ProjectDefinition['regexRules']; ontology: ProjectDefinition['ontology']; qc_policy: ProjectDefinition['qcPolicy'] }>(
    'SELECT id, json_schema, regex_rules, ontology, qc_policy FROM projects WHERE id = $1', [id],
  );
  const r = rows[0];
  return r && { id: r.id, jsonSchema: r.json_schema, regexRules: r.regex_rules, ontology: r.ontology, qcPolicy: r.qc_policy };
}

export interface StatusRow {
  project: string;
  counts: Record<string, number>;
  rejectedLines: number;
  releases: Array<{ version: string; status: string; sampleCount: number; manifestKey: string | null; publishedAt: Date | null }>;
}

/** Per-project counts per sample status (latest revisions), rejected lines and releases: what `qcflow status` prints. */
export async function projectStatus(pool: Pool, project?: string): Promise<StatusRow[]> {
  const projects = await pool.query<{ id: string }>('SELECT id FROM projects WHERE $1::text IS NULL OR id = $1 ORDER BY id', [project ?? null]);
  const out: StatusRow[] = [];
  for (const { id } of projects.rows) {
    const counts = await pool.query<{ status: string; n: string }>('SELECT status, count(*) AS n FROM samples WHERE project_id = $1 AND is_latest GROUP BY status', [id]);
    const lines = await pool.query<{ n: string }>('SELECT count(*) AS n FROM ingest_rejections WHERE project_id = $1', [id]);
    const rel = await pool.query<{ version: string; status: string; sample_count: number; manifest_key: string | null; published_at: Date | null }>(
      'SELECT version, status, sample_count, manifest_key, published_at FROM releases WHERE project_id = $1 ORDER BY id', [id],
    );
    out.push({
      project: id,
      counts: Object.fromEntries(counts.rows.map((r) => [r.status, Number(r.n)])),
      rejectedLines: Number(lines.rows[0]?.n ?? 0),
      releases: rel.rows.map((r) => ({ version: r.version, status: r.status, sampleCount: r.sample_count, manifestKey: r.manifest_key, publishedAt: r.published_at })),
    });
  }
  return out;
}

/** The next free release version of a project: v1, v2, … */
export async function nextReleaseVersion(pool: Pool, project: string): Promise<string> {
  const { rows } = await pool.query<{ n: number | null }>(
    `SELECT max(substring(version from '^v([0-9]+)$')::int) AS n FROM releases WHERE project_id = $1`, [project],
  );
  return `v${(rows[0]?.n ?? 0) + 1}`;
}

/** The samples the next release of a project takes: accepted, latest revision, in no release yet. */
export const RELEASABLE = `project_id = $1 AND status = 'accepted' AND is_latest AND release_id IS NULL`;

export async function countReleasable(pool: Pool, project: string): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM samples WHERE ${RELEASABLE}`, [project]);
  return Number(rows[0]!.n);
}

export interface BatchStatusRow {
  batchId: string;
  status: string;
  counts: Record<string, number>;
  agreement: { fleissKappa: number | null; krippendorffAlpha: number | null; conflicts: number } | null;
  findings: Array<{ source: string; rule: string; message: string }>;
}

/** The newest batches of a project with their agreement statistics and batch-level findings. */
export async function recentBatches(pool: Pool, project: string, limit: number): Promise<BatchStatusRow[]> {
  const { rows } = await pool.query<{ id: string; status: string; counts: Record<string, number>; agreement: BatchStatusRow['agreement']; findings: BatchStatusRow['findings'] | null }>(
    `SELECT b.id, b.status, b.counts, b.agreement,
            (SELECT jsonb_agg(jsonb_build_object('source', f.source, 'rule', f.rule, 'message', f.message) ORDER BY f.source)
             FROM batch_findings f WHERE f.project_id = b.project_id AND f.batch_id = b.id) AS findings
     FROM batches b WHERE b.project_id = $1 ORDER BY b.created_at DESC, b.id DESC LIMIT $2`,
    [project, limit],
  );
  return rows.map((r) => ({ batchId: r.id, status: r.status, counts: r.counts, agreement: r.agreement, findings: r.findings ?? [] }));
}

/** Why samples of a project sit in review or resample: counts per layer-5 reason (latest revisions). */
export async function dispositionReasons(pool: Pool, project: string): Promise<Record<string, number>> {
  const { rows } = await pool.query<{ reason: string; n: string }>(
    `SELECT q.details->>'reason' AS reason, count(*) AS n FROM samples s JOIN qc_results q ON q.sample_id = s.id AND q.layer = 5
     WHERE s.project_id = $1 AND s.is_latest GROUP BY 1 ORDER BY 1`, [project],
  );
  return Object.fromEntries(rows.map((r) => [r.reason, Number(r.n)]));
}
