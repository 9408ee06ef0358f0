import { describe, expect, it } from 'vitest';
import { defaultRestoreJobs, dumpCompression, pgDumpArgv, pgRestoreEnv } from '../../src/capture/postgres.js';
import { databaseSchema } from '../../src/config/schema.js';
import { classifyGpgError, gpgDecryptArgv } from '../../src/vault/gpg-decrypt.js';

describe('dump compression', () => {
  it.each([
    [1, { pgDump: '0', openpgpLevel: 1, label: 'openpgp-zip:1' }],
    [6, { pgDump: '0', openpgpLevel: 6, label: 'openpgp-zip:6' }],
    [0, { pgDump: '0', openpgpLevel: 0, label: 'none' }],
    ['zstd:3', { pgDump: 'zstd:3', openpgpLevel: 0, label: 'pg_dump:zstd:3' }],
    ['lz4', { pgDump: 'lz4', openpgpLevel: 0, label: 'pg_dump:lz4' }],
  ] as const)('%j', (c, expected) => {
    expect(dumpCompression(c)).toEqual(expected);
  });

  it('the default config makes pg_dump write an uncompressed archive (permafrost compresses on another core)', () => {
    const db = databaseSchema.parse({ name: 'm' });
    expect(pgDumpArgv(db)).toContain('--compress=0');
    expect(dumpCompression(db.compression).openpgpLevel).toBe(1);
  });
});

describe('pg_restore session settings', () => {
  it('sets PGOPTIONS and keeps the caller’s options last, so they win', () => {
    expect(pgRestoreEnv({ PGHOST: '/run' })).toEqual({ PGHOST: '/run', PGOPTIONS: '-c maintenance_work_mem=256MB -c synchronous_commit=off' });
    expect(pgRestoreEnv({ PGOPTIONS: '-c maintenance_work_mem=1GB' }).PGOPTIONS).toBe(
      '-c maintenance_work_mem=256MB -c synchronous_commit=off -c maintenance_work_mem=1GB',
    );
  });

  it.each([
    [1, 1],
    [2, 2],
    [8, 4],
  ])('default jobs on %i cores: %i', (cores, jobs) => {
    expect(defaultRestoreJobs(cores)).toBe(jobs);
  });
});

describe('gpg decrypt argv', () => {
  it('reads the passphrase from fd 3, in a private home, never from argv', () => {
    const argv = gpgDecryptArgv('/tmp/h', '/v/s/database.pgdump.gpg');
    expect(argv).toEqual([
      'gpg', '--homedir', '/tmp/h', '--batch', '--no-tty', '--quiet', '--no-options', '--no-permission-warning',
      '--pinentry-mode', 'loopback', '--passphrase-fd', '3', '--no-symkey-cache', '--decrypt', '/v/s/database.pgdump.gpg',
    ]);
    expect(argv.some((a) => /passphrase-file|--passphrase$/.test(a))).toBe(false);
  });

  it.each([
    ['gpg: decryption failed: Bad session key', 'wrong-passphrase'],
    ['gpg: WARNING: encrypted message has been manipulated!', 'corrupt'],
    ['gpg: [don\'t know]: invalid packet (ctb=12)\ngpg: decryption failed: Invalid packet', 'corrupt'],
  ] as const)('%j → %s', (stderr, reason) => {
    expect(classifyGpgError(stderr)).toBe(reason);
  });
});
