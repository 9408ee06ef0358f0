/**
 * Delta-mode capture (database.delta): the rows of a base, or what changed since the reference
 * snapshot, as SQL for psql, read in the capture session's transaction (the same snapshot pg_dump
 * dumps the schema from, so schema, rows and manifest agree).
 *
 * A base's rows file: every table's rows as COPY (as stored: a plain scan), then every sequence,
 * written by psql in the capture's snapshot (baseRowsScript); its hashes and the state's keys
 * files are read beside it on a second session in the same snapshot, in key order, so the
 * server's per-row hashing runs on another core. A
 * delta's file: per table with a primary key, the keys of rows that changed or went (a temp table,
 * then DELETE … USING) and the new versions of changed and new rows (COPY); a table without a
 * primary key, or with more changed rows than MAX_KEYS, whole (TRUNCATE + COPY); then every
 * sequence. What changed is found by merging, table by table, the rows' keyed hashes in key order
 * with the state's (delta-state.ts): memory stays bounded by MAX_KEYS, whatever the table's size.
 *
 * Every table's exact count and content hash (delta-sql.ts) of the state the snapshot represents go
 * into the manifest; a restore must reproduce them before it swaps anything in.
 */
import { createHash, randomBytes } from 'node:crypto';
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
  HASHRECORD_PROBE_SQL,
  HASHTEXT_PROBE_SQL,
  RECORD_HASHABLE_SQL,
  rowHashExpr,
  type RowHashKind,
  type TableHash,
  tableHashExpr,
  tableHashSql,
} from './delta-sql.js';
import {
  readLines,
  RowKeyer,
  splitStateLine,
  StateMismatchError,
  StateReader,
  type DeltaState,
  type NextState,
  type StateTable,
} from './delta-state.js';

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
  /**
   * The table's size as the server last estimated it (pg_class.relpages, kept by VACUUM and ANALYZE;
   * read without a lock, unlike pg_relation_size): a base's rows part writes the largest first.
   */
  bytes?: number;
  /** Under `hashrecord`: every column's type hashes exactly (delta-sql.ts RECORD_HASH_TYPES), so rows are hashed by hash_record_extended. */
  hashRecord?: boolean;
}

export interface Catalog {
  tables: TableInfo[];
  sequences: Array<{ schema: string; name: string }>;
  /** How this run hashes rows (chooseRowHash). */
  rowHash: RowHashKind;
}

/** How table `t`'s rows are hashed in this run. */
export function hashOf(catalog: Pick<Catalog, 'rowHash'>, t: Pick<TableInfo, 'hashRecord'>): TableHash {
  return { kind: catalog.rowHash, record: t.hashRecord };
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
  const tables = await client.query<{ oid: number; schema: string; table: string; bytes: string }>(
    `SELECT c.oid::int AS oid, n.nspname AS schema, c.relname AS table, (c.relpages::bigint * current_setting('block_size')::bigint)::text AS bytes
     ${USER_RELATIONS} AND c.relkind = 'r'
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
  const rowHash = await chooseRowHash(client);
  const hashable =
    rowHash === 'hashrecord'
      ? new Set((await client.query<{ oid: number; ok: boolean }>(RECORD_HASHABLE_SQL, [oids])).rows.filter((r) => r.ok).map((r) => r.oid))
      : null;
  return {
    tables: tables.rows.map((t) => {
      const key = keys.rows.filter((k) => k.oid === t.oid).map(({ name, type, int }) => ({ name, type, int }));
      return {
        schema: t.schema,
        table: t.table,
        columns: cols.rows.filter((c) => c.oid === t.oid).map((c) => c.name),
        key: key.length > 0 ? key : null,
        bytes: Number(t.bytes),
        ...(hashable ? { hashRecord: hashable.has(t.oid) } : {}),
      };
    }),
    sequences: seqs.rows,
    rowHash,
  };
}

/**
 * `hashrecord` on a server with hash_record_extended that hashes as every little-endian one does
 * (HASHRECORD_PROBE_SQL), else `hashtext` where it computes hashtextextended so (HASHTEXT_PROBE_SQL), else md5.
 */
export async function chooseRowHash(client: pg.Client): Promise<RowHashKind> {
  if ((await client.query<{ ok: boolean | null }>(HASHRECORD_PROBE_SQL)).rows[0]?.ok === true) return 'hashrecord';
  const r = await client.query<{ ok: boolean | null }>(HASHTEXT_PROBE_SQL);
  return r.rows[0]?.ok === true ? 'hashtext' : 'md5';
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

/**
 * Bytes of COPY output handled at once: the socket delivers a few KiB at a time, and every chunk
 * passed on costs a write into igzip's pipe, a cipher call and a keys-file write.
 */
const LINES_BATCH = 256 << 10;

/** Complete lines of a COPY stream, LINES_BATCH bytes or more at a time (COPY's text format escapes newlines inside values). */
async function* completeLines(stream: Readable): AsyncGenerator<Buffer> {
  let rest: Buffer | null = null;
  let held: Buffer[] = [];
  let size = 0;
  for await (const piece of stream as AsyncIterable<Buffer>) {
    held.push(piece);
    size += piece.length;
    if (size < LINES_BATCH) continue;
    const raw = held.length === 1 ? held[0]! : Buffer.concat(held, size);
    held = [];
    size = 0;
    const chunk: Buffer = rest ? Buffer.concat([rest, raw]) : raw;
    const end = chunk.lastIndexOf(10);
    if (end < 0) {
      rest = chunk;
      continue;
    }
    rest = end + 1 < chunk.length ? chunk.subarray(end + 1) : null;
    yield chunk.subarray(0, end + 1);
  }
  if (size > 0) {
    const chunk = Buffer.concat(rest ? [rest, ...held] : held);
    rest = chunk[chunk.length - 1] === 10 ? null : chunk;
    if (!rest) yield chunk;
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

/**
 * The rows a table's COPY stream of `<keys…>\t<md5>[\t<age>\t<xmin>]\t<row…>` lines holds, split:
 * the keys and keyed hashes per row, the row bytes, the table's count and hash, and (a keyed table)
 * its most recently written rows as witnesses, picked from the same scan (the age and xmin on each
 * line) rather than by a second scan of the table ordered by age.
 */
class HashedLines {
  readonly sum = new RowHashSum();
  private readonly keyer: RowKeyer | null;
  private readonly witness: WitnessPicker | null;
  private md5s = Buffer.alloc(16 * 4096);

  constructor(
    private readonly keyCols: number,
    key: Buffer | null,
  ) {
    this.keyer = key ? new RowKeyer(key) : null;
    this.witness = keyCols === 0 ? null : new WitnessPicker();
  }

  /** The columns the COPY query selects between the keys and the row's own. */
  static prefix(keyed: boolean, kind: TableHash): string[] {
    return [rowHashExpr(kind), ...(keyed ? [`age(${ROW_ALIAS}.xmin)`, `${ROW_ALIAS}.xmin::text`] : [])];
  }

  /** One chunk of complete lines → the keys, their keyed hashes, and (with `rows`) the rows' bytes. */
  split(chunk: Buffer, rows: boolean): { keys: string[]; hashes: string[]; data: Buffer | null } {
    const keys: string[] = [];
    const parts: Buffer[] = [];
    let n = 0;
    let at = 0;
    while (at < chunk.length) {
      const nl = chunk.indexOf(10, at);
      const keyEnd = this.keyCols === 0 ? at - 1 : nthTab(chunk, at, this.keyCols, nl);
      const md5At = keyEnd + 1;
      const md5 = chunk.toString('latin1', md5At, md5At + 32);
      this.sum.add(md5);
      let rowAt = md5At + 33;
      if (this.keyCols > 0) {
        keys.push(chunk.toString('latin1', at, keyEnd));
        if ((n + 1) * 16 > this.md5s.length) this.md5s = Buffer.concat([this.md5s, Buffer.alloc(this.md5s.length)]);
        this.md5s.write(md5, n * 16, 16, 'hex');
        n++;
        const xminAt = chunk.indexOf(9, rowAt) + 1;
        const end = chunk.indexOf(9, xminAt) + 1;
        if (xminAt <= 0 || end <= 0 || end > nl) throw new Error('COPY row has fewer fields than expected');
        this.witness!.offer(chunk, rowAt, xminAt - 1, at, keyEnd, end - 1);
        rowAt = end;
      }
      if (rows) parts.push(chunk.subarray(rowAt, nl + 1));
      at = nl + 1;
    }
    const hashes = this.keyer && n > 0 ? this.keyer.keyed(this.md5s, n) : [];
    return { keys, hashes, data: rows ? Buffer.concat(parts) : null };
  }

  /** The witnesses picked from the stream (none without a key). */
  witnesses(): Array<[string, string]> {
    return this.witness?.picked() ?? [];
  }
}

/** The MAX_WITNESS rows of smallest non-negative age(xmin) seen, as baseWitness's query picks them. */
export class WitnessPicker {
  private items: Array<{ age: number; key: string; xmin: string }> = [];
  private max = Number.POSITIVE_INFINITY;

  /** A row: its age at `buf[ageAt, ageEnd)`, key at `[keyAt, keyEnd)`, xmin at `[keyEnd + …, xminEnd)`. */
  offer(buf: Buffer, ageAt: number, ageEnd: number, keyAt: number, keyEnd: number, xminEnd: number): void {
    let age = 0;
    if (buf[ageAt] === 45) return; // negative: a transaction the capture's snapshot sees as future
    for (let i = ageAt; i < ageEnd; i++) age = age * 10 + (buf[i]! - 48);
    if (this.items.length >= MAX_WITNESS && age >= this.max) return;
    this.items.push({ age, key: buf.toString('latin1', keyAt, keyEnd), xmin: buf.toString('latin1', ageEnd + 1, xminEnd) });
    if (this.items.length >= 2 * MAX_WITNESS) this.trim();
  }

  picked(): Array<[string, string]> {
    this.trim();
    return this.items.map((w) => [w.key, w.xmin]);
  }

  private trim(): void {
    this.items.sort((a, b) => a.age - b.age);
    this.items.length = Math.min(this.items.length, MAX_WITNESS);
    if (this.items.length === MAX_WITNESS) this.max = this.items[MAX_WITNESS - 1]!.age;
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

/** What the run tells the caller per table, for the manifest and the next state. */
export interface TableOutcome {
  manifest: ChainTable;
  state: StateTable;
}

const copyHeader = (t: TableInfo): string => `COPY ${qualified(t.schema, t.table)} (${columnList(t)}) FROM stdin;\n`;
const COPY_END = '\\.\n\n';

/** Session settings rows are read and hashed under (HASH_SESSION_SQL); run once per capture session. */
export async function prepareSession(client: pg.Client): Promise<void> {
  // row_security off: a policy that would hide rows is an error (as in pg_dump), never a silently short table.
  // search_path pg_catalog: format_type() then qualifies every type outside it, as the SQL files need (their search_path is '').
  await client.query(`${HASH_SESSION_SQL} SET row_security = off; SET search_path = pg_catalog;`);
}

/**
 * One table whole, in key order, as COPY data: keys and keyed hashes into the next state's file
 * `n` as they pass, the count and hash into `outcomes`. `truncate`: preceded by TRUNCATE (a delta
 * that copies the table whole).
 */
async function* tableRows(
  client: pg.Client,
  t: TableInfo,
  n: number,
  next: NextState,
  outcomes: TableOutcome[],
  truncate: boolean,
  kind: TableHash,
): AsyncGenerator<Buffer> {
  yield Buffer.from(`${truncate ? `TRUNCATE ONLY ${qualified(t.schema, t.table)};\n` : ''}${copyHeader(t)}`);
  const lines = new HashedLines(t.key?.length ?? 0, t.key ? next.key : null);
  const writer = t.key ? next.keysFile(n) : null;
  const sql = selectSql(t, [...(t.key ?? []).map(keyExpr), ...HashedLines.prefix(t.key !== null, kind)]);
  for await (const chunk of completeLines(copyStream(client, sql))) {
    const { keys, hashes, data } = lines.split(chunk, true);
    if (writer) await writer.lines(keys, hashes);
    yield data!;
  }
  yield Buffer.from(COPY_END);
  const file = writer ? { name: writer.name, sha256: await writer.close() } : null;
  const witness = lines.witnesses();
  outcomes.push(outcome(t, lines.sum, file, truncate ? { copied: lines.sum.rows } : {}, witness));
}

/**
 * A base's rows file as a psql script run in the capture session's snapshot: every table whole as
 * COPY data, the largest table first (largestFirst), each in the order the server stores it (a plain
 * sequential scan, as pg_dump reads), then
 * the sequences (`sequences`: read beforehand, SELECT setval lines). psql (-A -t: each SELECT's
 * text as it is, one newline after) writes the file's text and COPY data straight to its stdout,
 * which is igzip's stdin: no byte of it passes through this process. The rows' hashes are read
 * beside it, on a second session in the same snapshot (baseHashes).
 */
export function baseRowsScript(catalog: Catalog, snapshot: string, sequences: string): string {
  const texts = [SQL_FILE_HEADER, ...catalog.tables.flatMap((t) => [copyHeader(t), COPY_END]), sequences].join('');
  let tag = '$pf$';
  while (texts.includes(tag)) tag = `$pf${randomBytes(6).toString('hex')}$`;
  // Each piece without its last newline: psql adds one after a value.
  const text = (s: string): string => (s === '' ? '' : `SELECT ${tag}${s.slice(0, -1)}${tag};\n`);
  return [
    'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n',
    `SET TRANSACTION SNAPSHOT ${quoteLiteral(snapshot)};\n`,
    `SET client_encoding = 'UTF8'; ${HASH_SESSION_SQL} SET row_security = off; SET search_path = pg_catalog;\n`,
    text(SQL_FILE_HEADER),
    ...largestFirst(catalog.tables).flatMap((t) => [text(copyHeader(t)), `COPY (${selectSql(t, [])}) TO STDOUT;\n`, text(COPY_END)]),
    text(sequences),
    'ROLLBACK;\n',
  ].join('');
}

/**
 * The tables largest first, as pg_restore -j schedules its loads: a restore hands each COPY block to
 * the next idle session, so a largest table written last (Mastodon's statuses) loaded alone while
 * the other sessions idled. The blocks are independent; their order changes nothing else.
 */
export function largestFirst(tables: readonly TableInfo[]): TableInfo[] {
  return [...tables].sort((a, b) => (b.bytes ?? 0) - (a.bytes ?? 0));
}

/** The sequences' part of a rows file (SELECT setval lines), read on the capture session. */
export async function sequencesPart(client: pg.Client, catalog: Catalog): Promise<string> {
  return sequencesSql(client, catalog.sequences);
}

/**
 * A base's hashes, read on `client` (a second session that imported the capture session's
 * snapshot, so it sees exactly the rows baseRows writes) while the first one streams the rows:
 * the server's per-row work (md5 of each row's text, in key order) runs on another core than the
 * COPY's. Per keyed table, the keys and keyed hashes go into the next state's keys file `n`; per
 * table, its count and hash (and witnesses) into `outcomes`, in catalog order.
 */
export async function baseHashes(client: pg.Client, catalog: Catalog, next: NextState, outcomes: TableOutcome[]): Promise<void> {
  for (const [n, t] of catalog.tables.entries()) {
    if (!t.key) {
      // No keys file: the count and hash are all the state keeps, summed by the server (no row is sent).
      const r = (await client.query<{ rows: string; hash: string }>(tableHashSql(t.schema, t.table, hashOf(catalog, t)))).rows[0]!;
      outcomes.push(outcome(t, new RowHashSum({ rows: Number(r.rows), hash: r.hash }), null, {}, []));
      continue;
    }
    const lines = new KeyedLines(t.key.length, next.key);
    const writer = next.keysFile(n);
    const sql = selectSql({ ...t, columns: [] }, [...t.key.map(keyExpr), ...HashedLines.prefix(true, hashOf(catalog, t))]);
    for await (const chunk of completeLines(copyStream(client, sql))) await writer.bytes(lines.keysFile(chunk));
    const sha256 = await writer.close();
    outcomes.push(outcome(t, lines.sum, { name: writer.name, sha256 }, {}, lines.witnesses()));
  }
}

const BASE64URL = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', 'latin1');
const HEX = new Int8Array(256).fill(-1);
for (let i = 0; i < 16; i++) HEX['0123456789abcdef'.charCodeAt(i)] = i;

/**
 * The lines of a keyed table's hash query, `<keys…>\t<md5>\t<age>\t<xmin>\n`, turned into its keys
 * file's lines (`<keys…>\t<keyed hash>\n`, the bytes RowKeyer.keyed and KeysWriter.lines make) with
 * one cipher call per chunk and no string per row; the table's count and hash and its witnesses
 * (the rows of smallest age) are taken on the way.
 */
export class KeyedLines {
  readonly sum = new RowHashSum();
  private readonly keyer: RowKeyer;
  private readonly witness = new WitnessPicker();
  private md5s = Buffer.alloc(16 * 4096);
  private spans = new Int32Array(2 * 4096);

  constructor(
    private readonly keyCols: number,
    key: Buffer,
  ) {
    this.keyer = new RowKeyer(key);
  }

  keysFile(chunk: Buffer): Buffer {
    let n = 0;
    let at = 0;
    let size = 0;
    while (at < chunk.length) {
      const nl = chunk.indexOf(10, at);
      const keyEnd = nthTab(chunk, at, this.keyCols, nl);
      const md5At = keyEnd + 1;
      const ageAt = md5At + 33;
      if (ageAt >= nl || chunk[ageAt - 1] !== 9) throw new Error('COPY row has fewer fields than expected');
      if ((n + 1) * 16 > this.md5s.length) {
        this.md5s = Buffer.concat([this.md5s, Buffer.alloc(this.md5s.length)]);
        const spans = new Int32Array(this.spans.length * 2);
        spans.set(this.spans);
        this.spans = spans;
      }
      let bad = 0;
      for (let i = 0; i < 16; i++) {
        const hi = HEX[chunk[md5At + 2 * i]!]!;
        const lo = HEX[chunk[md5At + 2 * i + 1]!]!;
        bad |= hi | lo;
        this.md5s[n * 16 + i] = (hi << 4) | lo;
      }
      if (bad < 0) throw new Error('COPY row has no md5 where expected');
      this.sum.addBytes(this.md5s, n * 16);
      const ageEnd = chunk.indexOf(9, ageAt);
      if (ageEnd < 0 || ageEnd >= nl) throw new Error('COPY row has fewer fields than expected');
      this.witness.offer(chunk, ageAt, ageEnd, at, keyEnd, nl);
      this.spans[2 * n] = at;
      this.spans[2 * n + 1] = keyEnd;
      size += keyEnd - at + 24;
      n++;
      at = nl + 1;
    }
    const keyed = this.keyer.encrypt(this.md5s, n);
    const out = Buffer.allocUnsafe(size);
    let o = 0;
    for (let r = 0; r < n; r++) {
      o += chunk.copy(out, o, this.spans[2 * r], this.spans[2 * r + 1]);
      out[o++] = 9;
      o = base64url16(keyed, r * 16, out, o);
      out[o++] = 10;
    }
    return out;
  }

  witnesses(): Array<[string, string]> {
    return this.witness.picked();
  }
}

/** The 22 characters of `Buffer#toString('base64url')` of the 16 bytes at `src[at]`, written at `out[o]`; returns the end. */
function base64url16(src: Buffer, at: number, out: Buffer, o: number): number {
  for (let i = 0; i < 15; i += 3) {
    const v = (src[at + i]! << 16) | (src[at + i + 1]! << 8) | src[at + i + 2]!;
    out[o++] = BASE64URL[v >>> 18]!;
    out[o++] = BASE64URL[(v >>> 12) & 63]!;
    out[o++] = BASE64URL[(v >>> 6) & 63]!;
    out[o++] = BASE64URL[v & 63]!;
  }
  const last = src[at + 15]!;
  out[o++] = BASE64URL[last >>> 2]!;
  out[o++] = BASE64URL[(last & 3) << 4]!;
  return o;
}

function outcome(
  t: TableInfo,
  sum: RowHashSum,
  file: { name: string; sha256: string } | null,
  counts: { deleted?: number; copied?: number },
  witness: Array<[string, string]>,
): TableOutcome {
  const hash = sum.value();
  const key = t.key?.map((k) => k.name) ?? null;
  return {
    manifest: { schema: t.schema, table: t.table, rows: sum.rows, hash, key, ...recordFlag(t), ...counts },
    state: { schema: t.schema, table: t.table, key, rows: sum.rows, hash, file: file?.name ?? null, sha256: file?.sha256 ?? null, witness },
  };
}

/** The manifest's mark of a table hashed by hash_record_extended (chain.tables[].hashRecord). */
function recordFlag(t: Pick<TableInfo, 'hashRecord'>): { hashRecord?: true } {
  return t.hashRecord ? { hashRecord: true } : {};
}

/** What changed in one table since the reference: keys to delete (changed or gone) and to copy (changed or new). */
interface Changes {
  deleted: string[];
  copied: string[];
  sum: RowHashSum;
  keysFile: { name: string; sha256: string };
  witness: Array<[string, string]>;
}

/**
 * A copy of a string that holds on to nothing else: V8 makes a slice of a long string a view of it,
 * so one key kept from each 64 KiB chunk of a keys file would keep the whole file in memory.
 */
function own(s: string): string {
  return Buffer.from(s, 'latin1').toString('latin1');
}

/** Rows kept per table as witnesses of the state's history (see StateTable.witness). */
const MAX_WITNESS = 200;

/** `k1\tk2…` of a row, as the capture reads keys. */
function keyTextSql(key: readonly KeyColumn[]): string {
  return key.map((k) => `(${keyExpr(k)})::text`).join(` || E'\\t' || `);
}

/**
 * The witnesses must still have the xmin recorded, or a newer one: a row back at an older version
 * means the server was rolled back (a promoted replica, a data directory restored from a copy), and
 * rows it reverted would look unchanged to an xmin test.
 */
async function checkWitness(client: pg.Client, t: TableInfo & { key: KeyColumn[] }, st: StateTable, xmin32: string): Promise<void> {
  if (st.witness.length === 0) return;
  const recorded = new Map(st.witness);
  const r = await client.query<{ k: string; x: string; newer: boolean }>(
    `SELECT ${keyTextSql(t.key)} AS k, ${ROW_ALIAS}.xmin::text AS x, age(${ROW_ALIAS}.xmin) BETWEEN 0 AND age('${xmin32}'::xid) AS newer
     FROM ONLY ${qualified(t.schema, t.table)} ${ROW_ALIAS}${keysWhere(t.key, [...recorded.keys()])}`,
  );
  for (const row of r.rows) {
    if (!row.newer && recorded.get(row.k) !== row.x) {
      throw new StateMismatchError(
        `rows of ${qualified(t.schema, t.table)} are back at versions older than its delta state records (the server was rolled back: a promoted replica, or a data directory restored from a copy)`,
      );
    }
  }
}

/**
 * The witnesses after a delta: the most recently written of the rows it copied (a rollback takes
 * the newest writes back first, so those are the ones to watch), then the older witnesses this
 * delta did not touch (a row it copied or deleted has another version now), MAX_WITNESS in all.
 */
export function nextWitness(
  written: ReadonlyArray<[string, string]>,
  older: ReadonlyArray<[string, string]>,
  deleted: readonly string[],
  xmin32: string,
): Array<[string, string]> {
  const from = Number(xmin32);
  // Distance from the reference's horizon, modulo 2^32: larger is newer.
  const ahead = (x: string): number => (((Number(x) - from) % 2 ** 32) + 2 ** 32) % 2 ** 32;
  const newest = [...written].sort((a, b) => ahead(b[1]) - ahead(a[1])).slice(0, MAX_WITNESS);
  const touched = new Set([...deleted, ...written.map(([k]) => k)]);
  return [...newest, ...older.filter(([k]) => !touched.has(k))].slice(0, MAX_WITNESS);
}

/** `age(xmin) BETWEEN 0 AND age(X)`: the row was inserted or last updated by a transaction the reference snapshot did not see as done. */
function newerThan(xmin32: string): string {
  return ` WHERE age(${ROW_ALIAS}.xmin) BETWEEN 0 AND age('${xmin32}'::xid)`;
}

/** Rows newer than the reference's horizon: key → md5 and xmin; null when more than MAX_KEYS changed. */
async function newerRows(
  client: pg.Client,
  t: TableInfo & { key: KeyColumn[] },
  xmin32: string,
  kind: TableHash,
): Promise<Map<string, { md5: string; xmin: string }> | null> {
  const changed = new Map<string, { md5: string; xmin: string }>();
  let tooMany = false;
  const newerSql = selectSql({ ...t, columns: [] }, [...t.key.map(keyExpr), rowHashExpr(kind), `${ROW_ALIAS}.xmin`], newerThan(xmin32));
  for await (const lines of readLines(copyStream(client, newerSql) as AsyncIterable<Buffer>)) {
    if (tooMany) continue;
    for (const line of lines) {
      const x = line.lastIndexOf('\t');
      changed.set(own(line.slice(0, x - 33)), { md5: own(line.slice(x - 32, x)), xmin: own(line.slice(x + 1)) });
    }
    if (changed.size > MAX_KEYS) tooMany = true;
  }
  return tooMany ? null : changed;
}

/** The keyed hashes of a chunk's new and changed rows, in one cipher call, written into their places in `out`. */
function fillKeyedHashes(keyer: RowKeyer, fresh: ReadonlyArray<{ at: number; key: string; md5: string }>, out: string[]): void {
  const md5s = Buffer.alloc(fresh.length * 16);
  fresh.forEach((f, i) => md5s.write(f.md5, i * 16, 16, 'hex'));
  const keyed = keyer.keyed(md5s, fresh.length);
  fresh.forEach((f, i) => {
    out[f.at] = `${f.key}\t${keyed[i]}`;
  });
}

/** Why a finished merge cannot be trusted (the end of "its delta state for TABLE …"), or null. */
function mergeMismatch(keysFileAsRecorded: boolean, everyChangeFound: boolean): string | null {
  if (!keysFileAsRecorded) return 'is not the one recorded (the keys file changed)';
  if (!everyChangeFound) return 'does not agree with the table (a changed row was not found by its key)';
  return null;
}

/**
 * Finds what changed in a keyed table without reading its unchanged rows: the rows whose xmin is
 * newer than the reference's snapshot (a sequential scan that hashes only those), merged in key
 * order with the reference's keys (the primary key's index) to find the rows that went. The next
 * state's keys file is written as the merge goes; the table's hash is updated from the old
 * versions' hashes (decrypted from the state) and the new ones'. Throws StateMismatchError when a
 * key is new yet its row is not newer, or a keys file is not the one recorded.
 */
async function diffTable(
  client: pg.Client,
  t: TableInfo & { key: KeyColumn[] },
  st: StateTable,
  state: { dir: string },
  next: NextState,
  n: number,
  xmin32: string,
  kind: TableHash,
): Promise<Changes | null> {
  const keyer = new RowKeyer(next.key);
  await checkWitness(client, t, st, xmin32);
  const changed = await newerRows(client, t, xmin32, kind);
  if (changed === null) return null;

  const cmp = keyComparator(t.key);
  const old = new StateReader(`${state.dir}/${st.file}`);
  await old.open();
  const writer = next.keysFile(n);
  const sum = new RowHashSum({ rows: st.rows, hash: st.hash });
  const deleted: string[] = [];
  const copied: string[] = [];
  const written: Array<[string, string]> = [];
  // old.advance() returns a promise only when it reads a chunk, and only that is awaited: an await per row costs a microtask each.
  const gone = (line: string): void => {
    const [k, h] = splitStateLine(line);
    deleted.push(own(k));
    sum.remove(keyer.md5Of(h));
  };
  const keysSql = `SELECT ${t.key.map(keyExpr).join(', ')} FROM ONLY ${qualified(t.schema, t.table)} ${ROW_ALIAS} ORDER BY ${t.key.map(orderExpr).join(', ')}`;
  for await (const lines of readLines(copyStream(client, keysSql) as AsyncIterable<Buffer>)) {
    // The next state's lines for this chunk: unchanged ones copied as they are, new hashes filled in after.
    const out: string[] = [];
    const fresh: Array<{ at: number; key: string; md5: string }> = [];
    for (const k of lines) {
      let line = old.line();
      let oldKey = line === null ? null : splitStateLine(line)[0];
      while (line !== null && cmp(oldKey!, k) < 0) {
        gone(line);
        const reading = old.advance();
        if (reading) await reading;
        line = old.line();
        oldKey = line === null ? null : splitStateLine(line)[0];
      }
      const md5 = changed.get(k)?.md5;
      if (line !== null && oldKey === k) {
        if (md5 === undefined) out.push(line);
        else {
          sum.remove(keyer.md5Of(splitStateLine(line)[1]));
          deleted.push(own(k));
        }
        const reading = old.advance();
        if (reading) await reading;
      } else if (md5 === undefined) {
        throw new StateMismatchError(
          `its delta state for ${qualified(t.schema, t.table)} lacks a row that did not change since (the state is not the reference's)`,
        );
      }
      if (md5 !== undefined) {
        fresh.push({ at: out.length, key: k, md5 });
        out.push('');
        sum.add(md5);
        const key = own(k);
        copied.push(key);
        written.push([key, changed.get(k)!.xmin]);
      }
    }
    if (fresh.length > 0) fillKeyedHashes(keyer, fresh, out);
    if (out.length > 0) await writer.text(`${out.join('\n')}\n`);
  }
  for (let line = old.line(); line !== null; line = old.line()) {
    gone(line);
    const reading = old.advance();
    if (reading) await reading;
  }
  const sha256 = await writer.close();
  const mismatch = mergeMismatch(old.sha256() === st.sha256, copied.length === changed.size);
  if (mismatch) throw new StateMismatchError(`its delta state for ${qualified(t.schema, t.table)} ${mismatch}`);
  return { deleted, copied, sum, keysFile: { name: writer.name, sha256 }, witness: nextWitness(written, st.witness, deleted, xmin32) };
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
  // An integer key: one index lookup per value. Any other (an array type would be flattened by ARRAY[…]): a join on VALUES.
  if (key.length === 1 && key[0]!.int) {
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

/**
 * Whether a table without a primary key is to be copied whole: a row is newer than the reference,
 * or rows went (the count dropped). Its full hash is read in the same scan: rows that differ from
 * the state's though none is newer and none went cannot come from a history the state describes
 * (the server was rolled back, or the state edited), and no witness row could show it: a base.
 */
async function keylessChanged(client: pg.Client, t: TableInfo, st: StateTable, xmin32: string, kind: TableHash): Promise<boolean> {
  const r = (
    await client.query<{ rows: string; changed: string; hash: string }>(
      `SELECT count(*) AS rows, count(*) FILTER (${newerThan(xmin32).trim()}) AS changed, ${tableHashExpr(kind)} AS hash
       FROM ONLY ${qualified(t.schema, t.table)} ${ROW_ALIAS}`,
    )
  ).rows[0]!;
  const rows = Number(r.rows);
  if (Number(r.changed) > 0 || rows < st.rows) return true;
  if (rows === st.rows && r.hash === st.hash) return false;
  throw new StateMismatchError(
    `the rows of ${qualified(t.schema, t.table)} are not the ones its delta state records, though none is newer (the server was rolled back: a promoted replica, or a data directory restored from a copy)`,
  );
}

/**
 * A delta's file against `state` (the reference snapshot's, taken at txid `xmin`): per table what
 * changed, then the sequences. Throws StateMismatchError when the state turns out not to match.
 */
export async function* deltaRows(
  client: pg.Client,
  catalog: Catalog,
  state: { state: DeltaState; dir: string },
  next: NextState,
  outcomes: TableOutcome[],
): AsyncGenerator<Buffer> {
  const xmin32 = (BigInt(state.state.xmin) % 2n ** 32n).toString();
  yield Buffer.from(SQL_FILE_HEADER);
  for (const [i, t] of catalog.tables.entries()) {
    const st = state.state.tables[i]!;
    const h = hashOf(catalog, t);
    if (!t.key) {
      if (await keylessChanged(client, t, st, xmin32, h)) yield* tableRows(client, t, i, next, outcomes, true, h);
      else
        outcomes.push({
          manifest: { schema: t.schema, table: t.table, rows: st.rows, hash: st.hash, key: null, ...recordFlag(t) },
          state: st,
        });
      continue;
    }
    const changes = await diffTable(client, { ...t, key: t.key }, st, state, next, i, xmin32, h);
    if (!changes) {
      yield* tableRows(client, t, i, next, outcomes, true, h);
      continue;
    }
    const counts = { deleted: changes.deleted.length, copied: changes.copied.length };
    if (changes.deleted.length > MAX_KEYS) {
      // Too many keys to list: the table whole is smaller and simpler (state and hash are right already).
      yield Buffer.from(`TRUNCATE ONLY ${qualified(t.schema, t.table)};\n${copyHeader(t)}`);
      for await (const chunk of copyStream(client, selectSql(t, [])) as AsyncIterable<Buffer>) yield chunk;
      yield Buffer.from(COPY_END);
      counts.copied = changes.sum.rows;
    } else {
      if (changes.deleted.length > 0) yield Buffer.from(deleteSql({ ...t, key: t.key }, changes.deleted));
      if (changes.copied.length > 0) {
        yield Buffer.from(copyHeader(t));
        for (let j = 0; j < changes.copied.length; j += FETCH_BATCH) {
          const where = keysWhere(t.key, changes.copied.slice(j, j + FETCH_BATCH));
          for await (const chunk of copyStream(client, selectSql(t, [], where)) as AsyncIterable<Buffer>) yield chunk;
        }
        yield Buffer.from(COPY_END);
      }
    }
    outcomes.push(outcome(t, changes.sum, changes.keysFile, counts, changes.witness));
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
