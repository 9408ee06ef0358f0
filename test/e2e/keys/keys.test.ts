import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Manifest } from '../../../src/vault/manifest.js';
import { errorSentence, makeWorkspace, runCli, stockGpgDecrypt, type Workspace } from '../../harness/env.js';
import { fingerprint } from '../../harness/fingerprint.js';
import { gpgDecryptIn, makeGpgKey } from '../../harness/gpg-keys.js';
import { clusterPerFile } from '../../harness/suite.js';

const cluster = clusterPerFile('source');
// The secret keys live here, away from the "server" (the workspace): as the admin keeps them off it.
const offServer = mkdtempSync(path.join(tmpdir(), 'permafrost-offserver-'));
afterAll(() => rmSync(offServer, { recursive: true, force: true }));
const alice = makeGpgKey(offServer, 'alice');
const bob = makeGpgKey(offServer, 'bob', { algo: 'rsa3072', passphrase: 'bob key passphrase' });
let ws: Workspace;
afterEach(() => ws?.cleanup());

/** A server workspace whose config encrypts to the public keys copied onto it (and the passphrase when `withPassphrase`). */
function serverWith(keys: { publicFile: string }[], withPassphrase: boolean): Workspace {
  ws = makeWorkspace(cluster.get(), 'source');
  const recipients = keys.map((k) => {
    const onServer = path.join(ws.dir, path.basename(k.publicFile));
    writeFileSync(onServer, readFileSync(k.publicFile));
    return onServer;
  });
  if (!withPassphrase) rmSync(ws.passFile);
  ws.writeConfig({ vault: { recipients, passphraseFile: withPassphrase ? ws.passFile : undefined } });
  return ws;
}

async function backup(): Promise<Manifest> {
  const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Manifest;
}

function pgRestore(db: string, file: string): void {
  const pg = cluster.get();
  pg.psql('postgres', `CREATE DATABASE ${db}`);
  const r = spawnSync(path.join(pg.binDir, 'pg_restore'), ['--clean', '--if-exists', '--dbname', db, file], {
    encoding: 'utf8',
    env: { ...process.env, PGHOST: pg.socketDir, PGPORT: String(pg.port), PGUSER: pg.user },
  });
  expect(r.status, r.stderr).toBe(0);
}

/** Every file under `dir` (the server's config folder, its vault). */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name));
}

describe('vault.recipients (issue 12 items 1–2, against real gpg)', () => {
  it('recipients only: stock gpg -d with the secret key + pg_restore gives an equal database, an empty keyring fails, restore --identity gives an equal database, and the server holds no secret key', async () => {
    serverWith([alice, bob], false);
    const manifest = await backup();
    const part = path.join(ws.vault, manifest.id, 'database.pgdump.gpg');
    expect(manifest.files[0]!.keys).toEqual({
      recipients: [
        { fingerprint: alice.fingerprint, keyId: expect.stringMatching(/^[0-9A-F]{16}$/) },
        { fingerprint: bob.fingerprint, keyId: expect.stringMatching(/^[0-9A-F]{16}$/) },
      ],
      passphrase: false,
    });

    const out = path.join(offServer, `${manifest.id}.pgdump`);
    const gpg = gpgDecryptIn(alice.home, part, out);
    expect(gpg.status, gpg.stderr).toBe(0);
    pgRestore('stock_alice', out);
    expect(fingerprint(cluster.get(), 'stock_alice')).toEqual(fingerprint(cluster.get(), 'source'));
    rmSync(out);

    const empty = gpgDecryptIn(mkdtempSync(path.join(offServer, 'empty-')), part, out);
    expect(empty.status).not.toBe(0);
    expect(empty.stderr).toMatch(/no secret key/i);

    const r = await runCli([
      '--config',
      ws.configFile,
      'restore',
      'latest',
      '--database',
      'restored_alice',
      '--identity',
      alice.secretFile,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(fingerprint(cluster.get(), 'restored_alice')).toEqual(fingerprint(cluster.get(), 'source'));
    expect(readdirSync(ws.dir).filter((n) => n.startsWith('permafrost-'))).toEqual([]);

    // Nothing on the server is secret key material: not the config, the public keys, the vault.
    for (const file of filesUnder(ws.dir)) {
      const text = readFileSync(file, 'latin1');
      expect(text, file).not.toMatch(/PRIVATE KEY BLOCK/);
    }
    const secretArmor = readFileSync(alice.secretFile, 'utf8').split('\n').slice(3, 6).join('');
    for (const file of filesUnder(ws.dir)) expect(readFileSync(file, 'latin1').includes(secretArmor), file).toBe(false);
  });

  it("--gpg-agent: restore decrypts with the recipient key in the caller's own keyring and leaves that keyring as it was; a keyring without it is refused naming the keys", async () => {
    serverWith([alice], false);
    await backup();
    const asAdmin = (home: string, db: string) =>
      runCli(['--config', ws.configFile, 'restore', 'latest', '--database', db, '--gpg-agent'], { env: { GNUPGHOME: home } });
    const r = await asAdmin(alice.home, 'restored_agent');
    expect(r.code, r.stderr).toBe(0);
    expect(fingerprint(cluster.get(), 'restored_agent')).toEqual(fingerprint(cluster.get(), 'source'));
    const still = spawnSync('gpg', ['--homedir', alice.home, '--batch', '--list-secret-keys', '--with-colons'], { encoding: 'utf8' });
    expect(still.stdout).toContain(alice.fingerprint);

    const empty = mkdtempSync(path.join(offServer, 'agent-empty-'));
    const refused = await asAdmin(empty, 'restored_agent_empty');
    expect(refused.code).toBe(2);
    expect(errorSentence(refused.stderr)).toContain(
      `no secret key in the gpg keyring ${empty} is one it was encrypted to (${alice.fingerprint})`,
    );
    expect(cluster.get().psql('postgres', `SELECT count(*) FROM pg_database WHERE datname LIKE 'restored_agent_empty%'`).trim()).toBe('0');
    const both = await runCli([
      '--config',
      ws.configFile,
      'restore',
      'latest',
      '--database',
      'x',
      '--gpg-agent',
      '--identity',
      alice.secretFile,
    ]);
    expect(both.code).toBe(2);
    expect(errorSentence(both.stderr)).toBe('--identity and --gpg-agent each name the secret key: pass one of them.');
  });

  it('on the server (recipients only) verify says plainly it holds no secret (exit 2); with --identity of a protected key and its passphrase file it verifies', async () => {
    serverWith([bob], false);
    ws.writeConfig({
      vault: { recipients: [path.join(ws.dir, path.basename(bob.publicFile))], passphraseFile: undefined },
      extra: { verify: { database: 'scratch_keys' } },
    });
    await backup();
    const here = await runCli(['--config', ws.configFile, 'verify']);
    expect(here.code).toBe(2);
    expect(errorSentence(here.stderr)).toBe(
      "permafrost verify cannot decrypt here: this host holds no secret (vault.recipients encrypts to public keys only, and no vault.passphraseFile is set); run it where a recipient's secret key is, with --identity FILE.",
    );

    const noPass = await runCli(['--config', ws.configFile, 'verify', '--identity', bob.secretFile]);
    expect(noPass.code).toBe(2);
    expect(errorSentence(noPass.stderr)).toMatch(/is passphrase-protected; pass --identity-passphrase-file FILE/);

    const passFile = path.join(offServer, 'bob-pass');
    writeFileSync(passFile, 'bob key passphrase\n', { mode: 0o600 });
    const wrongPass = path.join(offServer, 'bob-wrong');
    writeFileSync(wrongPass, 'not it\n', { mode: 0o600 });
    const wrong = await runCli([
      '--config',
      ws.configFile,
      'verify',
      '--identity',
      bob.secretFile,
      '--identity-passphrase-file',
      wrongPass,
    ]);
    expect(wrong.code).toBe(2);
    expect(errorSentence(wrong.stderr)).toMatch(/^--identity: the passphrase given does not unlock the key [0-9A-F]{40}/);

    const r = await runCli(['--config', ws.configFile, 'verify', '--identity', bob.secretFile, '--identity-passphrase-file', passFile]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/verified in/);

    // Another key (alice is no recipient here): one sentence naming both sides, nothing left behind.
    const other = await runCli([
      '--config',
      ws.configFile,
      'restore',
      'latest',
      '--database',
      'never_made',
      '--identity',
      alice.secretFile,
    ]);
    expect(other.code).toBe(2);
    expect(errorSentence(other.stderr)).toBe(
      `Cannot decrypt snapshot ${JSON.parse((await runCli(['--config', ws.configFile, 'list', '--json'])).stdout)[0].id}: the key ${alice.fingerprint} in ${alice.secretFile} is not one it was encrypted to (${bob.fingerprint}); pass a recipient's secret key with --identity.`,
    );
    expect(readdirSync(ws.dir).filter((n) => n.startsWith('permafrost-'))).toEqual([]);
  });

  it('recipients + passphrase: stock gpg -d with either the passphrase or the secret key decrypts', async () => {
    serverWith([alice], true);
    const manifest = await backup();
    expect(manifest.files[0]!.keys?.passphrase).toBe(true);
    const part = path.join(ws.vault, manifest.id, 'database.pgdump.gpg');
    const byPass = stockGpgDecrypt(ws.passFile, part, path.join(offServer, 'by-pass'), mkdtempSync(path.join(offServer, 'home-')));
    expect(byPass.status, byPass.stderr).toBe(0);
    const byKey = gpgDecryptIn(alice.home, part, path.join(offServer, 'by-key'));
    expect(byKey.status, byKey.stderr).toBe(0);
    expect(readFileSync(path.join(offServer, 'by-pass')).equals(readFileSync(path.join(offServer, 'by-key')))).toBe(true);
    const r = await runCli(['--config', ws.configFile, 'restore', 'latest', '--database', 'restored_pass']);
    expect(r.code).toBe(0);
  });

  it('a config with neither recipients nor a passphrase file is refused (exit 2), and a group-readable identity too', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    ws.writeConfig({ vault: { passphraseFile: undefined } });
    const r = await runCli(['--config', ws.configFile, 'backup']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      'vault: the server encrypts every snapshot, so it needs vault.recipients (public keys), vault.passphraseFile, or both',
    );
    const loose = path.join(offServer, 'loose.asc');
    writeFileSync(loose, readFileSync(alice.secretFile), { mode: 0o640 });
    expect(statSync(loose).mode & 0o077).not.toBe(0);
    ws.writeConfig();
    const v = await runCli(['--config', ws.configFile, 'restore', 'latest', '--database', 'x', '--identity', loose]);
    expect(v.code).toBe(2);
    expect(errorSentence(v.stderr)).toBe(
      `--identity: ${loose} is accessible by group or others (mode 0640); run \`chmod 600 ${loose}\` and try again.`,
    );
  });
});
