/**
 * The SQL that delta-mode capture and every restore of a chain (permafrost restore, verify, the
 * vault's restore.sh) share: the session settings rows are read and hashed under, and the per-table
 * count + content hash that the manifest records and a restored copy must reproduce.
 *
 * A row's hash is md5 of the row's text form (`tbl::text`), which depends on the session's output
 * settings; so every session that hashes or writes COPY data sets exactly these first.
 */

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

/** 2^64: a table's hash is the sum of its rows' first 64 md5 bits, mod 2^64 (order-free, streamable). */
const TWO_64 = '18446744073709551616';

/**
 * One row per table: `rows` (exact count) and `hash` (decimal). The capture computes the same
 * value from each row's md5 (RowHashSum); a restore runs this on its copy before the swap.
 */
export function tableHashSql(schema: string, table: string): string {
  return `SELECT count(*) AS rows, ${TABLE_HASH_EXPR} AS hash FROM ONLY ${qualified(schema, table)} ${ROW_ALIAS}`;
}

/** The aggregate tableHashSql's `hash` is (over rows aliased ROW_ALIAS), for queries that read more at once. */
export const TABLE_HASH_EXPR = `mod(mod(coalesce(sum(('x' || left(md5(${ROW_ALIAS}::text), 16))::bit(64)::bigint::numeric), 0), ${TWO_64}) + ${TWO_64}, ${TWO_64})::text`;

/** The hash tableHashSql computes, summed in this process from each row's md5 (32 hex digits). */
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
