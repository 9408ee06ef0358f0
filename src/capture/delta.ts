/**
 * Delta-mode capture (database.delta): the rows of a base, or what changed since the reference
 * snapshot, as SQL for psql, read in the capture session's transaction (the same snapshot pg_dump
 * dumps the schema from, so schema, rows and manifest agree).
 *
 * A base's rows file: every table's rows as COPY in primary-key order, then every sequence. A
 * delta's file: per table with a primary key, the keys of rows that changed or went (a temp table,
 * then DELETE … USING) and the new versions of changed and new rows (COPY); a table without a
 * primary key, or with more changed rows than MAX_KEYS, whole (TRUNCATE + COPY); then every
 * sequence. What changed is found by merging, table by table, the rows' keyed hashes in key order
 * with the state's (delta-state.ts): memory stays bounded by MAX_KEYS, whatever the table's size.
 *
 * Every table's exact count and content hash (delta-sql.ts) of the state the snapshot represents go
 * into the manifest; a restore must reproduce them before it swaps anything in.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import type { Readable } from 'node:stream';
import type { ChainTable } from '../vault/manifest.js';
import {
  HASH_SESSION_SQL,
  qualified,
  quoteIdent,
  quoteLiteral,
  ROW_ALIAS,
  RowHashSum,
  SQL_FILE_HEADER,
  tableHashSql,
} from './delta-sql.js';
import { RowKeyer, StateReader, type DeltaState, type KeysWriter, type NextState, type StateTable } from './delta-state.js';

interface KeyColumn {
  name: string;
  /** format_type(): `bigint`, `character varying(255)`, … */
  type: string;
  /** int2/int4/int8: read and ordered as numbers; any other type as the hex of its UTF-8 text. */
  int: boolean;
}

export interface TableInfo {
  schema: string;
  table: string;
  /** The columns COPY writes (not dropped, not generated), in table order. */
  columns: string[];
  key: KeyColumn[] | null;
}

export interface Catalog {
  tables: TableInfo[];
  sequences: Array<{ schema: string; name: string }>;
}

/** More changed rows than this in one table: the delta copies the table whole instead of listing keys. */
export const MAX_KEYS = 100_000;
/** Keys per query when fetching the new versions of changed rows. */
const FETCH_BATCH = 2000;

const USER_RELATIONS = `FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`;

/** The tables (with columns and primary keys) and sequences whose data a snapshot holds. */
export async function readCatalog(client: pg.Client): Promise<Catalog> {
  const tables = await client.query<{ oid: number; schema: string; table: string }>(
    `SELECT c.oid::int AS oid, n.nspname AS schema, c.relname AS table ${USER_RELATIONS} AND c.relkind = 'r'
     ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C"`,
  );
  const oids = tables.rows.map((t) => t.oid);
  const cols = await client.query<{ oid: number; name: string }>(
    `SELECT attrelid::int AS oid, attname AS name FROM pg_catalog.pg_attribute
     WHERE attrelid = ANY($1::oid[]) AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attrelid, attnum`,
    [oids],
  );
  const keys = await client.query<{ oid: number; name: string; type: string; int: boolean }>(
    `SELECT i.indrelid::int AS oid, a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
            a.atttypid IN (20, 21, 23) AS int
     FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
     WHERE i.indisprimary AND i.indrelid = ANY($1::oid[])
     ORDER BY i.indrelid, array_position(i.indkey::int2[], a.attnum)`,
    [oids],
  );
  const seqs = await client.query<{ schema: string; name: string }>(
    `SELECT n.nspname AS schema, c.relname AS name ${USER_RELATIONS} AND c.relkind = 'S' ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C"`,
  );
  return {
    tables: tables.rows.map((t) => {
      const key = keys.rows.filter((k) => k.oid === t.oid).map(({ name, type, int }) => ({ name, type, int }));
      return {
        schema: t.schema,
        table: t.table,
        columns: cols.rows.filter((c) => c.oid === t.oid).map((c) => c.name),
        key: key.length > 0 ? key : null,
      };
    }),
    sequences: seqs.rows,
  };
}

/** `SELECT setval(…)` for every sequence, as pg_dump writes them (values read now, as pg_dump does). */
async function sequencesSql(client: pg.Client, seqs: Catalog['sequences']): Promise<string> {
  if (seqs.length === 0) return '';
  const lines: string[] = [];
  // One query for all: a union of single-row reads (a sequence is no table a function could take).
  for (let i = 0; i < seqs.length; i += 200) {
    const part = seqs.slice(i, i + 200);
    const sql = part
      .map((s, j) => `SELECT ${i + j} AS i, last_value::text AS v, is_called AS c FROM ${qualified(s.schema, s.name)}`)
      .join(' UNION ALL ');
    const r = await client.query<{ i: number; v: string; c: boolean }>(sql);
    for (const row of r.rows.sort((a, b) => a.i - b.i)) {
      const s = seqs[row.i]!;
      lines.push(`SELECT pg_catalog.setval(${quoteLiteral(qualified(s.schema, s.name))}, ${row.v}, ${row.c});`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** The key as the capture reads it: the number itself, or the hex of the value's UTF-8 text (byte order = "C" order). */
function keyExpr(k: KeyColumn): string {
  const col = `${ROW_ALIAS}.${quoteIdent(k.name)}`;
  return k.int ? col : `encode(convert_to(${col}::text, 'UTF8'), 'hex')`;
}

function orderExpr(k: KeyColumn): string {
  return k.int ? keyExpr(k) : `${keyExpr(k)} COLLATE "C"`;
}

/** The comparison of two keys that matches ORDER BY orderExpr (numbers as numbers, hex as bytes). */
export function keyComparator(key: readonly KeyColumn[]): (a: string, b: string) => number {
  const cmpInt = (a: string, b: string): number => {
    if (a[0] !== '-' && b[0] !== '-') return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
    const x = BigInt(a);
    const y = BigInt(b);
    return x < y ? -1 : x > y ? 1 : 0;
  };
  const cmpHex = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  const one = key.map((k) => (k.int ? cmpInt : cmpHex));
  if (one.length === 1) return one[0]!;
  return (a, b) => {
    const xs = a.split('\t');
    const ys = b.split('\t');
    for (let i = 0; i < one.length; i++) {
      const c = one[i]!(xs[i]!, ys[i]!);
      if (c !== 0) return c;
    }
    return 0;
  };
}

function copyStream(client: pg.Client, sql: string): Readable {
  return client.query(copyTo(`COPY (${sql}) TO STDOUT`));
}

/** Complete lines of a COPY stream, a chunk at a time (COPY's text format escapes newlines inside values). */
async function* completeLines(stream: Readable): AsyncGenerator<Buffer> {
  let rest: Buffer | null = null;
  for await (const raw of stream as AsyncIterable<Buffer>) {
    const chunk: Buffer = rest ? Buffer.concat([rest, raw]) : raw;
    const end = chunk.lastIndexOf(10);
    if (end < 0) {
      rest = chunk;
      continue;
    }
    rest = end + 1 < chunk.length ? chunk.subarray(end + 1) : null;
    yield chunk.subarray(0, end + 1);
  }
  if (rest) throw new Error('COPY output ended inside a row');
}

/** Position of the `n`th tab (1-based) at or after `from`, before `end`. */
function nthTab(buf: Buffer, from: number, n: number, end: number): number {
  let at = from - 1;
  for (let i = 0; i < n; i++) {
    at = buf.indexOf(9, at + 1);
    if (at < 0 || at >= end) throw new Error('COPY row has fewer fields than expected');
  }
  return at;
}

/** A COPY stream of `<keys…>\t<md5>[\t<row…>]` lines, split: keys and md5 per row, and the row bytes. */
class HashedLines {
  readonly sum = new RowHashSum();
  private readonly keyer: RowKeyer | null;
  private md5s = Buffer.alloc(16 * 4096);

  constructor(
    private readonly keyCols: number,
    key: Buffer | null,
  ) {
    this.keyer = key ? new RowKeyer(key) : null;
  }

  /** One chunk of complete lines → the keys, their keyed hashes, and (with `rows`) the rows' bytes. */
  split(chunk: Buffer, rows: boolean): { keys: string[]; hashes: string[]; data: Buffer | null } {
    const keys: string[] = [];
    const parts: Buffer[] = [];
    let n = 0;
    let at = 0;
    while (at < chunk.length) {
      const nl = chunk.indexOf(10, at);
      const md5At = this.keyCols === 0 ? at : nthTab(chunk, at, this.keyCols, nl) + 1;
      const md5 = chunk.toString('latin1', md5At, md5At + 32);
      this.sum.add(md5);
      if (this.keyCols > 0) {
        keys.push(chunk.toString('latin1', at, md5At - 1));
        if ((n + 1) * 16 > this.md5s.length) this.md5s = Buffer.concat([this.md5s, Buffer.alloc(this.md5s.length)]);
        this.md5s.write(md5, n * 16, 16, 'hex');
        n++;
      }
      if (rows) parts.push(chunk.subarray(md5At + 33, nl + 1));
      at = nl + 1;
    }
    const hashes = this.keyer && n > 0 ? this.keyer.keyed(this.md5s, n) : [];
    return { keys, hashes, data: rows ? Buffer.concat(parts) : null };
  }
}

function columnList(t: TableInfo): string {
  return t.columns.map(quoteIdent).join(', ');
}

function selectSql(t: TableInfo, prefix: string[], where = ''): string {
  const cols = [...prefix, ...t.columns.map((c) => `${ROW_ALIAS}.${quoteIdent(c)}`)].join(', ');
  const order = t.key && prefix.length > 0 ? ` ORDER BY ${t.key.map(orderExpr).join(', ')}` : '';
  return `SELECT ${cols} FROM ONLY ${qualified(t.schema, t.table)} ${ROW_ALIAS}${where}${order}`;
}

const md5Expr = `md5(${ROW_ALIAS}::text)`;

/** What the run tells the caller per table, for the manifest and the next state. */
export interface TableOutcome {
  manifest: ChainTable;
  state: StateTable;
}

const copyHeader = (t: TableInfo): string => `COPY ${qualified(t.schema, t.table)} (${columnList(t)}) FROM stdin;\n`;
const COPY_END = '\\.\n\n';

/** Session settings rows are read and hashed under (HASH_SESSION_SQL); run once per capture session. */
export async function prepareSession(client: pg.Client): Promise<void> {
  await client.query(HASH_SESSION_SQL);
}

/**
 * A base's rows file: every table in key order (keys and keyed hashes into the next state as they
 * pass), then the sequences. `outcomes` is filled as tables finish.
 */
export async function* baseRows(client: pg.Client, catalog: Catalog, next: NextState, outcomes: TableOutcome[]): AsyncGenerator<Buffer> {
  yield Buffer.from(SQL_FILE_HEADER);
  for (const [i, t] of catalog.tables.entries()) {
    yield Buffer.from(copyHeader(t));
    const keyCols = t.key?.length ?? 0;
    const lines = new HashedLines(keyCols, t.key ? next.key : null);
    const writer = t.key ? next.keysFile(i) : null;
    const sql = selectSql(t, [...(t.key ?? []).map(keyExpr), md5Expr]);
    for await (const chunk of completeLines(copyStream(client, sql))) {
      const { keys, hashes, data } = lines.split(chunk, true);
      if (writer) await writer.lines(keys, hashes);
      yield data!;
    }
    yield Buffer.from(COPY_END);
    outcomes.push(outcome(t, lines.sum, writer ? { name: writer.name, sha256: await writer.close() } : null, {}));
  }
  yield Buffer.from(await sequencesSql(client, catalog.sequences));
}

function outcome(
  t: TableInfo,
  sum: RowHashSum,
  file: { name: string; sha256: string } | null,
  counts: { deleted?: number; copied?: number },
): TableOutcome {
  const hash = sum.value();
  const key = t.key?.map((k) => k.name) ?? null;
  return {
    manifest: { schema: t.schema, table: t.table, rows: sum.rows, hash, key, ...counts },
    state: { schema: t.schema, table: t.table, key, rows: sum.rows, hash, file: file?.name ?? null, sha256: file?.sha256 ?? null },
  };
}

/** The state's keys file did not hold what state.json recorded: the delta would be wrong, so a base is made instead. */
export class StateMismatchError extends Error {}

/** Keys that changed in one table: to delete (changed or gone) and to copy (changed or new); null: too many, copy whole. */
interface Changes {
  deleted: string[] | null;
  copied: string[] | null;
}

/** Merges the table's rows (in key order) with the state's; writes the next state's keys file as it goes. */
async function diffTable(
  client: pg.Client,
  t: TableInfo & { key: KeyColumn[] },
  old: StateReader,
  writer: KeysWriter,
  lines: HashedLines,
): Promise<Changes> {
  const cmp = keyComparator(t.key);
  let deleted: string[] | null = [];
  let copied: string[] | null = [];
  const gone = (k: string): void => {
    if (deleted && deleted.push(k) > MAX_KEYS) deleted = copied = null;
  };
  const fresh = (k: string): void => {
    if (copied && copied.push(k) > MAX_KEYS) deleted = copied = null;
  };
  let prev = await old.next();
  const sql = selectSql({ ...t, columns: [] }, [...t.key.map(keyExpr), md5Expr]);
  for await (const chunk of completeLines(copyStream(client, sql))) {
    const { keys, hashes } = lines.split(chunk, false);
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      while (prev && cmp(prev[0], k) < 0) {
        gone(prev[0]);
        prev = await old.next();
      }
      if (prev && cmp(prev[0], k) === 0) {
        if (prev[1] !== hashes[i]) {
          gone(k);
          fresh(k);
        }
        prev = await old.next();
      } else fresh(k);
    }
    await writer.lines(keys, hashes);
  }
  while (prev) {
    gone(prev[0]);
    prev = await old.next();
  }
  return { deleted, copied };
}

const INT_RE = /^-?\d+$/;
const HEX_RE = /^[0-9a-f]*$/;

/** A key value as SQL: the number, or the text the hex stands for, cast to the column's type. */
function keyLiteral(k: KeyColumn, v: string): string {
  if (k.int) {
    if (!INT_RE.test(v)) throw new Error(`unexpected key value for ${k.name}`);
    return v;
  }
  if (!HEX_RE.test(v)) throw new Error(`unexpected key value for ${k.name}`);
  return `convert_from(decode('${v}', 'hex'), 'UTF8')::${k.type}`;
}

/** WHERE clause selecting the rows with these keys (an index lookup for a single-column key). */
function keysWhere(key: KeyColumn[], keys: string[]): string {
  if (key.length === 1) {
    const k = key[0]!;
    const col = `${ROW_ALIAS}.${quoteIdent(k.name)}`;
    return ` WHERE ${col} = ANY(ARRAY[${keys.map((v) => keyLiteral(k, v)).join(', ')}]::${k.type}[])`;
  }
  const cols = key.map((k) => `${ROW_ALIAS}.${quoteIdent(k.name)}`).join(', ');
  const rows = keys.map((line) => {
    const vs = line.split('\t');
    return `(${key.map((k, i) => keyLiteral(k, vs[i] ?? '')).join(', ')})`;
  });
  return ` WHERE (${cols}) IN (VALUES ${rows.join(', ')})`;
}

/** SQL that deletes the rows with `keys` (a temp table of keys, then DELETE … USING). */
function deleteSql(t: TableInfo & { key: KeyColumn[] }, keys: string[]): string {
  const cols = t.key.map((k, i) => `k${i} ${k.int ? k.type : 'text'}`).join(', ');
  const match = t.key
    .map(
      (k, i) =>
        `${ROW_ALIAS}.${quoteIdent(k.name)} = ${k.int ? `pf_keys.k${i}` : `convert_from(decode(pf_keys.k${i}, 'hex'), 'UTF8')::${k.type}`}`,
    )
    .join(' AND ');
  return [
    `CREATE TEMP TABLE pf_keys (${cols});`,
    'COPY pf_keys FROM stdin;',
    ...keys,
    '\\.',
    'ANALYZE pf_keys;',
    `DELETE FROM ONLY ${qualified(t.schema, t.table)} ${ROW_ALIAS} USING pf_keys WHERE ${match};`,
    'DROP TABLE pf_keys;',
    '',
  ].join('\n');
}

/** The whole table as COPY data (no keys, no hashes), after a TRUNCATE. */
async function* wholeTable(client: pg.Client, t: TableInfo): AsyncGenerator<Buffer> {
  yield Buffer.from(`TRUNCATE ONLY ${qualified(t.schema, t.table)};\n${copyHeader(t)}`);
  for await (const chunk of copyStream(client, selectSql(t, [])) as AsyncIterable<Buffer>) yield chunk;
  yield Buffer.from(COPY_END);
}

/**
 * A delta's file against `state` (the reference snapshot's): per table what changed, then the
 * sequences. Throws StateMismatchError when a keys file is not the one state.json recorded.
 */
export async function* deltaRows(
  client: pg.Client,
  catalog: Catalog,
  state: { state: DeltaState; dir: string },
  next: NextState,
  outcomes: TableOutcome[],
): AsyncGenerator<Buffer> {
  yield Buffer.from(SQL_FILE_HEADER);
  for (const [i, t] of catalog.tables.entries()) {
    const st = state.state.tables[i]!;
    if (!t.key) {
      // Copied whole, unless its count and hash are what the reference holds.
      const r = (await client.query<{ rows: string; hash: string }>(tableHashSql(t.schema, t.table))).rows[0]!;
      const unchanged = Number(r.rows) === st.rows && r.hash === st.hash;
      if (!unchanged) yield* wholeTable(client, t);
      const rows = Number(r.rows);
      outcomes.push({
        manifest: { schema: t.schema, table: t.table, rows, hash: r.hash, key: null, ...(unchanged ? {} : { copied: rows }) },
        state: { schema: t.schema, table: t.table, key: null, rows, hash: r.hash, file: null, sha256: null },
      });
      continue;
    }
    const keyed = { ...t, key: t.key };
    const old = new StateReader(`${state.dir}/${st.file}`);
    const writer = next.keysFile(i);
    const lines = new HashedLines(t.key.length, next.key);
    const changes = await diffTable(client, keyed, old, writer, lines);
    if (old.sha256() !== st.sha256) {
      await writer.close().catch(() => undefined);
      throw new StateMismatchError(`its delta state for ${qualified(t.schema, t.table)} is not the one recorded (the keys file changed)`);
    }
    let counts: { deleted?: number; copied?: number };
    if (!changes.deleted || !changes.copied) {
      yield* wholeTable(client, t);
      counts = { copied: lines.sum.rows };
    } else {
      if (changes.deleted.length > 0) yield Buffer.from(deleteSql(keyed, changes.deleted));
      if (changes.copied.length > 0) {
        yield Buffer.from(copyHeader(t));
        for (let j = 0; j < changes.copied.length; j += FETCH_BATCH) {
          const where = keysWhere(t.key, changes.copied.slice(j, j + FETCH_BATCH));
          for await (const chunk of copyStream(client, selectSql(t, [], where)) as AsyncIterable<Buffer>) yield chunk;
        }
        yield Buffer.from(COPY_END);
      }
      counts = { deleted: changes.deleted.length, copied: changes.copied.length };
    }
    outcomes.push(outcome(t, lines.sum, { name: writer.name, sha256: await writer.close() }, counts));
  }
  yield Buffer.from(await sequencesSql(client, catalog.sequences));
}

/**
 * The schema fingerprint: SHA-256 of pg_dump's plain pre-data + post-data SQL, without the
 * `\restrict KEY` / `\unrestrict KEY` lines pg_dump (15.14+) writes with a random key each run.
 */
export async function ddlFingerprint(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  return createHash('sha256')
    .update(text.replace(/^\\(un)?restrict [^\n]*\n/gm, ''))
    .digest('hex');
}

/** Why the state cannot serve as the reference for this catalog, or null when it can. */
export function catalogMismatch(catalog: Catalog, state: DeltaState): string | null {
  if (catalog.tables.length !== state.tables.length) return 'the set of tables changed';
  for (const [i, t] of catalog.tables.entries()) {
    const st = state.tables[i]!;
    const key = t.key?.map((k) => k.name) ?? null;
    if (st.schema !== t.schema || st.table !== t.table || JSON.stringify(st.key) !== JSON.stringify(key)) {
      return `table ${qualified(t.schema, t.table)} is not the one the state describes`;
    }
    if ((st.file === null) !== (t.key === null)) return `the delta state of ${qualified(t.schema, t.table)} is incomplete`;
  }
  return null;
}
