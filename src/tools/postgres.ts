/**
 * The PostgreSQL client tools (pg_dump, pg_restore, psql) and the libpq connection settings they and the
 * `pg` client share: pure argv and env builders, plus the runs that only print (`--version`, `--list`).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import type { DatabaseConfig } from '../config/schema.js';
import type { Secret } from '../config/secret-values.js';
import type { MastodonFacts, TableName } from '../vault/manifest.js';
import { PermafrostError, ToolError, UserError } from '../errors.js';
import { runTool } from './run.js';

export function pgBin(db: Pick<DatabaseConfig, 'binDir'>, tool: 'pg_dump' | 'pg_restore' | 'psql'): string {
  return db.binDir ? path.join(db.binDir, tool) : tool;
}

/** Connection flags for libpq tools; unset keys fall back to PGHOST, PGPORT, PGUSER as libpq does. */
export function pgConnArgs(db: Pick<DatabaseConfig, 'host' | 'port' | 'user'>): string[] {
  const args: string[] = [];
  if (db.host !== undefined) args.push('--host', db.host);
  if (db.port !== undefined) args.push('--port', String(db.port));
  if (db.user !== undefined) args.push('--username', db.user);
  return args;
}

/**
 * A server to connect to: its settings and its password as read when the job started (ops/secrets.ts;
 * undefined: none configured, libpq's own means apply). Required, so a config section that was not
 * given its password cannot reach a connection by mistake.
 */
export type PgServer = DatabaseConfig & { readonly password: Secret | undefined };

/** Environment for libpq tools: the caller's (PGPASSFILE & co. keep working) plus the password, never argv. */
export function pgEnv(db: Pick<PgServer, 'password'>, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env = { ...base };
  if (db.password) env.PGPASSWORD = db.password.reveal();
  return env;
}

/**
 * Where the dump gets compressed. A number is a zlib level applied by permafrost in an OpenPGP
 * compressed-data packet while pg_dump writes an uncompressed custom archive (its fastest mode):
 * compression then runs on another core, in parallel with pg_dump and the server, and `gpg -d`
 * still yields an archive pg_restore reads (measured in bench/, see README Performance). A string
 * (`lz4`, `zstd:3`, `gzip:6`, PostgreSQL 16+) is handed to pg_dump and permafrost adds no compression.
 */
export function dumpCompression(c: DatabaseConfig['compression']): { pgDump: string; openpgpLevel: number; label: string } {
  if (typeof c === 'number') return { pgDump: '0', openpgpLevel: c, label: c === 0 ? 'none' : `openpgp-zip:${c}` };
  return { pgDump: c, openpgpLevel: 0, label: `pg_dump:${c}` };
}

/**
 * pg_dump argv for a custom-format archive on stdout, dumping an exported snapshot when given.
 * `schema`: only the pre-data and post-data sections (delta mode: table data is written by
 * permafrost, src/capture/delta.ts), as a custom archive or as plain SQL (hashed: the DDL fingerprint).
 */
export function pgDumpArgv(db: DatabaseConfig, opts: { snapshot?: string; schema?: 'custom' | 'plain' } = {}): string[] {
  const format = opts.schema === 'plain' ? ['--format=plain'] : ['--format=custom', `--compress=${dumpCompression(db.compression).pgDump}`];
  return [
    pgBin(db, 'pg_dump'),
    ...format,
    ...(opts.schema ? ['--section=pre-data', '--section=post-data'] : []),
    '--no-password',
    ...(opts.snapshot ? [`--snapshot=${opts.snapshot}`] : []),
    ...pgConnArgs(db),
    '--dbname',
    db.name,
  ];
}

/**
 * Session settings for pg_restore's connections (PGOPTIONS; each is settable per session, so no
 * server change): bigger sort memory for the index builds, and no wait for the WAL flush at each of
 * the many small commits. Any PGOPTIONS the caller set come last and win.
 */
const RESTORE_SESSION_SETTINGS = ['maintenance_work_mem=256MB', 'synchronous_commit=off'] as const;

export function pgRestoreEnv(base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const ours = RESTORE_SESSION_SETTINGS.map((s) => `-c ${s}`).join(' ');
  return { ...base, PGOPTIONS: base.PGOPTIONS ? `${ours} ${base.PGOPTIONS}` : ours };
}

/** Parallel pg_restore jobs when none are asked for: one per core, at most 4. */
export function defaultRestoreJobs(cores: number): number {
  return Math.max(1, Math.min(4, cores));
}

/** One section of a schema-only archive (a delta-mode base's schema part): tables before the rows, indexes and constraints after. */
export type ArchiveSection = 'pre-data' | 'post-data';

/**
 * pg_restore argv into a database restore has just created (so no --clean), optionally in
 * parallel and of one section only; `noOwner` with `role` makes every object that role's, as
 * Mastodon's migration guide does, and leaves out the grants too, which name the same roles that
 * may not exist here.
 */
export function pgRestoreArgv(
  db: Pick<DatabaseConfig, 'host' | 'port' | 'user' | 'binDir'>,
  target: string,
  archive: string,
  opts: { jobs?: number; noOwner?: boolean; role?: string; section?: ArchiveSection } = {},
): string[] {
  return [
    pgBin(db, 'pg_restore'),
    '--exit-on-error',
    '--no-password',
    ...(opts.section ? [`--section=${opts.section}`] : []),
    ...(opts.jobs && opts.jobs > 1 ? [`--jobs=${opts.jobs}`] : []),
    ...(opts.noOwner ? ['--no-owner', '--no-acl'] : []),
    ...(opts.role ? [`--role=${opts.role}`] : []),
    ...pgConnArgs(db),
    '--dbname',
    target,
    archive,
  ];
}

/**
 * libpq's own default server, which pg_dump, psql and pg_restore use when neither database.host nor
 * PGHOST names one: Debian's socket folder. The `pg` client would try TCP localhost instead, where a
 * stock cluster asks for a password that peer authentication on the socket does not need.
 */
export function libpqDefaultHost(env: NodeJS.ProcessEnv = process.env, exists: (p: string) => boolean = existsSync): string | undefined {
  if (env.PGHOST) return undefined;
  return exists('/var/run/postgresql') ? '/var/run/postgresql' : undefined;
}

/** A `pg` client for the configured server, connecting to `database` (default: the configured one). */
function pgClient(db: PgServer, database = db.name): pg.Client {
  const client = new pg.Client({
    host: db.host ?? libpqDefaultHost(),
    port: db.port,
    user: db.user,
    database,
    password: db.password?.reveal(),
    application_name: 'permafrost',
  });
  // The server may end an idle session (shutdown, restart); the query in flight reports it, so an
  // 'error' event without a listener must not crash the process.
  client.on('error', () => undefined);
  return client;
}

/** Where a server is, for messages: host (or socket folder) and port as configured or from PGHOST. */
export function serverName(db: Pick<DatabaseConfig, 'host' | 'port'>): string {
  return `${db.host ?? process.env.PGHOST ?? 'default host'}${db.port ? `:${db.port}` : ''}`;
}

/** Connects, turning libpq-style failures into a sentence that names the database settings. */
export async function connect(db: PgServer, database = db.name): Promise<pg.Client> {
  const client = pgClient(db, database);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    const message = (err as Error).message;
    const peer = /Peer authentication failed for user "([^"]+)"/i.exec(message)?.[1];
    const fix =
      peer !== undefined
        ? `PostgreSQL's peer authentication lets only the OS user ${peer} connect as the role ${peer} over its socket: run permafrost as that user (\`runuser -u ${peer} -- permafrost …\`), or map this user to it in pg_ident.conf (\`permafrost doctor\` prints the lines)`
        : "check database.* in the config (without one, libpq's PGHOST, PGPORT, PGUSER and PGPASSFILE) and that the server is running";
    throw new PermafrostError(
      'connection',
      `Cannot connect to PostgreSQL database "${database}" on ${serverName(db)}: ${message}; ${fix}.`,
      {
        cause: err,
      },
    );
  }
  return client;
}

/** The version a PostgreSQL client tool reports: "15.18 (Debian 15.18-0+deb12u1)". */
export async function toolVersion(bin: string): Promise<string> {
  const argv = [bin, '--version'];
  try {
    const { stdout } = await runTool({ argv, doing: 'reporting its version' });
    return stdout.trim().replace(/^\S+ \(PostgreSQL\) /, '');
  } catch (err) {
    const e = err as ToolError;
    throw new ToolError(`Cannot run ${bin}: install PostgreSQL's client tools or set database.binDir.`, {
      argv,
      exitStatus: e.exitStatus,
      signal: e.signal,
      stderr: e.stderrTail || e.message,
      cause: err,
    });
  }
}

/** `pg_restore --list ARCHIVE` argv: reads only the archive's table of contents, touches no server. */
export function pgRestoreListArgv(db: Pick<DatabaseConfig, 'binDir'>, archive: string): string[] {
  return [pgBin(db, 'pg_restore'), '--list', archive];
}

/**
 * pg_restore argv for the test-restore: an empty scratch database, so no --clean; no owners or
 * grants, so it works on a server that lacks the original roles.
 */
export function verifyRestoreArgv(
  db: Pick<DatabaseConfig, 'host' | 'port' | 'user' | 'binDir'>,
  scratch: string,
  archive: string,
  opts: { jobs?: number; section?: ArchiveSection } = {},
): string[] {
  return [
    pgBin(db, 'pg_restore'),
    '--exit-on-error',
    '--no-owner',
    '--no-acl',
    // A subscription in the scratch copy would keep DROP DATABASE from removing it; no check reads one.
    '--no-subscriptions',
    '--no-password',
    ...(opts.section ? [`--section=${opts.section}`] : []),
    ...(opts.jobs && opts.jobs > 1 ? [`--jobs=${opts.jobs}`] : []),
    ...pgConnArgs(db),
    '--dbname',
    scratch,
    archive,
  ];
}

/**
 * psql argv that runs the SQL on its stdin (a delta-mode rows or delta part, decrypted by gpg
 * straight into the pipe) in one transaction that stops at the first error: no ~/.psqlrc, no
 * password prompt, no notices on the way.
 */
export function psqlArgv(db: Pick<DatabaseConfig, 'host' | 'port' | 'user' | 'binDir'>, database: string): string[] {
  return [
    pgBin(db, 'psql'),
    '-X',
    '-q',
    '--no-password',
    '-v',
    'ON_ERROR_STOP=1',
    '--single-transaction',
    ...pgConnArgs(db),
    '-d',
    database,
  ];
}

/** User tables in a database (outside system schemas); restore refuses a non-empty target. */
export async function userTableCount(client: pg.Client): Promise<number> {
  const r = await client.query<{ n: string }>(
    `SELECT count(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r','p','v','m','S','f')
        AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'`,
  );
  return Number(r.rows[0]?.n ?? 0);
}

/** PostgreSQL cuts identifiers to NAMEDATALEN - 1 bytes without an error: a longer name would name another database. */
const MAX_NAME_BYTES = 63;

/** Refuses a database name that is not plain, or that PostgreSQL would silently truncate. */
export function assertDbName(name: string, key: string): void {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name)) {
    throw new UserError(`${key}: "${name}" is not a plain database name (letters, digits, _ . -).`);
  }
  const bytes = Buffer.byteLength(name);
  if (bytes > MAX_NAME_BYTES) {
    throw new UserError(`${key}: "${name}" is ${bytes} bytes; PostgreSQL names are at most ${MAX_NAME_BYTES}, so choose a shorter one.`);
  }
}

// Read-only queries that capture (for the manifest) and recovery (to check a restore) both run.

/**
 * Every ordinary and partitioned table outside the system schemas (pg_catalog, pg_toast, temp
 * schemas, information_schema) that is not an extension's own: the tables a dump creates. Each
 * name comes back as the catalog holds it, never joined or quoted: the manifest's `tables` at
 * capture, and what a restore's copy holds when it is checked against them.
 */
export async function userTables(client: pg.Client): Promise<TableName[]> {
  const r = await client.query<TableName>(
    `SELECT n.nspname AS schema, c.relname AS table
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                         WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
      ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C"`,
  );
  return r.rows.map(({ schema, table }) => ({ schema, table }));
}

/** The Mastodon tables whose exact row counts go into the manifest and are checked by verify. */
const MASTODON_TABLES = ['accounts', 'statuses', 'media_attachments', 'users'] as const;

/** Reads the Mastodon facts for the manifest; null when this is not a Mastodon-shaped database. */
export async function mastodonFacts(client: pg.Client): Promise<MastodonFacts | null> {
  const present = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind IN ('r','p') AND c.relname = ANY($1)`,
    [[...MASTODON_TABLES, 'schema_migrations']],
  );
  const names = new Set(present.rows.map((r) => r.name));
  if (!MASTODON_TABLES.some((t) => names.has(t))) return null;
  const rowCounts: Record<string, number> = {};
  for (const table of MASTODON_TABLES) {
    if (!names.has(table)) continue;
    const r = await client.query<{ n: string }>(`SELECT count(*) AS n FROM public.${table}`);
    rowCounts[table] = Number(r.rows[0]?.n ?? 0);
  }
  let schemaMigration: string | null = null;
  if (names.has('schema_migrations')) {
    const r = await client.query<{ v: string }>(
      `SELECT version::text AS v FROM public.schema_migrations ORDER BY length(version::text) DESC, version::text DESC LIMIT 1`,
    );
    schemaMigration = r.rows[0]?.v ?? null;
  }
  return { rowCounts, schemaMigration };
}
