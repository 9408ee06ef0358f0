import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkRdbFile, parseTocTables } from '../../src/recover/verify.js';
import { pgRestoreListArgv, verifyRestoreArgv } from '../../src/tools/postgres.js';

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

describe('archive table of contents', () => {
  it('keeps TABLE entries and skips TABLE DATA, indexes and comments', () => {
    const list = [
      ';',
      '; Archive created at 2026-11-26 09:00:00 UTC',
      '215; 1259 16386 TABLE public accounts postgres',
      '216; 1259 16385 SEQUENCE public accounts_id_seq postgres',
      '3412; 0 16386 TABLE DATA public accounts postgres',
      '220; 1259 16400 TABLE public schema_migrations postgres',
      '3250; 1259 16420 INDEX public index_accounts_on_username_and_domain_lower postgres',
      '221; 1259 16430 MATERIALIZED VIEW public account_summaries postgres',
    ].join('\n');
    expect(parseTocTables(list)).toEqual([
      { schema: 'public', name: 'accounts' },
      { schema: 'public', name: 'schema_migrations' },
    ]);
  });

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
