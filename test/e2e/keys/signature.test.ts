import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Manifest } from '../../../src/vault/manifest.js';
import { sha256File } from '../../../src/crypto/hash.js';
import { errorSentence, makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { killGpgAgent, makeGpgKey } from '../../harness/gpg-keys.js';
import { clusterPerFile } from '../../harness/suite.js';

const cluster = clusterPerFile('source');
const keysDir = mkdtempSync(path.join(tmpdir(), 'permafrost-sigkeys-'));
afterAll(() => rmSync(keysDir, { recursive: true, force: true }));
const signer = makeGpgKey(keysDir, 'signer');
const intruder = makeGpgKey(keysDir, 'intruder');
const spaces: Workspace[] = [];
afterEach(() => {
  for (const w of spaces.splice(0)) w.cleanup();
});

/** A server that signs with `key` and checks against the signer's public key. */
function signingServer(key = signer): Workspace {
  const ws = makeWorkspace(cluster.get(), 'source');
  spaces.push(ws);
  const signingKeyFile = path.join(ws.dir, 'signing.sec.asc');
  copyFileSync(key.secretFile, signingKeyFile);
  chmodSync(signingKeyFile, 0o600);
  ws.writeConfig({ vault: { signingKeyFile, signerKeyFile: signer.publicFile } });
  return ws;
}

async function backup(ws: Workspace): Promise<Manifest> {
  const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Manifest;
}

/** Stock gpg --verify with only the signer's public key imported. */
function stockVerify(dir: string): { status: number | null; stderr: string } {
  const home = mkdtempSync(path.join(keysDir, 'verify-home-'));
  spawnSync('gpg', ['--homedir', home, '--batch', '--import', signer.publicFile]);
  const r = spawnSync(
    'gpg',
    ['--homedir', home, '--batch', '--verify', path.join(dir, 'manifest.json.sig'), path.join(dir, 'manifest.json')],
    {
      encoding: 'utf8',
    },
  );
  killGpgAgent(home);
  return { status: r.status, stderr: r.stderr };
}

describe('signed manifests (issue 12 item 3, against real gpg)', () => {
  it('stock gpg --verify accepts the signature; check and restore pass with vault.signerKeyFile; the manifest names the signer', async () => {
    const ws = signingServer();
    const m = await backup(ws);
    expect(m.signedBy).toBe(signer.fingerprint);
    const dir = path.join(ws.vault, m.id);
    const v = stockVerify(dir);
    expect(v.status, v.stderr).toBe(0);
    expect(v.stderr).toMatch(/Good signature/);
    const check = await runCli(['--config', ws.configFile, 'check']);
    expect(check.code, check.stderr).toBe(0);
    const restore = await runCli(['--config', ws.configFile, 'restore', 'latest', '--database', 'signed_ok']);
    expect(restore.code, restore.stderr).toBe(0);
  });

  it('an edited row count (SHA-256 sums fixed), a part swapped in from another vault with the same passphrase, a missing and a foreign signature: gpg --verify and check refuse (exit 3), restore refuses before it touches anything', async () => {
    const ws = signingServer();
    const m = await backup(ws);
    const dir = path.join(ws.vault, m.id);
    const manifestFile = path.join(dir, 'manifest.json');
    const original = readFileSync(manifestFile, 'utf8');

    const edited = JSON.parse(original) as Manifest;
    edited.mastodon!.rowCounts.statuses = 199;
    writeFileSync(manifestFile, `${JSON.stringify(edited, null, 2)}\n`);
    expect(stockVerify(dir).status).not.toBe(0);
    const check = await runCli(['--config', ws.configFile, 'check']);
    expect(check.code).toBe(3);
    expect(errorSentence(check.stderr)).toContain('manifest.json.sig does not match manifest.json (edited after it was signed)');
    const restore = await runCli(['--config', ws.configFile, 'restore', 'latest', '--database', 'never_edited']);
    expect(restore.code).toBe(3);
    expect(errorSentence(restore.stderr)).toBe(
      `Snapshot ${m.id} failed its signature check: manifest.json.sig does not match manifest.json (edited after it was signed); use another snapshot, and find out who wrote this one.`,
    );
    expect(cluster.get().psql('postgres', "SELECT count(*) FROM pg_database WHERE datname = 'never_edited'").trim()).toBe('0');

    // A part from another vault (same passphrase: what an attacker with the server's passphrase makes), sums fixed in the manifest.
    const other = signingServer(intruder);
    other.writeConfig({ vault: { passphraseFile: ws.passFile, signingKeyFile: path.join(other.dir, 'signing.sec.asc') } });
    const om = await backup(other);
    const swapped = path.join(dir, 'database.pgdump.gpg');
    copyFileSync(path.join(other.vault, om.id, 'database.pgdump.gpg'), swapped);
    const fixed = JSON.parse(original) as Manifest;
    const sum = await sha256File(swapped);
    fixed.files[0] = { ...fixed.files[0]!, sha256: sum.sha256, bytes: sum.bytes };
    writeFileSync(manifestFile, `${JSON.stringify(fixed, null, 2)}\n`);
    const swappedCheck = await runCli(['--config', ws.configFile, 'check']);
    expect(swappedCheck.code).toBe(3);
    expect(errorSentence(swappedCheck.stderr)).toContain('does not match manifest.json (edited after it was signed)');
    const swappedVerify = await runCli(['--config', ws.configFile, 'verify']);
    expect(swappedVerify.code).toBe(3);

    // Signed by another key: the intruder re-signs the edited manifest with its own key.
    copyFileSync(path.join(other.vault, om.id, 'manifest.json.sig'), path.join(dir, 'manifest.json.sig'));
    const foreign = await runCli(['--config', ws.configFile, 'check']);
    expect(foreign.code).toBe(3);
    expect(errorSentence(foreign.stderr)).toMatch(
      /manifest\.json\.sig is signed by key [0-9A-F]{16}, not by the vault\.signerKeyFile key [0-9A-F]{40}/,
    );

    rmSync(path.join(dir, 'manifest.json.sig'));
    writeFileSync(manifestFile, original);
    const unsigned = await runCli(['--config', ws.configFile, 'check']);
    expect(unsigned.code).toBe(3);
    expect(errorSentence(unsigned.stderr)).toContain(
      'manifest.json.sig is missing (the manifest is unsigned, and vault.signerKeyFile requires a signature)',
    );
  });

  it('a binary (non-armored) detached signature, as `gpg --detach-sign` writes it, is a signature: check and restore accept it from the right key and refuse it from another', async () => {
    const ws = signingServer();
    const m = await backup(ws);
    const dir = path.join(ws.vault, m.id);
    const sign = (key: typeof signer) => {
      const r = spawnSync(
        'gpg',
        [
          '--homedir',
          key.home,
          '--batch',
          '--yes',
          '--detach-sign',
          '--output',
          path.join(dir, 'manifest.json.sig'),
          path.join(dir, 'manifest.json'),
        ],
        { encoding: 'utf8' },
      );
      killGpgAgent(key.home);
      expect(r.status, r.stderr).toBe(0);
      expect(readFileSync(path.join(dir, 'manifest.json.sig')).subarray(0, 30).toString('latin1')).not.toContain('BEGIN PGP');
    };
    sign(signer);
    const check = await runCli(['--config', ws.configFile, 'check']);
    expect(check.code, check.stderr).toBe(0);
    const restore = await runCli(['--config', ws.configFile, 'restore', 'latest', '--database', 'signed_binary']);
    expect(restore.code, restore.stderr).toBe(0);
    sign(intruder);
    const foreign = await runCli(['--config', ws.configFile, 'check']);
    expect(foreign.code).toBe(3);
    expect(errorSentence(foreign.stderr)).toMatch(/manifest\.json\.sig is signed by key [0-9A-F]{16}, not by the vault\.signerKeyFile key/);
    writeFileSync(path.join(dir, 'manifest.json.sig'), Buffer.from([0x00, 0x01, 0x02, 0x03]));
    const garbage = await runCli(['--config', ws.configFile, 'check']);
    expect(garbage.code).toBe(3);
    expect(errorSentence(garbage.stderr)).toContain('manifest.json.sig is no OpenPGP signature (neither armored nor binary)');
  });

  it('a signing key readable by others is refused before the backup starts (exit 2); without vault.signerKeyFile the .sig is an expected file, not damage', async () => {
    const ws = signingServer();
    await backup(ws);
    ws.writeConfig({ vault: { signingKeyFile: path.join(ws.dir, 'signing.sec.asc') } });
    expect((await runCli(['--config', ws.configFile, 'check'])).code).toBe(0);
    chmodSync(path.join(ws.dir, 'signing.sec.asc'), 0o644);
    const r = await runCli(['--config', ws.configFile, 'backup']);
    expect(r.code).toBe(2);
    expect(errorSentence(r.stderr)).toMatch(/^vault\.signingKeyFile: .* is accessible by group or others \(mode 0644\); run `chmod 600/);
  });
});
