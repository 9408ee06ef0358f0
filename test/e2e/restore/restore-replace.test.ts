import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../../src/vault/manifest.js';
import { errorSentence, FIXTURE_SQL, makeWorkspace, runCli, startCli, type Workspace } from '../../harness/env.js';
import { fingerprint } from '../../harness/fingerprint.js';
import { clusterPerFile } from '../../harness/suite.js';
import { holdTableLock } from '../../harness/table-lock.js';
import { waitFor } from '../../harness/wait.js';

// issue 10 item 3: --force replaces through <target>_incoming and one swap; the target is as it
// was until then, whatever happens, and a retry needs no clean-up.
const cluster = clusterPerFile('source');
let ws: Workspace;
let manifest: Manifest;

beforeAll(async () => {
  ws = makeWorkspace(cluster.get(), 'source');
  const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
  expect(r.code, r.stderr).toBe(0);
  manifest = JSON.parse(r.stdout) as Manifest;
});
afterAll(() => ws?.cleanup());

/** A target that drifted from the snapshot the way a failed Mastodon upgrade leaves it. */
function driftedTarget(name: string): void {
  const pg = cluster.get();
  pg.psql('postgres', `CREATE DATABASE ${name}`);
  pg.psql(
    name,
    `${FIXTURE_SQL}\nCREATE TABLE upgrade_leftover (x int); ALTER TABLE accounts ADD COLUMN upgrade_column int; UPDATE accounts SET note = 'drifted'`,
  );
}

const databases = (like: string): string[] =>
  cluster.get().psql('postgres', `SELECT datname FROM pg_database WHERE datname LIKE '${like}' ORDER BY 1`).split('\n').filter(Boolean);

const restore = (...args: string[]) => runCli(['--config', ws.configFile, 'restore', 'latest', ...args]);

describe('restore --force replaces without loss', () => {
  it('over a database with an extra table and column: equal to the source afterwards, the previous one kept under its dated name', async () => {
    const pg = cluster.get();
    driftedTarget('kept');
    const r = await restore('--database', 'kept', '--force');
    expect(r.code, r.stderr).toBe(0);
    expect(fingerprint(pg, 'kept')).toEqual(fingerprint(pg, 'source'));
    expect(
      pg
        .psql(
          'kept',
          "SELECT count(*) FROM information_schema.columns WHERE column_name = 'upgrade_column' OR table_name = 'upgrade_leftover'",
        )
        .trim(),
    ).toBe('0');
    const [previous, ...more] = databases('kept\\_before\\_%');
    expect(more).toEqual([]);
    expect(previous).toMatch(/^kept_before_\d{8}_\d{6}$/);
    expect(r.stdout).toContain(`the previous database is kept as "${previous}"; once you no longer need it: dropdb ${previous}`);
    expect(pg.psql(previous!, 'SELECT count(*) FROM upgrade_leftover').trim()).toBe('0');
    expect(databases('kept\\_incoming')).toEqual([]);
  });

  it('--drop-previous drops it after the swap', async () => {
    const pg = cluster.get();
    driftedTarget('dropped');
    const r = await restore('--database', 'dropped', '--force', '--drop-previous');
    expect(r.code, r.stderr).toBe(0);
    expect(fingerprint(pg, 'dropped')).toEqual(fingerprint(pg, 'source'));
    expect(databases('dropped\\_%')).toEqual([]);
    expect(r.stdout).toContain('the previous database was dropped (--drop-previous)');
  });

  it('a held lock on the target: refused within seconds naming the session, nothing touched; with --terminate-sessions restored', async () => {
    const pg = cluster.get();
    driftedTarget('locked');
    const before = fingerprint(pg, 'locked');
    const lock = await holdTableLock(pg, 'locked', 'accounts');
    try {
      const t0 = Date.now();
      const r = await restore('--database', 'locked', '--force');
      expect(Date.now() - t0).toBeLessThan(15_000);
      expect(r.code).toBe(1);
      expect(errorSentence(r.stderr)).toMatch(
        /^Database "locked" has 1 other session \(psql from local socket since .* \(pid \d+\)\).*--terminate-sessions/,
      );
      expect(databases('locked\\_%')).toEqual([]);
      const t = await restore('--database', 'locked', '--force', '--terminate-sessions');
      expect(t.code, t.stderr).toBe(0);
      expect(t.stdout).toMatch(/^ended session psql from local socket since .* on "locked"$/m);
    } finally {
      await lock.release();
    }
    expect(fingerprint(pg, 'locked')).toEqual(fingerprint(pg, 'source'));
    const [previous] = databases('locked\\_before\\_%');
    expect(fingerprint(pg, previous!)).toEqual(before);
  });

  it('restore killed while pg_restore writes: the target as it was; the retry succeeds with no clean-up', async () => {
    const pg = cluster.get();
    driftedTarget('killed');
    const before = fingerprint(pg, 'killed');
    // A pg_restore that restores the schema, says so, and then hangs: the CLI is killed there.
    const fake = path.join(ws.dir, 'fake-bin');
    mkdirSync(fake, { recursive: true });
    const mark = path.join(ws.dir, 'pg_restore-started');
    writeFileSync(
      path.join(fake, 'pg_restore'),
      `#!/bin/sh\n"${pg.binDir}/pg_restore" --section=pre-data "$@" || exit 1\ntouch "${mark}"\nexec sleep 60\n`,
    );
    chmodSync(path.join(fake, 'pg_restore'), 0o755);
    ws.writeConfig({ database: { binDir: fake } });
    const run = startCli(['--config', ws.configFile, 'restore', 'latest', '--database', 'killed', '--force']);
    await waitFor('pg_restore to have written the schema', () => existsSync(mark), 30_000);
    expect(databases('killed\\_incoming')).toEqual(['killed_incoming']);
    run.child.kill('SIGKILL');
    await run.result;
    expect(fingerprint(pg, 'killed')).toEqual(before);

    ws.writeConfig();
    const r = await restore('--database', 'killed', '--force');
    expect(r.code, r.stderr).toBe(0);
    expect(fingerprint(pg, 'killed')).toEqual(fingerprint(pg, 'source'));
    expect(databases('killed\\_incoming')).toEqual([]);
    expect(readdirSync(ws.dir).filter((n) => n.startsWith('permafrost-'))).toEqual([]);
  });

  it('the roles part is applied and `_incoming` created while gpg still decrypts the archive; the target untouched until the swap (issue 22)', async () => {
    const pg = cluster.get();
    driftedTarget('early');
    const before = fingerprint(pg, 'early');
    // A gpg that, for the database part only, waits (at most 10 s) for `early_incoming` to exist before it decrypts.
    const fake = path.join(ws.dir, 'fake-gpg');
    mkdirSync(fake, { recursive: true });
    const mark = path.join(ws.dir, 'incoming-before-archive');
    const archive = manifest.files.find((f) => f.part === 'database')!.name;
    const seen = path.join(ws.dir, 'target-while-decrypting');
    const psql = `"${pg.binDir}/psql" -h "${pg.socketDir}" -p ${pg.port} -U ${pg.user} -Atc`;
    writeFileSync(
      path.join(fake, 'gpg'),
      `#!/bin/sh
case "$*" in *${archive}*)
  i=0
  while [ $i -lt 100 ]; do
` +
        `    if [ "$(${psql} "SELECT 1 FROM pg_database WHERE datname = 'early_incoming'" postgres)" = 1 ]; then touch "${mark}"; break; fi
` +
        `    sleep 0.1; i=$((i+1))
  done
` +
        `  ${psql} "SELECT count(*) FROM upgrade_leftover" early > "${seen}";;
esac
exec /usr/bin/gpg "$@"
`,
    );
    chmodSync(path.join(fake, 'gpg'), 0o755);
    const r = await runCli(['--config', ws.configFile, 'restore', 'latest', '--database', 'early', '--force'], {
      env: { PATH: `${fake}:${process.env.PATH ?? ''}` },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(mark)).toBe(true);
    // The target was still the drifted one while the archive was decrypted.
    expect(readFileSync(seen, 'utf8').trim()).toBe('0');
    expect(fingerprint(pg, 'early')).toEqual(fingerprint(pg, 'source'));
    const [previous] = databases('early\\_before\\_%');
    expect(fingerprint(pg, previous!)).toEqual(before);
    expect(databases('early\\_incoming')).toEqual([]);
  });

  it('pg_restore failing: exit 1 saying the target was not touched, no _incoming left', async () => {
    const pg = cluster.get();
    driftedTarget('failed');
    const before = fingerprint(pg, 'failed');
    const fake = path.join(ws.dir, 'failing-bin');
    mkdirSync(fake, { recursive: true });
    writeFileSync(path.join(fake, 'pg_restore'), '#!/bin/sh\necho "pg_restore: error: simulated" >&2\nexit 1\n');
    chmodSync(path.join(fake, 'pg_restore'), 0o755);
    ws.writeConfig({ database: { binDir: fake } });
    try {
      const r = await restore('--database', 'failed', '--force');
      expect(r.code).toBe(1);
      expect(errorSentence(r.stderr)).toBe(
        `pg_restore failed restoring snapshot ${manifest.id} into "failed_incoming"; database "failed" was not touched: read the lines below, fix the cause and run restore again.`,
      );
    } finally {
      ws.writeConfig();
    }
    expect(fingerprint(pg, 'failed')).toEqual(before);
    expect(databases('failed\\_%')).toEqual([]);
  });

  it('a copy that does not match the manifest (row counts) is never swapped in: exit 3, target as it was, no _incoming left', async () => {
    const pg = cluster.get();
    driftedTarget('mismatch');
    const before = fingerprint(pg, 'mismatch');
    const file = path.join(ws.vault, manifest.id, 'manifest.json');
    const original = readFileSync(file, 'utf8');
    const lying = JSON.parse(original) as Manifest;
    lying.mastodon!.rowCounts.accounts! += 1;
    writeFileSync(file, JSON.stringify(lying, null, 2));
    try {
      const r = await restore('--database', 'mismatch', '--force');
      expect(r.code).toBe(3);
      expect(errorSentence(r.stderr)).toMatch(
        new RegExp(
          `^The restored copy of snapshot ${manifest.id} does not match its manifest \\(accounts has \\d+ rows, the manifest says \\d+\\); database "mismatch" was not touched`,
        ),
      );
    } finally {
      writeFileSync(file, original);
    }
    expect(fingerprint(pg, 'mismatch')).toEqual(before);
    expect(databases('mismatch\\_%')).toEqual([]);
  });
});
