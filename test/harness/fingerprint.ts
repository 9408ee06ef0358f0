import type { PgCluster } from './postgres.js';

/**
 * A comparable description of a database's contents: per table and materialized view the row
 * count and an md5 over its ordered rows, sequence values, functions and indexes.
 */
export function fingerprint(pg: PgCluster, db: string): Record<string, string> {
  const relations = pg
    .psql(
      db,
      `SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r','m') AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%'
        ORDER BY 1`,
    )
    .split('\n')
    .filter(Boolean);
  const fp: Record<string, string> = {};
  for (const rel of relations) {
    fp[`rows:${rel}`] = pg
      .psql(db, `SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM ${rel} t`)
      .trim();
  }
  fp.sequences = pg
    .psql(
      db,
      `SELECT string_agg(schemaname || '.' || sequencename || '=' || coalesce(last_value::text, 'null'), ',' ORDER BY sequencename) FROM pg_sequences`,
    )
    .trim();
  fp.functions = pg
    .psql(
      db,
      `SELECT string_agg(p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')=' || md5(pg_get_functiondef(p.oid)), ',' ORDER BY p.proname)
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'`,
    )
    .trim();
  fp.indexes = pg.psql(db, `SELECT string_agg(indexdef, ';' ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'public'`).trim();
  return fp;
}
