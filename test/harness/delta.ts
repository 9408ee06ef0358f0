import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { HASH_SESSION_SQL, tableHashSql, type RowHashKind } from '../../src/capture/delta-sql.js';
import type { Manifest } from '../../src/vault/manifest.js';
import { runCli, stockGpgDecrypt, type Workspace } from './env.js';
import { fingerprint } from './fingerprint.js';
import type { PgCluster } from './postgres.js';

/** Turns a fixture database into one for delta mode tests: tables with text, composite and no primary keys, TOASTed rows. */
export const DELTA_EXTRA_SQL = `
CREATE TABLE settings (var varchar PRIMARY KEY, value text, thing_type varchar);
CREATE TABLE account_pins (account_id bigint, target_account_id bigint, created_at timestamp NOT NULL DEFAULT now(), PRIMARY KEY (account_id, target_account_id));
CREATE TABLE statuses_tags (status_id bigint NOT NULL, tag_id bigint NOT NULL);
INSERT INTO settings VALUES ('site_title', 'Mastodon 🐘', NULL), ('it''s "quoted"', E'tab\\there\\nnewline\\\\back', 'x');
INSERT INTO account_pins (account_id, target_account_id) VALUES (1, 2), (1, 3), (2, 1);
INSERT INTO statuses_tags SELECT id, id % 7 FROM statuses WHERE id % 3 = 0;
UPDATE statuses SET text = repeat('long toot ', 2000) WHERE id = (SELECT min(id) FROM statuses);
CREATE TABLE signed_keys (id integer PRIMARY KEY, v text);
INSERT INTO signed_keys VALUES (-100, 'a'), (-5, 'b'), (0, 'c'), (7, 'd'), (2147483647, 'e'), (-2147483648, 'f');
CREATE TABLE uuid_keys (id uuid PRIMARY KEY, at date);
INSERT INTO uuid_keys VALUES ('00000000-0000-0000-0000-000000000001', '2020-01-01'), ('ffffffff-0000-0000-0000-000000000000', NULL), ('7fffffff-ffff-ffff-ffff-ffffffffffff', '1999-12-31');
`;

/** Changes to the extra tables: negative and extreme integer keys, uuid keys, in and out of order. */
export const DELTA_EXTRA_CHURN = `
DELETE FROM signed_keys WHERE id = -100; INSERT INTO signed_keys VALUES (-3, 'new'), (-2147483647, 'low');
UPDATE signed_keys SET v = 'changed' WHERE id IN (7, -2147483648);
DELETE FROM uuid_keys WHERE id = 'ffffffff-0000-0000-0000-000000000000';
INSERT INTO uuid_keys VALUES ('80000000-0000-0000-0000-000000000000', '2026-12-01');
UPDATE uuid_keys SET at = NULL WHERE id = '00000000-0000-0000-0000-000000000001';
`;

/** The snapshots a chain restore applies, base first (following `reference`). */
export function chainOf(vault: string, id: string): Manifest[] {
  const out: Manifest[] = [];
  let at: string | null = id;
  while (at) {
    const m = JSON.parse(readFileSync(path.join(vault, at, 'manifest.json'), 'utf8')) as Manifest;
    out.unshift(m);
    at = m.chain?.reference ?? null;
  }
  return out;
}

/**
 * Restores snapshot `id` of a delta-mode vault into the new database `target` with stock tools only,
 * in the order the design gives: base schema pre-data, base rows, each delta, base schema post-data.
 */
export function stockChainRestore(pg: PgCluster, ws: Workspace, id: string, target: string): void {
  const chain = chainOf(ws.vault, id);
  const work = path.join(ws.dir, `stock-${target}`);
  const gnupg = path.join(work, 'gnupg');
  const env = { ...process.env, PGHOST: pg.socketDir, PGPORT: String(pg.port), PGUSER: pg.user };
  const plain = (snap: string, file: string): string => {
    const out = path.join(work, `${snap}-${file}`.replace(/\.gpg$/, ''));
    const r = stockGpgDecrypt(ws.passFile, path.join(ws.vault, snap, file), out, gnupg);
    expect(r.status, r.stderr).toBe(0);
    return out;
  };
  const run = (bin: string, args: string[]): void => {
    const r = spawnSync(path.join(pg.binDir, bin), args, { encoding: 'utf8', env });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/ERROR/);
  };
  pg.psql('postgres', `CREATE DATABASE ${target}`);
  const schema = plain(chain[0]!.id, 'schema.pgdump.gpg');
  run('pg_restore', ['--section=pre-data', '--exit-on-error', '-d', target, schema]);
  for (const m of chain) {
    const file = m.chain!.kind === 'base' ? 'rows.sql.gpg' : 'delta.sql.gpg';
    run('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction', '-d', target, '-f', plain(m.id, file)]);
  }
  run('pg_restore', ['--section=post-data', '--exit-on-error', '-d', target, schema]);
  spawnSync('gpgconf', ['--kill', 'all'], { env: { ...process.env, GNUPGHOME: gnupg } });
  rmSync(work, { recursive: true, force: true });
}

/**
 * Recomputes the delta state's authentication code (`state.mac`: HMAC-SHA256 under the state's own
 * key over a label and state.json's bytes), as someone holding the key could after editing it: the
 * checks behind the code must then still find what was changed. Written from the format, not the code.
 */
export function resealDeltaState(vault: string): void {
  const dir = path.join(vault, '.permafrost-delta');
  const key = readFileSync(path.join(dir, 'key'));
  const mac = createHmac('sha256', key)
    .update('permafrost delta state v1\n')
    .update(readFileSync(path.join(dir, 'state.json')))
    .digest('hex');
  writeFileSync(path.join(dir, 'state.mac'), `${mac}\n`, { mode: 0o600 });
}

/** A PostgreSQL client program of the test cluster, which must succeed. */
function pgTool(pg: PgCluster, bin: string, args: string[]): void {
  const r = spawnSync(path.join(pg.binDir, bin), args, {
    encoding: 'utf8',
    env: { ...process.env, PGHOST: pg.socketDir, PGPORT: String(pg.port), PGUSER: pg.user },
  });
  expect(r.status, r.stderr).toBe(0);
}

/** A backup, and right after it (nothing changes in between) a plain `pg_dump -Fc` of the source to compare with. */
export async function backupAndDump(pg: PgCluster, ws: Workspace, db: string): Promise<{ manifest: Manifest; dump: string }> {
  const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
  expect(r.code, r.stderr).toBe(0);
  const manifest = JSON.parse(r.stdout) as Manifest;
  const dump = path.join(ws.dir, `${manifest.id}.pgdump`);
  pgTool(pg, 'pg_dump', ['-Fc', '-f', dump, db]);
  return { manifest, dump };
}

/** What a plain pg_restore of the dump gives: the fingerprint every restore of that snapshot must have. */
export function plainRestore(pg: PgCluster, dump: string, target: string): Record<string, string> {
  pg.psql('postgres', `CREATE DATABASE ${target}`);
  pgTool(pg, 'pg_restore', ['--exit-on-error', '-d', target, dump]);
  return fingerprint(pg, target);
}

/**
 * Each table's `rows|hash` on `db` by tableHashSql under `kind` (each table's hashRecord mark
 * followed), in the order given: what the manifest records for them. One psql session for all.
 */
export function tableHashes(
  pg: PgCluster,
  db: string,
  tables: ReadonlyArray<{ schema: string; table: string; hashRecord?: true }>,
  kind: RowHashKind,
): string[] {
  if (tables.length === 0) return [];
  const sql = [HASH_SESSION_SQL, ...tables.map((t) => `${tableHashSql(t.schema, t.table, { kind, record: t.hashRecord })};`)].join('\n');
  const lines = pg.psql(db, sql).split('\n').filter(Boolean);
  if (lines.length !== tables.length) throw new Error(`tableHashes: ${lines.length} lines from psql for ${tables.length} tables`);
  return lines;
}
