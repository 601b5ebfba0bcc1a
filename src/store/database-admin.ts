import type { Client, Pool, PoolClient } from 'pg';

/**
 * The statements a superuser runs on the embedded PostgreSQL cluster (the stack's own database and logins,
 * the Temporal server's databases) and the readiness probe every process uses. Role and database names are
 * quoted as identifiers and passwords as literals: DDL takes no bind parameters.
 */
type Db = Pool | PoolClient | Client;

const ident = (name: string): string => `"${name.replace(/"/g, '""')}"`;
const literal = (value: string): string => `'${value.replace(/'/g, "''")}'`;

/** One round trip: the database answers. */
export async function ping(db: Db): Promise<void> {
  await db.query('SELECT 1');
}

/** The server rereads pg_hba.conf and postgresql.conf. */
export async function reloadConfiguration(admin: Db): Promise<void> {
  await admin.query('SELECT pg_reload_conf()');
}

export async function roleExists(admin: Db, user: string): Promise<boolean> {
  return ((await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [user])).rowCount ?? 0) > 0;
}

/** A login without superuser or role-creating rights (and `extra` attributes, e.g. NOCREATEDB). */
export async function createLogin(admin: Db, user: string, password: string, extra: string[] = []): Promise<void> {
  await admin.query(`CREATE ROLE ${ident(user)} LOGIN NOSUPERUSER NOCREATEROLE ${extra.join(' ')} PASSWORD ${literal(password)}`);
}

export async function setPassword(admin: Db, user: string, password: string): Promise<void> {
  await admin.query(`ALTER ROLE ${ident(user)} PASSWORD ${literal(password)}`);
}

/** Creates the login, or gives the existing role this password. */
export async function ensureLogin(admin: Db, user: string, password: string): Promise<void> {
  if (await roleExists(admin, user)) await setPassword(admin, user, password);
  else await createLogin(admin, user, password);
}

/** Creates the database (owned by `owner` when given) unless it exists; true when it was created. */
export async function ensureDatabase(admin: Db, name: string, owner?: string): Promise<boolean> {
  if (((await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount ?? 0) > 0) return false;
  await admin.query(`CREATE DATABASE ${ident(name)}${owner ? ` OWNER ${ident(owner)}` : ''}`);
  return true;
}

export async function setDatabaseOwner(admin: Db, name: string, owner: string): Promise<void> {
  await admin.query(`ALTER DATABASE ${ident(name)} OWNER TO ${ident(owner)}`);
}

export async function grantRole(admin: Db, role: string, to: string): Promise<void> {
  await admin.query(`GRANT ${ident(role)} TO ${ident(to)}`);
}

/** Every table, view and sequence in `public` that `owner` does not own yet becomes its (run in that database). */
export async function giveObjectsTo(admin: Db, owner: string): Promise<void> {
  // Tables first: a serial column's sequence follows its table and cannot be given away on its own.
  for (const kinds of [['r', 'p', 'v'], ['S']]) {
    const { rows } = await admin.query<{ name: string; kind: string }>(
      `SELECT quote_ident(n.nspname) || '.' || quote_ident(k.relname) AS name, k.relkind AS kind FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace
       WHERE n.nspname = 'public' AND k.relkind = ANY($2) AND pg_get_userbyid(k.relowner) <> $1`, [owner, kinds]);
    for (const r of rows) await admin.query(`ALTER ${r.kind === 'S' ? 'SEQUENCE' : r.kind === 'v' ? 'VIEW' : 'TABLE'} ${r.name} OWNER TO ${ident(owner)}`);
  }
}
