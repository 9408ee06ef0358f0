/**
 * Issue 22 item 1: a full snapshot restored as gpg decrypts it (recover/stream-restore.ts), from a
 * private copy of its ciphertext checked against the manifest first. The streamed path is told
 * apart by its "restore post-data" phase line; an archive it does not stream (large objects) takes
 * the file path. A gpg wrapper on PATH (a fake only in what it does to the vault file around the
 * real gpg) records every decryption and can rewrite the vault's ciphertext the moment the
 * database part's decryption starts.
 */
import { chmodSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../../src/vault/manifest.js';
import { errorSentence, makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';

const cluster = clusterPerFile();
let ws: Workspace;
afterEach(() => ws?.cleanup());

/** A database shaped unlike Mastodon's: odd names, an empty table, a partitioned table, a table without columns, xml, escapes, a sequence, a matview, keys. */
const SHAPED_SQL = `
CREATE SCHEMA "Ünï ""q"" schema";
CREATE TABLE "Ünï ""q"" schema"."tâble ""x""" (id int PRIMARY KEY, "wéird col" text, "x""y" jsonb);
INSERT INTO "Ünï ""q"" schema"."tâble ""x""" SELECT g, 'ü ' || g, jsonb_build_object('k', g) FROM generate_series(1, 1000) g;
CREATE TABLE empty_one (id int PRIMARY KEY, v text);
CREATE TABLE nocols ();
INSERT INTO nocols SELECT FROM generate_series(1, 3);
CREATE TABLE parted (id int, region text, v text) PARTITION BY LIST (region);
CREATE TABLE parted_eu PARTITION OF parted FOR VALUES IN ('eu');
CREATE TABLE parted_us PARTITION OF parted FOR VALUES IN ('us');
CREATE INDEX parted_id ON parted (id);
INSERT INTO parted SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, md5(g::text) FROM generate_series(1, 2000) g;
CREATE SEQUENCE counter START 5;
SELECT setval('counter', 4242);
CREATE TABLE xmlt (x xml);
INSERT INTO xmlt VALUES ('<a>1</a>'), ('just text, no element');
CREATE TABLE esc (t text);
INSERT INTO esc VALUES (E'a\\\\.b'), (E'\\\\.'), (E'line1\\nline2'), (E'tab\\there'), (E'\\\\'), ('');
-- ~7 MB: several pieces, loaded on both sessions.
CREATE TABLE big (id bigint PRIMARY KEY, body text, ref int REFERENCES "Ünï ""q"" schema"."tâble ""x""" (id));
INSERT INTO big SELECT g, repeat(md5(g::text), 3), 1 + g % 1000 FROM generate_series(1, 60000) g;
CREATE INDEX big_body ON big (body);
CREATE MATERIALIZED VIEW mv AS SELECT count(*) AS n, sum(id) AS s FROM big;
`;

/** Every table's kind and rows (count and md5 of the sorted rows), the sequence, the matview, the indexes and constraints. */
function contents(db: string): string {
  return cluster.get().psql(
    db,
    `SELECT json_build_object(
       'tables', (SELECT json_object_agg(n.nspname || '.' || c.relname, c.relkind::text || ' ' ||
           (xpath('/row/x/text()', query_to_xml(format('SELECT count(*) || '':'' || coalesce(md5(string_agg(t::text, ''|'' ORDER BY t::text)), '''') AS x FROM ONLY %I.%I t', n.nspname, c.relname), false, true, '')))[1]::text
           ORDER BY n.nspname, c.relname)
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'),
       'sequence', (SELECT last_value FROM counter),
       'indexes', (SELECT json_agg(indexdef ORDER BY indexdef) FROM pg_indexes WHERE schemaname NOT IN ('pg_catalog')),
       'constraints', (SELECT json_agg(conname || ' ' || contype::text ORDER BY conname) FROM pg_constraint WHERE connamespace <> 'pg_catalog'::regnamespace))`,
  );
}

async function backup(): Promise<Manifest> {
  const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Manifest;
}

const databaseExists = (name: string): boolean =>
  cluster.get().psql('postgres', `SELECT 1 FROM pg_database WHERE datname = '${name}'`).trim() === '1';

/** A gpg on PATH that logs its arguments and, with REWRITE set, overwrites that file in place (same size) as the database part's decryption starts. */
function gpgWrapper(): { env: NodeJS.ProcessEnv; log: () => string[] } {
  const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-gpgwrap-'));
  const real = (process.env.PATH ?? '')
    .split(':')
    .map((d) => path.join(d, 'gpg'))
    .find((p) => {
      try {
        return statSync(p).isFile();
      } catch {
        return false;
      }
    })!;
  const logFile = path.join(dir, 'log');
  writeFileSync(logFile, '');
  writeFileSync(
    path.join(dir, 'gpg'),
    `#!/bin/sh
last=""; for a in "$@"; do last="$a"; done
echo "decrypt-input $last" >> "${logFile}"
case "$last" in
  -|*database.pgdump.gpg)
    if [ -n "$REWRITE" ] && [ ! -e "$REWRITE.done" ]; then
      head -c "$(stat -c %s "$REWRITE")" /dev/urandom | dd of="$REWRITE" conv=notrunc status=none
      : > "$REWRITE.done"
    fi;;
esac
exec "${real}" "$@"
`,
  );
  chmodSync(path.join(dir, 'gpg'), 0o755);
  return {
    env: { PATH: `${dir}:${process.env.PATH ?? ''}` },
    log: () =>
      readFileSync(logFile, 'utf8')
        .split('\n')
        .filter((l) => l.includes('--decrypt') || l.startsWith('decrypt-input')),
  };
}

describe('a full snapshot is restored as it is decrypted', () => {
  beforeAll(() => {
    cluster.createDb('shaped', false);
    cluster.get().psql('shaped', SHAPED_SQL);
  });

  it('a database shaped unlike Mastodon’s is streamed (no plaintext archive) and restored equal to the source', async () => {
    ws = makeWorkspace(cluster.get(), 'shaped');
    const m = await backup();
    const r = await runCli(['--config', ws.configFile, 'restore', m.id, '--database', 'shaped_copy', '--jobs', '2']);
    expect(r.code, r.stderr).toBe(0);
    // The streamed path: pre-data, rows, then what post-data was left; the file path has no such phase.
    expect(r.stderr).toContain('restore post-data');
    expect(contents('shaped_copy')).toEqual(contents('shaped'));
    expect(databaseExists('shaped_copy_incoming')).toBe(false);
    expect(readdirSync(ws.dir).filter((n) => n.startsWith('permafrost-'))).toEqual([]);
  }, 180_000);

  it('large objects take the file path and are restored', async () => {
    cluster.createDb('with_lo');
    const oid = cluster.get().psql('with_lo', `SELECT lo_from_bytea(0, 'large object bytes')`).trim();
    ws = makeWorkspace(cluster.get(), 'with_lo');
    const m = await backup();
    const r = await runCli(['--config', ws.configFile, 'restore', m.id, '--database', 'with_lo_copy', '--jobs', '2']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('restore post-data');
    expect(cluster.get().psql('with_lo_copy', `SELECT convert_from(lo_get(${oid}), 'UTF8')`).trim()).toBe('large object bytes');
    expect(cluster.get().psql('with_lo_copy', 'SELECT count(*) FROM accounts').trim()).toBe(
      cluster.get().psql('with_lo', 'SELECT count(*) FROM accounts').trim(),
    );
  }, 180_000);

  it('the vault’s ciphertext rewritten in place as the database part is decrypted changes nothing: the checked private copy is what is decrypted', async () => {
    ws = makeWorkspace(cluster.get(), 'shaped');
    const m = await backup();
    const file = path.join(ws.vault, m.id, 'database.pgdump.gpg');
    const gpg = gpgWrapper();
    const r = await runCli(['--config', ws.configFile, 'restore', m.id, '--database', 'shaped_rewritten'], {
      env: { ...gpg.env, REWRITE: file },
    });
    // The rewrite happened (the vault's file no longer matches), and the restore did not see it.
    expect(readdirSync(path.dirname(file))).toContain('database.pgdump.gpg.done');
    expect(r.code, r.stderr).toBe(0);
    expect(contents('shaped_rewritten')).toEqual(contents('shaped'));
  }, 180_000);

  it('a damaged ciphertext fails before gpg or any SQL of the archive runs: exit 3, the sentence, no _incoming', async () => {
    ws = makeWorkspace(cluster.get(), 'shaped');
    const m = await backup();
    const file = path.join(ws.vault, m.id, 'database.pgdump.gpg');
    const buf = readFileSync(file);
    const at = Math.floor(buf.length / 2);
    buf[at] = buf[at]! ^ 0x01;
    writeFileSync(file, buf);
    const gpg = gpgWrapper();
    const r = await runCli(['--config', ws.configFile, 'restore', m.id, '--database', 'shaped_damaged'], { env: gpg.env });
    expect(r.code, r.stderr).toBe(3);
    expect(errorSentence(r.stderr)).toBe(
      `Snapshot ${m.id} failed its integrity check: database.pgdump.gpg does not match the SHA-256 in the manifest (tampered or truncated); use another snapshot.`,
    );
    // gpg ran for the roles part only: the database part was never decrypted.
    expect(gpg.log().filter((l) => /decrypt-input (-|\S*database\.pgdump\.gpg)$/.test(l))).toEqual([]);
    expect(databaseExists('shaped_damaged')).toBe(false);
    expect(databaseExists('shaped_damaged_incoming')).toBe(false);
    expect(readdirSync(ws.dir).filter((n) => n.startsWith('permafrost-'))).toEqual([]);
  }, 180_000);
});
