/**
 * The roles part and the database facts: what a restore onto a fresh cluster needs to recreate the
 * database as it was (its owner, encoding and locale, and every role its objects and grants name).
 * Read inside the capture session, so the grantees are those of the snapshot pg_dump dumps.
 */
import type pg from 'pg';
import { databaseFactsSchema, type DatabaseFacts } from '../vault/manifest.js';

/** One role the database needs, as pg_roles (and pg_authid, when readable) show it. */
export interface RoleRow {
  name: string;
  superuser: boolean;
  inherit: boolean;
  createrole: boolean;
  createdb: boolean;
  login: boolean;
  replication: boolean;
  bypassrls: boolean;
  connlimit: number;
  /** rolvaliduntil as text, or null. */
  validUntil: string | null;
  /** The password hash; null when there is none or the capture could not read pg_authid. */
  password: string | null;
}

/** A membership among the needed roles: `member` is a member of `role`. */
export interface MembershipRow {
  role: string;
  member: string;
  admin: boolean;
}

/** The database the session is connected to: owner, encoding and locale, for CREATE DATABASE. */
export async function readDatabaseFacts(client: pg.Client): Promise<DatabaseFacts> {
  // to_jsonb(d): the ICU locale column is daticulocale on PostgreSQL 15–16 and datlocale from 17.
  const r = await client.query<{ owner: string; encoding: string; d: Record<string, unknown> }>(
    `SELECT pg_get_userbyid(d.datdba) AS owner, pg_encoding_to_char(d.encoding) AS encoding, to_jsonb(d) AS d
       FROM pg_database d WHERE d.datname = current_database()`,
  );
  const row = r.rows[0];
  if (!row) throw new Error('the current database is missing from pg_database');
  const icu = row.d.datlocprovider === 'i';
  const iculocale = row.d.daticulocale ?? row.d.datlocale ?? null;
  return databaseFactsSchema.parse({
    owner: row.owner,
    encoding: row.encoding,
    collate: row.d.datcollate,
    ctype: row.d.datctype,
    localeProvider: icu ? 'icu' : 'libc',
    iculocale: icu ? iculocale : null,
  });
}

/**
 * The roles this database needs: its owner, every role pg_shdepend records for objects in it
 * (owners, grantees of ACLs and default ACLs, policies) and for the database itself; predefined
 * pg_* roles exist on every cluster and are left out.
 */
const NEEDED_ROLES = `
  WITH db AS (SELECT oid, datdba FROM pg_database WHERE datname = current_database()),
  needed AS (
    SELECT datdba AS oid FROM db
    UNION
    SELECT s.refobjid FROM pg_shdepend s, db
     WHERE s.refclassid = 'pg_authid'::regclass
       AND (s.dbid = db.oid OR (s.dbid = 0 AND s.classid = 'pg_database'::regclass AND s.objid = db.oid))
  )
  SELECT r.oid, r.rolname AS name, r.rolsuper AS superuser, r.rolinherit AS inherit, r.rolcreaterole AS createrole,
         r.rolcreatedb AS createdb, r.rolcanlogin AS login, r.rolreplication AS replication, r.rolbypassrls AS bypassrls,
         r.rolconnlimit AS connlimit, r.rolvaliduntil::text AS "validUntil", %PASSWORD% AS password
    FROM pg_roles r %JOIN% WHERE r.oid IN (SELECT oid FROM needed) AND r.rolname NOT LIKE 'pg\\_%' ORDER BY r.rolname`;

/** Reads the needed roles (with password hashes when this session may read pg_authid) and their memberships. */
export async function readRoles(client: pg.Client): Promise<{ roles: RoleRow[]; memberships: MembershipRow[]; passwords: boolean }> {
  // Checked first: a permission error would abort the capture's transaction.
  const priv = await client.query<{ ok: boolean }>(`SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT') AS ok`);
  const passwords = priv.rows[0]?.ok === true;
  const sql = passwords
    ? NEEDED_ROLES.replace('%PASSWORD%', 'a.rolpassword').replace('%JOIN%', 'JOIN pg_authid a ON a.oid = r.oid')
    : NEEDED_ROLES.replace('%PASSWORD%', 'NULL::text').replace('%JOIN%', '');
  const r = await client.query<RoleRow & { oid: number }>(sql);
  const roles = r.rows.map(({ oid: _oid, ...role }) => role);
  const names = roles.map((x) => x.name);
  const m = await client.query<MembershipRow>(
    `SELECT g.rolname AS role, u.rolname AS member, a.admin_option AS admin FROM pg_auth_members a
       JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles u ON u.oid = a.member
      WHERE g.rolname = ANY($1) AND u.rolname = ANY($1) ORDER BY 1, 2`,
    [names],
  );
  return { roles, memberships: m.rows, passwords };
}

const ident = (s: string): string => `"${s.replace(/"/g, '""')}"`;
const literal = (s: string): string => `'${s.replace(/'/g, "''")}'`;

/** Dollar-quote tag of the DO blocks; no role name or hash may contain it. */
const TAG = '$permafrost$';

function createRole(r: RoleRow, passwords: boolean): string {
  const flag = (on: boolean, name: string): string => (on ? name : `NO${name}`);
  const attrs = [
    flag(r.superuser, 'SUPERUSER'),
    flag(r.inherit, 'INHERIT'),
    flag(r.createrole, 'CREATEROLE'),
    flag(r.createdb, 'CREATEDB'),
    flag(r.login, 'LOGIN'),
    flag(r.replication, 'REPLICATION'),
    flag(r.bypassrls, 'BYPASSRLS'),
    `CONNECTION LIMIT ${Math.trunc(r.connlimit)}`,
    ...(r.password ? [`PASSWORD ${literal(r.password)}`] : []),
    ...(r.validUntil ? [`VALID UNTIL ${literal(r.validUntil)}`] : []),
  ];
  const note = r.password
    ? []
    : [
        passwords
          ? `-- role ${r.name} has no password in the source cluster`
          : `-- no password: the backup's database user could not read pg_authid; set one with ALTER ROLE ${ident(r.name)} PASSWORD '…'`,
      ];
  return [
    ...note,
    `DO ${TAG} BEGIN`,
    `  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = ${literal(r.name)}) THEN`,
    `    CREATE ROLE ${ident(r.name)} WITH ${attrs.join(' ')};`,
    `    INSERT INTO pg_temp.permafrost_created_roles VALUES (${literal(r.name)});`,
    '  END IF;',
    `END ${TAG};`,
  ].join('\n');
}

function grantMembership(m: MembershipRow): string {
  return [
    `DO ${TAG} BEGIN`,
    `  IF EXISTS (SELECT FROM pg_temp.permafrost_created_roles WHERE name = ${literal(m.member)}) THEN`,
    `    GRANT ${ident(m.role)} TO ${ident(m.member)}${m.admin ? ' WITH ADMIN OPTION' : ''};`,
    '  END IF;',
    `END ${TAG};`,
  ].join('\n');
}

/**
 * The roles part's SQL, for a superuser (`psql -X -v ON_ERROR_STOP=1 --single-transaction -d
 * postgres -f FILE`): creates each role only when it is missing, with its attributes and password
 * hash, and grants the memberships of the roles it created; an existing role is never altered.
 */
export function rolesSql(database: string, rows: { roles: RoleRow[]; memberships: MembershipRow[]; passwords: boolean }): string {
  for (const text of rows.roles.flatMap((r) => [r.name, r.password ?? '', r.validUntil ?? ''])) {
    if (text.includes(TAG)) throw new Error(`a role name or password hash contains ${TAG}`);
  }
  return [
    `-- Roles that database ${ident(database)} needs, written by permafrost. Each is created only when missing;`,
    '-- an existing role is never altered. Run as a superuser:',
    '--   psql -X -q -v ON_ERROR_STOP=1 --single-transaction -d postgres -f roles.sql',
    'SET standard_conforming_strings = on;',
    'CREATE TEMP TABLE IF NOT EXISTS permafrost_created_roles (name text);',
    ...rows.roles.map((r) => createRole(r, rows.passwords)),
    ...rows.memberships.map(grantMembership),
    '',
  ].join('\n');
}
