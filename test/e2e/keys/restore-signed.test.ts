/**
 * Issue 20 item 1: a vault with vault.recipients + signed manifests. Whoever holds only the PUBLIC
 * recipient key can encrypt any SQL as roles.sql.gpg and fix its SHA-256 and size in manifest.json;
 * the vault's restore.sh (verbatim, with dash) and `permafrost restore --vault` without a config
 * must refuse that before they decrypt or run a byte, against the signer fingerprint the admin
 * pins (--signer), and restore what the right signer signed. Real gpg, real PostgreSQL.
 */
import { copyFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterFixture, errorSentence, makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { fingerprint } from '../../harness/fingerprint.js';
import { killGpgAgent, makeGpgKey, type GpgKey } from '../../harness/gpg-keys.js';
import { destroyCluster, startCluster, type PgCluster } from '../../harness/postgres.js';
import {
  createOwnedSource,
  gpg,
  libpqEnv,
  plaintextDumps,
  readManifestJson,
  recordPart,
  runSh,
  writeManifestJson,
} from '../../harness/restore-sh.js';

const source = new ClusterFixture();
let fresh: PgCluster;
/** A full-mode vault and a delta-mode one, both encrypted to `recipient` only and signed by `signer`. */
let full: Workspace;
let delta: Workspace;
let recipient: GpgKey;
let signer: GpgKey;
let intruder: GpgKey;
/** The genuine snapshot of `full`; the base and the delta of `delta`. */
let genuine: string;
let base: string;
let top: string;
/** Where the forged SQL's COPY … TO PROGRAM would leave its files: writable by the server's OS user. */
let marks: string;

const DB = 'mastodon_production';
const lastLine = (stderr: string): string => stderr.trim().split('\n').at(-1) ?? '';

function databases(pg: PgCluster): string[] {
  return pg.psql('postgres', `SELECT datname FROM pg_database ORDER BY 1`).split('\n').filter(Boolean);
}

/** Signs `dir`'s manifest.json with `key` using stock gpg: armored (as permafrost does) or binary (gpg's default). */
function stockSign(dir: string, key: GpgKey, armor = true): void {
  gpg(
    [
      '--yes',
      ...(armor ? ['--armor'] : []),
      '--local-user',
      key.fingerprint,
      '--detach-sign',
      '--output',
      path.join(dir, 'manifest.json.sig'),
      path.join(dir, 'manifest.json'),
    ],
    key.home,
  );
  killGpgAgent(key.home);
}

/** Copies snapshot `from` of `ws` into a new snapshot folder `id` (its manifest's id fixed; its signature kept, now stale). */
function copySnapshot(ws: Workspace, from: string, id: string): string {
  const dir = path.join(ws.vault, id);
  mkdirSync(dir);
  for (const name of readdirSync(path.join(ws.vault, from))) copyFileSync(path.join(ws.vault, from, name), path.join(dir, name));
  writeManifestJson(dir, { ...readManifestJson(dir), id });
  return dir;
}

/**
 * What the attacker does with the recipient's PUBLIC key only: `sql` encrypted as part `part` of
 * snapshot folder `dir` with stock gpg -e, its size and SHA-256 fixed in the manifest.
 */
function forgePart(dir: string, part: 'roles' | 'rows', file: string, sql: string): void {
  const home = mkdtempSync(path.join(keysDir, 'attacker-gnupg-'));
  gpg(['--import', recipient.publicFile], home);
  const plain = path.join(home, 'forged.sql');
  writeFileSync(plain, sql);
  gpg(['--yes', '--trust-model', 'always', '-e', '-r', recipient.fingerprint, '--output', path.join(dir, file), plain], home);
  recordPart(dir, part, file, Buffer.byteLength(sql));
  killGpgAgent(home);
  rmSync(home, { recursive: true, force: true });
}

/** SQL that runs a program as the server's OS user: it leaves file `name` in `marks`. */
const evil = (name: string): string => `COPY (SELECT 1) TO PROGRAM 'touch ${path.join(marks, name)}';\n`;

/**
 * psql, pg_restore and gpg on PATH as logging wrappers around the real ones: what a refused run
 * started is in the log (none of psql/pg_restore, no gpg --decrypt).
 */
function traced(ws: Workspace, name: string): { env: NodeJS.ProcessEnv; log: string; tmp: string } {
  const bin = path.join(ws.dir, `traced-${name}`);
  mkdirSync(bin);
  const log = path.join(ws.dir, `traced-${name}.log`);
  writeFileSync(log, '');
  const realGpg = execFileSync('sh', ['-c', 'command -v gpg'], { encoding: 'utf8' }).trim();
  for (const [tool, real] of [
    ['psql', path.join(fresh.binDir, 'psql')],
    ['pg_restore', path.join(fresh.binDir, 'pg_restore')],
    ['gpg', realGpg],
  ] as const) {
    writeFileSync(path.join(bin, tool), `#!/bin/sh\nprintf '%s\\n' "${tool} $*" >> '${log}'\nexec '${real}' "$@"\n`, { mode: 0o755 });
  }
  const tmp = path.join(ws.dir, `tmp-${name}`);
  mkdirSync(tmp, { mode: 0o700 });
  const env = libpqEnv(fresh, tmp);
  return { env: { ...env, PATH: `${bin}:${env.PATH}` }, log, tmp };
}

/** What a refused run must not have done: no psql or pg_restore started, nothing decrypted, no plaintext, no database made. */
function nothingRun(t: { log: string; tmp: string }, before: string[]): void {
  const started = readFileSync(t.log, 'utf8').split('\n').filter(Boolean);
  expect(started.filter((l) => l.startsWith('psql ') || l.startsWith('pg_restore '))).toEqual([]);
  expect(started.filter((l) => l.includes('--decrypt'))).toEqual([]);
  expect(readdirSync(t.tmp)).toEqual([]);
  expect(databases(fresh)).toEqual(before);
  expect(readdirSync(marks)).toEqual([]);
}

async function backup(ws: Workspace): Promise<string> {
  const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { id: string }).id;
}

/** A workspace whose config encrypts to the recipient only and signs with the signer's key (copied in, 0600). */
function signedWorkspace(over: Record<string, unknown> = {}): Workspace {
  const ws = makeWorkspace(source.get(), DB);
  const signingKeyFile = path.join(ws.dir, 'signing.sec.asc');
  copyFileSync(signer.secretFile, signingKeyFile);
  chmodSync(signingKeyFile, 0o600);
  ws.writeConfig({
    database: over,
    vault: { passphraseFile: undefined, recipients: [recipient.publicFile], signingKeyFile, signerKeyFile: signer.publicFile },
  });
  return ws;
}

/** The CLI with no config file at all: only the vault copy, libpq's variables and the flags. */
function bare(ws: Workspace, args: string[]) {
  return runCli(args, {
    cwd: ws.vault,
    env: {
      PERMAFROST_CONFIG: '',
      PGHOST: fresh.socketDir,
      PGPORT: String(fresh.port),
      PGUSER: fresh.user,
      PATH: `${fresh.binDir}:${process.env.PATH}`,
    },
  });
}

/** The keys, the attacker's scratch homes and the marks folder (traversable by the server's OS user). */
const keysDir = mkdtempSync(path.join(tmpdir(), 'permafrost-signed-'));

beforeAll(async () => {
  chmodSync(keysDir, 0o755);
  const pg = source.get();
  createOwnedSource(pg, DB);
  recipient = makeGpgKey(keysDir, 'recipient');
  signer = makeGpgKey(keysDir, 'signer');
  intruder = makeGpgKey(keysDir, 'intruder');
  marks = path.join(keysDir, 'marks');
  mkdirSync(marks);
  chmodSync(marks, 0o777);
  // The delta chain first: after its last snapshot the source stays as it is, so every restore equals it.
  delta = signedWorkspace({ delta: { fullEvery: '24h' } });
  base = await backup(delta);
  pg.psql(DB, `UPDATE accounts SET display_name = 'changed after the base' WHERE username = 'bob'`);
  top = await backup(delta);
  full = signedWorkspace();
  genuine = await backup(full);
  fresh = startCluster();
}, 180_000);

afterAll(() => {
  if (fresh) destroyCluster(fresh);
  source.destroy();
  full?.cleanup();
  delta?.cleanup();
  rmSync(keysDir, { recursive: true, force: true });
});

describe('restore.sh of a signed vault (recipients + signing)', () => {
  it('a forged roles part (encrypted with the public key, SHA-256 and size fixed) without --signer: refused (exit 2) with how to pin and how to override, nothing run; --insecure-no-signature-check runs it, so the forgery is real', async () => {
    const dir = copySnapshot(full, genuine, '2020-02-01T00-00-00Z');
    // What a real attacker writes: the program, then the roles the restore goes on to need, so it ends in exit 0.
    forgePart(
      dir,
      'roles',
      'roles.sql.gpg',
      `${evil('unpinned')}CREATE ROLE mastodon LOGIN; CREATE ROLE mastodon_ro NOLOGIN; GRANT mastodon_ro TO mastodon;\n`,
    );
    rmSync(path.join(dir, 'manifest.json.sig'));
    const script = path.join(full.vault, 'restore.sh');
    const t = traced(full, 'unpinned');
    const before = databases(fresh);
    const r = await runSh(script, ['--identity', recipient.secretFile, '--database', 'forged_unpinned', '2020-02-01T00-00-00Z'], t.env);
    expect(existsSync(path.join(marks, 'unpinned')), `the forged SQL ran; restore.sh exited ${r.code}`).toBe(false);
    expect(r.code, r.stderr).toBe(2);
    expect(lastLine(r.stderr)).toBe(
      "restore.sh: this vault's manifests are signed (it holds the signer's public key signer.pub.asc), so restore.sh checks who wrote them before it decrypts anything: pass --signer FINGERPRINT, the signing key's fingerprint that `permafrost init` and `permafrost doctor` printed and you kept with your key (not one read from this folder, which anyone who can write here can change); or, knowingly, --insecure-no-signature-check to restore without that check.",
    );
    nothingRun(t, before);
    expect(existsSync(path.join(marks, 'unpinned'))).toBe(false);

    // The override is honest: it restores what the folder says, the forged SQL included.
    const o = traced(full, 'override');
    const overridden = await runSh(
      script,
      ['--identity', recipient.secretFile, '--insecure-no-signature-check', '--database', 'forged_overridden', '2020-02-01T00-00-00Z'],
      o.env,
    );
    expect(overridden.stderr).toContain('warning: --insecure-no-signature-check: no manifest');
    expect(existsSync(path.join(marks, 'unpinned')), overridden.stderr).toBe(true);
    expect(overridden.code, overridden.stderr).toBe(0);
    rmSync(path.join(marks, 'unpinned'));
    // The forged roles have no password: the genuine restores below create them as the source has them.
    fresh.psql('postgres', 'DROP DATABASE forged_overridden');
    fresh.psql('postgres', 'DROP ROLE mastodon_ro, mastodon');
    rmSync(dir, { recursive: true });
  });

  it('with --signer: the forged snapshot unsigned, with its old signature, or signed by another key (whatever signer.pub.asc holds) is refused (exit 3): no psql, nothing decrypted, the marker never appears', async () => {
    const id = '2020-02-02T00-00-00Z';
    const dir = copySnapshot(full, genuine, id);
    forgePart(dir, 'roles', 'roles.sql.gpg', evil('pinned'));
    const script = path.join(full.vault, 'restore.sh');
    const keyFile = path.join(full.vault, 'signer.pub.asc');
    const genuineKey = readFileSync(keyFile);
    const run = async (name: string) => {
      const t = traced(full, name);
      const before = databases(fresh);
      const r = await runSh(
        script,
        ['--identity', recipient.secretFile, '--signer', signer.fingerprint, '--database', 'forged', id],
        t.env,
      );
      expect(readdirSync(marks), `the forged SQL ran; restore.sh exited ${r.code}`).toEqual([]);
      expect(r.code, r.stderr).toBe(3);
      nothingRun(t, before);
      return lastLine(r.stderr);
    };
    const refused = (why: string) =>
      `restore.sh: snapshot ${id} is not signed by the signer you pinned: ${why}; nothing was decrypted. Restore another snapshot, and find out who wrote this one.`;

    // The genuine snapshot's signature, copied along: it does not cover the edited manifest.
    expect(await run('stale')).toBe(refused('its manifest.json does not match manifest.json.sig (edited after it was signed)'));
    rmSync(path.join(dir, 'manifest.json.sig'));
    expect(await run('unsigned')).toBe(
      `restore.sh: snapshot ${id} is not signed by the signer you pinned (${signer.fingerprint}): it has no manifest.json.sig; nothing was decrypted. Restore another snapshot, and find out who wrote this one.`,
    );
    // Signed by the intruder: with the genuine key file, with the intruder's key added to it, and with it replaced.
    stockSign(dir, intruder);
    expect(await run('foreign')).toMatch(
      new RegExp(
        `^restore\\.sh: snapshot ${id} is not signed by the signer you pinned: its manifest\\.json\\.sig is signed by key [0-9A-F]{16}, not by the signer you pinned \\(${signer.fingerprint}\\)`,
      ),
    );
    writeFileSync(keyFile, Buffer.concat([genuineKey, readFileSync(intruder.publicFile)]));
    expect(await run('added')).toBe(
      refused(`its manifest.json.sig is signed by key ${intruder.fingerprint}, not by the signer you pinned (${signer.fingerprint})`),
    );
    copyFileSync(intruder.publicFile, keyFile);
    expect(await run('replaced')).toBe(
      `restore.sh: ${keyFile} holds no key with the fingerprint ${signer.fingerprint} you pinned: this vault is signed by another key, or the file was replaced; check the fingerprint, and restore from a copy of the vault you trust.`,
    );
    writeFileSync(keyFile, genuineKey);
    expect(readdirSync(marks)).toEqual([]);
    rmSync(dir, { recursive: true });
  });

  it('the right signer pinned (as gpg prints it: groups of four, any case): the genuine snapshot restores equal to the source; a binary signature by it too', async () => {
    const t = traced(full, 'right');
    const spaced = signer.fingerprint
      .toLowerCase()
      .replace(/(.{4})/g, '$1 ')
      .trim();
    const r = await runSh(
      path.join(full.vault, 'restore.sh'),
      ['--identity', recipient.secretFile, '--signer', spaced, '--database', 'signed_ok', genuine],
      t.env,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('warning');
    expect(fingerprint(fresh, 'signed_ok')).toEqual(fingerprint(source.get(), DB));

    const id = '2020-02-03T00-00-00Z';
    const dir = copySnapshot(full, genuine, id);
    stockSign(dir, signer, false);
    expect(readFileSync(path.join(dir, 'manifest.json.sig')).subarray(0, 10).toString('latin1')).not.toContain('-----');
    const b = traced(full, 'binary');
    const binary = await runSh(
      path.join(full.vault, 'restore.sh'),
      ['--identity', recipient.secretFile, '--signer', signer.fingerprint, '--database', 'signed_binary', id],
      b.env,
    );
    expect(binary.code, binary.stderr).toBe(0);
    expect(fingerprint(fresh, 'signed_binary')).toEqual(fingerprint(source.get(), DB));
    rmSync(dir, { recursive: true });
    expect(plaintextDumps(full.dir)).toEqual([]);
  });

  it('a delta chain: the genuine chain restores with the right signer pinned', async () => {
    const ok = traced(delta, 'chain-ok');
    const r = await runSh(
      path.join(delta.vault, 'restore.sh'),
      ['--identity', recipient.secretFile, '--signer', signer.fingerprint, '--database', 'chain_ok', top],
      ok.env,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(fingerprint(fresh, 'chain_ok')).toEqual(fingerprint(source.get(), DB));
  });

  it('a delta chain whose base is edited (forged rows, sums fixed): permafrost verify --vault and restore.sh refuse it, without --signer (exit 2) and with it (exit 3, naming the base); nothing run', async () => {
    const script = path.join(delta.vault, 'restore.sh');
    forgePart(path.join(delta.vault, base), 'rows', 'rows.sql.gpg', evil('chain'));
    const before = databases(fresh);

    // permafrost verify --vault (no config) test-restores the chain on this server, running its SQL: checked first, as restore is.
    const v = await bare(delta, ['verify', top, '--vault', delta.vault, '--identity', recipient.secretFile]);
    expect(readdirSync(marks), `the forged SQL ran; verify exited ${v.code}`).toEqual([]);
    expect(v.code, v.stderr).toBe(2);
    expect(errorSentence(v.stderr)).toMatch(
      /^This vault's manifests are signed \(it holds the signer's public key signer\.pub\.asc\), so verify checks who wrote them before it decrypts anything: pass --signer FINGERPRINT/,
    );
    const vp = await bare(delta, [
      'verify',
      top,
      '--vault',
      delta.vault,
      '--identity',
      recipient.secretFile,
      '--signer',
      signer.fingerprint,
    ]);
    expect(readdirSync(marks), `the forged SQL ran; verify exited ${vp.code}`).toEqual([]);
    expect(vp.code, vp.stderr).toBe(3);
    expect(`${vp.stdout}${vp.stderr}`).toContain(
      `it needs snapshot ${base}, whose signature check fails: manifest.json.sig does not match manifest.json (edited after it was signed)`,
    );
    expect(databases(fresh)).toEqual(before);

    const t = traced(delta, 'chain-forged');
    const pinned = await runSh(
      script,
      ['--identity', recipient.secretFile, '--signer', signer.fingerprint, '--database', 'chain_forged', top],
      t.env,
    );
    expect(readdirSync(marks), `the forged SQL ran; restore.sh exited ${pinned.code}`).toEqual([]);
    expect(pinned.code, pinned.stderr).toBe(3);
    expect(lastLine(pinned.stderr)).toBe(
      `restore.sh: snapshot ${base} is not signed by the signer you pinned: its manifest.json does not match manifest.json.sig (edited after it was signed); nothing was decrypted. Restore another snapshot, and find out who wrote this one.`,
    );
    nothingRun(t, before);

    // The attacker removes every trace of signing it can find: the link's manifest still names its signer.
    for (const id of [base, top]) rmSync(path.join(delta.vault, id, 'manifest.json.sig'));
    rmSync(path.join(delta.vault, 'signer.pub.asc'));
    const u = traced(delta, 'chain-unpinned');
    const unpinned = await runSh(script, ['--identity', recipient.secretFile, '--database', 'chain_forged', top], u.env);
    expect(readdirSync(marks), `the forged SQL ran; restore.sh exited ${unpinned.code}`).toEqual([]);
    expect(unpinned.code, unpinned.stderr).toBe(2);
    expect(lastLine(unpinned.stderr)).toMatch(
      new RegExp(
        `^restore\\.sh: this vault's manifests are signed \\(snapshot ${top}'s manifest says it was signed by ${signer.fingerprint}\\), so restore\\.sh checks who wrote them`,
      ),
    );
    nothingRun(u, before);
    const vu = await bare(delta, ['verify', top, '--vault', delta.vault, '--identity', recipient.secretFile]);
    expect(readdirSync(marks), `the forged SQL ran; verify exited ${vu.code}`).toEqual([]);
    expect(vu.code, vu.stderr).toBe(2);
    expect(errorSentence(vu.stderr)).toContain(`(snapshot ${top}'s manifest says it was signed by ${signer.fingerprint})`);
  });
});

describe('permafrost restore --vault of a signed vault, with no config', () => {
  it('the forged snapshot: without --signer refused (exit 2, how to pin and override), with --signer refused (exit 3); nothing decrypted, the marker never appears', async () => {
    const id = '2020-03-01T00-00-00Z';
    const dir = copySnapshot(full, genuine, id);
    forgePart(dir, 'roles', 'roles.sql.gpg', evil('cli'));
    rmSync(path.join(dir, 'manifest.json.sig'));
    const before = databases(fresh);
    const r = await bare(full, ['restore', id, '--vault', full.vault, '--identity', recipient.secretFile, '--database', 'cli_forged']);
    expect(readdirSync(marks), `the forged SQL ran; permafrost exited ${r.code}`).toEqual([]);
    expect(r.code, r.stderr).toBe(2);
    expect(errorSentence(r.stderr)).toBe(
      "This vault's manifests are signed (it holds the signer's public key signer.pub.asc), so restore checks who wrote them before it decrypts anything: pass --signer FINGERPRINT, the signing key's fingerprint that `permafrost init` and `permafrost doctor` printed and you kept with your key (not one read from the vault, which anyone who can write there can change), or set vault.signerKeyFile; or, knowingly, --insecure-no-signature-check to restore without that check.",
    );
    const pinned = await bare(full, [
      'restore',
      id,
      '--vault',
      full.vault,
      '--identity',
      recipient.secretFile,
      '--signer',
      signer.fingerprint,
      '--database',
      'cli_forged',
    ]);
    expect(pinned.code, pinned.stderr).toBe(3);
    expect(errorSentence(pinned.stderr)).toBe(
      `Snapshot ${id} failed its signature check: manifest.json.sig is missing (the manifest is unsigned, and the signer you pinned (--signer) ${signer.fingerprint} requires a signature); use another snapshot, and find out who wrote this one.`,
    );
    stockSign(dir, intruder);
    const foreign = await bare(full, [
      'restore',
      id,
      '--vault',
      full.vault,
      '--identity',
      recipient.secretFile,
      '--signer',
      signer.fingerprint,
      '--database',
      'cli_forged',
    ]);
    expect(foreign.code, foreign.stderr).toBe(3);
    expect(errorSentence(foreign.stderr)).toMatch(
      /manifest\.json\.sig is signed by key [0-9A-F]{16}, not by the signer you pinned \(--signer\)/,
    );
    const wrongPin = await bare(full, [
      'restore',
      id,
      '--vault',
      full.vault,
      '--identity',
      recipient.secretFile,
      '--signer',
      intruder.fingerprint,
      '--database',
      'cli_forged',
    ]);
    expect(wrongPin.code, wrongPin.stderr).toBe(3);
    expect(errorSentence(wrongPin.stderr)).toContain(`holds no key with the fingerprint ${intruder.fingerprint} you pinned`);
    expect(databases(fresh)).toEqual(before);
    expect(readdirSync(marks)).toEqual([]);
    expect(plaintextDumps(full.dir)).toEqual([]);
    rmSync(dir, { recursive: true });
  });

  it('the right signer pinned restores the genuine snapshot, and a binary signature by it; a fingerprint that is no fingerprint is exit 2', async () => {
    const r = await bare(full, [
      'restore',
      genuine,
      '--vault',
      full.vault,
      '--identity',
      recipient.secretFile,
      '--signer',
      signer.fingerprint,
      '--database',
      'cli_ok',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('warning');
    expect(fingerprint(fresh, 'cli_ok')).toEqual(fingerprint(source.get(), DB));
    const id = '2020-03-02T00-00-00Z';
    const dir = copySnapshot(full, genuine, id);
    stockSign(dir, signer, false);
    const binary = await bare(full, [
      'restore',
      id,
      '--vault',
      full.vault,
      '--identity',
      recipient.secretFile,
      '--signer',
      signer.fingerprint,
      '--database',
      'cli_binary',
    ]);
    expect(binary.code, binary.stderr).toBe(0);
    rmSync(dir, { recursive: true });
    const short = await bare(full, [
      'restore',
      genuine,
      '--vault',
      full.vault,
      '--identity',
      recipient.secretFile,
      '--signer',
      signer.fingerprint.slice(-16),
    ]);
    expect(short.code).toBe(2);
    expect(errorSentence(short.stderr)).toMatch(/^--signer takes the signing key's full fingerprint \(40 hex digits/);
  });
});
