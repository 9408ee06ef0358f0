import { describe, expect, it } from 'vitest';
import { pgConnArgs, pgDumpArgv, pgRestoreArgv } from '../../src/capture/postgres.js';
import { firstError } from '../../src/capture/spawn-stream.js';
import { databaseSchema } from '../../src/config/schema.js';

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
    [{}, ['pg_restore', '--clean', '--if-exists', '--exit-on-error', '--no-password', '--dbname', 't', '/tmp/a']],
    [{ jobs: 1 }, ['pg_restore', '--clean', '--if-exists', '--exit-on-error', '--no-password', '--dbname', 't', '/tmp/a']],
    [
      { jobs: 2, noOwner: true },
      ['pg_restore', '--clean', '--if-exists', '--exit-on-error', '--no-password', '--jobs=2', '--no-owner', '--dbname', 't', '/tmp/a'],
    ],
  ])('pg_restore with %o', (opts, expected) => {
    expect(pgRestoreArgv(db, 't', '/tmp/a', opts)).toEqual(expected);
  });
});

describe('firstError', () => {
  it.each([
    ['pg_dump: error: connection to server failed: FATAL:  database "x" does not exist\n', 'connection to server failed: FATAL: database "x" does not exist'],
    ['pg_dump: warning: something\npg_dump: error: query failed: boom\npg_dump: detail: Query was: LOCK', 'query failed: boom'],
    ['just a line\nlast line\n', 'last line'],
    ['', undefined],
  ])('%j → %j', (stderr, expected) => {
    expect(firstError(stderr)).toBe(expected);
  });
});

describe('requestedCommand (which command module main.ts loads)', () => {
  it.each([
    [['backup'], 'backup'],
    [['--config', 'backup', 'list', '--json'], 'list'],
    [['-c', '/etc/p.yaml', 'device-id'], 'device-id'],
    [['--help'], undefined],
    [['help', 'backup'], undefined],
    [['bakup'], undefined],
  ])('%j → %s', async (args, expected) => {
    const { requestedCommand } = await import('../../src/cli/registry.js');
    expect(requestedCommand(args)).toBe(expected);
  });
});
