import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { normalizeConfig, requireSource } from '../../../src/config/normalize.js';
import { configSchema } from '../../../src/config/schema.js';
import { UserError } from '../../../src/errors.js';

const vault = { dir: '/v', passphraseFile: '/etc/hostname' };
const raw = (input: Record<string, unknown>) => configSchema.parse({ vault, ...input });

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
    expect(normalizeConfig(raw({}), 's.yaml')).toEqual({
      ok: false,
      problems: ['database: required (only a Syncthing receiver, syncthing.role: receiver, may leave it out)'],
    });
    const both = normalizeConfig(raw({ database: { name: 'm' }, syncthing: { apiKeyFile: '/k', role: 'receiver' } }), 'r.yaml');
    expect(both).toEqual({ ok: false, problems: [expect.stringMatching(/^database: a backup device \(syncthing.role: receiver\) makes no backups.*verify.connection/)] });
  });

  it('parseConfig reports a normalize problem as a config problem (exit 2)', () => {
    try {
      parseConfig(`vault: { dir: /v, passphraseFile: /etc/hostname }\n`, 's.yaml');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(UserError);
      expect((err as UserError).message).toBe('Config s.yaml has 1 problem; fix each key listed below.');
      expect((err as UserError).details).toEqual(['database: required (only a Syncthing receiver, syncthing.role: receiver, may leave it out)']);
    }
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
