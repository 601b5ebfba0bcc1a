import type { Client, Pool, PoolClient } from 'pg';
import type { Arm } from '../rollout/bucketing';
import { audit } from './audit';

type Db = Pool | PoolClient;

export interface FlagDefinition {
  key: string;
  salt: string;
  arms: Arm[];
  defaultVariant: string;
  enabled: boolean;
}

/** The channel feature_flags' trigger NOTIFYs a changed flag's key on (migrations). */
const FLAG_CHANNEL = 'qcflow_flags';

/** This connection receives a notification, with the flag's key, whenever a flag changes. */
export async function listenForFlagChanges(listener: Client): Promise<void> {
  await listener.query(`LISTEN ${FLAG_CHANNEL}`);
}

type FlagRow = { key: string; salt: string; arms: Arm[]; default_variant: string; enabled: boolean };
const toFlag = (r: FlagRow): FlagDefinition => ({ key: r.key, salt: r.salt, arms: r.arms, defaultVariant: r.default_variant, enabled: r.enabled });

export async function loadFlags(db: Db | Client, keys?: string[]): Promise<FlagDefinition[]> {
  const { rows } = await db.query<FlagRow>('SELECT key, salt, arms, default_variant, enabled FROM feature_flags WHERE $1::text[] IS NULL OR key = ANY($1)', [keys ?? null]);
  return rows.map(toFlag);
}

/** Creates or changes a flag (running providers reload it on the NOTIFY its trigger sends), with an audit record. */
export async function saveFlag(db: Db, f: FlagDefinition, actor: string): Promise<void> {
  await db.query(
    `INSERT INTO feature_flags (key, salt, arms, default_variant, enabled, updated_by) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (key) DO UPDATE SET salt = EXCLUDED.salt, arms = EXCLUDED.arms, default_variant = EXCLUDED.default_variant,
       enabled = EXCLUDED.enabled, updated_by = EXCLUDED.updated_by, updated_at = now()`,
    [f.key, f.salt, JSON.stringify(f.arms), f.defaultVariant, f.enabled, actor],
  );
  await audit(db, { actor, action: 'flag.set', subject: f.key, details: { salt: f.salt, arms: f.arms, defaultVariant: f.defaultVariant, enabled: f.enabled } });
}
