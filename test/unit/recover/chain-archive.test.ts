import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qualified, quoteIdent, SQL_FILE_HEADER } from '../../../src/capture/delta-sql.js';
import { chainArchiveSink, type ChainArchiveResult } from '../../../src/recover/chain-archive.js';
import { fingerprint } from '../../harness/fingerprint.js';
import { clusterPerFile } from '../../harness/suite.js';

const pg = clusterPerFile();
const root = mkdtempSync(path.join(tmpdir(), 'permafrost-chain-archive-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** What a base holds that the archive must carry: escapes, quoted names in another schema, an empty table, a row longer than a read, keys, a sequence, a matview. */
const SOURCE_SQL = `
CREATE TABLE accounts (id bigint PRIMARY KEY, username text NOT NULL, note text);
INSERT INTO accounts SELECT g, 'user' || g, CASE g % 4 WHEN 0 THEN E'tab\\there' WHEN 1 THEN E'line\\nbreak \\\\. back\\\\slash' WHEN 2 THEN 'crème 日本語' END
  FROM generate_series(1, 3000) g;
CREATE TABLE statuses (id bigserial PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts (id), text text);
INSERT INTO statuses (account_id, text) SELECT 1 + g % 3000, repeat('s', g % 50) FROM generate_series(1, 20000) g;
CREATE INDEX ON statuses (account_id);
INSERT INTO statuses (account_id, text) VALUES (7, repeat('long ', 600000));
CREATE SCHEMA "s p";
CREATE TABLE "s p"."we""ird" ("co l" int, "x""y" text);
INSERT INTO "s p"."we""ird" VALUES (1, 'a'), (2, NULL);
CREATE TABLE empty_one (id int);
CREATE SEQUENCE lonely_seq START 42;
SELECT setval('lonely_seq', 99);
CREATE MATERIALIZED VIEW status_count AS SELECT count(*) AS n FROM statuses;
`;

function pgTool(name: string, args: string[], input?: string): string {
  const c = pg.get();
  const r = spawnSync(path.join(c.binDir, name), args, {
    encoding: 'utf8',
    input,
    maxBuffer: 1 << 30,
    env: { ...process.env, PGHOST: c.socketDir, PGPORT: String(c.port), PGUSER: c.user },
  });
  if (r.status !== 0) throw new Error(`${name} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** A rows part as delta capture writes it: the header, one COPY block per table (every column, in order), the sequences' setval. */
function rowsFile(db: string): string {
  const tables = pgTool('psql', [
    '-XAt',
    '-F',
    '\t',
    '-d',
    db,
    '-c',
    "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname IN ('public', 's p') ORDER BY 1, 2",
  ])
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t') as [string, string]);
  let out = SQL_FILE_HEADER;
  for (const [schema, table] of tables) {
    const cols = pgTool('psql', [
      '-XAt',
      '-d',
      db,
      '-c',
      `SELECT attname FROM pg_attribute WHERE attrelid = '${qualified(schema, table).replace(/'/g, "''")}'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    ])
      .split('\n')
      .filter(Boolean);
    const list = cols.map(quoteIdent).join(', ');
    out += `COPY ${qualified(schema, table)} (${list}) FROM stdin;\n`;
    out += pgTool('psql', ['-X', '-d', db, '-c', `COPY ${qualified(schema, table)} (${list}) TO STDOUT`]);
    out += '\\.\n';
  }
  return `${out}SELECT pg_catalog.setval('"public"."lonely_seq"', 99, true);\nSELECT pg_catalog.setval('"public"."statuses_id_seq"', 20001, true);\n`;
}

/** Runs the sink as decryptPartInto does, `text` written into its file in `pieces` (as gpg writes, while it is followed). */
async function throughSink(
  name: string,
  schema: string,
  text: string,
  pieces: number,
): Promise<{ result: ChainArchiveResult; archive: string }> {
  const dir = mkdtempSync(path.join(root, `${name}-`));
  const archive = path.join(dir, 'chain.dump');
  const sink = chainArchiveSink({ rowsFile: path.join(dir, 'rows.sql'), schema, plan: Promise.resolve(null), out: archive });
  if (!sink.file) throw new Error('a file sink');
  const fd = await sink.file.open();
  const bytes = Buffer.from(text);
  const step = Math.ceil(bytes.length / pieces);
  for (let at = 0; at < bytes.length; at += step) {
    writeSync(fd, bytes, at, Math.min(step, bytes.length - at), at);
    await new Promise((r) => setTimeout(r, 5));
  }
  sink.file.end(bytes.length);
  await sink.done;
  return { result: await sink.result, archive };
}

describe('chainArchiveSink: a base (schema archive and rows) as one archive pg_restore -j loads', () => {
  let schema = '';
  let rows = '';
  beforeAll(() => {
    const c = pg.get();
    c.psql('postgres', 'CREATE DATABASE src');
    c.psql('src', SOURCE_SQL);
    schema = path.join(root, 'schema.dump');
    pgTool('pg_dump', ['-Fc', '-Z0', '--section=pre-data', '--section=post-data', '-d', 'src', '-f', schema]);
    rows = rowsFile('src');
  });

  it('restores with pg_restore -j2 (and the returned SQL) to a copy equal to the source, whatever the pieces the rows come in', async () => {
    for (const pieces of [1, 7]) {
      const { result, archive } = await throughSink(`whole-${pieces}`, schema, rows, pieces);
      if (!('archive' in result)) throw new Error(`not written: ${result.unknown}`);
      expect(result.archive.tables).toBe(4);
      const db = `copy_${pieces}`;
      pg.get().psql('postgres', `CREATE DATABASE ${db}`);
      pgTool('pg_restore', ['--exit-on-error', '-j2', '-d', db, archive]);
      pgTool('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-d', db], result.archive.sql);
      expect(fingerprint(pg.get(), db)).toEqual(fingerprint(pg.get(), 'src'));
      // As pg_dump lists a table's data: one TABLE DATA entry per table.
      expect(pgTool('pg_restore', ['-l', archive]).match(/ TABLE DATA /g)).toHaveLength(4);
    }
  });

  it('leaves rows not in the form permafrost writes to psql: SQL between blocks, a table the schema lacks, other settings first', async () => {
    const firstEnd = rows.indexOf('\\.\n') + 3;
    const between = `${rows.slice(0, firstEnd)}SELECT 1;\n${rows.slice(firstEnd)}`;
    expect(await throughSink('between', schema, between, 3).then((r) => r.result)).toEqual({ unknown: 'SQL between the COPY blocks' });
    const stranger = rows.replace('COPY "public"."empty_one" ("id")', 'COPY "public"."nowhere" ("id")');
    expect(await throughSink('stranger', schema, stranger, 3).then((r) => r.result)).toMatchObject({
      unknown: expect.stringContaining('not of one table of the schema'),
    });
    const other = `DELETE FROM accounts;\n${rows}`;
    expect(await throughSink('other', schema, other, 3).then((r) => r.result)).toEqual({
      unknown: 'the rows start with other SQL than settings',
    });
  });

  it('leaves a schema archive of a database not in UTF-8 to psql (pg_restore would read the rows in its encoding)', async () => {
    const c = pg.get();
    c.psql('postgres', "CREATE DATABASE latin TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'");
    c.psql('latin', 'CREATE TABLE t (a text)');
    const latinSchema = path.join(root, 'latin.dump');
    pgTool('pg_dump', ['-Fc', '-Z0', '--section=pre-data', '--section=post-data', '-d', 'latin', '-f', latinSchema]);
    const text = `${SQL_FILE_HEADER}COPY "public"."t" ("a") FROM stdin;\ncrème\n\\.\n`;
    expect(await throughSink('latin', latinSchema, text, 2).then((r) => r.result)).toEqual({ unknown: 'the schema archive is not UTF-8' });
    expect(readFileSync(latinSchema).subarray(0, 5).toString()).toBe('PGDMP');
  });
});
