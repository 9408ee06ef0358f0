import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { keyIndexTables, readChain } from '../../../src/recover/chain.js';
import { PART_FILE, type ChainTable, type PartName } from '../../../src/vault/manifest.js';
import { findSnapshot, type SnapshotEntry } from '../../../src/vault/store.js';
import { runContext } from '../../../src/run-context.js';

let vault: string;
beforeEach(() => {
  vault = mkdtempSync(path.join(tmpdir(), 'permafrost-chain-'));
});
afterEach(() => rmSync(vault, { recursive: true, force: true }));

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
const DDL = 'a'.repeat(64);
const ids = ['2026-12-01T10-00-00Z', '2026-12-01T11-00-00Z', '2026-12-01T12-00-00Z', '2026-12-01T13-00-00Z'];
const tables = [{ schema: 'public', table: 'statuses', rows: 3, hash: '12345', key: ['id'] }];

/** Writes one snapshot of a chain (its parts hold their own names as bytes) into `dir` (default: the vault folder). */
function put(id: string, chain: { base: string; reference: string | null; depth: number; ddl?: string }, dir = path.join(vault, id)): void {
  mkdirSync(dir, { recursive: true });
  const parts: PartName[] = chain.depth === 0 ? ['schema', 'rows', 'roles'] : ['delta', 'roles'];
  const files = parts.map((part) => {
    const body = `${part} of ${id}`;
    writeFileSync(path.join(dir, PART_FILE[part]), body);
    return { part, name: PART_FILE[part], bytes: body.length, sha256: sha(body), plainBytes: 1, durationMs: 1 };
  });
  const t = `${id.slice(0, 10)}T${id.slice(11, 19).replace(/-/g, ':')}Z`;
  writeFileSync(
    path.join(dir, 'manifest.json'),
    JSON.stringify({
      formatVersion: 1,
      id,
      host: 'h',
      startedAt: t,
      finishedAt: t,
      tool: { name: 'permafrost', version: '0.1.0' },
      database: { name: 'm', serverVersion: '15', pgDumpVersion: '15', compression: 'openpgp-zip:1' },
      mastodon: null,
      files,
      chain: { kind: chain.depth === 0 ? 'base' : 'delta', ddl: DDL, tables, ...chain },
    }),
  );
}

/** A base and three deltas, each on the one before. */
function putChain(): void {
  ids.forEach((id, i) => put(id, { base: ids[0]!, reference: i === 0 ? null : ids[i - 1]!, depth: i }));
}

async function read(id = ids[3]!) {
  return readChain(vault, await findSnapshot(vault, id), null, runContext());
}

describe('readChain: the chain of a delta-mode snapshot back to its base', () => {
  it('lists base first, applies the base rows then every delta in order, and reads the base schema', async () => {
    putChain();
    const r = await read();
    if (!('chain' in r)) throw new Error(r.problem);
    expect(r.chain.links.map((l) => l.id)).toEqual(ids);
    expect(r.chain.schema.name).toBe('schema.pgdump.gpg');
    expect(r.chain.sql.map((s) => `${s.snapshot.id} ${s.file.part}`)).toEqual([
      `${ids[0]} rows`,
      `${ids[1]} delta`,
      `${ids[2]} delta`,
      `${ids[3]} delta`,
    ]);
    expect(r.chain.tables).toEqual(tables);
  });

  it('a base alone is a chain of one', async () => {
    putChain();
    const r = await read(ids[0]);
    expect('chain' in r && r.chain.links.map((l) => l.id)).toEqual([ids[0]]);
  });

  it('a missing middle delta is named', async () => {
    putChain();
    rmSync(path.join(vault, ids[1]!), { recursive: true });
    expect(await read()).toEqual({ problem: `it needs snapshot ${ids[1]} (depth 1 of its chain), which is missing` });
  });

  it('a reference pruned on the server but kept in a device’s .stversions is used from there', async () => {
    putChain();
    const kept = path.join(vault, '.stversions', ids[1]!);
    put(ids[1]!, { base: ids[0]!, reference: ids[0]!, depth: 1 }, kept);
    rmSync(path.join(vault, ids[1]!), { recursive: true });
    // Syncthing's versioning stamps every file it keeps: delta.sql~20261201-120000.gpg.
    for (const name of ['manifest.json', 'delta.sql.gpg', 'roles.sql.gpg']) {
      const dot = name.lastIndexOf('.');
      renameSync(path.join(kept, name), path.join(kept, `${name.slice(0, dot)}~20261201-120000${name.slice(dot)}`));
    }
    const r = await read();
    expect('chain' in r && r.chain.links.map((l) => l.id)).toEqual(ids);
  });

  it.each([
    [
      'another base',
      () => put(ids[2]!, { base: ids[1]!, reference: ids[1]!, depth: 2 }),
      `which belongs to the chain of base ${ids[1]}, not ${ids[0]}`,
    ],
    ['the wrong depth', () => put(ids[2]!, { base: ids[0]!, reference: ids[0]!, depth: 1 }), 'which is at depth 1'],
    [
      'another schema',
      () => put(ids[2]!, { base: ids[0]!, reference: ids[1]!, depth: 2, ddl: 'b'.repeat(64) }),
      'whose schema (chain.ddl)',
    ],
    ['a damaged manifest', () => writeFileSync(path.join(vault, ids[2]!, 'manifest.json'), '{'), 'which is damaged ('],
  ])('a reference with %s is named', async (_what, damage, phrase) => {
    putChain();
    damage();
    const r = await read();
    expect('problem' in r && r.problem).toContain(`it needs snapshot ${ids[2]} (depth 2 of its chain), ${phrase}`);
  });

  it('a full snapshot in the middle breaks the chain', async () => {
    putChain();
    const dir = path.join(vault, ids[2]!);
    const m = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { chain?: unknown; files: object[] };
    delete m.chain;
    m.files = [{ ...m.files[0], part: 'database', name: 'database.pgdump.gpg' }];
    writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(m));
    const r = await read();
    expect('problem' in r && r.problem).toMatch(/which is a full snapshot, not part of its chain$/);
  });

  it.each([
    [
      'tampered',
      (f: string) => writeFileSync(f, 'delta of 2026-12-01T11-00-0XZ'),
      'does not match the SHA-256 in its manifest (tampered or damaged)',
    ],
    ['truncated', (f: string) => writeFileSync(f, 'delta'), 'is 5 bytes where its manifest says 29 (truncated or replaced)'],
    ['missing', (f: string) => rmSync(f), 'is missing'],
  ])('a %s file of a link is named with its snapshot, before anything is decrypted', async (_what, damage, phrase) => {
    putChain();
    damage(path.join(vault, ids[1]!, 'delta.sql.gpg'));
    expect(await read()).toEqual({ problem: `delta.sql.gpg of snapshot ${ids[1]} ${phrase}` });
  });

  it('only the files the restore reads are checked: an older link’s roles part may be damaged', async () => {
    putChain();
    writeFileSync(path.join(vault, ids[1]!, 'roles.sql.gpg'), 'x');
    expect('chain' in (await read())).toBe(true);
    writeFileSync(path.join(vault, ids[3]!, 'roles.sql.gpg'), 'x');
    expect(await read()).toEqual({
      problem: `roles.sql.gpg of snapshot ${ids[3]} is 1 bytes where its manifest says 29 (truncated or replaced)`,
    });
  });
});

describe('keyIndexTables: which tables get a temporary key index for the deltas’ deletes', () => {
  const link = (tables: Array<Partial<ChainTable> & { table: string }>): SnapshotEntry =>
    ({
      manifest: { chain: { tables: tables.map((t) => ({ schema: 'public', rows: 1, hash: '0', key: ['id'], ...t })) } },
    }) as unknown as SnapshotEntry;
  const full = (table: string, rows: number, key: string[] | null = ['id']): ChainTable => ({
    schema: 'public',
    table,
    rows,
    hash: '0',
    key,
  });

  it('a keyed table that two or more deltas delete from, largest first; not one deleted from once, nor a keyless one', () => {
    const links = [
      link([{ table: 'statuses' }, { table: 'follows' }, { table: 'tags' }, { table: 'pins', key: null }]),
      link([
        { table: 'statuses', deleted: 3 },
        { table: 'follows', deleted: 1 },
        { table: 'tags', deleted: 2 },
        { table: 'pins', key: null, deleted: 5 },
      ]),
      link([
        { table: 'statuses', deleted: 1 },
        { table: 'follows', deleted: 0 },
        { table: 'tags', deleted: 4 },
        { table: 'pins', key: null, deleted: 5 },
      ]),
    ];
    const tables = [full('follows', 500), full('pins', 10, null), full('statuses', 900), full('tags', 20)];
    expect(keyIndexTables({ links, tables })).toEqual([
      { schema: 'public', table: 'statuses', key: ['id'], rows: 900, deletes: 2 },
      { schema: 'public', table: 'tags', key: ['id'], rows: 20, deletes: 2 },
    ]);
  });

  it('a base alone or a chain of one delta builds none (one scan is cheaper than a build)', () => {
    const base = link([{ table: 'statuses' }]);
    expect(keyIndexTables({ links: [base], tables: [full('statuses', 9)] })).toEqual([]);
    expect(keyIndexTables({ links: [base, link([{ table: 'statuses', deleted: 9 }])], tables: [full('statuses', 9)] })).toEqual([]);
  });
});
