import { describe, expect, it } from 'vitest';
import { classifyGpgError, gpgDecryptArgv } from '../../../src/tools/gpg.js';

describe('gpg decrypt argv', () => {
  it('reads the passphrase from fd 3, in a private home, never from argv', () => {
    const argv = gpgDecryptArgv('/tmp/h', '/v/s/database.pgdump.gpg');
    expect(argv).toEqual([
      'gpg',
      '--homedir',
      '/tmp/h',
      '--batch',
      '--no-tty',
      '--quiet',
      '--no-options',
      '--no-permission-warning',
      '--pinentry-mode',
      'loopback',
      '--passphrase-fd',
      '3',
      '--no-symkey-cache',
      '--decrypt',
      '/v/s/database.pgdump.gpg',
    ]);
    expect(argv.some((a) => /passphrase-file|--passphrase$/.test(a))).toBe(false);
  });

  it.each([
    ['gpg: decryption failed: Bad session key', 'wrong-key'],
    ['gpg: decryption failed: No secret key', 'wrong-key'],
    ['gpg: WARNING: encrypted message has been manipulated!', 'corrupt'],
    ["gpg: [don't know]: invalid packet (ctb=12)\ngpg: decryption failed: Invalid packet", 'corrupt'],
  ] as const)('%j → %s', (stderr, reason) => {
    expect(classifyGpgError(stderr)).toBe(reason);
  });
});
