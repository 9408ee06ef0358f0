import { describe, expect, it } from 'vitest';
import {
  type Chain,
  chainSchema,
  databaseFactsSchema,
  type Manifest,
  type ManifestFile,
  manifestSchema,
  PART_FILE,
} from '../../../src/vault/manifest.js';

const SHA = 'a'.repeat(64);
const ID = '2026-12-01T10-00-00Z';
// A hostile name is cast: the schema, not the type, must refuse it.
const file = (part: keyof typeof PART_FILE, name: string = PART_FILE[part]): ManifestFile => ({
  name: name as ManifestFile['name'],
  part,
  bytes: 10,
  sha256: SHA,
  plainBytes: 8,
  durationMs: 3,
});

function full(): Manifest {
  return {
    formatVersion: 1,
    id: ID,
    startedAt: '2026-12-01T10:00:00.000Z',
    finishedAt: '2026-12-01T10:00:05.000Z',
    tool: { name: 'permafrost', version: '1.0.0' },
    host: 'mastodon.example',
    database: { name: 'mastodon', serverVersion: '16.4', pgDumpVersion: '16.4', compression: 'zstd:1' },
    mastodon: { rowCounts: { statuses: 12 }, schemaMigration: '20261101000000' },
    files: [file('database'), file('redis'), file('secrets')],
  };
}

const base = (): Chain => ({ kind: 'base', base: ID, reference: null, depth: 0, ddl: SHA, tables: [], reason: 'first' });
const messages = (value: unknown): string[] => {
  const r = manifestSchema.safeParse(value);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('manifestSchema: what a valid manifest holds', () => {
  it('accepts a full snapshot, a base and a delta as backup writes them', () => {
    expect(manifestSchema.parse(full())).toEqual(full());
    const b = { ...full(), files: [file('schema'), file('rows')], chain: base() };
    expect(manifestSchema.safeParse(b).success).toBe(true);
    const d = {
      ...full(),
      id: '2026-12-01T11-00-00Z',
      files: [file('delta')],
      chain: { kind: 'delta', base: ID, reference: ID, depth: 1, ddl: SHA, tables: [] },
    };
    expect(manifestSchema.safeParse(d).success).toBe(true);
  });

  it('accepts the optional records: failed parts, signer, recipients, tables with odd names', () => {
    const m = {
      ...full(),
      files: [{ ...file('database'), keys: { recipients: [{ fingerprint: 'AB'.repeat(20), keyId: 'CD'.repeat(8) }], passphrase: false } }],
      failed: [{ part: 'redis', error: 'Redis refused.', optional: true }],
      signedBy: 'EF'.repeat(20),
      tables: [{ schema: 'public', table: 'we"ird.name\t' }],
      rolePasswords: false,
    };
    expect(manifestSchema.safeParse(m).success).toBe(true);
  });
});

describe('manifestSchema: a hostile or broken manifest is refused', () => {
  it('a file name outside the fixed set (path traversal) is refused', () => {
    const m = { ...full(), files: [file('database', '../../etc/passwd')] };
    expect(messages(m).some((s) => s.startsWith('files.0.name'))).toBe(true);
  });

  it("a part stored under another part's file name is refused", () => {
    const m = { ...full(), files: [file('database', PART_FILE.redis)] };
    expect(messages(m)).toContain('files.0.name: the database part must be stored in database.pgdump.gpg, not redis.rdb.gpg');
  });

  it('a part listed twice is refused', () => {
    const m = { ...full(), files: [file('database'), file('database')] };
    expect(messages(m)).toContain('files.1.part: the database part is listed twice');
  });

  it('a bad hash, a negative size, an unknown format version or tool are refused', () => {
    expect(messages({ ...full(), files: [{ ...file('database'), sha256: SHA.toUpperCase() }] })).toEqual([
      'files.0.sha256: expected 64 lowercase hex digits',
    ]);
    expect(messages({ ...full(), files: [{ ...file('database'), bytes: -1 }] })).toHaveLength(1);
    expect(messages({ ...full(), files: [{ ...file('database'), bytes: 1.5 }] })).toHaveLength(1);
    expect(messages({ ...full(), formatVersion: 2 })).toHaveLength(1);
    expect(messages({ ...full(), tool: { name: 'evil', version: '1' } })).toHaveLength(1);
    expect(messages({ ...full(), signedBy: 'ab'.repeat(20) })).toHaveLength(1);
    expect(messages(null)).toHaveLength(1);
    expect(messages('{}')).toHaveLength(1);
  });

  it('a snapshot kind holding the wrong database parts is refused', () => {
    expect(messages({ ...full(), files: [file('database'), file('schema')] })).toContain('files: a full snapshot holds no schema part');
    expect(messages({ ...full(), files: [file('schema')], chain: base() })).toEqual(['files: the rows part is missing']);
    expect(messages({ ...full(), files: [file('schema'), file('rows'), file('database')], chain: base() })).toEqual([
      'files: a base snapshot holds no database part',
    ]);
  });

  it('a base that names another snapshot as its base is refused', () => {
    const m = { ...full(), files: [file('schema'), file('rows')], chain: { ...base(), base: '2026-11-01T00-00-00Z' } };
    expect(messages(m)).toEqual(['chain.base: a base is its own base']);
  });
});

describe('chainSchema', () => {
  it('a base with a reference or depth, a delta without one, a depth past 24 are refused', () => {
    const issues = (c: unknown): string[] => {
      const r = chainSchema.safeParse(c);
      return r.success ? [] : r.error.issues.map((i) => i.path.join('.'));
    };
    expect(issues(base())).toEqual([]);
    expect(issues({ ...base(), reference: ID })).toEqual(['reference']);
    expect(issues({ ...base(), depth: 2 })).toEqual(['depth']);
    expect(issues({ ...base(), kind: 'delta' })).toEqual(['reference', 'depth']);
    expect(issues({ ...base(), kind: 'delta', reference: ID, depth: 25 })).toEqual(['depth']);
    expect(issues({ ...base(), base: '../x' })).toEqual(['base']);
    expect(issues({ ...base(), tables: [{ schema: 's', table: 't', rows: 1, hash: '-1', key: null }] })).toEqual(['tables.0.hash']);
  });
});

describe('databaseFactsSchema', () => {
  it('refuses an encoding that could carry SQL', () => {
    const facts = { owner: 'mastodon', encoding: 'UTF8', collate: 'C', ctype: 'C', localeProvider: 'libc', iculocale: null };
    expect(databaseFactsSchema.safeParse(facts).success).toBe(true);
    expect(databaseFactsSchema.safeParse({ ...facts, encoding: "UTF8'; DROP DATABASE x; --" }).success).toBe(false);
    expect(databaseFactsSchema.safeParse({ ...facts, owner: '' }).success).toBe(false);
  });
});
