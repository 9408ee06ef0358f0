import type { PgCluster } from './postgres.js';

/**
 * A comparable description of a database's contents: per table and materialized view the row
 * count and an md5 over its ordered rows, sequence values, functions and indexes.
 */
export function fingerprint(pg: PgCluster, db: string): Record<string, string> {
  // One psql session for the whole description (\gexec runs the generated per-relation query for each
  // relation): a psql and a server backend started per relation cost more than the queries.
  const tab = 'chr(9)';
  const out = pg.psql(
    db,
    `SELECT format($q$SELECT %L || ${tab} || count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM %s t$q$, 'rows:' || rel, rel)
       FROM (SELECT format('%I.%I', n.nspname, c.relname) AS rel FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r','m') AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%'
              ORDER BY 1) r
     \\gexec
     SELECT 'sequences' || ${tab} || coalesce((SELECT string_agg(schemaname || '.' || sequencename || '=' || coalesce(last_value::text, 'null'), ',' ORDER BY sequencename) FROM pg_sequences), '');
     SELECT 'functions' || ${tab} || coalesce((SELECT string_agg(p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')=' || md5(pg_get_functiondef(p.oid)), ',' ORDER BY p.proname)
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'), '');
     SELECT 'indexes' || ${tab} || coalesce((SELECT string_agg(indexdef, ';' ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'public'), '');`,
  );
  const fp: Record<string, string> = {};
  for (const line of out.split('\n').filter(Boolean)) {
    const at = line.indexOf('\t');
    if (at < 0) throw new Error(`fingerprint: unexpected line from psql: ${line}`);
    fp[line.slice(0, at)] = line.slice(at + 1).trim();
  }
  return fp;
}

/**
 * Who owns what and who may do what in `db`, by role name (OIDs differ between clusters): the
 * database's owner, encoding and locale; owner and ACL of every schema, relation and function
 * outside the system schemas; default ACLs; and each role they name with its attributes, password
 * hash and memberships.
 */
export function ownership(pg: PgCluster, db: string): Record<string, string> {
  const q = (sql: string): string => pg.psql(db, sql).trim();
  // pg_temp_N stays in the catalog once a session made a temp table there (a delta's key tables): scratch, never dumped.
  const userNs = `n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'`;
  const roles = q(
    `SELECT string_agg(DISTINCT r, ',' ORDER BY r) FROM (
       SELECT pg_get_userbyid(datdba) AS r FROM pg_database WHERE datname = current_database()
       UNION SELECT pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${userNs}
       UNION SELECT pg_get_userbyid(n.nspowner) FROM pg_namespace n WHERE ${userNs}
       UNION SELECT pg_get_userbyid(a.grantee) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a WHERE ${userNs} AND a.grantee <> 0
       UNION SELECT pg_get_userbyid(defaclrole) FROM pg_default_acl) x`,
  );
  return {
    database: q(
      `SELECT pg_get_userbyid(datdba) || ' ' || pg_encoding_to_char(encoding) || ' ' || datcollate || ' ' || datctype FROM pg_database WHERE datname = current_database()`,
    ),
    schemas: q(
      `SELECT string_agg(nspname || '=' || pg_get_userbyid(nspowner) || ' ' || coalesce(nspacl::text, ''), ';' ORDER BY nspname) FROM pg_namespace n WHERE ${userNs}`,
    ),
    relations: q(
      `SELECT string_agg(n.nspname || '.' || c.relname || ':' || c.relkind::text || '=' || pg_get_userbyid(c.relowner) || ' ' || coalesce(c.relacl::text, ''), ';' ORDER BY n.nspname, c.relname)
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${userNs}`,
    ),
    functions: q(
      `SELECT string_agg(p.proname || '=' || pg_get_userbyid(p.proowner) || ' ' || coalesce(p.proacl::text, ''), ';' ORDER BY p.proname)
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE ${userNs}`,
    ),
    defaultAcls: q(
      `SELECT coalesce(string_agg(pg_get_userbyid(defaclrole) || ' ' || coalesce(n.nspname, '*') || ' ' || defaclobjtype::text || ' ' || defaclacl::text, ';' ORDER BY 1), '')
         FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace`,
    ),
    roles: q(
      `SELECT string_agg(rolname || ' super=' || rolsuper || ' login=' || rolcanlogin || ' createdb=' || rolcreatedb || ' inherit=' || rolinherit
           || ' password=' || coalesce(md5(rolpassword), 'none')
           || ' in=' || coalesce((SELECT string_agg(g.rolname, ',' ORDER BY g.rolname) FROM pg_auth_members m JOIN pg_authid g ON g.oid = m.roleid WHERE m.member = a.oid), ''),
         ';' ORDER BY rolname)
         FROM pg_authid a WHERE rolname = ANY(string_to_array('${roles}', ','))`,
    ),
  };
}
