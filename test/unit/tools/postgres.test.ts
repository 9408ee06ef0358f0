import { describe, expect, it } from 'vitest';
import { databaseSchema } from '../../../src/config/schema.js';
import {
  defaultRestoreJobs,
  dumpCompression,
  pgConnArgs,
  pgDumpArgv,
  pgRestoreArgv,
  pgRestoreEnv,
  psqlArgv,
  verifyRestoreArgv,
} from '../../../src/tools/postgres.js';

const db = databaseSchema.parse({ name: 'mastodon_production' });

describe('pg argv builders', () => {
  it.each([
    [{}, []],
    [{ host: '/var/run/postgresql' }, ['--host', '/var/run/postgresql']],
    [{ host: 'db', port: 5433, user: 'mastodon' }, ['--host', 'db', '--port', '5433', '--username', 'mastodon']],
  ])('connection flags for %o', (conf, expected) => {
    expect(pgConnArgs(conf)).toEqual(expected);
  });

  it('pg_dump: custom format on stdout, configured compression, the exported snapshot, never a password', () => {
    expect(pgDumpArgv({ ...db, binDir: '/usr/lib/postgresql/15/bin' }, { snapshot: '00000003-1' })).toEqual([
      '/usr/lib/postgresql/15/bin/pg_dump',
      '--format=custom',
      // compression level 1 is applied by permafrost's OpenPGP layer; pg_dump writes uncompressed
      '--compress=0',
      '--no-password',
      '--snapshot=00000003-1',
      '--dbname',
      'mastodon_production',
    ]);
    expect(pgDumpArgv({ ...db, compression: 'zstd:3' })).toContain('--compress=zstd:3');
  });

  it.each([
    // Restore always writes into a database it has just created (<target>_incoming), so never --clean.
    [{}, ['pg_restore', '--exit-on-error', '--no-password', '--dbname', 't', '/tmp/a']],
    [{ jobs: 1 }, ['pg_restore', '--exit-on-error', '--no-password', '--dbname', 't', '/tmp/a']],
    [
      { jobs: 2, noOwner: true, role: 'mastodon' },
      [
        'pg_restore',
        '--exit-on-error',
        '--no-password',
        '--jobs=2',
        '--no-owner',
        '--no-acl',
        '--role=mastodon',
        '--dbname',
        't',
        '/tmp/a',
      ],
    ],
  ])('pg_restore with %o', (opts, expected) => {
    expect(pgRestoreArgv(db, 't', '/tmp/a', opts)).toEqual(expected);
  });

  it('pg_restore of one section of a delta-mode base schema archive (restore and verify)', () => {
    expect(pgRestoreArgv(db, 't', '/tmp/a', { section: 'pre-data', noOwner: true, role: 'mastodon' })).toEqual([
      'pg_restore',
      '--exit-on-error',
      '--no-password',
      '--section=pre-data',
      '--no-owner',
      '--no-acl',
      '--role=mastodon',
      '--dbname',
      't',
      '/tmp/a',
    ]);
    expect(verifyRestoreArgv(db, 's', '/tmp/a', { section: 'post-data', jobs: 3 })).toEqual([
      'pg_restore',
      '--exit-on-error',
      '--no-owner',
      '--no-acl',
      '--no-subscriptions',
      '--no-password',
      '--section=post-data',
      '--jobs=3',
      '--dbname',
      's',
      '/tmp/a',
    ]);
  });

  it('psql: SQL from stdin in one transaction that stops at the first error, no psqlrc, never a password prompt', () => {
    expect(psqlArgv({ ...db, binDir: '/usr/lib/postgresql/15/bin', host: '/run/pg', port: 5433 }, 'm_incoming')).toEqual([
      '/usr/lib/postgresql/15/bin/psql',
      '-X',
      '-q',
      '--no-password',
      '-v',
      'ON_ERROR_STOP=1',
      '--single-transaction',
      '--host',
      '/run/pg',
      '--port',
      '5433',
      '-d',
      'm_incoming',
    ]);
  });
});

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
    expect(pgRestoreEnv({ PGHOST: '/run' })).toEqual({
      PGHOST: '/run',
      PGOPTIONS: '-c maintenance_work_mem=256MB -c synchronous_commit=off',
    });
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
