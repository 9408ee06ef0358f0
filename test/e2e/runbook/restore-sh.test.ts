/**
 * Issue 10 item 5: the vault's restore.sh, run verbatim (the file a backup wrote into the vault)
 * with dash, against real PostgreSQL clusters and stock gpg.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterFixture, makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { fingerprint, ownership } from '../../harness/fingerprint.js';
import { destroyCluster, startCluster, type PgCluster } from '../../harness/postgres.js';
import {
  createOwnedSource,
  gpg,
  libpqEnv,
  plaintextDumps,
  readManifestJson,
  recordPart,
  runSh,
  startSh,
  writeManifestJson,
} from '../../harness/restore-sh.js';
import { holdSession } from '../../harness/table-lock.js';
import { waitFor } from '../../harness/wait.js';

const source = new ClusterFixture();
let fresh: PgCluster;
let ws: Workspace;
let snapshot: string;
let script: string;

/** A private TMPDIR per run, so that "nothing left" can be checked exactly. */
function tmp(name: string): string {
  const dir = path.join(ws.dir, `tmp-${name}`);
  mkdirSync(dir, { mode: 0o700 });
  return dir;
}

/** The script's last line: the one sentence a failure ends in (progress lines come before it). */
const lastLine = (stderr: string): string => stderr.trim().split('\n').at(-1) ?? '';

function databases(pg: PgCluster): string[] {
  return pg.psql('postgres', `SELECT datname FROM pg_database ORDER BY 1`).split('\n').filter(Boolean);
}

/** Nothing decrypted anywhere: the run's TMPDIR is empty and no file under the workspace holds a dump. */
function nothingLeft(tmpDir: string): void {
  expect(readdirSync(tmpDir)).toEqual([]);
  expect(plaintextDumps(ws.dir)).toEqual([]);
}

beforeAll(async () => {
  createOwnedSource(source.get(), 'mastodon_production');
  ws = makeWorkspace(source.get(), 'mastodon_production');
  const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
  expect(r.code, r.stderr).toBe(0);
  snapshot = (JSON.parse(r.stdout) as { id: string }).id;
  script = path.join(ws.vault, 'restore.sh');
  const scratch = path.join(ws.dir, 'scratch');
  mkdirSync(scratch, { mode: 0o700 });
  fresh = startCluster();
}, 120_000);

afterAll(() => {
  if (fresh) destroyCluster(fresh);
  source.destroy();
  ws?.cleanup();
});

describe('restore.sh from the vault', () => {
  it('the manifest is written in the layout restore.sh reads (JSON.stringify, 2 spaces, final newline)', () => {
    const text = readFileSync(path.join(ws.vault, snapshot, 'manifest.json'), 'utf8');
    expect(text).toBe(`${JSON.stringify(JSON.parse(text), null, 2)}\n`);
  });

  it('onto a fresh cluster with no roles: equal to the source, owners, grants, roles and password hash included; nothing left', async () => {
    expect(fresh.psql('postgres', `SELECT count(*) FROM pg_roles WHERE rolname LIKE 'mastodon%'`).trim()).toBe('0');
    const t = tmp('fresh');
    const r = await runSh(script, ['--passphrase-file', ws.passFile], libpqEnv(fresh, t));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`restored snapshot ${snapshot} into database "mastodon_production".`);
    // A passphrase vault without signing: it restores, and says that nothing proves who wrote it.
    expect(r.stderr).toContain(
      `restore.sh: warning: this vault's manifests are not signed, so nothing proves who wrote snapshot ${snapshot}`,
    );
    expect(fingerprint(fresh, 'mastodon_production')).toEqual(fingerprint(source.get(), 'mastodon_production'));
    expect(ownership(fresh, 'mastodon_production')).toEqual(ownership(source.get(), 'mastodon_production'));
    expect(ownership(fresh, 'mastodon_production').relations).toContain('public.accounts:r=mastodon {mastodon=arwdDxt');
    expect(databases(fresh)).not.toContain('mastodon_production_incoming');
    nothingLeft(t);
  });

  it('over a database that holds tables: refused without --force (exit 2); with --force replaced, the old one kept as _before_<date>', async () => {
    fresh.psql('mastodon_production', `CREATE TABLE failed_upgrade (x int); ALTER TABLE accounts ADD COLUMN extra int`);
    const t = tmp('force');
    const refused = await runSh(script, ['--passphrase-file', ws.passFile], libpqEnv(fresh, t));
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/database "mastodon_production" already holds \d+ tables; pass --force to replace it/);
    nothingLeft(t);

    const r = await runSh(script, ['--passphrase-file', ws.passFile, '--force', snapshot], libpqEnv(fresh, t));
    expect(r.code, r.stderr).toBe(0);
    const kept = /kept as "(mastodon_production_before_\d{8}_\d{6})"; once Mastodon works, remove it with: dropdb \1/.exec(r.stderr)?.[1];
    expect(kept, r.stderr).toBeDefined();
    expect(fingerprint(fresh, 'mastodon_production')).toEqual(fingerprint(source.get(), 'mastodon_production'));
    expect(ownership(fresh, 'mastodon_production')).toEqual(ownership(source.get(), 'mastodon_production'));
    expect(fresh.psql(kept!, `SELECT count(*) FROM failed_upgrade`).trim()).toBe('0');
    expect(databases(fresh)).not.toContain('mastodon_production_incoming');
    nothingLeft(t);
    fresh.psql('postgres', `DROP DATABASE ${kept}`);
  });

  it("a wrong passphrase: one clear sentence, exit 3, the target untouched and no plaintext anywhere (a killed run's folder removed too)", async () => {
    const wrong = path.join(ws.dir, 'wrong-passphrase');
    writeFileSync(wrong, 'not the passphrase\n', { mode: 0o600 });
    const t = tmp('wrong');
    // What a run killed with SIGKILL leaves (no trap runs then): removed by the next run, as its process is gone.
    const dead = spawnSync('true').pid;
    const killed = path.join(t, `permafrost-${dead}-0-AbCdEf`);
    mkdirSync(killed, { mode: 0o700 });
    writeFileSync(path.join(killed, 'database.pgdump'), 'PGDMP plaintext of a killed run');
    const before = databases(fresh);
    const r = await runSh(script, ['--passphrase-file', wrong, '--database', 'other_db'], libpqEnv(fresh, t));
    expect(r.stderr).toContain(`restore.sh: removed ${killed}, left with decrypted files by a run that was killed`);
    expect(r.code).toBe(3);
    expect(lastLine(r.stderr)).toBe(
      `restore.sh: the passphrase in ${wrong} does not decrypt snapshot ${snapshot} (wrong passphrase?); give the vault's passphrase file.`,
    );
    expect(databases(fresh)).toEqual(before);
    nothingLeft(t);
  });

  it('SIGTERM while pg_restore runs: exit 143, the decrypted dump and the half-made copy gone, the target untouched', async () => {
    // A pg_restore that hangs (a real one finishes this fixture too fast to be caught mid-way).
    const bin = path.join(ws.dir, 'slow-bin');
    mkdirSync(bin);
    const started = path.join(ws.dir, 'pg_restore-started');
    writeFileSync(path.join(bin, 'pg_restore'), `#!/bin/sh\ntouch '${started}'\nexec sleep 60\n`, { mode: 0o755 });
    const t = tmp('sigterm');
    const env = libpqEnv(fresh, t);
    const before = fingerprint(fresh, 'mastodon_production');
    const run = startSh(script, ['--passphrase-file', ws.passFile, '--force'], { ...env, PATH: `${bin}:${env.PATH}` });
    await waitFor('pg_restore to start', () => existsSync(started), 30_000, 50);
    // The decrypted dump is there now, in the private folder.
    expect(plaintextDumps(t).length).toBe(1);
    run.child.kill('SIGTERM');
    const r = await run.result;
    expect(r.code).toBe(143);
    expect(r.stderr).toContain('stopped by SIGTERM before the restore finished; the target database was not touched');
    nothingLeft(t);
    expect(databases(fresh)).not.toContain('mastodon_production_incoming');
    expect(fingerprint(fresh, 'mastodon_production')).toEqual(before);
  });

  it('other sessions on the target: refused (exit 1) with the sessions named, before anything is decrypted', async () => {
    const held = await holdSession(fresh, 'mastodon_production', 'mastodon-web');
    const t = tmp('sessions');
    try {
      const r = await runSh(script, ['--passphrase-file', ws.passFile, '--force'], libpqEnv(fresh, t));
      expect(r.code).toBe(1);
      expect(lastLine(r.stderr)).toMatch(
        new RegExp(
          `^restore\\.sh: database "mastodon_production" has other sessions: \\d+ \\(${fresh.user}, mastodon-web\\); stop Mastodon`,
        ),
      );
      expect(r.stderr).not.toContain('decrypting');
    } finally {
      await held.release();
    }
    nothingLeft(t);
  });

  it('pg_restore failing half-way leaves the target as it was; the retry drops a leftover _incoming and succeeds; --drop-previous keeps nothing', async () => {
    const bin = path.join(ws.dir, 'failing-bin');
    mkdirSync(bin);
    writeFileSync(path.join(bin, 'pg_restore'), `#!/bin/sh\necho 'pg_restore: error: simulated failure' >&2\nexit 1\n`, { mode: 0o755 });
    const t = tmp('retry');
    const env = libpqEnv(fresh, t);
    fresh.psql('mastodon_production', `CREATE TABLE marker (x int)`);
    const before = fingerprint(fresh, 'mastodon_production');
    const failed = await runSh(script, ['--passphrase-file', ws.passFile, '--force'], { ...env, PATH: `${bin}:${env.PATH}` });
    expect(failed.code).toBe(1);
    expect(lastLine(failed.stderr)).toBe(
      'restore.sh: pg_restore failed (pg_restore: error: simulated failure); "mastodon_production" was not touched; fix that and run again.',
    );
    expect(fingerprint(fresh, 'mastodon_production')).toEqual(before);
    expect(databases(fresh)).not.toContain('mastodon_production_incoming');
    nothingLeft(t);

    // A run killed with SIGKILL cannot clean up: its half-made copy is still there.
    fresh.psql('postgres', `CREATE DATABASE mastodon_production_incoming`);
    fresh.psql('mastodon_production_incoming', `CREATE TABLE half (x int)`);
    const r = await runSh(script, ['--passphrase-file', ws.passFile, '--force', '--drop-previous'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('dropping mastodon_production_incoming, left by an earlier restore that never finished');
    expect(r.stderr).toContain('the database it replaced was dropped (--drop-previous).');
    expect(fingerprint(fresh, 'mastodon_production')).toEqual(fingerprint(source.get(), 'mastodon_production'));
    expect(databases(fresh).filter((d) => d.startsWith('mastodon_production_'))).toEqual([]);
    nothingLeft(t);
  });

  it('a name too long to keep the old database beside the new one: exit 2 before anything is touched', async () => {
    const t = tmp('long');
    const before = databases(fresh);
    const name = 'a'.repeat(41);
    const r = await runSh(script, ['--passphrase-file', ws.passFile, '--database', name], libpqEnv(fresh, t));
    expect(r.code).toBe(2);
    expect(lastLine(r.stderr)).toContain(`"${name}" is too long to keep the current database beside the new one`);
    expect(databases(fresh)).toEqual(before);
    nothingLeft(t);
  });

  it('the maintenance database and the templates are never replaced (a typo or a hostile manifest): exit 2, template1 untouched', async () => {
    const t = tmp('reserved');
    const before = databases(fresh);
    const template1 = fresh.psql('template1', `SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace`);
    for (const name of ['template1', 'template0', 'postgres']) {
      const r = await runSh(script, ['--passphrase-file', ws.passFile, '--database', name], libpqEnv(fresh, t));
      expect(r.code, r.stderr).toBe(2);
      expect(lastLine(r.stderr)).toContain(`restore never replaces "${name}"; pass --database NAME with another database name.`);
    }
    expect(databases(fresh)).toEqual(before);
    expect(fresh.psql('template1', `SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace`)).toBe(template1);
    nothingLeft(t);
  });

  it('--identity: parts re-encrypted to a key with stock gpg -e -r restore with that secret key', async () => {
    const home = path.join(ws.dir, 'keyring');
    mkdirSync(home, { mode: 0o700 });
    gpg(['--passphrase', '', '--quick-gen-key', 'restore test <restore@test>', 'default', 'default', 'never'], home);
    const key = path.join(ws.dir, 'identity.asc');
    gpg(['--armor', '--output', key, '--export-secret-keys', 'restore@test'], home);
    // A copy of the snapshot whose parts are encrypted to the key instead of the passphrase.
    const id = '2020-01-01T00-00-00Z';
    const dir = path.join(ws.vault, id);
    mkdirSync(dir);
    const m = readManifestJson(path.join(ws.vault, snapshot));
    writeManifestJson(dir, { ...m, id });
    for (const f of m.files.filter((p) => p.part === 'database' || p.part === 'roles')) {
      const plain = path.join(ws.dir, 'scratch', f.part);
      gpg([
        '--pinentry-mode',
        'loopback',
        '--passphrase-file',
        ws.passFile,
        '--output',
        plain,
        '--decrypt',
        path.join(ws.vault, snapshot, f.name),
      ]);
      gpg(['--trust-model', 'always', '-e', '-r', 'restore@test', '--output', path.join(dir, f.name), plain], home);
      recordPart(dir, f.part, f.name, readFileSync(plain).length);
      writeFileSync(plain, '');
    }
    const t = tmp('identity');
    const r = await runSh(script, ['--identity', key, '--database', 'from_key', id], libpqEnv(fresh, t));
    expect(r.code, r.stderr).toBe(0);
    expect(fingerprint(fresh, 'from_key')).toEqual(fingerprint(source.get(), 'mastodon_production'));
    nothingLeft(t);
  });

  it('a manifest it cannot read, an unknown snapshot, a bad flag and a missing passphrase file: distinct exits, one sentence each', async () => {
    const t = tmp('bad');
    const env = libpqEnv(fresh, t);
    const id = '2020-01-02T00-00-00Z';
    mkdirSync(path.join(ws.vault, id));
    // The same manifest on one line: not the writer's layout, refused rather than guessed at.
    writeFileSync(path.join(ws.vault, id, 'manifest.json'), JSON.stringify({ ...readManifestJson(path.join(ws.vault, snapshot)), id }));
    let r = await runSh(script, ['--passphrase-file', ws.passFile, id], env);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/manifest\.json is damaged or not in the layout this script reads; restore with `permafrost restore --vault/);

    r = await runSh(script, ['--passphrase-file', ws.passFile, '2019-01-01T00-00-00Z'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no snapshot 2019-01-01T00-00-00Z in');
    r = await runSh(script, ['--passphrase-file', ws.passFile, '--frobnicate'], env);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('restore.sh: unknown option --frobnicate; see --help.');
    r = await runSh(script, ['--passphrase-file', path.join(ws.dir, 'nope')], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('cannot read the passphrase file');
    r = await runSh(script, ['--help'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('sh restore.sh --passphrase-file /root/passphrase                  # as root');
    nothingLeft(t);
  });

  it("a path instead of a snapshot name (another vault's snapshot) is refused (exit 2), not restored from this vault under that name", async () => {
    const t = tmp('pathlike');
    const before = databases(fresh);
    const other = path.join(ws.dir, 'other-vault', snapshot);
    const r = await runSh(script, ['--passphrase-file', ws.passFile, '--database', 'path_like', other], libpqEnv(fresh, t));
    expect(r.code, r.stderr).toBe(2);
    expect(lastLine(r.stderr)).toBe(
      `restore.sh: "${other}" is a path, but restore.sh restores only snapshots of the folder it sits in (${ws.vault}); run the restore.sh of that other vault, or give a snapshot name (like 2026-11-26T07-40-00Z).`,
    );
    expect(databases(fresh)).toEqual(before);
    nothingLeft(t);
    // What tab completion adds in the vault folder is still a name.
    const slash = await runSh(script, ['--passphrase-file', ws.passFile, '--database', 'path_like', `${snapshot}/`], libpqEnv(fresh, t));
    expect(slash.code, slash.stderr).toBe(0);
    fresh.psql('postgres', 'DROP DATABASE path_like');
  });

  it('a snapshot made before roles travelled (no roles part, no database facts): restored with a note, onto roles that exist', async () => {
    const id = '2020-01-04T00-00-00Z';
    const dir = path.join(ws.vault, id);
    mkdirSync(dir);
    const m = readManifestJson(path.join(ws.vault, snapshot));
    const database = Object.fromEntries(
      Object.entries(m.database).filter(([k]) => !['owner', 'encoding', 'collate', 'ctype', 'localeProvider', 'iculocale'].includes(k)),
    );
    writeManifestJson(dir, { ...m, id, database, files: m.files.filter((f) => f.part !== 'roles') });
    for (const f of m.files)
      if (f.part !== 'roles') writeFileSync(path.join(dir, f.name), readFileSync(path.join(ws.vault, snapshot, f.name)));
    const t = tmp('old');
    const r = await runSh(script, ['--passphrase-file', ws.passFile, '--database', 'from_old', id], libpqEnv(fresh, t));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`note: snapshot ${id} has no roles part (made by an older permafrost); roles it needs must exist already`);
    expect(fingerprint(fresh, 'from_old')).toEqual(fingerprint(source.get(), 'mastodon_production'));
    nothingLeft(t);
  });

  it('a part that differs from its SHA-256 is refused before anything is decrypted (exit 3)', async () => {
    const id = '2020-01-03T00-00-00Z';
    const dir = path.join(ws.vault, id);
    mkdirSync(dir);
    const m = readManifestJson(path.join(ws.vault, snapshot));
    writeManifestJson(dir, { ...m, id });
    for (const f of m.files) writeFileSync(path.join(dir, f.name), readFileSync(path.join(ws.vault, snapshot, f.name)));
    const db = path.join(dir, 'database.pgdump.gpg');
    const bytes = readFileSync(db);
    bytes[bytes.length - 100] = (bytes[bytes.length - 100] ?? 0) ^ 1;
    writeFileSync(db, bytes);
    const t = tmp('sha');
    const r = await runSh(script, ['--passphrase-file', ws.passFile, '--database', 'tampered', id], libpqEnv(fresh, t));
    expect(r.code).toBe(3);
    expect(lastLine(r.stderr)).toBe(
      `restore.sh: ${db} does not match the SHA-256 in its manifest (damaged or altered); restore another snapshot.`,
    );
    expect(databases(fresh)).not.toContain('tampered');
    nothingLeft(t);
  });
});
