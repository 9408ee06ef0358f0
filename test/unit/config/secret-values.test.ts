import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { knownValues, Secret, type JobSecrets } from '../../../src/config/secret-values.js';
import { UserError } from '../../../src/errors.js';

describe('Secret', () => {
  it('reveals what was read', () => {
    expect(Secret.of('s3cret-value').reveal()).toBe('s3cret-value');
    expect(Secret.read(() => 'from a file').reveal()).toBe('from a file');
  });

  it('keeps the error reading it gave and throws that very error where the value is used, not before', () => {
    const err = new UserError('database.passwordFile: /etc/x is empty; its first line must hold the secret.');
    let reads = 0;
    const s = Secret.read(() => {
      reads++;
      throw err;
    });
    expect(reads).toBe(1);
    expect(() => s.reveal()).toThrow(err);
    expect(() => s.reveal()).toThrow(err);
    // Read once: using it again does not read again.
    expect(reads).toBe(1);
  });

  it('shows as a placeholder in a log line, a JSON dump, util.inspect and a template string', () => {
    const s = Secret.of('hunter2-very-secret');
    // A template string is exactly what a careless log line does with it.
    // eslint-disable-next-line @typescript-eslint/restrict-template-expressions
    const shown = [String(s), `password: ${s}`, JSON.stringify({ password: s }), inspect({ password: s }), inspect(s)];
    for (const text of shown) expect(text).not.toContain('hunter2');
    expect(JSON.stringify({ password: s })).toBe('{"password":"[secret]"}');
  });
});

describe('knownValues', () => {
  it('lists every value that was read (to cut out of alerts), skipping the unreadable and the unset', () => {
    const secrets: JobSecrets = {
      database: Secret.of('db-pass'),
      verifyDatabase: undefined,
      redis: Secret.unreadable(new Error('mode 0644')),
      syncthing: Secret.of('api-key'),
      mastodon: undefined,
      web: Secret.of('web-token'),
      vaultPassphrase: Secret.of('the passphrase'),
    };
    expect(knownValues(secrets).sort()).toEqual(['api-key', 'db-pass', 'the passphrase', 'web-token']);
  });
});
