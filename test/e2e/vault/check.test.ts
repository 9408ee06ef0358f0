import { cpSync, existsSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeWorkspace, runCli, startDaemonLog, type Workspace } from '../../harness/env.js';
import { startSink, type Sink } from '../../harness/http-sinks.js';
import { clusterPerFile } from '../../harness/suite.js';
import { waitFor } from '../../harness/wait.js';

/**
 * A backup device whose config is `vault.dir` alone (no database, no passphrase, no syncthing
 * section), holding a copy of a source's snapshot as Syncthing would leave it: `list`, `check`
 * and the daemon's scheduled check need no passphrase; `restore --passphrase-file` brings the
 * passphrase along and restores through libpq's environment.
 */
const cluster = clusterPerFile('source');
let src: Workspace;
let dev: Workspace;
let hook: Sink | undefined;
let snapshot: string;

beforeAll(async () => {
  src = makeWorkspace(cluster.get(), 'source');
  // A second part, so one can go missing while the database part stays.
  const env = path.join(src.dir, 'env.production');
  writeFileSync(env, 'SECRET_KEY_BASE=abc\n', { mode: 0o600 });
  src.writeConfig({ extra: { secrets: { file: env } } });
  const r = await runCli(['--config', src.configFile, 'backup', '--json']);
  expect(r.code, r.stderr).toBe(0);
  snapshot = (JSON.parse(r.stdout) as { id: string }).id;
}, 60_000);

afterAll(() => src?.cleanup());

afterEach(async () => {
  dev?.cleanup();
  await hook?.close();
  hook = undefined;
});

/** A device workspace with the snapshot copied in, its config `vault.dir` (+ `extra`), and no passphrase file anywhere in it. */
function device(extra: Record<string, unknown> = {}): Workspace {
  dev = makeWorkspace(null, 'unused');
  rmSync(dev.passFile);
  cpSync(path.join(src.vault, snapshot), path.join(dev.vault, snapshot), { recursive: true });
  writeFileSync(dev.configFile, stringify({ vault: { dir: dev.vault }, ...extra }));
  return dev;
}

const cli = (...args: string[]) => runCli(['--config', dev.configFile, ...args]);
const part = (name: string) => path.join(dev.vault, snapshot, name);
const checkState = () =>
  JSON.parse(readFileSync(path.join(dev.vault, '.permafrost-check.json'), 'utf8')) as {
    snapshots: Record<string, { ok: boolean; problems: string[] }>;
    lastRun: { failed: string[] };
  };

describe('a device config with only vault.dir', () => {
  it('list and check all work with no passphrase on the device; a good vault is exit 0 and recorded', async () => {
    const ws = device();
    expect(readFileSync(ws.configFile, 'utf8')).not.toMatch(/passphrase|database|syncthing/);
    const check = await cli('check', 'all');
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout).toBe(`✓ ${snapshot}\n`);
    expect(checkState()).toMatchObject({ snapshots: { [snapshot]: { ok: true, problems: [] } }, lastRun: { failed: [] } });
    const list = await cli('list');
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout.split('\n')[1]!.split('\t')).toEqual([
      snapshot,
      expect.any(String),
      expect.stringMatching(/KiB|MiB/),
      'full',
      'never',
      '✓',
      'database,secrets,roles',
      'passphrase',
    ]);
    const json = JSON.parse((await cli('list', '--json')).stdout) as Array<{ checked: string }>;
    expect(json).toMatchObject([{ checked: 'ok' }]);
    // The default argument is all.
    expect((await cli('check')).code).toBe(0);
  });

  it("restore --passphrase-file restores into the PostgreSQL libpq's environment names; without it, one sentence says to pass it (exit 2)", async () => {
    device();
    const pg = cluster.get();
    const env = { PGHOST: pg.socketDir, PGPORT: String(pg.port), PGUSER: pg.user, PATH: `${pg.binDir}:${process.env.PATH ?? ''}` };
    const without = await runCli(['--config', dev.configFile, 'restore', snapshot, '--database', 'on_device'], { env });
    expect(without.code).toBe(2);
    expect(without.stderr).toContain('permafrost restore needs the vault passphrase, and this config has no vault.passphraseFile');
    expect(without.stderr).toContain('pass --passphrase-file FILE');
    const r = await runCli(
      ['--config', dev.configFile, 'restore', snapshot, '--database', 'on_device', '--passphrase-file', src.passFile],
      { env },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`restored snapshot ${snapshot} into database "on_device" (created)`);
    const count = (db: string) => pg.psql(db, 'SELECT count(*) FROM statuses').trim();
    expect(count('on_device')).toBe(count('source'));
  });

  it('a part truncated on the device: check exits 3 naming the snapshot and the part, list shows ✗', async () => {
    device();
    const size = readFileSync(part('database.pgdump.gpg')).length;
    truncateSync(part('database.pgdump.gpg'), size - 100);
    const r = await cli('check');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      `permafrost: Snapshot ${snapshot} failed its check: database.pgdump.gpg has ${size - 100} bytes, the manifest says ${size} (truncated);`,
    );
    expect(r.stdout).toContain(`✗ ${snapshot}: database.pgdump.gpg has`);
    expect(checkState()).toMatchObject({ snapshots: { [snapshot]: { ok: false } }, lastRun: { failed: [snapshot] } });
    const list = await cli('list');
    expect(list.stdout.split('\n')[1]!.split('\t')[5]).toMatch(/^✗ database.pgdump.gpg has \d+ bytes/);
  });

  it('a changed byte, an extra file and a missing part are each named (exit 3)', async () => {
    device();
    const bytes = readFileSync(part('database.pgdump.gpg'));
    bytes[10]! ^= 1;
    writeFileSync(part('database.pgdump.gpg'), bytes);
    writeFileSync(part('notes.txt'), 'hi');
    rmSync(part('env.production.gpg'));
    const r = await cli('check', snapshot);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('database.pgdump.gpg does not match the SHA-256 in the manifest');
    expect(r.stderr).toContain('unexpected file notes.txt (not in the manifest)');
    expect(r.stderr).toContain('env.production.gpg is missing');
  });

  it('an extra file alone fails the check, naming it', async () => {
    device();
    writeFileSync(part('database.pgdump.gpg.orig'), 'x');
    const r = await cli('check');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`Snapshot ${snapshot} failed its check: unexpected file database.pgdump.gpg.orig (not in the manifest)`);
  });

  it('the daemon runs check on schedule.check and alerts a damaged snapshot once to the webhook; /metrics shows it', async () => {
    hook = await startSink();
    device({ schedule: { check: '*/1 * * * * *' }, notify: { webhook: { url: hook.url }, backoffMs: 10 } });
    truncateSync(part('env.production.gpg'), 1);
    const d = startDaemonLog(dev.configFile);
    const lines = d.lines;
    try {
      await waitFor(
        'three failed check runs',
        () => lines().filter((l) => l.event === 'run.fail' && l.job === 'check').length >= 3,
        30_000,
      );
    } finally {
      d.child.kill('SIGTERM');
    }
    const end = await d.result;
    expect(end.code, end.stderr).toBe(0);
    const start = lines().find((l) => l.event === 'daemon.start') as { jobs: Array<{ name: string }> };
    expect(start.jobs.map((j) => j.name)).toEqual(['check']);
    const events = hook.received.map((r) => JSON.parse(r.body) as { event: string; error: string });
    expect(events).toEqual([
      expect.objectContaining({
        event: 'check.failed',
        error: expect.stringContaining(`Snapshot ${snapshot} failed its check: env.production.gpg has 1 bytes`),
      }),
      // Its only snapshot is not complete any more: the device's dead-man alarm (issue 11 item 5), once.
      expect.objectContaining({ event: 'snapshots.stale', error: expect.stringContaining('no complete snapshot in') }),
    ]);
    const metrics = await cli('metrics');
    expect(metrics.stdout).toContain(`permafrost_snapshot_check_ok{snapshot="${snapshot}"} 0`);
    expect(metrics.stdout).toMatch(/^permafrost_last_check_timestamp_seconds \d/m);
    expect(existsSync(path.join(dev.dir, 'passphrase'))).toBe(false);
  });
});
