import { chmodSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { requireSource } from '../../../src/config/normalize.js';
import { UserError } from '../../../src/errors.js';
import { decryptSecretFor, readJobSecrets, readVaultPassphrase, withSourceSecrets } from '../../../src/ops/secrets.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-secrets-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function secretFile(name: string, content: string, mode = 0o600): string {
  const file = path.join(dir, name);
  writeFileSync(file, content, { mode });
  chmodSync(file, mode);
  return file;
}

/** A server's config naming every secret file there is. */
function fullConfig(files: Record<'pass' | 'db' | 'verify' | 'redis' | 'api' | 'token' | 'web', string>) {
  return parseConfig(
    [
      'database: {name: m, passwordFile: ' + files.db + '}',
      `vault: {dir: ${dir}/v, passphraseFile: ${files.pass}}`,
      `verify: {connection: {host: 127.0.0.1, passwordFile: ${files.verify}}}`,
      `redis: {url: "redis://127.0.0.1:6379", passwordFile: ${files.redis}}`,
      `syncthing: {apiKeyFile: ${files.api}}`,
      `notify: {mastodon: {server: "https://example.org", tokenFile: ${files.token}, to: "@admin"}}`,
      `web: {tokenFile: ${files.web}}`,
    ].join('\n'),
    'test.yaml',
  );
}

function allFiles(prefix: string) {
  return {
    pass: secretFile(`${prefix}-pass`, 'vault passphrase\n'),
    db: secretFile(`${prefix}-db`, 'db-password\n'),
    verify: secretFile(`${prefix}-verify`, 'verify-password\n'),
    redis: secretFile(`${prefix}-redis`, 'redis-password\r\n'),
    api: secretFile(`${prefix}-api`, 'api-key\n'),
    token: secretFile(`${prefix}-token`, 'mastodon-token\n'),
    web: secretFile(`${prefix}-web`, 'web-token\n'),
  };
}

describe('readJobSecrets', () => {
  it('reads every secret the config names, once: the steps use those values even when the files change afterwards', () => {
    const files = allFiles('once');
    const secrets = readJobSecrets(fullConfig(files));
    for (const f of Object.values(files)) unlinkSync(f);
    expect({
      database: secrets.database?.reveal(),
      verifyDatabase: secrets.verifyDatabase?.reveal(),
      redis: secrets.redis?.reveal(),
      syncthing: secrets.syncthing?.reveal(),
      mastodon: secrets.mastodon?.reveal(),
      web: secrets.web?.reveal(),
      vaultPassphrase: secrets.vaultPassphrase?.reveal(),
    }).toEqual({
      database: 'db-password',
      verifyDatabase: 'verify-password',
      redis: 'redis-password',
      syncthing: 'api-key',
      mastodon: 'mastodon-token',
      web: 'web-token',
      vaultPassphrase: 'vault passphrase',
    });
  });

  it('names none where the config names none (a device: no database, no Redis; redis: false)', () => {
    const device = parseConfig(`vault: {dir: ${dir}/device}\n`, 'device.yaml');
    expect(Object.values(readJobSecrets(device)).every((s) => s === undefined)).toBe(true);
    const noRedis = parseConfig(
      `database: {name: m}\nvault: {dir: ${dir}/v, passphraseFile: ${allFiles('nr').pass}}\nredis: false\n`,
      't.yaml',
    );
    expect(readJobSecrets(noRedis).redis).toBeUndefined();
  });

  it('does not throw for a secret it cannot read: the same sentence (exit 2) comes where the value is used', () => {
    const files = { ...allFiles('bad'), db: secretFile('bad-db-open', 'db-password\n', 0o644), token: path.join(dir, 'missing-token') };
    const secrets = readJobSecrets(fullConfig(files));
    const thrown = (f: () => unknown): unknown => {
      try {
        f();
      } catch (err) {
        return err;
      }
      return null;
    };
    const db = thrown(() => secrets.database!.reveal());
    expect(db).toBeInstanceOf(UserError);
    expect((db as UserError).exitCode).toBe(2);
    expect((db as UserError).message).toBe(
      `database.passwordFile: ${files.db} is accessible by group or others (mode 0644); run \`chmod 600 ${files.db}\` and try again.`,
    );
    expect((thrown(() => secrets.mastodon!.reveal()) as Error).message).toBe(
      `notify.mastodon.tokenFile: cannot read ${files.token}; create it or fix the path.`,
    );
    // The others were read all the same.
    expect(secrets.web?.reveal()).toBe('web-token');
  });

  it('attaches the database and Redis passwords where the backup steps connect', () => {
    const files = allFiles('attach');
    const config = requireSource(fullConfig(files), 'backup');
    const job = withSourceSecrets(config, readJobSecrets(config));
    expect(job.database.password?.reveal()).toBe('db-password');
    expect(job.redis ? job.redis.password?.reveal() : null).toBe('redis-password');
    expect(job.database.name).toBe('m');
  });
});

describe('decryptSecretFor', () => {
  const config = (passphraseFile?: string) => ({ vault: { passphraseFile } });

  it('uses vault.passphraseFile as read at the start, without reading the file again', async () => {
    const file = secretFile('decrypt-pass', 'the vault passphrase\n');
    const read = readVaultPassphrase({ passphraseFile: file });
    unlinkSync(file);
    expect(await decryptSecretFor(config(file), {}, 'verify', read)).toEqual({
      kind: 'passphrase',
      passphrase: 'the vault passphrase',
      from: 'vault.passphraseFile',
    });
  });

  it('--passphrase-file wins over vault.passphraseFile', async () => {
    const flag = secretFile('decrypt-flag', 'from the flag\n');
    const read = readVaultPassphrase({ passphraseFile: secretFile('decrypt-config', 'from the config\n') });
    const s = await decryptSecretFor(config(), { passphraseFile: flag }, 'restore', read);
    expect(s).toEqual({ kind: 'passphrase', passphrase: 'from the flag', from: `--passphrase-file ${flag}` });
  });

  it("a garbled vault.passphraseFile fails with readPassphraseFile's sentence when the job needs it", async () => {
    const file = secretFile('decrypt-cr', 'windows line\r\n');
    await expect(decryptSecretFor(config(file), {}, 'verify', readVaultPassphrase({ passphraseFile: file }))).rejects.toThrow(
      /vault\.passphraseFile: .* ends its first line with a carriage return/,
    );
  });

  it('no passphrase anywhere: one sentence saying to pass --passphrase-file', async () => {
    await expect(decryptSecretFor(config(), {}, 'restore', undefined)).rejects.toThrow(
      /permafrost restore needs the vault passphrase, and this config has no vault.passphraseFile/,
    );
  });
});
