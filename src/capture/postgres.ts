import type pg from 'pg';
import { PermafrostError } from '../errors.js';
import type { RunContext } from '../run-context.js';
import { connect, mastodonFacts, serverName, userTables, type PgServer } from '../tools/postgres.js';
import type { DatabaseFacts, MastodonFacts, TableName } from '../vault/manifest.js';
import { readDatabaseFacts, readRoles, rolesSql } from './roles.js';

/** What the capture session reads in its snapshot, for the manifest. */
export interface SessionFacts {
  serverVersion: string;
  facts: MastodonFacts | null;
  /** Every table the dump creates (the manifest's `tables`), read in the same snapshot. */
  tables: TableName[];
  /** Owner, encoding and locale of the database, for the manifest. */
  database: DatabaseFacts;
  /** The roles part's plaintext (src/capture/roles.ts), read in the same snapshot. */
  rolesSql: string;
  /** Whether the roles part carries the password hashes (false: this session could not read pg_authid). */
  rolePasswords: boolean;
}

/** A capture session whose snapshot is exported; its facts are not read yet. */
export interface OpenSession {
  /** Exported snapshot that pg_dump dumps, so counts and dump agree exactly. */
  snapshot: string;
  /**
   * Reads the facts in the session's own transaction, so in the exported snapshot: rows committed
   * after the export are not counted, however late this runs (pg_dump may already be running).
   */
  readFacts(): Promise<SessionFacts>;
  /** The session's own connection, inside the transaction (delta mode reads rows through it). */
  client: pg.Client;
  /** Its backend, for cancelling a long read from a second connection. */
  pid: number;
  /** Cancels the query the session is running (a count waiting on a lock); best effort. */
  cancel(): Promise<void>;
  /** Ends the transaction; rejects with the session's failure when the server went away (what explains a failed dump best). */
  end(): Promise<void>;
  close(): Promise<void>;
}

/** A session with its facts read (what delta mode works with). */
export type CaptureSession = OpenSession & SessionFacts;

/** The one sentence of a backup stopped on purpose (SIGTERM, the daemon stopping), whichever step noticed first. */
export const backupStopped = (cause?: unknown): PermafrostError =>
  new PermafrostError('stopped', 'Backup was stopped before it finished; no snapshot was written.', { cause });
const stopped = backupStopped;

/** Cancels the running query of backend `pid` from a second connection; best effort. */
export async function cancelBackend(db: PgServer, pid: number): Promise<void> {
  const other = await connect(db).catch(() => null);
  if (!other) return;
  await other.query('SELECT pg_cancel_backend($1)', [pid]).catch(() => undefined);
  await other.end().catch(() => undefined);
}

/** The server went away mid-session (restart, crash, admin shutdown): its problem, not ours. */
function sessionFailure(db: PgServer, err: unknown, signal: AbortSignal): PermafrostError {
  if (signal.aborted) return stopped(err);
  if (err instanceof PermafrostError) return err;
  return new PermafrostError(
    'server',
    `PostgreSQL at ${serverName(db)} ended the capture session of database "${db.name}": ${(err as Error).message}; check the server is running and run backup again.`,
    { cause: err },
  );
}

/**
 * A second session in the capture session's snapshot (SET TRANSACTION SNAPSHOT), so that work on
 * the same rows can run on another backend, and so another core, while the first one reads.
 * The run's stop cancels its query; close() ends it (and any query still running on it).
 */
export async function joinSnapshot(
  db: PgServer,
  snapshot: string,
  ctx: Pick<RunContext, 'signal'>,
): Promise<{ client: pg.Client; close(): Promise<void> }> {
  const client = await connect(db);
  const pid = (await client.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]?.p;
  const onAbort = (): void => void (pid !== undefined && cancelBackend(db, pid));
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  const close = async (): Promise<void> => {
    ctx.signal.removeEventListener('abort', onAbort);
    await client.end().catch(() => undefined);
  };
  try {
    if (ctx.signal.aborted) throw stopped();
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await client.query(`SET TRANSACTION SNAPSHOT '${snapshot.replaceAll("'", "''")}'`);
    return { client, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * Opens a read-only repeatable-read transaction and exports its snapshot; the facts are read by
 * `readFacts`, which the caller may run while pg_dump already dumps that snapshot. The run's stop
 * cancels a query that waits (e.g. counting rows of a table a migration holds locked) until the
 * session is closed.
 */
export async function beginCaptureSession(db: PgServer, ctx: Pick<RunContext, 'signal'>): Promise<OpenSession> {
  const { signal } = ctx;
  const client = await connect(db);
  let onAbort: (() => void) | undefined;
  const unlisten = (): void => {
    if (onAbort) signal.removeEventListener('abort', onAbort);
  };
  try {
    const pid = (await client.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]?.p;
    if (pid !== undefined) {
      onAbort = () => void cancelBackend(db, pid);
      signal.addEventListener('abort', onAbort, { once: true });
    }
    if (signal.aborted) throw stopped();
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const snap = await client.query<{ s: string }>('SELECT pg_export_snapshot() AS s');
    return {
      snapshot: snap.rows[0]?.s ?? '',
      client,
      pid: pid ?? 0,
      readFacts: () => readSessionFacts(db, client).catch((err: unknown) => Promise.reject(sessionFailure(db, err, signal))),
      cancel: () => (pid === undefined ? Promise.resolve() : cancelBackend(db, pid)),
      end: () =>
        client.query('ROLLBACK').then(
          () => undefined,
          (err: unknown) => Promise.reject(sessionFailure(db, err, signal)),
        ),
      async close() {
        unlisten();
        await client.query('ROLLBACK').catch(() => undefined);
        await client.end().catch(() => undefined);
      },
    };
  } catch (err) {
    unlisten();
    await client.end().catch(() => undefined);
    throw sessionFailure(db, err, signal);
  }
}

/** The manifest's facts, read in the session's transaction. */
async function readSessionFacts(db: PgServer, client: pg.Client): Promise<SessionFacts> {
  const ver = await client.query<{ v: string }>("SELECT current_setting('server_version') AS v");
  const facts = await mastodonFacts(client);
  const tables = await userTables(client);
  const database = await readDatabaseFacts(client);
  const roleRows = await readRoles(client);
  return {
    serverVersion: ver.rows[0]?.v ?? 'unknown',
    facts,
    tables,
    database,
    rolesSql: rolesSql(db.name, roleRows),
    rolePasswords: roleRows.passwords,
  };
}

/** Opens the session and reads its facts before returning (delta mode reads rows in it next). */
export async function openCaptureSession(db: PgServer, ctx: Pick<RunContext, 'signal'>): Promise<CaptureSession> {
  const session = await beginCaptureSession(db, ctx);
  try {
    return { ...session, ...(await session.readFacts()) };
  } catch (err) {
    await session.close();
    throw err;
  }
}
