import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IntegrityError, PermafrostError } from '../../../src/errors.js';
import { openVault } from '../../../src/vault/layout.js';
import { folderStorage } from '../../../src/vault/storage-fs.js';

const A = '2026-12-01T10-00-00Z';
const B = '2026-12-02T10-00-00Z';
let vault: string;
let outside: string;
beforeEach(() => {
  vault = mkdtempSync(path.join(tmpdir(), 'pf-storage-fs-'));
  outside = mkdtempSync(path.join(tmpdir(), 'pf-outside-'));
  writeFileSync(path.join(outside, 'secret'), 'outside the vault');
  mkdirSync(path.join(vault, A));
  writeFileSync(path.join(vault, A, 'manifest.json'), '{"m":1}');
  writeFileSync(path.join(vault, A, 'database.pgdump.gpg'), 'x'.repeat(10));
  mkdirSync(path.join(vault, B));
  writeFileSync(path.join(vault, B, 'database.pgdump.gpg'), 'partial');
  writeFileSync(path.join(vault, 'RESTORE.md'), '# restore');
});
afterEach(() => {
  rmSync(vault, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
});

describe('folderStorage.list', () => {
  it('lists snapshots newest first with their files, complete when the manifest is there, and the runbook', async () => {
    const listing = await folderStorage(openVault(vault)).list();
    expect(listing).toEqual({
      snapshots: [
        { id: B, files: [{ name: 'database.pgdump.gpg', bytes: 7 }], complete: false },
        {
          id: A,
          files: expect.arrayContaining([
            { name: 'manifest.json', bytes: 7 },
            { name: 'database.pgdump.gpg', bytes: 10 },
          ]),
          complete: true,
        },
      ],
      rootFiles: [{ name: 'RESTORE.md', bytes: 9 }],
      foreign: [],
    });
    expect(listing.snapshots[1]!.files).toHaveLength(2);
  });

  it('leaves out symlinks, FIFOs, dot files, other folders and a symlinked snapshot folder', async () => {
    symlinkSync(path.join(outside, 'secret'), path.join(vault, A, 'redis.rdb.gpg'));
    spawnSync('mkfifo', [path.join(vault, A, 'env.production.gpg')]);
    writeFileSync(path.join(vault, A, '.hidden'), 'h');
    mkdirSync(path.join(vault, A, 'sub'));
    symlinkSync(outside, path.join(vault, '2026-12-03T10-00-00Z'));
    symlinkSync(path.join(outside, 'secret'), path.join(vault, 'restore.sh'));
    writeFileSync(path.join(vault, 'notes.txt'), 'not a vault file');
    mkdirSync(path.join(vault, 'not-a-snapshot'));
    const listing = await folderStorage(openVault(vault)).list();
    expect(listing.snapshots.map((s) => s.id)).toEqual([B, A]);
    expect(listing.snapshots[1]!.files.map((f) => f.name).sort()).toEqual(['database.pgdump.gpg', 'manifest.json']);
    expect(listing.rootFiles).toEqual([{ name: 'RESTORE.md', bytes: 9 }]);
  });

  it('an unreadable vault folder is an io error naming it', async () => {
    const missing = path.join(vault, 'gone');
    await expect(folderStorage(openVault(missing)).list()).rejects.toMatchObject({ kind: 'io', message: expect.stringContaining(missing) });
  });
});

describe('folderStorage.read / readSmall', () => {
  it('reads a snapshot file and a runbook file', async () => {
    const s = folderStorage(openVault(vault));
    expect((await s.readSmall(A, 'manifest.json', 100)).toString()).toBe('{"m":1}');
    expect(Buffer.concat(await (await s.read(undefined, 'RESTORE.md')).toArray()).toString()).toBe('# restore');
  });

  it('refuses a symlink (io: not followed) and a FIFO (integrity: not a regular file) without hanging', async () => {
    symlinkSync(path.join(outside, 'secret'), path.join(vault, A, 'redis.rdb.gpg'));
    spawnSync('mkfifo', [path.join(vault, A, 'env.production.gpg')]);
    const s = folderStorage(openVault(vault));
    await expect(s.read(A, 'redis.rdb.gpg')).rejects.toMatchObject({ kind: 'io', message: expect.stringContaining('ELOOP') });
    await expect(s.read(A, 'env.production.gpg')).rejects.toBeInstanceOf(IntegrityError);
  });

  it('refuses a file larger than the caller allows', async () => {
    await expect(folderStorage(openVault(vault)).readSmall(A, 'database.pgdump.gpg', 9)).rejects.toThrow(/is larger than 9 bytes/);
  });

  it('refuses names that would leave the vault, as an internal error', async () => {
    const s = folderStorage(openVault(vault));
    for (const [id, name] of [
      [A, '../../etc/passwd'],
      [A, '.hidden'],
      ['..', 'secret'],
      [undefined, '../secret'],
    ] as const) {
      const err = await s.read(id, name).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PermafrostError);
      expect((err as PermafrostError).kind).toBe('internal');
    }
  });
});
