import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkRdbFile, compareWithManifest, tocTablesMissing } from '../../../src/recover/verify.js';
import { pgRestoreListArgv, verifyRestoreArgv } from '../../../src/tools/postgres.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-rdb-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A real RDB file: a throwaway redis-server (no TCP, unix socket only) saves one key and exits. */
function realRdb(): string {
  const sock = path.join(dir, 'redis.sock');
  const r = spawnSync(
    'bash',
    [
      '-c',
      'redis-server --port 0 --unixsocket "$1" --dir "$2" --dbfilename dump.rdb --save "" --daemonize no & pid=$!; for i in $(seq 50); do [ -S "$1" ] && break; sleep 0.1; done; redis-cli -s "$1" SET k v >/dev/null && redis-cli -s "$1" SAVE >/dev/null; redis-cli -s "$1" SHUTDOWN NOSAVE >/dev/null 2>&1; wait $pid',
      'x',
      sock,
      dir,
    ],
    { encoding: 'utf8' },
  );
  expect(r.status, r.stderr).toBe(0);
  return path.join(dir, 'dump.rdb');
}

describe('Redis part check', () => {
  it('accepts an RDB written by a real redis-server and rejects damaged ones', async () => {
    const rdb = realRdb();
    const good = await checkRdbFile(rdb);
    expect(good.ok, good.detail).toBe(true);
    expect(good.detail).toMatch(/^RDB version \d+, \d+ bytes$/);

    const bytes = readFileSync(rdb);
    const truncated = path.join(dir, 'truncated.rdb');
    writeFileSync(truncated, bytes.subarray(0, bytes.length - 3));
    expect(await checkRdbFile(truncated)).toMatchObject({ ok: false, detail: 'the Redis part is truncated (no RDB end-of-file marker)' });

    const future = path.join(dir, 'future.rdb');
    writeFileSync(future, Buffer.concat([Buffer.from('REDIS0999', 'latin1'), bytes.subarray(9)]));
    expect(await checkRdbFile(future)).toMatchObject({ ok: false, detail: 'the Redis part has an implausible RDB version "0999"' });

    const text = path.join(dir, 'text.rdb');
    writeFileSync(text, 'SECRET_KEY_BASE=abc\nOTP_SECRET=def\n');
    expect(await checkRdbFile(text)).toMatchObject({ ok: false, detail: 'the Redis part is not an RDB file (no "REDIS" header)' });
  });
});

// As pg_restore --list prints them: names with spaces, a partition's TABLE ATTACH, a schema named DATA, a name with a line break.
const list = [
  ';',
  '; Archive created at 2026-11-26 09:00:00 UTC',
  '215; 1259 16386 TABLE public accounts postgres',
  '216; 1259 16385 SEQUENCE public accounts_id_seq postgres',
  '249; 1259 16607 TABLE ATTACH public parted_1 postgres',
  '248; 1259 16600 TABLE DATA foo postgres',
  '244; 1259 16574 TABLE Odd Schema parted 2 postgres',
  '239; 1259 16541 TABLE public new line postgres',
  '252; 1259 16628 TABLE public parted postgres',
  '3345; 0 0 TABLE ATTACH Odd Schema parted 2 postgres',
  '3412; 0 16386 TABLE DATA public accounts postgres',
  '3250; 1259 16420 INDEX public index_accounts_on_username_and_domain_lower postgres',
  '221; 1259 16430 MATERIALIZED VIEW public account_summaries postgres',
].join('\n');
const restored = [
  { schema: 'public', table: 'accounts' },
  { schema: 'ATTACH', table: 'public parted_1' },
  { schema: 'DATA', table: 'foo' },
  { schema: 'Odd Schema', table: 'parted 2' },
  { schema: 'public', table: 'new\nline' },
  { schema: 'public', table: 'parted' },
];

describe('archive table of contents', () => {
  it('matches every table entry (not TABLE DATA or TABLE ATTACH) against the restored tables, never splitting the text into names', () => {
    expect(tocTablesMissing(list, restored)).toEqual([]);
  });

  it('names the entries no restored table accounts for', () => {
    expect(tocTablesMissing(list, restored.slice(1, -1))).toEqual(['public accounts postgres', 'public parted postgres']);
    expect(tocTablesMissing(list, [...restored.slice(0, 3), { schema: 'Odd', table: 'Schema parted 2' }, ...restored.slice(4)])).toEqual(
      [],
    );
  });
});

describe('compareWithManifest', () => {
  const facts = { rowCounts: { accounts: 2 }, schemaMigration: '20260101000000' };
  const restoredFacts = (tables: Array<{ schema: string; table: string }>) => ({ facts, tables });

  it("finds each of the manifest's tables by its two names, which stay apart", () => {
    const tables = [
      { schema: 'a.b', table: 'c' },
      { schema: 'public', table: 'accounts' },
    ];
    const ok = compareWithManifest({ mastodon: facts, tables }, null, restoredFacts(tables));
    expect(ok.every((c) => c.ok)).toBe(true);
    expect(ok[0]).toEqual({ name: 'tables', ok: true, detail: 'all 2 tables of the manifest exist after restore' });
    // "a"."b.c" is another table than "a.b"."c", though both read a.b.c.
    const other = compareWithManifest({ mastodon: facts, tables }, null, restoredFacts([{ schema: 'a', table: 'b.c' }, tables[1]!]));
    expect(other[0]).toEqual({ name: 'tables', ok: false, detail: 'table "a.b"."c" of the manifest is missing after restore' });
    const tab = compareWithManifest({ mastodon: null, tables: [{ schema: 'it\'s "x"', table: 'ta\tb\nc' }] }, null, restoredFacts([]));
    expect(tab[0]!.detail).toBe('table "it\'s ""x"""."ta\\tb\\nc" of the manifest is missing after restore');
  });

  it('a manifest without tables (an older one) is compared with the archive: a missing entry is named', () => {
    const toc = { text: list, tables: 6 };
    expect(compareWithManifest({ mastodon: null }, toc, restoredFacts(restored))[0]).toEqual({
      name: 'tables',
      ok: true,
      detail: 'all 6 tables of the archive exist after restore',
    });
    expect(compareWithManifest({ mastodon: null }, toc, restoredFacts(restored.slice(0, 3)))[0]).toEqual({
      name: 'tables',
      ok: false,
      detail:
        'the archive\'s table entries "Odd Schema parted 2 postgres", "public new line postgres", "public parted postgres" (schema, name, owner) have no table after restore',
    });
  });
});

describe('pg_restore argv', () => {
  it('builds pg_restore argv without secrets and without --clean for the scratch database', () => {
    expect(pgRestoreListArgv({ binDir: '/usr/lib/postgresql/17/bin' }, '/tmp/x/db.pgdump')).toEqual([
      '/usr/lib/postgresql/17/bin/pg_restore',
      '--list',
      '/tmp/x/db.pgdump',
    ]);
    expect(verifyRestoreArgv({ host: '/run/pg', port: 5433, user: 'u' }, 'permafrost_verify_7', '/tmp/a', { jobs: 2 })).toEqual([
      'pg_restore',
      '--exit-on-error',
      '--no-owner',
      '--no-acl',
      '--no-subscriptions',
      '--no-password',
      '--jobs=2',
      '--host',
      '/run/pg',
      '--port',
      '5433',
      '--username',
      'u',
      '--dbname',
      'permafrost_verify_7',
      '/tmp/a',
    ]);
  });
});
