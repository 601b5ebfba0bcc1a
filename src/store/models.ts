import { audit } from './audit';
import type { Pool } from 'pg';
import type { ModelManifest } from '../qc/inference/manifest';
import { MODEL_REF_PATTERN } from '../qc/policy';
import type { Stage } from '../models/lifecycle';
import type { ModelMetadata } from '../models/metadata';

export interface ModelVersionRow {
  id: string;
  tenant: string;
  name: string;
  version: string;
  sha256: string;
  objectKey: string;
  bytes: number;
  manifest: ModelManifest;
  tokenizerKey: string | null;
  tokenizerSha256: string | null;
  precision: string;
  parentId: string | null;
  /** Golden inputs (JSONL in MinIO) the version is evaluated on. */
  goldenKey: string | null;
  /** Calibration inputs (JSONL in MinIO, golden format) the quantization workflow fits to, apart from the golden ones that judge. */
  calibrationKey: string | null;
  /** For a quantized child: method, parameters and the metrics it was chosen on. */
  metrics: Record<string, unknown>;
  /** What the tenant records about the version, checked against its metadata schema (src/models/metadata.ts). */
  metadata: ModelMetadata;
  status: 'active' | 'retired';
  /** Where the version is in its lifecycle (src/models/lifecycle.ts). */
  stage: Stage;
  createdAt: Date;
}

/** What a batch pins: the version's id and the sha256 its file must have. */
export interface PinnedModel {
  id: string;
  sha256: string;
}

export const modelVersionId = (tenant: string, name: string, version: string): string => `${tenant}/${name}/${version}`;

const COLUMNS = `id, tenant, name, version, sha256, object_key, bytes, manifest, tokenizer_key, tokenizer_sha256, precision, parent_id, golden_key, calibration_key, metrics, metadata, status, stage, created_at`;

type Raw = { id: string; tenant: string; name: string; version: string; sha256: string; object_key: string; bytes: string; manifest: ModelManifest; tokenizer_key: string | null; tokenizer_sha256: string | null; precision: string; parent_id: string | null; golden_key: string | null; calibration_key: string | null; metrics: Record<string, unknown>; metadata: ModelMetadata; status: 'active' | 'retired'; stage: Stage; created_at: Date };

const fromRow = (r: Raw): ModelVersionRow => ({
  id: r.id, tenant: r.tenant, name: r.name, version: r.version, sha256: r.sha256, objectKey: r.object_key, bytes: Number(r.bytes),
  manifest: r.manifest, tokenizerKey: r.tokenizer_key, tokenizerSha256: r.tokenizer_sha256, precision: r.precision, parentId: r.parent_id,
  goldenKey: r.golden_key, calibrationKey: r.calibration_key, metrics: r.metrics, metadata: r.metadata, status: r.status, stage: r.stage, createdAt: r.created_at,
});

export class ModelVersionConflict extends Error {
  override name = 'ModelVersionConflict';
}

/** Inserts a version; the same id with the same sha256 is a no-op (re-running a registration), another sha256 is refused. */
export async function insertModelVersion(pool: Pool, v: Omit<ModelVersionRow, 'status' | 'stage' | 'createdAt'>, actor: string): Promise<ModelVersionRow> {
  const { rows } = await pool.query<Raw>(
    `INSERT INTO model_versions (id, tenant, name, version, sha256, object_key, bytes, manifest, tokenizer_key, tokenizer_sha256, precision, parent_id, golden_key, calibration_key, metrics, metadata)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) ON CONFLICT (id) DO NOTHING RETURNING ${COLUMNS}`,
    [v.id, v.tenant, v.name, v.version, v.sha256, v.objectKey, v.bytes, JSON.stringify(v.manifest), v.tokenizerKey, v.tokenizerSha256, v.precision, v.parentId, v.goldenKey, v.calibrationKey, JSON.stringify(v.metrics), JSON.stringify(v.metadata)],
  );
  if (rows[0]) {
    await audit(pool, { actor, action: 'model.register', subject: v.id });
    return fromRow(rows[0]);
  }
  const existing = await getModelVersion(pool, v.id);
  if (existing && existing.sha256 === v.sha256) return existing;
  throw new ModelVersionConflict(`model version ${v.id} is already registered with sha256 ${existing?.sha256}; register the new file under a new --version`);
}

export async function getModelVersion(pool: Pool, id: string): Promise<ModelVersionRow | undefined> {
  const { rows } = await pool.query<Raw>(`SELECT ${COLUMNS} FROM model_versions WHERE id = $1`, [id]);
  return rows[0] && fromRow(rows[0]);
}

export async function listModelVersions(pool: Pool, filter: { tenant?: string; name?: string; stage?: Stage; alias?: string } = {}): Promise<ModelVersionRow[]> {
  const { rows } = await pool.query<Raw>(
    `SELECT ${COLUMNS} FROM model_versions v WHERE ($1::text IS NULL OR tenant = $1) AND ($2::text IS NULL OR name = $2) AND ($3::text IS NULL OR stage = $3)
       AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM model_aliases a WHERE a.version_id = v.id AND a.alias = $4))
     ORDER BY tenant, name, created_at`,
    [filter.tenant ?? null, filter.name ?? null, filter.stage ?? null, filter.alias ?? null],
  );
  return rows.map(fromRow);
}

/**
 * `name`, `name@version` or `tenant/name[@version]`. A bare name means the newest active version that was
 * registered as itself: quantized children (parent_id set) are used only when named, until a rollout says otherwise.
 */
export function parseModelRef(ref: string, defaultTenant = 'default'): { tenant: string; name: string; version?: string } {
  const m = new RegExp(MODEL_REF_PATTERN).exec(ref);
  if (!m) throw new Error(`model reference ${JSON.stringify(ref)} must look like name, name@version or tenant/name@version`);
  return { tenant: m[1] ?? defaultTenant, name: m[2]!, version: m[3] };
}

export class UnknownModelError extends Error {
  override name = 'UnknownModelError';
}

/** Resolves references to exact versions, now; the result is what a batch pins. */
export async function resolveModelRefs(pool: Pool, refs: string[]): Promise<PinnedModel[]> {
  const out: PinnedModel[] = [];
  for (const ref of refs) {
    const { tenant, name, version } = parseModelRef(ref);
    const { rows } = await pool.query<{ id: string; sha256: string }>(
      `SELECT id, sha256 FROM model_versions WHERE tenant = $1 AND name = $2 AND ($3::text IS NULL OR version = $3) AND status = 'active'
         AND ($3::text IS NOT NULL OR parent_id IS NULL)
       ORDER BY created_at DESC, id DESC LIMIT 1`,
      [tenant, name, version ?? null],
    );
    if (!rows[0]) throw new UnknownModelError(`layer-3 model ${JSON.stringify(ref)} is not registered (or retired); register it with: qcflow model register --name ${name} --version <v> --file model.onnx --manifest manifest.json`);
    out.push(rows[0]);
  }
  return out;
}
