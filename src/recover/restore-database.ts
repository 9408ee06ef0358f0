import { availableParallelism } from 'node:os';
import type pg from 'pg';
import { connect, defaultRestoreJobs, pgEnv, pgRestoreArgv, pgRestoreEnv, userTableCount } from '../tools/postgres.js';
import { runTool } from '../tools/run.js';
import type { DatabaseConfig } from '../config/schema.js';
import { PermafrostError, UserError } from '../errors.js';
import type { ManifestFile } from '../vault/manifest.js';
import type { JobEvents } from '../jobs/events.js';
import { decryptVerifiedPart, type DecryptSource } from './decrypt.js';

/** A client session on the restore target, as pg_stat_activity shows it. */
export interface TargetSession {
  pid: number;
  /** application_name, or "" when the client set none. */
  application: string;
  /** The client's address, "local socket", or "unknown" when this role may not see it. */
  client: string;
  /** backend_start, ISO 8601. */
  since: string;
}

/** What a restore stopped or failed inside pg_restore says about its target. */
export const PARTLY_RESTORED = 'the database may be partly restored';

/** The restore target as found before anything is touched. */
export interface TargetState {
  exists: boolean;
  tables: number;
  /** Other sessions connected to it: pg_restore --clean would wait for their locks forever. */
  sessions: TargetSession[];
}

export interface DatabaseRestoreResult {
  snapshot: string;
  database: string;
  created: boolean;
  decryptMs: number;
  restoreMs: number;
  totalMs: number;
  bytes: number;
  /** Sessions ended by --terminate-sessions right before pg_restore ran. */
  terminatedSessions: TargetSession[];
}

/** Every other client session on the database `client` is connected to (our own excluded). */
async function otherSessions(client: pg.Client): Promise<TargetSession[]> {
  const r = await client.query<{
    pid: number;
    application_name: string | null;
    client_addr: string | null;
    client_port: number | null;
    backend_start: Date | null;
  }>(
    `SELECT pid, application_name, client_addr::text AS client_addr, client_port, backend_start FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend' ORDER BY backend_start, pid`,
  );
  return r.rows.map((row) => ({
    pid: row.pid,
    application: row.application_name ?? '',
    // client_port -1: a unix socket; both null: a session of another role that this one may not inspect.
    client: row.client_addr ?? (row.client_port === -1 ? 'local socket' : 'unknown'),
    since: row.backend_start ? row.backend_start.toISOString() : 'unknown',
  }));
}

/** One session in a sentence: "psql from local socket since 2026-…Z (pid 123)". */
export function describeSession(s: TargetSession): string {
  return `${s.application || 'an unnamed client'} from ${s.client} since ${s.since} (pid ${s.pid})`;
}

function describeSessions(sessions: readonly TargetSession[]): string {
  const shown = sessions.slice(0, 3).map(describeSession).join('; ');
  return sessions.length > 3 ? `${shown}; and ${sessions.length - 3} more` : shown;
}

function sessionsError(name: string, sessions: readonly TargetSession[]): PermafrostError {
  const n = sessions.length;
  return new PermafrostError(
    'tool',
    `Database "${name}" has ${n} other session${n > 1 ? 's' : ''} (${describeSessions(sessions)}), whose locks restore would wait for forever; ` +
      'stop what uses it (for Mastodon: systemctl stop mastodon-web mastodon-sidekiq mastodon-streaming) and run restore again, or pass --terminate-sessions to end them.',
  );
}

/**
 * Right before pg_restore: ends the other sessions on the target (with --terminate-sessions), or
 * refuses when some appeared since the first check. Returns the sessions it ended.
 */
async function settleSessions(server: DatabaseConfig, name: string, terminate: boolean): Promise<TargetSession[]> {
  const client = await connect(server, name);
  try {
    const sessions = await otherSessions(client);
    if (sessions.length === 0) return [];
    if (!terminate) throw sessionsError(name, sessions);
    for (const session of sessions) await client.query('SELECT pg_terminate_backend($1)', [session.pid]);
    // pg_terminate_backend only signals: wait until the sessions are gone, so their locks are released.
    const deadline = Date.now() + 5000;
    for (;;) {
      const left = (await otherSessions(client)).filter((s) => sessions.some((t) => t.pid === s.pid));
      if (left.length === 0) return sessions;
      if (Date.now() > deadline) {
        throw new PermafrostError(
          'tool',
          `Could not end ${left.length} session${left.length > 1 ? 's' : ''} on database "${name}" (${describeSessions(left)}); ` +
            'end them yourself (SELECT pg_terminate_backend(pid) as a superuser, or stop the programs) and run restore again.',
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await client.end();
  }
}

/** Whether the target exists, how many user tables it holds and who else is connected, read without changing it. */
export async function inspectTarget(server: DatabaseConfig, name: string): Promise<TargetState> {
  let client: pg.Client;
  try {
    client = await connect(server, name);
  } catch (err) {
    // 3D000: invalid_catalog_name, the database does not exist yet.
    if ((err as { cause?: { code?: string } }).cause?.code === '3D000') return { exists: false, tables: 0, sessions: [] };
    throw err;
  }
  try {
    return { exists: true, tables: await userTableCount(client), sessions: await otherSessions(client) };
  } finally {
    await client.end();
  }
}

/**
 * Refuses a target that holds tables unless --force was given, and one with other sessions unless
 * --terminate-sessions was (they are ended only right before pg_restore); nothing has been touched yet.
 */
export function checkTarget(target: TargetState, name: string, opts: { force?: boolean; terminateSessions?: boolean }): void {
  if (target.tables > 0 && !opts.force) {
    throw new UserError(
      `Database "${name}" is not empty (${target.tables} tables); restore into a new database, or pass --force to replace its contents.`,
    );
  }
  if (target.sessions.length > 0 && !opts.terminateSessions) throw sessionsError(name, target.sessions);
}

async function createDatabase(server: DatabaseConfig, name: string): Promise<void> {
  const client = await connect(server, 'postgres');
  try {
    await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
}

/**
 * Restores the snapshot's database part into `opts.database` on `opts.server`: the whole part is
 * decrypted and verified in the temp folder before the target is touched (the caller has checked
 * the target with inspectTarget/checkTarget, and disposes the temp folder).
 */
export async function restoreDatabase(
  source: DecryptSource,
  file: ManifestFile,
  opts: {
    server: DatabaseConfig;
    database: string;
    target: TargetState;
    jobs?: number;
    noOwner?: boolean;
    terminateSessions?: boolean;
    events?: JobEvents;
    signal?: AbortSignal;
  },
): Promise<DatabaseRestoreResult> {
  const t0 = Date.now();
  const { snapshot } = source;
  const { server } = opts;
  opts.events?.phase?.('decrypt');
  const archive = await decryptVerifiedPart(source, file, {
    progress: (n) => opts.events?.bytes?.('decrypt', n),
    signal: opts.signal,
  });
  const decryptMs = Date.now() - t0;
  opts.events?.phase?.('restore');
  const terminatedSessions = opts.target.exists ? await settleSessions(server, opts.database, opts.terminateSessions ?? false) : [];
  if (!opts.target.exists) await createDatabase(server, opts.database);
  const jobs = opts.jobs ?? defaultRestoreJobs(availableParallelism());
  const argv = pgRestoreArgv(server, opts.database, archive, { jobs, noOwner: opts.noOwner });
  try {
    await runTool({
      argv,
      env: pgRestoreEnv(pgEnv(server)),
      doing: `restoring snapshot ${snapshot.id} into "${opts.database}"`,
      signal: opts.signal,
    });
  } catch (err) {
    if (opts.signal?.aborted) {
      throw new PermafrostError(
        'tool',
        `Restore of snapshot ${snapshot.id} was stopped while pg_restore was writing into "${opts.database}"; ${PARTLY_RESTORED}: run restore again with --force.`,
        { cause: err },
      );
    }
    throw new PermafrostError(
      'tool',
      `pg_restore failed restoring snapshot ${snapshot.id} into "${opts.database}"; ${PARTLY_RESTORED}: read the lines below, fix the cause and run restore again with --force.`,
      { cause: err, details: (err as PermafrostError).details },
    );
  }
  const totalMs = Date.now() - t0;
  return {
    snapshot: snapshot.id,
    database: opts.database,
    created: !opts.target.exists,
    decryptMs,
    restoreMs: totalMs - decryptMs,
    totalMs,
    bytes: file.plainBytes,
    terminatedSessions,
  };
}
