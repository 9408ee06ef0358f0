import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { readSecretFile } from '../config/secret-file.js';
import type { DatabaseConfig } from '../config/schema.js';
import { PermafrostError, ToolError, UserError } from '../errors.js';
import type { MastodonFacts } from '../vault/manifest.js';

const execFileP = promisify(execFile);

/** The Mastodon tables whose exact row counts go into the manifest and are checked by verify. */
export const MASTODON_TABLES = ['accounts', 'statuses', 'media_attachments', 'users'] as const;

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

/** Environment for libpq tools: the caller's (PGPASSFILE & co. keep working) plus the password, never argv. */
export function pgEnv(db: Pick<DatabaseConfig, 'passwordFile'>, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env = { ...base };
  if (db.passwordFile) env.PGPASSWORD = readSecretFile(db.passwordFile, 'database.passwordFile');
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

/** pg_dump argv for a custom-format archive on stdout, dumping an exported snapshot when given. */
export function pgDumpArgv(db: DatabaseConfig, opts: { snapshot?: string } = {}): string[] {
  return [
    pgBin(db, 'pg_dump'),
    '--format=custom',
    `--compress=${dumpCompression(db.compression).pgDump}`,
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
export const RESTORE_SESSION_SETTINGS = ['maintenance_work_mem=256MB', 'synchronous_commit=off'] as const;

export function pgRestoreEnv(base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const ours = RESTORE_SESSION_SETTINGS.map((s) => `-c ${s}`).join(' ');
  return { ...base, PGOPTIONS: base.PGOPTIONS ? `${ours} ${base.PGOPTIONS}` : ours };
}

/** Parallel pg_restore jobs when none are asked for: one per core, at most 4. */
export function defaultRestoreJobs(cores: number): number {
  return Math.max(1, Math.min(4, cores));
}

/** pg_restore argv, as the stock command does it: --clean --if-exists, optionally in parallel. */
export function pgRestoreArgv(
  db: Pick<DatabaseConfig, 'host' | 'port' | 'user' | 'binDir'>,
  target: string,
  archive: string,
  opts: { jobs?: number; noOwner?: boolean } = {},
): string[] {
  return [
    pgBin(db, 'pg_restore'),
    '--clean',
    '--if-exists',
    '--exit-on-error',
    '--no-password',
    ...(opts.jobs && opts.jobs > 1 ? [`--jobs=${opts.jobs}`] : []),
    ...(opts.noOwner ? ['--no-owner'] : []),
    ...pgConnArgs(db),
    '--dbname',
    target,
    archive,
  ];
}

/** A `pg` client for the configured server, connecting to `database` (default: the configured one). */
export function pgClient(db: DatabaseConfig, database = db.name): pg.Client {
  const client = new pg.Client({
    host: db.host,
    port: db.port,
    user: db.user,
    database,
    password: db.passwordFile ? readSecretFile(db.passwordFile, 'database.passwordFile') : undefined,
    application_name: 'permafrost',
  });
  // The server may end an idle session (shutdown, restart); the query in flight reports it, so an
  // 'error' event without a listener must not crash the process.
  client.on('error', () => undefined);
  return client;
}

/** Connects, turning libpq-style failures into a sentence that names the database settings. */
export async function connect(db: DatabaseConfig, database = db.name): Promise<pg.Client> {
  const client = pgClient(db, database);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    const where = `${db.host ?? process.env.PGHOST ?? 'default host'}${db.port ? `:${db.port}` : ''}`;
    throw new PermafrostError('tool', `Cannot connect to PostgreSQL database "${database}" on ${where}: ${(err as Error).message}; check database.* in the config and that the server is running.`, {
      cause: err,
    });
  }
  return client;
}

export async function toolVersion(bin: string): Promise<string> {
  try {
    const { stdout } = await execFileP(bin, ['--version']);
    return stdout.trim().replace(/^\S+ \(PostgreSQL\) /, '');
  } catch (err) {
    throw new ToolError(`Cannot run ${bin}: install PostgreSQL's client tools or set database.binDir.`, {
      argv: [bin, '--version'],
      exitStatus: null,
      stderr: (err as Error).message,
      cause: err,
    });
  }
}

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

export interface CaptureSession {
  serverVersion: string;
  /** Exported snapshot that pg_dump dumps, so counts and dump agree exactly. */
  snapshot: string;
  facts: MastodonFacts | null;
  close(): Promise<void>;
}

const stopped = (cause?: unknown): PermafrostError =>
  new PermafrostError('tool', 'Backup was stopped before it finished; no snapshot was written.', { cause });

/** Cancels the running query of backend `pid` from a second connection; best effort. */
async function cancelBackend(db: DatabaseConfig, pid: number): Promise<void> {
  const other = await connect(db).catch(() => null);
  if (!other) return;
  await other.query('SELECT pg_cancel_backend($1)', [pid]).catch(() => undefined);
  await other.end().catch(() => undefined);
}

/**
 * Opens a read-only repeatable-read transaction, exports its snapshot and reads the facts in it.
 * `signal` cancels a query that waits (e.g. counting rows of a table a migration holds locked).
 */
export async function openCaptureSession(db: DatabaseConfig, signal?: AbortSignal): Promise<CaptureSession> {
  const client = await connect(db);
  let onAbort: (() => void) | undefined;
  try {
    const pid = (await client.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]?.p;
    if (signal && pid !== undefined) {
      onAbort = () => void cancelBackend(db, pid);
      signal.addEventListener('abort', onAbort, { once: true });
    }
    if (signal?.aborted) throw stopped();
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const snap = await client.query<{ s: string }>('SELECT pg_export_snapshot() AS s');
    const ver = await client.query<{ v: string }>('SHOW server_version');
    const facts = await mastodonFacts(client);
    return {
      serverVersion: ver.rows[0]?.v ?? 'unknown',
      snapshot: snap.rows[0]?.s ?? '',
      facts,
      async close() {
        await client.query('ROLLBACK').catch(() => undefined);
        await client.end().catch(() => undefined);
      },
    };
  } catch (err) {
    await client.end().catch(() => undefined);
    throw signal?.aborted ? stopped(err) : err;
  } finally {
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
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

export function assertDbName(name: string, key: string): void {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name)) {
    throw new UserError(`${key}: "${name}" is not a plain database name (letters, digits, _ . -).`);
  }
}
