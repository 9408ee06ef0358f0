import { rmSync } from 'node:fs';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { runInProcess, tempConfig } from '../../../harness/cli-inproc.js';
import type { RestoreResult } from '../../../../src/ops/restore.js';
import type { DatabaseRestoreResult } from '../../../../src/recover/restore-database.js';

const ops = vi.hoisted(() => ({ runRestore: vi.fn() }));
vi.mock('../../../../src/ops/restore.js', () => ({ runRestore: ops.runRestore }));

const cfg = tempConfig();
afterAll(() => rmSync(cfg.dir, { recursive: true, force: true }));

const ID = '2026-12-01T10-40-00Z';

function db(over: Partial<DatabaseRestoreResult> = {}): DatabaseRestoreResult {
  return {
    snapshot: ID,
    database: 'mastodon_restored',
    created: true,
    previous: null,
    rolesCreated: [],
    rolesNote: null,
    rolesWithoutPassword: [],
    decryptMs: 1500,
    restoreMs: 4250,
    totalMs: 5750,
    bytes: 2 * 2 ** 20,
    terminatedSessions: [],
    ...over,
  };
}

function result(over: Partial<RestoreResult> = {}): RestoreResult {
  return { snapshot: ID, database: db(), files: [], nextSteps: ['Stop Mastodon.', 'Start Mastodon.'], warnings: [], ...over };
}

beforeEach(() => ops.runRestore.mockReset());

describe('permafrost restore: what the operation is asked', () => {
  it('"latest" by default; every flag lands in its field; --no-owner is noOwner; --jobs a number', async () => {
    ops.runRestore.mockResolvedValue(result());
    const r = await runInProcess([
      '--config',
      cfg.file,
      'restore',
      '--database',
      'mastodon_restored',
      '--redis',
      '/r/dump.rdb',
      '--secrets',
      '/r/env',
      '--media',
      '/r/system',
      '--media-from',
      '/srv/media',
      '--force',
      '--drop-previous',
      '--terminate-sessions',
      '-j',
      '3',
      '--no-owner',
      '--role',
      'mastodon',
      '--passphrase-file',
      '-',
      '--signer',
      'ABCD',
    ]);
    expect(r.code).toBe(0);
    expect(ops.runRestore.mock.calls[0]![2]).toMatchObject({
      snapshot: 'latest',
      database: 'mastodon_restored',
      redis: '/r/dump.rdb',
      secrets: '/r/env',
      media: '/r/system',
      mediaFrom: '/srv/media',
      force: true,
      dropPrevious: true,
      terminateSessions: true,
      jobs: 3,
      noOwner: true,
      role: 'mastodon',
      passphraseFile: '-',
      signer: 'ABCD',
    });
  });

  it('without --no-owner, owner is kept (noOwner false) and an explicit snapshot id is passed on', async () => {
    ops.runRestore.mockResolvedValue(result());
    await runInProcess(['--config', cfg.file, 'restore', ID, '--all', '/r']);
    expect(ops.runRestore.mock.calls[0]![2]).toMatchObject({ snapshot: ID, all: '/r', noOwner: false, force: undefined });
  });

  it.each([['0'], ['two'], ['1.5']])('--jobs %s is a usage error (exit 2) naming the expected value; nothing runs', async (jobs) => {
    const r = await runInProcess(['--config', cfg.file, 'restore', '--jobs', jobs]);
    expect(r.code).toBe(2);
    expect(r.err.join('\n')).toContain('expected a whole number of at least 1, e.g. --jobs 2.');
    expect(ops.runRestore).not.toHaveBeenCalled();
  });
});

describe('permafrost restore: what it prints', () => {
  it('files written/replaced/unchanged, roles, ended sessions, the swap, the previous database, then the next steps', async () => {
    ops.runRestore.mockResolvedValue(
      result({
        files: [
          { part: 'redis', path: '/r/dump.rdb', bytes: 2048, unchanged: false, replaced: false },
          { part: 'secrets', path: '/r/env', bytes: 100, unchanged: true, replaced: false },
          { part: 'media', path: '/r/system', bytes: 4096, unchanged: false, replaced: true },
        ],
        database: db({
          created: false,
          rolesCreated: ['mastodon', 'reader'],
          rolesNote: 'applied',
          rolesWithoutPassword: ['ma"stodon'],
          terminatedSessions: [{ pid: 42, application: 'puma', client: 'local socket', since: '2026-12-01T10:00:00Z' }],
          previous: { name: 'mastodon_restored_before_20261201', dropped: false },
        }),
        warnings: ['no signature was checked'],
      }),
    );
    const r = await runInProcess(['--config', cfg.file, 'restore']);
    expect(r.code).toBe(0);
    expect(r.err).toEqual(['warning: no signature was checked']);
    expect(r.out.slice(0, 6)).toEqual([
      `redis part of snapshot ${ID} written: /r/dump.rdb (2.0 KiB, mode 0600)`,
      `secrets part of snapshot ${ID} already in place (identical): /r/env (100 B, mode 0600)`,
      `media folder of snapshot ${ID} replaced: /r/system (4.0 KiB)`,
      'created roles mastodon, reader',
      'roles: applied',
      expect.stringContaining(`ALTER ROLE "ma""stodon" PASSWORD '…';`) as string,
    ]);
    expect(r.out.slice(6)).toEqual([
      'ended session puma from local socket since 2026-12-01T10:00:00Z (pid 42) on "mastodon_restored"',
      `restored snapshot ${ID} into database "mastodon_restored": 2.0 MiB archive, verified in 1.5s, restored and checked in 4.3s`,
      'the previous database is kept as "mastodon_restored_before_20261201"; once you no longer need it: dropdb mastodon_restored_before_20261201',
      '',
      'To bring the whole server back (with Mastodon stopped while you put each piece in place):',
      '  1. Stop Mastodon.',
      '  2. Start Mastodon.',
    ]);
  });

  it('a created database says so; a dropped previous one says --drop-previous', async () => {
    ops.runRestore.mockResolvedValue(result({ database: db({ previous: { name: 'x', dropped: true } }) }));
    const r = await runInProcess(['--config', cfg.file, 'restore']);
    expect(r.out).toContain('the previous database was dropped (--drop-previous)');
    expect(r.out.find((l) => l.startsWith('restored snapshot'))).toContain('"mastodon_restored" (created):');
  });

  it('--json: only the JSON on stdout (the database result, files, next steps), the next steps as text on stderr', async () => {
    ops.runRestore.mockResolvedValue(result());
    let r = await runInProcess(['--config', cfg.file, 'restore', '--json']);
    expect(JSON.parse(r.out.join('\n'))).toEqual({ ...db(), files: [], nextSteps: ['Stop Mastodon.', 'Start Mastodon.'] });
    expect(r.err).toContain('  1. Stop Mastodon.');
    ops.runRestore.mockResolvedValue(result({ database: null }));
    r = await runInProcess(['--config', cfg.file, 'restore', '--json', '--redis', '/r/dump.rdb']);
    expect(JSON.parse(r.out.join('\n'))).toMatchObject({ snapshot: ID, database: null });
  });
});
