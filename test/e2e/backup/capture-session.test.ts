import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { errorSentence, makeWorkspace, runCli, startCli, type Workspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';
import { holdTableLock, holdTransaction } from '../../harness/table-lock.js';
import type { PgCluster } from '../../harness/postgres.js';
import { waitFor } from '../../harness/wait.js';

const cluster = clusterPerFile('source');
let ws: Workspace;
afterEach(() => ws?.cleanup());

const entries = (): string[] => readdirSync(ws.vault);
/** Sessions whose `SELECT count(*) FROM public.statuses` waits on a lock. */
const countWaiting = (pg: PgCluster): number =>
  Number(
    pg.psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%count(*)%statuses%'").trim(),
  );

describe('the capture session and the database it talks to', () => {
  it('records the real server version in the manifest', async () => {
    const pg = cluster.get();
    ws = makeWorkspace(pg, 'source');
    const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const manifest = JSON.parse(r.stdout) as { id: string; database: { serverVersion: string } };
    expect(manifest.database.serverVersion).toBe(pg.psql('postgres', 'SHOW server_version').trim());
    const onDisk = JSON.parse(readFileSync(path.join(ws.vault, manifest.id, 'manifest.json'), 'utf8')) as typeof manifest;
    expect(onDisk.database.serverVersion).not.toBe('unknown');
  });

  it('PostgreSQL restarted while the session reads the row counts: exit 1 naming the server, nothing left behind', async () => {
    const pg = cluster.get();
    ws = makeWorkspace(pg, 'source');
    // The session counts statuses while pg_dump dumps: both wait on this lock until the restart.
    const lock = await holdTableLock(pg, 'source', 'statuses');
    const run = startCli(['--config', ws.configFile, 'backup']);
    try {
      await waitFor('the capture session to wait on the lock', () => countWaiting(pg) === 1, 15_000);
    } finally {
      pg.stop('fast');
      pg.start();
      await lock.release();
    }
    const r = await run.result;
    expect(r.code, r.stderr).toBe(1);
    const sentence = errorSentence(r.stderr);
    expect(sentence).toMatch(/PostgreSQL/);
    expect(sentence).toContain(pg.socketDir);
    expect(r.stderr).not.toContain('internal error');
    expect(entries()).toEqual([]);
    expect(existsSync(path.join(ws.vault, '.permafrost.lock'))).toBe(false);
  });

  it('rows committed while the dump runs are not counted: the manifest counts the dumped snapshot', async () => {
    const pg = cluster.get();
    ws = makeWorkspace(pg, 'source');
    const before = Number(pg.psql('source', 'SELECT count(*) FROM statuses').trim());
    // Five statuses inserted under a lock the backup's count (and pg_dump) must wait for; they are
    // committed only once both wait, i.e. after the snapshot was exported: a count on a connection
    // of its own, outside that snapshot, would see them.
    const writer = await holdTransaction(
      pg,
      'source',
      `LOCK TABLE statuses IN ACCESS EXCLUSIVE MODE;
       INSERT INTO statuses (id, account_id) SELECT (SELECT max(id) FROM statuses) + g, (SELECT min(id) FROM accounts) FROM generate_series(1, 5) g`,
    );
    const run = startCli(['--config', ws.configFile, 'backup', '--json']);
    try {
      await waitFor('the backup to count statuses behind the lock', () => countWaiting(pg) === 1, 15_000);
    } finally {
      await writer.release();
    }
    const r = await run.result;
    expect(r.code, r.stderr).toBe(0);
    expect(Number(pg.psql('source', 'SELECT count(*) FROM statuses').trim())).toBe(before + 5);
    const manifest = JSON.parse(r.stdout) as { mastodon: { rowCounts: Record<string, number> } };
    expect(manifest.mastodon.rowCounts.statuses).toBe(before);
  });

  it('refuses a --database name PostgreSQL would silently cut to 63 bytes', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    expect((await runCli(['--config', ws.configFile, 'backup'])).code).toBe(0);
    const long = `mastodon_${'x'.repeat(60)}`;
    const r = await runCli(['--config', ws.configFile, 'restore', 'latest', '--database', long]);
    expect(r.code).toBe(2);
    expect(errorSentence(r.stderr)).toMatch(/--database: .* is 69 bytes; PostgreSQL names are at most 63/);
  });
});
