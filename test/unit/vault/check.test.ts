import { describe, expect, it } from 'vitest';
import { chainProblem, compareFolder, isSyncthingTemp, type FolderEntry, type LinkState } from '../../../src/vault/check.js';
import type { Chain, ManifestFile } from '../../../src/vault/manifest.js';

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

  it("a bucket's listing (sizes only, nothing hashed): right sizes pass, a wrong size is named", () => {
    const sizesOnly = good.map(({ sha256: _, ...e }) => e);
    expect(compareFolder(manifest, sizesOnly)).toEqual([]);
    expect(
      compareFolder(
        manifest,
        sizesOnly.map((e) => (e.name === 'redis.rdb.gpg' ? { ...e, bytes: 1 } : e)),
      ),
    ).toEqual([expect.stringMatching(/^redis\.rdb\.gpg has 1 bytes/)]);
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

describe('chainProblem', () => {
  const ddl = 'd'.repeat(64);
  const B = '2026-05-01T00-00-00Z';
  const D1 = '2026-05-01T01-00-00Z';
  const D2 = '2026-05-01T02-00-00Z';
  const D3 = '2026-05-01T03-00-00Z';
  const chain = (over: Partial<Chain>): Chain => ({ kind: 'delta', base: B, reference: null, depth: 1, ddl, tables: [], ...over });
  const base = { chain: chain({ kind: 'base', depth: 0 }) };
  const d1 = { chain: chain({ reference: B, depth: 1 }) };
  const d2 = { chain: chain({ reference: D1, depth: 2 }) };
  const d3 = { chain: chain({ reference: D2, depth: 3 }) };
  const vault = (over: Record<string, LinkState | undefined> = {}) => {
    const links: Record<string, LinkState | undefined> = {
      [B]: { manifest: base, state: 'ok' },
      [D1]: { manifest: d1, state: 'ok' },
      [D2]: { manifest: d2, state: 'ok' },
      ...over,
    };
    return (id: string) => links[id];
  };

  it('a whole chain, a base and a full snapshot have no problem', () => {
    expect(chainProblem(d3, vault())).toBeNull();
    expect(chainProblem(base, vault())).toBeNull();
    expect(chainProblem({}, vault())).toBeNull();
  });

  it.each([
    ['the reference is missing', { [D2]: undefined }, `it needs ${D2}, which is missing`],
    ['a link further back is missing', { [B]: undefined }, `it needs ${B}, which is missing`],
    ['a link failed its own check', { [D1]: { manifest: d1, state: 'damaged' } }, `it needs ${D1}, which is damaged`],
    ['a link has no usable manifest', { [D1]: { manifest: null, state: 'damaged' } }, `it needs ${D1}, which is damaged`],
    [
      'a link is a full snapshot',
      { [D1]: { manifest: {}, state: 'ok' } },
      `it needs ${D1}, which is damaged (it is a full snapshot, not part of a chain)`,
    ],
    [
      'a link has another base',
      { [D1]: { manifest: { chain: chain({ base: D3, reference: B }) }, state: 'ok' } },
      `it needs ${D1}, which is damaged (it belongs to the chain of base ${D3}, not ${B})`,
    ],
    [
      'a link has the wrong depth',
      { [D2]: { manifest: { chain: chain({ reference: D1, depth: 5 }) }, state: 'ok' } },
      `it needs ${D2}, which is damaged (its depth is 5, not 2)`,
    ],
    [
      'a link has another schema',
      { [D1]: { manifest: { chain: chain({ reference: B, ddl: 'e'.repeat(64) }) }, state: 'ok' } },
      `it needs ${D1}, which is damaged (its schema is not the one of this chain)`,
    ],
  ] as Array<[string, Record<string, LinkState | undefined>, string]>)('%s: named', (_what, over, problem) => {
    expect(chainProblem(d3, vault(over))).toEqual({ problem });
  });

  it('a link Syncthing still writes is arriving, not damaged', () => {
    expect(chainProblem(d3, vault({ [D1]: { manifest: d1, state: 'arriving' } }))).toEqual({ arriving: D1 });
  });

  it('a hostile loop of references ends (depth must fall by one each step)', () => {
    const loop = { chain: chain({ reference: D3, depth: 2 }) };
    expect(chainProblem(loop, (id) => (id === D3 ? { manifest: loop, state: 'ok' } : undefined))).toEqual({
      problem: `it needs ${D3}, which is damaged (its depth is 2, not 1)`,
    });
  });
});
