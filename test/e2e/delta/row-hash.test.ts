/**
 * Issue 22: the table hash of a chain (src/capture/delta-sql.ts RowHashKind). New bases and deltas
 * hash rows with hash_record_extended where every column's type hashes exactly, by their text
 * (hashtextextended) elsewhere (`hashrecord`), and say so in chain.rowHash and per table
 * (hashRecord); a chain made before (`hashtext`, or md5 with no field) is checked as it always was,
 * by permafrost and by restore.sh; a chain never mixes kinds; and for each definition the value the
 * capture sums row by row equals the server's aggregate on the edge cases (NULLs, unicode, an empty
 * table, a composite key, no key, types without a hash opclass, an enum, a nondeterministic collation).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HASH_SESSION_SQL, ROW_ALIAS, rowHashExpr, RowHashSum, tableHashSql, type RowHashKind } from '../../../src/capture/delta-sql.js';
import { ROW_HASH_KINDS, type Manifest } from '../../../src/vault/manifest.js';
import { errorSentence, makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { fingerprint } from '../../harness/fingerprint.js';
import { tableHashes } from '../../harness/delta.js';
import { libpqEnv, runSh } from '../../harness/restore-sh.js';
import { clusterPerFile } from '../../harness/suite.js';

const cluster = clusterPerFile();
let ws: Workspace;
afterEach(() => ws?.cleanup());

const EDGE_SQL = `
CREATE TABLE pf_nulls (id bigint PRIMARY KEY, a text, b integer, c timestamptz, d jsonb, e text[]);
INSERT INTO pf_nulls VALUES (1, NULL, NULL, NULL, NULL, NULL), (2, '', 0, '2026-01-01 00:00:00+00', '{}', '{}'),
  (3, 'NULL', NULL, NULL, 'null', ARRAY[NULL, 'x']), (4, '\\N', -1, 'infinity', '[null]', ARRAY['']);
CREATE TABLE pf_unicode (id text PRIMARY KEY, v text);
INSERT INTO pf_unicode VALUES ('ünï', 'cødé ✓ 😀'), (E'tab\\there', E'line\\nbreak\\r'), ('"quoted"', E'back\\\\slash'),
  ('日本', 'עברית'), (' ', 'blank key'), ('', 'empty key');
CREATE TABLE pf_empty (id integer PRIMARY KEY, v text);
CREATE TABLE pf_empty_nokey (v text);
CREATE TABLE pf_composite (a integer, b text, v numeric, PRIMARY KEY (a, b));
INSERT INTO pf_composite SELECT g % 7, 'k' || (g / 7), g * 1.5 FROM generate_series(1, 300) g;
CREATE TABLE pf_nokey (v text, p point, j json, x xml, f double precision);
INSERT INTO pf_nokey VALUES ('same', '(1,2)', '{"a": 1}', '<a>ü</a>', 0.1), ('same', '(1,2)', '{"a": 1}', '<a>ü</a>', 0.1),
  (NULL, NULL, NULL, NULL, 'NaN'), ('ünï', '(-0,1e300)', '[1, 2.50]', '<b/>', -0.0);
CREATE TABLE pf_typed (id bigint PRIMARY KEY, s smallint, i integer, ok boolean, b bytea, n inet, c cidr, u uuid, d date, t time,
  ts timestamp, tz timestamptz, v varchar(20), a bigint[], at text[], au uuid[]);
INSERT INTO pf_typed VALUES (1, 1, -2, true, '\\x00ff', '10.0.0.1/8', '10.0.0.0/8', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2026-12-06',
  '23:59:59.999999', '2026-12-06 12:00', '2026-12-06 12:00+02', 'ü', '{1,NULL,3}', '{"",NULL}', '{}'),
  (2, NULL, NULL, NULL, NULL, '::1', NULL, NULL, 'infinity', NULL, '-infinity', NULL, '', NULL, '{x}', NULL),
  (3, 0, 0, false, '', '192.168.0.1', '192.168.0.0/24', '00000000-0000-0000-0000-000000000000', '1999-01-01', '00:00', '1999-01-01', '1999-01-01+00', ' ', '{}', '{}', '{}');
-- A dropped column (Mastodon's migrations leave many) stays in the source's row type, not in a restored copy's.
ALTER TABLE pf_typed ADD COLUMN gone text DEFAULT 'x'; ALTER TABLE pf_typed DROP COLUMN gone;
CREATE TYPE pf_mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE pf_enum (id integer PRIMARY KEY, m pf_mood, ms pf_mood[]);
INSERT INTO pf_enum VALUES (1, 'happy', '{sad,ok}'), (2, NULL, NULL), (3, 'sad', '{}');
CREATE COLLATION pf_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE pf_ci (id integer PRIMARY KEY, v text COLLATE pf_ci);
INSERT INTO pf_ci VALUES (1, 'Case'), (2, 'case'), (3, NULL);
`;

/**
 * The tables `hashrecord` hashes by hash_record_extended: every column of an exact-hash type. Not
 * pf_nulls (jsonb), pf_composite (numeric), pf_nokey (point, json, xml, float), pf_enum (an enum's
 * hash is of its OID, another in the restored copy), pf_ci (a nondeterministic collation).
 */
const RECORD_TABLES = ['pf_unicode', 'pf_empty', 'pf_empty_nokey', 'pf_typed'];

/** The vault's restore.sh of snapshot `id` into `target`, with the passphrase file, as the admin runs it. */
async function restoreSh(id: string, target: string): Promise<Awaited<ReturnType<typeof runSh>>> {
  const tmp = mkdtempSync(path.join(ws.dir, 'sh-'));
  try {
    return await runSh(
      path.join(ws.vault, 'restore.sh'),
      ['--passphrase-file', ws.passFile, '--database', target, id],
      libpqEnv(cluster.get(), tmp),
    );
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** One change per edge table, for a delta. */
const EDGE_CHURN = `
UPDATE pf_nulls SET a = NULL, d = '{"k": null}' WHERE id = 2; DELETE FROM pf_nulls WHERE id = 3;
UPDATE pf_unicode SET v = '🦊 edited' WHERE id = 'ünï'; INSERT INTO pf_unicode VALUES ('Ω', NULL);
INSERT INTO pf_empty VALUES (1, 'no longer empty');
DELETE FROM pf_composite WHERE a = 3; UPDATE pf_composite SET v = NULL WHERE b = 'k1';
INSERT INTO pf_nokey VALUES ('same', '(1,2)', '{"a": 1}', '<a>ü</a>', 0.1);
UPDATE pf_typed SET a = '{4}', n = '10.0.0.2' WHERE id = 1; INSERT INTO pf_typed (id) VALUES (4);
UPDATE pf_enum SET m = 'ok' WHERE id = 2; UPDATE pf_ci SET v = 'CASE' WHERE id = 2;
`;

const EDGE_TABLES = ['pf_nulls', 'pf_unicode', 'pf_empty', 'pf_empty_nokey', 'pf_composite', 'pf_nokey', 'pf_typed', 'pf_enum', 'pf_ci'];

let dbCounter = 0;
function edgeWorkspace(): string {
  const db = `hash${++dbCounter}`;
  cluster.createDb(db);
  cluster.get().psql(db, EDGE_SQL);
  ws = makeWorkspace(cluster.get(), db);
  ws.writeConfig({ database: { delta: {} } });
  return db;
}

async function backup(): Promise<Manifest> {
  const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Manifest;
}

const manifestFile = (id: string): string => path.join(ws.vault, id, 'manifest.json');
const readManifest = (id: string): Manifest => JSON.parse(readFileSync(manifestFile(id), 'utf8')) as Manifest;
const writeManifest = (m: Manifest): void => writeFileSync(manifestFile(m.id), `${JSON.stringify(m, null, 2)}\n`);

/** Every table's count and hash on `db` by tableHashSql under `kind` (and each table's hashRecord), as the manifest lists them. */
const sqlHashes = (db: string, tables: Array<{ schema: string; table: string; hashRecord?: true }>, kind: RowHashKind): string[] =>
  tableHashes(cluster.get(), db, tables, kind);

describe('the table hash (issue 22)', () => {
  it('each definition: the sum the capture makes of rowHashExpr per row equals tableHashSql, on NULLs, unicode, empty tables, composite and no keys', () => {
    const db = edgeWorkspace();
    const pg = cluster.get();
    for (const table of EDGE_TABLES) {
      const got: Record<string, string> = {};
      for (const kind of ROW_HASH_KINDS) {
        // hash_record_extended only where the capture uses it: an enum or json column has no such hash (or not this one).
        const h = { kind, record: RECORD_TABLES.includes(table) };
        const lines = pg
          .psql(db, `${HASH_SESSION_SQL}\nSELECT ${rowHashExpr(h)} FROM ONLY public.${table} ${ROW_ALIAS}`)
          .split('\n')
          .filter((l) => l !== '');
        const sum = new RowHashSum();
        for (const h of lines) {
          expect(h, `${kind} row hash of ${table}`).toMatch(/^[0-9a-f]{32}$/);
          sum.add(h);
        }
        const [rows, hash] = pg
          .psql(db, `${HASH_SESSION_SQL}\n${tableHashSql('public', table, h)}`)
          .trim()
          .split('|');
        expect({ rows: String(sum.rows), hash: sum.value() }, `${kind} of ${table}`).toEqual({ rows, hash });
        got[kind] = hash!;
      }
      // Distinct definitions, distinct values (all 0 for an empty table); a table `hashrecord` hashes by text is `hashtext`'s.
      if (table.startsWith('pf_empty')) expect(got).toEqual({ md5: '0', hashtext: '0', hashrecord: '0' });
      else {
        expect(got.md5, table).not.toBe(got.hashtext);
        if (RECORD_TABLES.includes(table)) expect(got.hashrecord, table).not.toBe(got.hashtext);
        else expect(got.hashrecord, table).toBe(got.hashtext);
      }
    }
    // Two equal rows count twice (a sum, not a set), and the order of rows does not matter.
    const one = pg.psql(db, `${HASH_SESSION_SQL}\n${tableHashSql('public', 'pf_nokey', { kind: 'hashtext' })}`).trim();
    pg.psql(
      db,
      `CREATE TABLE pf_nokey2 AS SELECT * FROM pf_nokey ORDER BY v DESC NULLS FIRST; DELETE FROM pf_nokey WHERE v = 'same' AND ctid = (SELECT min(ctid) FROM pf_nokey WHERE v = 'same')`,
    );
    expect(pg.psql(db, `${HASH_SESSION_SQL}\n${tableHashSql('public', 'pf_nokey2', { kind: 'hashtext' })}`).trim()).toBe(one);
    expect(pg.psql(db, `${HASH_SESSION_SQL}\n${tableHashSql('public', 'pf_nokey', { kind: 'hashtext' })}`).trim()).not.toBe(one);
  });

  it('a base and a delta record rowHash hashrecord, which tables it hashes by hash_record_extended, and its values; restore and restore.sh check them so, and refuse them read otherwise', async () => {
    const db = edgeWorkspace();
    const pg = cluster.get();
    const base = await backup();
    expect(base.chain).toMatchObject({ kind: 'base', rowHash: 'hashrecord' });
    // Of the edge tables (the workspace's Mastodon-shaped ones are marked as their columns allow).
    const marked = (m: Manifest): string[] => m.chain!.tables.filter((t) => t.hashRecord && t.table.startsWith('pf_')).map((t) => t.table);
    expect(marked(base).sort()).toEqual([...RECORD_TABLES].sort());
    expect(base.chain!.tables.map((t) => `${t.rows}|${t.hash}`)).toEqual(sqlHashes(db, base.chain!.tables, 'hashrecord'));
    pg.psql(db, EDGE_CHURN);
    const delta = await backup();
    expect(delta.chain, delta.chain!.reason).toMatchObject({ kind: 'delta', depth: 1, rowHash: 'hashrecord' });
    expect(marked(delta).sort()).toEqual([...RECORD_TABLES].sort());
    // The delta carried the hashes forward row by row: they are the server's over the whole table now.
    expect(delta.chain!.tables.map((t) => `${t.rows}|${t.hash}`)).toEqual(sqlHashes(db, delta.chain!.tables, 'hashrecord'));

    // Restored into another database (the enum's labels get other OIDs there): every table checks.
    let r = await runCli(['--config', ws.configFile, 'restore', delta.id, '--database', `${db}_r`, '--jobs', '2']);
    expect(r.code, r.stderr).toBe(0);
    expect(fingerprint(pg, `${db}_r`)).toEqual(fingerprint(pg, db));
    const sh = await restoreSh(delta.id, `${db}_sh`);
    expect(sh.code, sh.stderr).toBe(0);
    expect(fingerprint(pg, `${db}_sh`)).toEqual(fingerprint(pg, db));

    // A table's mark taken away: it is hashed by its text, which is not the recorded value (exit 3, both).
    const m = readManifest(delta.id);
    delete m.chain!.tables.find((t) => t.table === 'pf_typed')!.hashRecord;
    writeManifest(m);
    r = await runCli(['--config', ws.configFile, 'restore', delta.id, '--database', `${db}_r2`, '--jobs', '2']);
    expect(r.code, r.stderr).toBe(3);
    expect(errorSentence(r.stderr)).toMatch(
      new RegExp(`^The restored copy of snapshot ${delta.id} does not match its manifest \\(table "public"\\."pf_typed" has `),
    );
    const sh2 = await restoreSh(delta.id, `${db}_sh2`);
    expect(sh2.code, sh2.stderr).toBe(3);
    expect(sh2.stderr).toContain('the restored table public.pf_typed (');

    // The same values read as md5 (no rowHash, no marks: a manifest made before) are not this copy's: exit 3.
    for (const t of m.chain!.tables) delete t.hashRecord;
    delete m.chain!.rowHash;
    writeManifest(m);
    r = await runCli(['--config', ws.configFile, 'restore', delta.id, '--database', `${db}_r3`, '--jobs', '2']);
    expect(r.code, r.stderr).toBe(3);
    expect(errorSentence(r.stderr)).toMatch(
      new RegExp(`^The restored copy of snapshot ${delta.id} does not match its manifest \\(table "public"\\.`),
    );
  }, 300_000);

  it('a table whose mark the newest snapshot does not share is not carried on by a delta: the next backup is a base that says which', async () => {
    const db = edgeWorkspace();
    const base = await backup();
    // The newest manifest hashed pf_typed by its text (as if its columns had allowed no other hash then).
    const m = readManifest(base.id);
    delete m.chain!.tables.find((t) => t.table === 'pf_typed')!.hashRecord;
    writeManifest(m);
    cluster.get().psql(db, EDGE_CHURN);
    const next = await backup();
    expect(next.chain).toMatchObject({ kind: 'base', rowHash: 'hashrecord' });
    expect(next.chain!.reason).toBe(`table "public"."pf_typed" would be hashed otherwise than in ${base.id}`);
    expect(next.chain!.tables.map((t) => `${t.rows}|${t.hash}`)).toEqual(sqlHashes(db, next.chain!.tables, 'hashrecord'));
  }, 300_000);

  it.each(['md5', 'hashtext'] as const)(
    'a chain made before hashrecord (%s values) still restores and is checked so, by permafrost and restore.sh; the next backup starts a new base',
    async (kind) => {
      const db = edgeWorkspace();
      const pg = cluster.get();
      // The manifests an older permafrost wrote: the same files, values of the same moment, no marks;
      // md5's with no rowHash (made before it existed), or hashtext's saying so.
      // (Each computed at its own moment, written once both are made: the delta is built on the base as it was written.)
      const asOld = (m: Manifest): Manifest => {
        const old = readManifest(m.id);
        for (const t of old.chain!.tables) delete t.hashRecord;
        const values = sqlHashes(db, old.chain!.tables, kind);
        old.chain!.tables.forEach((t, i) => (t.hash = values[i]!.split('|')[1]!));
        if (kind === 'md5') delete old.chain!.rowHash;
        else old.chain!.rowHash = kind;
        return old;
      };
      const first = await backup();
      const base = asOld(first);
      pg.psql(db, EDGE_CHURN);
      const made = await backup();
      expect(made.chain, made.chain!.reason).toMatchObject({ kind: 'delta', reference: first.id });
      const delta = asOld(made);
      writeManifest(base);
      writeManifest(delta);
      expect(delta.chain!.rowHash).toBe(kind === 'md5' ? undefined : kind);

      let r = await runCli(['--config', ws.configFile, 'restore', delta.id, '--database', `${db}_old`, '--jobs', '2']);
      expect(r.code, r.stderr).toBe(0);
      expect(fingerprint(pg, `${db}_old`)).toEqual(fingerprint(pg, db));
      const v = await runCli(['--config', ws.configFile, 'verify', delta.id]);
      expect(v.code, v.stderr).toBe(0);
      expect(v.stdout).toMatch(/✓ table-hashes: row counts and content hashes of all \d+ tables equal the manifest/);

      const sh = await restoreSh(delta.id, `${db}_sh`);
      expect(sh.code, sh.stderr).toBe(0);
      expect(fingerprint(pg, `${db}_sh`)).toEqual(fingerprint(pg, db));

      // Checked, not merely read: one value off and both refuse it (exit 3).
      const m = readManifest(delta.id);
      const t = m.chain!.tables.find((x) => x.table === 'pf_unicode')!;
      t.hash = (BigInt(t.hash) ^ 1n).toString();
      writeManifest(m);
      r = await runCli(['--config', ws.configFile, 'restore', delta.id, '--database', `${db}_bad`, '--jobs', '2']);
      expect(r.code, r.stderr).toBe(3);
      expect(errorSentence(r.stderr)).toContain(`table "public"."pf_unicode" has ${t.rows} rows with hash`);
      const sh2 = await restoreSh(delta.id, `${db}_sh2`);
      expect(sh2.code, sh2.stderr).toBe(3);
      expect(sh2.stderr).toContain(`the restored table public.pf_unicode (${t.rows} rows, hash `);
      writeManifest(delta);

      // The state holds hashrecord values, the newest manifest older ones: never one chain of both, a base.
      pg.psql(db, `INSERT INTO pf_empty VALUES (2, 'after')`);
      const next = await backup();
      expect(next.chain).toMatchObject({ kind: 'base', rowHash: 'hashrecord' });
      expect(next.chain!.tables.map((x) => `${x.rows}|${x.hash}`)).toEqual(sqlHashes(db, next.chain!.tables, 'hashrecord'));
    },
    300_000,
  );
});
