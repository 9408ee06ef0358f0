import { beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { cancelBackend, openCaptureSession, type CaptureSession } from '../../../src/capture/postgres.js';
import { databaseSchema } from '../../../src/config/schema.js';
import { PermafrostError } from '../../../src/errors.js';
import { connect, type PgServer } from '../../../src/tools/postgres.js';
import { clusterPerFile } from '../../harness/suite.js';

// A real PostgreSQL cluster (harness), the Mastodon-shaped fixture in database "capture".
const cluster = clusterPerFile('capture');
let db: PgServer;
beforeAll(() => {
  const pgc = cluster.get();
  db = {
    ...databaseSchema.parse({ name: 'capture', host: pgc.socketDir, port: pgc.port, user: pgc.user, binDir: pgc.binDir }),
    password: undefined,
  };
});

const never = { signal: new AbortController().signal };
const fail = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => null,
    (e: unknown) => e,
  );

/** A second session that holds `table` locked (as a migration would) until released. */
async function lockTable(table: string): Promise<{ other: pg.Client; release: () => Promise<void> }> {
  const other = await connect(db);
  await other.query('BEGIN');
  await other.query(`LOCK TABLE public.${table} IN ACCESS EXCLUSIVE MODE`);
  return {
    other,
    release: async () => {
      await other.query('ROLLBACK').catch(() => undefined);
      await other.end().catch(() => undefined);
    },
  };
}

/** The pid of a session waiting on a lock in database "capture", once there is one (asked outside any transaction). */
async function waitingPid(): Promise<number> {
  const probe = await connect(db);
  try {
    for (let i = 0; i < 200; i++) {
      const r = await probe.query<{ pid: number }>(
        "SELECT pid FROM pg_stat_activity WHERE datname = 'capture' AND wait_event_type = 'Lock'",
      );
      if (r.rows[0]) return r.rows[0].pid;
      await new Promise((res) => setTimeout(res, 50));
    }
    throw new Error('no session ever waited on the lock');
  } finally {
    await probe.end();
  }
}

/** What a fresh session holds: every fact read in one read-only snapshot, the one it exports for pg_dump. */
async function readsOneSnapshot(session: CaptureSession): Promise<void> {
  expect(session.serverVersion).toMatch(/^\d+(\.\d+)?/);
  expect(session.snapshot).toMatch(/^[0-9A-F]+-[0-9A-F]+-\d+$/);
  expect(session.tables).toEqual(
    expect.arrayContaining([
      { schema: 'public', table: 'accounts' },
      { schema: 'public', table: 'statuses' },
    ]),
  );
  expect(session.facts?.rowCounts.accounts).toBeGreaterThan(0);
  expect(session.facts?.schemaMigration).toMatch(/^\d+$/);
  expect(session.database.owner).toBe(cluster.get().user);
  expect(session.rolesSql).toContain(`rolname = '${cluster.get().user}'`);
  // The harness connects as a superuser, who can read pg_authid.
  expect(session.rolePasswords).toBe(true);
  expect(session.pid).toBeGreaterThan(0);

  // Rows added after the session began are not in its counts, nor in the exported snapshot pg_dump reads.
  const accounts = session.facts!.rowCounts.accounts!;
  const other = await connect(db);
  await other.query(`INSERT INTO accounts (username) VALUES ('late')`);
  const inSession = await session.client.query<{ n: string }>('SELECT count(*) AS n FROM accounts');
  expect(Number(inSession.rows[0]!.n)).toBe(accounts);
  await other.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
  await other.query(`SET TRANSACTION SNAPSHOT '${session.snapshot}'`);
  expect(Number((await other.query<{ n: string }>('SELECT count(*) AS n FROM accounts')).rows[0]!.n)).toBe(accounts);
  await other.query('ROLLBACK');
  // Read only: the session cannot write.
  await expect(session.client.query(`DELETE FROM accounts`)).rejects.toThrow(/read-only transaction/);
  await other.end();
}

describe('openCaptureSession', () => {
  it('reads version, tables, facts, database and roles in one read-only repeatable-read snapshot it exports', async () => {
    const session = await openCaptureSession(db, never);
    try {
      await readsOneSnapshot(session);
    } finally {
      // Its locks (ACCESS SHARE on every table it counted) would hold the tests below.
      await session.close();
    }
  });

  it('close() ends the transaction and the connection (its backend is gone)', async () => {
    const s = await openCaptureSession(db, never);
    const other = await connect(db);
    await s.close();
    for (let i = 0; i < 50; i++) {
      const r = await other.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [s.pid]);
      if (r.rowCount === 0) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    expect((await other.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [s.pid])).rowCount).toBe(0);
    await other.end();
  });

  it('a run stopped before it starts: the stopped sentence, no snapshot written', async () => {
    const ac = new AbortController();
    ac.abort();
    const err = await fail(openCaptureSession(db, { signal: ac.signal }));
    expect(err).toBeInstanceOf(PermafrostError);
    expect(err).toMatchObject({ kind: 'stopped', message: 'Backup was stopped before it finished; no snapshot was written.' });
  });

  it('a stop while counting a table a migration holds locked cancels the waiting query (stopped, not hung)', async () => {
    const lock = await lockTable('statuses');
    try {
      const ac = new AbortController();
      const opening = fail(openCaptureSession(db, { signal: ac.signal }));
      await waitingPid();
      ac.abort();
      const err = await opening;
      expect(err).toMatchObject({ kind: 'stopped' });
    } finally {
      await lock.release();
    }
  }, 20_000);

  it('a session the server ends midway is the server\u2019s problem (exit 1), naming the server and the database', async () => {
    const lock = await lockTable('statuses');
    try {
      const opening = fail(openCaptureSession(db, never));
      const pid = await waitingPid();
      await lock.other.query('SELECT pg_terminate_backend($1)', [pid]);
      const err = await opening;
      expect(err).toBeInstanceOf(PermafrostError);
      expect((err as PermafrostError).kind).toBe('server');
      expect((err as Error).message).toMatch(
        new RegExp(
          `^PostgreSQL at ${cluster.get().socketDir}:${cluster.get().port} ended the capture session of database "capture": .*; check the server is running and run backup again\\.$`,
        ),
      );
    } finally {
      await lock.release();
    }
  });
});

describe('cancelBackend', () => {
  it('cancels the running query of another backend; a server it cannot reach is ignored', async () => {
    const lock = await lockTable('accounts');
    const waiter = await connect(db);
    try {
      const waiting = fail(waiter.query('SELECT count(*) FROM accounts'));
      const pid = await waitingPid();
      await cancelBackend(db, pid);
      expect(String(await waiting)).toMatch(/canceling statement due to user request/);
    } finally {
      await lock.release();
      await waiter.end();
    }
    await cancelBackend({ ...db, port: 1 }, 12345);
  });
});
