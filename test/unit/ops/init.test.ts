import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { UserError } from '../../../src/errors.js';
import { newPassphrase, runInit } from '../../../src/ops/init.js';
import { fakeSnapshot } from '../../harness/fake-snapshot.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-init-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const mode = (f: string): number => statSync(f).mode & 0o777;

/** A Mastodon install whose database is reached over TCP with a password (no peer authentication, no OS account). */
function mastodon(): string {
  const m = mkdtempSync(path.join(dir, 'live-'));
  writeFileSync(
    path.join(m, '.env.production'),
    'LOCAL_DOMAIN=example.social\nDB_HOST=127.0.0.1\nDB_PORT=5432\nDB_USER=mastodon\nDB_NAME=mastodon_production\nDB_PASS=db-secret\n' +
      'REDIS_HOST=127.0.0.1\nREDIS_PORT=6379\nREDIS_PASSWORD=redis-secret\n',
    { mode: 0o600 },
  );
  return m;
}
const fail = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => null,
    (e: unknown) => e,
  );

describe('runInit', () => {
  it('writes a config that loads, passwords into 0600 files beside it, a fresh 0400 passphrase, and the default retention', async () => {
    const live = mastodon();
    const home = path.join(dir, 'etc-a');
    const vault = path.join(dir, 'vault-a');
    const r = await runInit({ mastodonDir: live, configPath: path.join(home, 'permafrost.yaml'), vaultDir: vault });
    expect(r.configPath).toBe(path.join(home, 'permafrost.yaml'));
    expect(r.passphraseFile).toBe(path.join(home, 'passphrase'));
    expect(r.passphraseCreated).toBe(true);
    expect(r.keys).toBeNull();
    expect(r.vaultDir).toBe(vault);
    expect(r.keep).toEqual({ last: 6, hourly: 24, daily: 7, weekly: 4, monthly: 12 });
    expect(r.passwordFiles.sort()).toEqual([path.join(home, 'database.password'), path.join(home, 'redis.password')]);
    expect(readFileSync(path.join(home, 'database.password'), 'utf8').trim()).toBe('db-secret');
    for (const f of r.passwordFiles) expect(mode(f)).toBe(0o600);
    expect(mode(r.passphraseFile!)).toBe(0o400);
    expect(readFileSync(r.passphraseFile!, 'utf8')).toMatch(/^[A-Za-z0-9_-]{43}\n$/);
    expect(mode(r.configPath)).toBe(0o644);
    const text = readFileSync(r.configPath, 'utf8');
    // No password in the config itself.
    expect(text).not.toContain('db-secret');
    expect(text).not.toContain('redis-secret');
    const config = parseConfig(text, r.configPath);
    expect(config.role).toBe('source');
    expect(config.vault).toMatchObject({ dir: vault, passphraseFile: r.passphraseFile });
  });

  it('never replaces a config without --force; with it, the passphrase file is kept as it is (it is the vault\u2019s key)', async () => {
    const live = mastodon();
    const configPath = path.join(dir, 'etc-b', 'permafrost.yaml');
    const first = await runInit({ mastodonDir: live, configPath, vaultDir: path.join(dir, 'vault-b') });
    const passphrase = readFileSync(first.passphraseFile!, 'utf8');
    const err = await fail(runInit({ mastodonDir: live, configPath, vaultDir: path.join(dir, 'vault-b') }));
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe(`${configPath} already exists; pass --force to replace it, or --config to write elsewhere.`);
    const again = await runInit({ mastodonDir: live, configPath, vaultDir: path.join(dir, 'vault-b'), force: true });
    expect(again.passphraseCreated).toBe(false);
    expect(readFileSync(again.passphraseFile!, 'utf8')).toBe(passphrase);
  });

  it('a config named other than permafrost.yaml prefixes its secret files, so two configs share a folder', async () => {
    const r = await runInit({
      mastodonDir: mastodon(),
      configPath: path.join(dir, 'etc-c', 'second.yaml'),
      vaultDir: path.join(dir, 'vault-c'),
    });
    expect(r.passphraseFile).toBe(path.join(dir, 'etc-c', 'second.passphrase'));
    expect(r.passwordFiles.sort()).toEqual([
      path.join(dir, 'etc-c', 'second.database.password'),
      path.join(dir, 'etc-c', 'second.redis.password'),
    ]);
  });

  it('--generate-keys: no passphrase at all, the config names the recipient and the signing keys', async () => {
    const away = mkdtempSync(path.join(dir, 'away-'));
    const r = await runInit({
      mastodonDir: mastodon(),
      configPath: path.join(dir, 'etc-d', 'permafrost.yaml'),
      vaultDir: path.join(dir, 'vault-d'),
      generateKeysDir: away,
    });
    expect(r.passphraseFile).toBeNull();
    expect(existsSync(path.join(dir, 'etc-d', 'passphrase'))).toBe(false);
    const config = parseConfig(readFileSync(r.configPath, 'utf8'), r.configPath);
    expect(config.vault).toMatchObject({
      recipients: [r.keys!.recipientPublic],
      signingKeyFile: r.keys!.signingSecret,
      signerKeyFile: r.keys!.signerPublic,
    });
    expect(config.vault.passphraseFile).toBeUndefined();
  });

  it('a vault that already holds snapshots is never split by a new key: a new passphrase, new keys, a passphrase that does not open them', async () => {
    const vault = path.join(dir, 'vault-e');
    mkdirSync(vault);
    fakeSnapshot(vault, '2026-12-01T10:40:00Z');
    const live = mastodon();
    const fresh = await fail(runInit({ mastodonDir: live, configPath: path.join(dir, 'etc-e1', 'permafrost.yaml'), vaultDir: vault }));
    expect(fresh).toBeInstanceOf(UserError);
    expect((fresh as Error).message).toMatch(
      new RegExp(
        `^${vault} already holds 1 snapshot \\(newest 2026-12-01T10-40-00Z, opened by passphrase\\); a new passphrase would split the vault .*--passphrase-file FILE`,
      ),
    );
    expect(existsSync(path.join(dir, 'etc-e1'))).toBe(false);
    const keys = await fail(
      runInit({ mastodonDir: live, configPath: path.join(dir, 'etc-e2', 'permafrost.yaml'), vaultDir: vault, generateKeysDir: dir }),
    );
    expect((keys as Error).message).toMatch(/; --generate-keys would make a new key and split the vault: reuse the key they need/);
    const passFile = path.join(dir, 'old-passphrase');
    writeFileSync(passFile, 'not the one\n', { mode: 0o600 });
    const wrong = await fail(
      runInit({
        mastodonDir: live,
        configPath: path.join(dir, 'etc-e3', 'permafrost.yaml'),
        vaultDir: vault,
        reusePassphraseFile: passFile,
      }),
    );
    expect((wrong as Error).message).toMatch(
      /^--passphrase-file .*old-passphrase: that passphrase does not open snapshot 2026-12-01T10-40-00Z/,
    );
  });
});

describe('newPassphrase', () => {
  it('256 random bits, one printable line, never the same twice', () => {
    const a = newPassphrase();
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(a, 'base64url')).toHaveLength(32);
    expect(newPassphrase()).not.toBe(a);
  });
});
