import { spawn } from 'node:child_process';
import path from 'node:path';
import type { PgCluster } from './postgres.js';
import { waitFor } from './wait.js';

/** A psql session kept open inside a transaction; `release` commits and lets psql exit. */
export interface HeldSession {
  release(): Promise<void>;
}

/** Starts psql on `db`, sends `sql` (which must print `ready`) and waits for that line. */
async function holdInPsql(pg: PgCluster, db: string, sql: string, what: string, env: NodeJS.ProcessEnv = {}): Promise<HeldSession> {
  const child = spawn(
    path.join(pg.binDir, 'psql'),
    ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', pg.socketDir, '-p', String(pg.port), '-U', pg.user, '-d', db],
    { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  // Listen before anything can make psql exit, so release() never waits for a 'close' already past.
  const exited = new Promise<void>((r) => child.once('close', () => r()));
  child.stdin.on('error', () => undefined); // the server may end the session first (pg_terminate_backend)
  child.stdin.write(`${sql}\n`);
  await waitFor(what, () => out.includes('ready') || child.exitCode !== null, 10_000);
  if (!out.includes('ready')) throw new Error(`could not hold ${what}: ${out}`);
  return {
    async release() {
      if (child.exitCode === null && !child.stdin.destroyed) {
        child.stdin.end('COMMIT;\n');
      }
      await exited;
    },
  };
}

/** Runs `sql` in a transaction left open until release() commits it (writes a snapshot taken meanwhile must not see). */
export async function holdTransaction(pg: PgCluster, db: string, sql: string): Promise<HeldSession> {
  return holdInPsql(pg, db, `BEGIN; ${sql}; SELECT 'ready';`, 'an open transaction');
}

/**
 * Holds ACCESS EXCLUSIVE on a table in an open transaction, so that a pg_dump started meanwhile
 * waits inside its run: a real way to catch a backup "mid-dump" deterministically.
 */
export async function holdTableLock(pg: PgCluster, db: string, table: string): Promise<{ release(): Promise<void> }> {
  return holdInPsql(pg, db, `BEGIN; LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE; SELECT 'ready';`, `a lock on ${table}`);
}

/**
 * An application's session on `db` as Mastodon's would be: named (application_name), over the
 * unix socket, in an open transaction that has read `table` (so it holds a lock DROP TABLE waits for).
 */
export async function holdSession(pg: PgCluster, db: string, application: string, table = 'accounts'): Promise<HeldSession> {
  return holdInPsql(pg, db, `BEGIN; SELECT count(*) FROM ${table}; SELECT 'ready';`, `a session on ${db}`, { PGAPPNAME: application });
}
