/**
 * The SQL that delta-mode capture and every restore of a chain (permafrost restore, verify, the
 * vault's restore.sh) share: the session settings rows are read and hashed under, and the per-table
 * count + content hash that the manifest records and a restored copy must reproduce.
 *
 * A row's hash is a hash of the row's text form (`tbl::text`), which depends on the session's output
 * settings; so every session that hashes or writes COPY data sets exactly these first. Which hash
 * (RowHashKind) a chain uses is recorded in its manifests (chain.rowHash) and its delta state.
 */

import type { ROW_HASH_KINDS } from '../vault/manifest.js';

/** Session settings for reading, writing and hashing rows (the ones pg_dump sets, plus a fixed time zone). */
export const HASH_SESSION_SQL =
  "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; SET bytea_output = 'hex';";

/** The header of every rows/delta SQL file: the same settings, plus what psql needs to read COPY data back. */
export const SQL_FILE_HEADER = [
  'SET statement_timeout = 0;',
  'SET lock_timeout = 0;',
  "SET client_encoding = 'UTF8';",
  'SET standard_conforming_strings = on;',
  "SELECT pg_catalog.set_config('search_path', '', false);",
  HASH_SESSION_SQL,
  '',
].join('\n');

/** The alias rows are hashed under: unlikely as a column name, since a column would shadow the whole-row reference. */
export const ROW_ALIAS = '_pf_row';

/** `"schema"."table"`, quoted as PostgreSQL's quote_ident would (always quoted: names are data). */
export function qualified(schema: string, table: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(table)}`;
}

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** A string literal (standard_conforming_strings on). */
export function quoteLiteral(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

/**
 * How a row is hashed, one definition for capture, restore, verify and restore.sh:
 * - `md5`: the first 64 bits of md5(row::text). Every manifest made before chain.rowHash existed.
 * - `hashtext`: hashtextextended(row::text, 0), PostgreSQL's 64-bit hash of text (Jenkins' lookup3
 *   over the UTF-8 bytes): about half md5's server CPU. It is the hash of text columns in hash
 *   partitioning, so it cannot change between major versions (pg_upgrade keeps hash partitions);
 *   it exists from PostgreSQL 11 on. Its value depends on the byte order (src/common/hashfn.c
 *   reads words natively): every little-endian machine (x86-64, ARM64, ppc64le, RISC-V) computes
 *   the same, a big-endian one (s390x) another; HASHTEXT_PROBE tells them apart, and a capture on
 *   a server that fails it uses `md5`.
 * - `hashrecord` (PostgreSQL 14+): hash_record_extended(row, 0) for a table whose every column
 *   is of a RECORD_HASH_TYPES type (with a deterministic collation), the `hashtext` hash for any
 *   other table; which one, the manifest says per table (chain.tables[].hashRecord). It combines
 *   each column's own hash function (the ones hash partitioning uses, so just as stable) and
 *   never renders the row as text: half the server CPU of `hashtext` on Mastodon's statuses.
 * Neither is meant against a forger (a signed manifest is): the check catches a restore that
 * differs from the source, such as a delta that deletes or copies other rows than it should.
 */
export type RowHashKind = (typeof ROW_HASH_KINDS)[number];

/** A manifest's chain.rowHash: absent in a manifest made before it existed, which is md5. */
export function rowHashOf(chain: { rowHash?: RowHashKind | undefined }): RowHashKind {
  return chain.rowHash ?? 'md5';
}

/**
 * The column types (pg_type OIDs, fixed in every PostgreSQL release) whose hash function tells
 * apart every two values their text forms tell apart, as `hashrecord` needs: bool, bytea, int8,
 * int2, int4, text, inet, cidr, varchar, date, time, timestamp, timestamptz, uuid, and the arrays
 * of each (an array's hash combines its elements'; its bounds and dimensions are not hashed). Not
 * quite every two: int8, time, timestamp and timestamptz hash through hashint8extended, which folds
 * the value to 32 bits (low XOR high half) first, so values differing by the same bits in both
 * halves hash alike (test/e2e/delta/row-hash-rows.test.ts). Not numeric or the
 * floats (1.0 and 1.00, 0 and -0 hash alike), jsonb (its numbers are numerics), enums (their hash
 * is of an OID another database numbers otherwise), domains, composites, ranges, json, xml: a table
 * with any of those is hashed by its text. A new type here is a new kind (`hashrecord2`): a chain's
 * tables must keep the hash their base had.
 */
export const RECORD_HASH_TYPES = [
  16, 17, 20, 21, 23, 25, 869, 650, 1043, 1082, 1083, 1114, 1184, 2950, 1000, 1001, 1016, 1005, 1007, 1009, 1041, 651, 1015, 1182, 1183,
  1115, 1185, 2951,
] as const;

/**
 * Per table, whether every column (generated ones too: the row holds them) is of a
 * RECORD_HASH_TYPES type with no collation or a deterministic one; `$1`: the tables' OIDs.
 */
export const RECORD_HASHABLE_SQL = `SELECT a.attrelid::int AS oid,
  bool_and(a.atttypid = ANY('{${RECORD_HASH_TYPES.join(',')}}'::oid[]) AND (a.attcollation = 0 OR coalesce(co.collisdeterministic, false))) AS ok
  FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
  WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped GROUP BY a.attrelid`;

/**
 * `true` on a server whose hashtextextended is the one `hashtext` manifests record (the value every
 * little-endian build gives; PostgreSQL 11+), else false (or null: no such function).
 */
export const HASHTEXT_PROBE_SQL = `SELECT CASE WHEN to_regprocedure('pg_catalog.hashtextextended(text,bigint)') IS NULL THEN NULL
  ELSE pg_catalog.hashtextextended('permafrost', 0) = -3370357417224711864 END AS ok`;

/** `true` on a server that has hash_record_extended (PostgreSQL 14+) and passes HASHTEXT_PROBE_SQL. */
export const HASHRECORD_PROBE_SQL = `SELECT CASE WHEN to_regprocedure('pg_catalog.hash_record_extended(record,bigint)') IS NULL
  OR to_regprocedure('pg_catalog.hashtextextended(text,bigint)') IS NULL THEN NULL
  ELSE pg_catalog.hashtextextended('permafrost', 0) = -3370357417224711864 END AS ok`;

/** How one table's rows are hashed: the chain's kind, and (under `hashrecord`) whether this table by hash_record_extended. */
export interface TableHash {
  kind: RowHashKind;
  /** chain.tables[].hashRecord: meaningful under `hashrecord` only. */
  record?: boolean | undefined;
}

/**
 * A row's 64-bit hash (int8) under `hashtext` or `hashrecord`. hash_record_extended combines its
 * columns' hashes linearly (31 * result + column hash), so a sum of raw record hashes would be a sum
 * of per-column sums: rows that swap values between them would hash alike. Hashing the record hash
 * again (its text: 64 bits in, none folded) before the sum makes each row count as a whole.
 */
function int8Hash(h: TableHash): string {
  return h.kind === 'hashrecord' && h.record
    ? `hashtextextended(hash_record_extended(${ROW_ALIAS}, 0)::text, 0)`
    : `hashtextextended(${ROW_ALIAS}::text, 0)`;
}

/**
 * A row's hash as 32 hex digits, of which a table's hash sums the first 16 (RowHashSum): md5's, or
 * the 64-bit hash as 16 hex digits (two's complement) and 16 zeros.
 */
export function rowHashExpr(h: TableHash): string {
  return h.kind === 'md5' ? `md5(${ROW_ALIAS}::text)` : `lpad(to_hex(${int8Hash(h)}), 16, '0') || '0000000000000000'`;
}

/** 2^64: a table's hash is the sum of its rows' 64-bit hashes (unsigned), mod 2^64 (order-free, streamable). */
const TWO_64 = '18446744073709551616';

/**
 * One row per table: `rows` (exact count) and `hash` (decimal). The capture computes the same
 * value from each row's hash (RowHashSum); a restore runs this on its copy before the swap.
 */
export function tableHashSql(schema: string, table: string, h: TableHash): string {
  return `SELECT count(*) AS rows, ${tableHashExpr(h)} AS hash FROM ONLY ${qualified(schema, table)} ${ROW_ALIAS}`;
}

/**
 * The aggregate tableHashSql's `hash` is (over rows aliased ROW_ALIAS), for queries that read more
 * at once. `hashtext` sums the int8 hashes as they are (sum(int8) adds in 128 bits where the build
 * has them, numeric else: the same value), then takes the total mod 2^64: the sum of the unsigned
 * values mod 2^64, as RowHashSum adds them; `hashrecord` the same over its int8 hashes.
 */
export function tableHashExpr(h: TableHash): string {
  const sum = h.kind === 'md5' ? `sum(('x' || left(md5(${ROW_ALIAS}::text), 16))::bit(64)::bigint::numeric)` : `sum(${int8Hash(h)})`;
  return `mod(mod(coalesce(${sum}, 0), ${TWO_64}) + ${TWO_64}, ${TWO_64})::text`;
}

/** The hash tableHashSql computes, summed in this process from each row's hash (rowHashExpr's 32 hex digits). */
export class RowHashSum {
  private hi = 0;
  private lo = 0;
  private total: bigint;
  private pending = 0;
  rows: number;

  /** Starting from a table's recorded count and hash (a delta updates it row by row), or empty. */
  constructor(start: { rows: number; hash: string } = { rows: 0, hash: '0' }) {
    this.rows = start.rows;
    this.total = BigInt(start.hash);
  }

  /** Takes a row out again (deleted, or the old version of a changed one). */
  remove(md5hex: string): void {
    this.total = BigInt.asUintN(64, this.total - BigInt(`0x${md5hex.slice(0, 16)}`));
    this.rows--;
  }

  /** A row by its md5's raw bytes (`buf[at, at + 8)`, the first 64 bits), as add() takes its hex. */
  addBytes(buf: Buffer, at: number): void {
    this.hi += buf.readUInt32BE(at);
    this.lo += buf.readUInt32BE(at + 4);
    this.rows++;
    if (++this.pending === 1 << 20) this.fold();
  }

  add(md5hex: string): void {
    this.hi += Number.parseInt(md5hex.slice(0, 8), 16);
    this.lo += Number.parseInt(md5hex.slice(8, 16), 16);
    this.rows++;
    // Two 32-bit halves summed as doubles stay exact for 2^21 rows; fold them into the BigInt before that.
    if (++this.pending === 1 << 20) this.fold();
  }

  private fold(): void {
    this.total = BigInt.asUintN(64, this.total + (BigInt(this.hi) << 32n) + BigInt(this.lo));
    this.hi = 0;
    this.lo = 0;
    this.pending = 0;
  }

  /** The decimal value tableHashSql returns for the same rows. */
  value(): string {
    this.fold();
    return this.total.toString();
  }
}
