import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { passphraseFor } from '../../../src/config/secret-file.js';
import { parseConfig } from '../../../src/config/load.js';
import { normalizeConfig, requireSource } from '../../../src/config/normalize.js';
import { configSchema } from '../../../src/config/schema.js';
import { UserError } from '../../../src/errors.js';

const vault = { dir: '/v', passphraseFile: '/etc/hostname' };
const raw = (input: Record<string, unknown>) => configSchema.parse({ vault, ...input });
const NO_DATABASE =
  "database: required on the server (syncthing.role: source); a backup device's config sets syncthing.role: receiver, or has no syncthing section";

describe('normalizeConfig', () => {
  it('a config with a database and no receiver role is a source', () => {
    const n = normalizeConfig(raw({ database: { name: 'm' } }), 'p.yaml');
    expect(n).toMatchObject({ ok: true, config: { role: 'source', configPath: 'p.yaml', database: { name: 'm', compression: 1 } } });
  });

  it('syncthing.role: receiver without a database is a receiver, and has no database key at all', () => {
    const n = normalizeConfig(raw({ syncthing: { apiKeyFile: '/k', role: 'receiver' } }), 'r.yaml');
    expect(n).toMatchObject({ ok: true, config: { role: 'receiver', configPath: 'r.yaml' } });
    expect(n.ok && 'database' in n.config).toBe(false);
  });

  it('a source without a database, or a receiver with one, is a problem naming the key', () => {
    expect(normalizeConfig(raw({ syncthing: { apiKeyFile: '/k' } }), 's.yaml')).toEqual({
      ok: false,
      problems: [NO_DATABASE],
    });
    const both = normalizeConfig(raw({ database: { name: 'm' }, syncthing: { apiKeyFile: '/k', role: 'receiver' } }), 'r.yaml');
    expect(both).toEqual({
      ok: false,
      problems: [expect.stringMatching(/^database: a backup device \(syncthing.role: receiver\) makes no backups.*verify.connection/)],
    });
  });

  it('vault.dir alone (no database, no syncthing section, no passphrase) is a backup device: it can make no backup', () => {
    const n = normalizeConfig(configSchema.parse({ vault: { dir: '/v' } }), 'd.yaml');
    expect(n).toMatchObject({ ok: true, config: { role: 'receiver', vault: { dir: '/v' }, schedule: { check: '25 * * * *' } } });
    expect(n.ok && n.config.vault.passphraseFile).toBeUndefined();
  });

  it('a receiver needs no vault.passphraseFile; a source needs it or vault.recipients, and both missing keys are named at once', () => {
    expect(
      normalizeConfig(configSchema.parse({ vault: { dir: '/v' }, syncthing: { apiKeyFile: '/k', role: 'receiver' } }), 'r.yaml'),
    ).toMatchObject({ ok: true });
    expect(normalizeConfig(configSchema.parse({ vault: { dir: '/v' }, database: { name: 'm' } }), 's.yaml')).toEqual({
      ok: false,
      problems: [
        'vault: the server encrypts every snapshot, so it needs vault.recipients (public keys), vault.passphraseFile, or both (`permafrost init` creates a passphrase file)',
      ],
    });
    const recipientsOnly = configSchema.parse({ vault: { dir: '/v', recipients: ['/k.asc'] }, database: { name: 'm' } });
    expect(normalizeConfig(recipientsOnly, 's.yaml')).toMatchObject({
      ok: true,
      config: { role: 'source', vault: { recipients: ['/k.asc'] } },
    });
    const neither = normalizeConfig(configSchema.parse({ vault: { dir: '/v' }, syncthing: { apiKeyFile: '/k' } }), 's.yaml');
    expect(neither.ok === false && neither.problems).toHaveLength(2);
  });

  it('parseConfig reports a normalize problem as a config problem (exit 2)', () => {
    try {
      parseConfig(`vault: { dir: /v, passphraseFile: /etc/hostname }\nsyncthing: { apiKeyFile: /etc/hostname, role: source }\n`, 's.yaml');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(UserError);
      expect((err as UserError).message).toBe('Config s.yaml has 1 problem; fix each key listed below.');
      expect((err as UserError).details).toEqual([NO_DATABASE]);
    }
  });
});

describe('passphraseFor', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-pass-'));
  const flagFile = path.join(dir, 'flag');
  const cfgFile = path.join(dir, 'cfg');
  writeFileSync(flagFile, 'from the flag\n', { mode: 0o600 });
  writeFileSync(cfgFile, 'from the config\n', { mode: 0o600 });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('the flag wins over vault.passphraseFile, which is used without it', () => {
    expect(passphraseFor({ vault: { passphraseFile: cfgFile } }, flagFile, 'restore')).toBe('from the flag');
    expect(passphraseFor({ vault: { passphraseFile: cfgFile } }, undefined, 'restore')).toBe('from the config');
    expect(passphraseFor({ vault: {} }, flagFile, 'restore')).toBe('from the flag');
  });

  it('with neither, one UserError (exit 2) says to pass --passphrase-file; a bad flag file is named by the flag', () => {
    expect(() => passphraseFor({ vault: {} }, undefined, 'restore')).toThrow(
      /^permafrost restore needs the vault passphrase, and this config has no vault.passphraseFile .*: pass --passphrase-file FILE/,
    );
    expect(() => passphraseFor({ vault: {} }, path.join(dir, 'missing'), 'verify')).toThrow(/^--passphrase-file: cannot read /);
  });
});

describe('requireSource', () => {
  it('hands a source config back as it is', () => {
    const n = normalizeConfig(raw({ database: { name: 'm' } }), 'p.yaml');
    if (!n.ok) throw new Error('expected a config');
    expect(requireSource(n.config, 'backup')).toBe(n.config);
  });

  it('on a receiver throws one UserError naming the job, the config path and what to add', () => {
    const n = normalizeConfig(raw({ syncthing: { apiKeyFile: '/k', role: 'receiver' } }), '/etc/permafrost/permafrost.yaml');
    if (!n.ok) throw new Error('expected a config');
    let thrown: unknown;
    try {
      requireSource(n.config, 'restore');
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(UserError);
    expect((thrown as UserError).exitCode).toBe(2);
    expect((thrown as UserError).message).toBe(
      "permafrost restore needs a database, but /etc/permafrost/permafrost.yaml has no database section (it is a backup device's config, syncthing.role: receiver): run it on the server, or add a database section and set syncthing.role: source.",
    );
  });
});
