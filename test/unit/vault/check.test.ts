import { describe, expect, it } from 'vitest';
import { compareFolder, isSyncthingTemp, type FolderEntry } from '../../../src/vault/check.js';
import type { ManifestFile } from '../../../src/vault/manifest.js';

const sha = (c: string): string => c.repeat(64);
const file = (over: Partial<ManifestFile>): ManifestFile => ({
  name: 'database.pgdump.gpg',
  part: 'database',
  bytes: 100,
  sha256: sha('a'),
  plainBytes: 300,
  durationMs: 1,
  ...over,
});
const manifest = { files: [file({}), file({ name: 'redis.rdb.gpg', part: 'redis', bytes: 10, sha256: sha('b') })] };
const good: FolderEntry[] = [
  { name: 'manifest.json', regular: true, bytes: 900 },
  { name: 'database.pgdump.gpg', regular: true, bytes: 100, sha256: sha('a') },
  { name: 'redis.rdb.gpg', regular: true, bytes: 10, sha256: sha('b') },
];
const replace = (name: string, e: Partial<FolderEntry> | null): FolderEntry[] =>
  good.flatMap((g) => (g.name !== name ? [g] : e === null ? [] : [{ ...g, ...e }]));

describe('compareFolder', () => {
  it('a folder holding exactly the manifest and its parts is fine', () => {
    expect(compareFolder(manifest, good)).toEqual([]);
  });

  it.each([
    ['a missing part', replace('redis.rdb.gpg', null), ['redis.rdb.gpg is missing']],
    [
      'a truncated part',
      replace('database.pgdump.gpg', { bytes: 60, sha256: undefined }),
      ['database.pgdump.gpg has 60 bytes, the manifest says 100 (truncated)'],
    ],
    [
      'a grown part',
      replace('database.pgdump.gpg', { bytes: 101, sha256: undefined }),
      ['database.pgdump.gpg has 101 bytes, the manifest says 100 (grown)'],
    ],
    [
      'a changed byte',
      replace('database.pgdump.gpg', { sha256: sha('c') }),
      ['database.pgdump.gpg does not match the SHA-256 in the manifest'],
    ],
    ['a part that is a folder', replace('redis.rdb.gpg', { regular: false }), ['redis.rdb.gpg is not a regular file']],
    ['an extra file', [...good, { name: 'notes.txt', regular: true, bytes: 3 }], ['unexpected file notes.txt (not in the manifest)']],
    ['an extra folder', [...good, { name: 'x', regular: false, bytes: 0 }], ['unexpected entry x (not in the manifest)']],
  ])('%s is named', (_what, found, problems) => {
    expect(compareFolder(manifest, found)).toEqual(problems);
  });

  it('reports every problem at once', () => {
    const found = [
      ...replace('redis.rdb.gpg', null).map((e) => (e.name === 'database.pgdump.gpg' ? { ...e, sha256: sha('0') } : e)),
      { name: 'y', regular: true, bytes: 1 },
    ];
    expect(compareFolder(manifest, found)).toHaveLength(3);
  });
});

describe('isSyncthingTemp', () => {
  it.each([
    ['.syncthing.database.pgdump.gpg.tmp', true],
    ['~syncthing~redis.rdb.gpg.tmp', true],
    ['database.pgdump.gpg', false],
    ['.syncthing.x', false],
  ])('%s → %s', (name, want) => {
    expect(isSyncthingTemp(name)).toBe(want);
  });
});
