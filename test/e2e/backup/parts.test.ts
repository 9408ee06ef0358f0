import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Manifest } from '../../../src/vault/manifest.js';
import { errorSentence, makeWorkspace, runCli, startCli, stockGpgDecrypt, type Workspace } from '../../harness/env.js';
import { holdTableLock } from '../../harness/table-lock.js';
import { waitFor } from '../../harness/wait.js';
import { clusterPerFile } from '../../harness/suite.js';
import { destroyRedis, startRedis, type RedisServer } from '../../harness/redis.js';
import { spawnSync } from 'node:child_process';

const cluster = clusterPerFile('source');
let ws: Workspace;
const servers: RedisServer[] = [];

function redis(opts: { password?: string; rdb?: string; args?: string[] } = {}): RedisServer {
  const r = startRedis(opts);
  servers.push(r);
  return r;
}

afterEach(() => {
  ws?.cleanup();
  for (const r of servers.splice(0)) destroyRedis(r);
});

/** An .env.production with secrets, quotes and a few non-ASCII bytes, to check the bytes survive. */
function writeEnvFile(): { file: string; bytes: Buffer } {
  const file = path.join(ws.dir, '.env.production');
  const bytes = Buffer.concat([
    Buffer.from(`LOCAL_DOMAIN=example.social\nSECRET_KEY_BASE=${randomBytes(64).toString('hex')}\nOTP_SECRET="quoted value"\n# déjà vu\n`),
    randomBytes(7),
  ]);
  writeFileSync(file, bytes, { mode: 0o600 });
  return { file, bytes };
}

function fillRedis(r: RedisServer): void {
  r.cli('SET', 'feed:home:1', 'hello');
  r.cli('HSET', 'sidekiq:stats', 'processed', '42');
  r.cli('RPUSH', 'queue:default', 'job1', 'job2', 'job3');
  r.cli('SET', 'bin', randomBytes(32).toString('base64'));
}

const partials = (): string[] => readdirSync(ws.vault).filter((n) => n.startsWith('.partial-'));
const snapshots = (): string[] => readdirSync(ws.vault).filter((n) => /^\d{4}-/.test(n));

async function backup(): Promise<{ code: number | null; manifest?: Manifest; stderr: string }> {
  const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
  return { code: r.code, stderr: r.stderr, manifest: r.code === 0 ? (JSON.parse(r.stdout) as Manifest) : undefined };
}

describe('snapshot parts: database, Redis, secrets', () => {
  it('a snapshot holds three encrypted parts; Redis loads into a fresh server; secrets decrypt to the same bytes', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const r = redis({ password: 'redis pass with spaces' });
    fillRedis(r);
    const pwFile = path.join(ws.dir, 'redis.password');
    writeFileSync(pwFile, 'redis pass with spaces\n', { mode: 0o600 });
    const env = writeEnvFile();
    ws.writeConfig({ extra: { redis: { url: r.url, passwordFile: pwFile }, secrets: { file: env.file } } });

    const { code, manifest, stderr } = await backup();
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const dir = path.join(ws.vault, manifest!.id);
    expect(readdirSync(dir).sort()).toEqual([
      'database.pgdump.gpg',
      'env.production.gpg',
      'manifest.json',
      'redis.rdb.gpg',
      'roles.sql.gpg',
    ]);
    expect(manifest!.files.map((f) => [f.part, f.name])).toEqual([
      ['database', 'database.pgdump.gpg'],
      ['redis', 'redis.rdb.gpg'],
      ['secrets', 'env.production.gpg'],
      ['roles', 'roles.sql.gpg'],
    ]);
    // Encrypted on disk: no plaintext secret or RDB header in the stored files.
    expect(readFileSync(path.join(dir, 'env.production.gpg')).includes(env.bytes.subarray(0, 30))).toBe(false);
    expect(readFileSync(path.join(dir, 'redis.rdb.gpg')).includes(Buffer.from('REDIS0'))).toBe(false);

    // Stock gpg reads the Redis part; the RDB loads into a fresh redis-server with every key.
    const rdbDir = path.join(ws.dir, 'rdb');
    mkdirSync(rdbDir);
    const rdb = path.join(rdbDir, 'dump.rdb');
    const gpg = stockGpgDecrypt(ws.passFile, path.join(dir, 'redis.rdb.gpg'), rdb, path.join(ws.dir, 'gnupg'));
    expect(gpg.status, gpg.stderr).toBe(0);
    spawnSync('gpgconf', ['--kill', 'all'], { env: { ...process.env, GNUPGHOME: path.join(ws.dir, 'gnupg') } });
    expect(statSync(rdb).size).toBe(manifest!.files[1]!.plainBytes);
    const fresh = redis({ rdb });
    expect(fresh.cli('GET', 'feed:home:1').trim()).toBe('hello');
    expect(fresh.cli('HGET', 'sidekiq:stats', 'processed').trim()).toBe('42');
    expect(fresh.cli('LRANGE', 'queue:default', '0', '-1').trim().split('\n')).toEqual(['job1', 'job2', 'job3']);
    expect(fresh.cli('GET', 'bin').trim()).toBe(r.cli('GET', 'bin').trim());
    expect(fresh.cli('DBSIZE').trim()).toBe('4');

    // restore --redis/--secrets without --database: verified, mode 0600, never overwriting.
    const outRdb = path.join(ws.dir, 'restored.rdb');
    const outEnv = path.join(ws.dir, 'restored.env');
    const res = await runCli(['--config', ws.configFile, 'restore', 'latest', '--redis', outRdb, '--secrets', outEnv]);
    expect(res.stderr).toContain('restore: redis');
    expect(res.code).toBe(0);
    expect(readFileSync(outEnv).equals(env.bytes)).toBe(true);
    expect(readFileSync(outRdb).equals(readFileSync(rdb))).toBe(true);
    expect(statSync(outEnv).mode & 0o777).toBe(0o600);
    expect(statSync(outRdb).mode & 0o777).toBe(0o600);
    expect(res.stdout).toMatch(/systemctl stop mastodon-web/);
    expect(res.stdout).toMatch(/tootctl media refresh/);
    expect(readdirSync(ws.dir).filter((n) => n.startsWith('permafrost-'))).toEqual([]);

    // A retry finds the identical file in place and counts it as done (issue 10 item 6); a different one is refused.
    const again = await runCli(['--config', ws.configFile, 'restore', 'latest', '--secrets', outEnv]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('already in place (identical)');
    writeFileSync(outEnv, 'other\n', { mode: 0o600 });
    const other = await runCli(['--config', ws.configFile, 'restore', 'latest', '--secrets', outEnv]);
    expect(other.code).toBe(2);
    expect(errorSentence(other.stderr)).toMatch(/already exists with other contents; .* pass --force to replace it\.$/);
    expect(readFileSync(outEnv, 'utf8')).toBe('other\n');
  });

  it('a Redis that writes its RDB to disk before sending it (repl-diskless-sync no) gives the same keys', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const r = redis({ args: ['--repl-diskless-sync', 'no'] });
    fillRedis(r);
    ws.writeConfig({ extra: { redis: { url: r.url } } });
    const { code, manifest, stderr } = await backup();
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const out = path.join(ws.dir, 'rdb', 'dump.rdb');
    mkdirSync(path.dirname(out));
    const res = await runCli(['--config', ws.configFile, 'restore', manifest!.id, '--redis', out]);
    expect(res.code, res.stderr).toBe(0);
    const fresh = redis({ rdb: out });
    expect(fresh.cli('DBSIZE').trim()).toBe('4');
    expect(fresh.cli('LRANGE', 'queue:default', '0', '-1').trim().split('\n')).toEqual(['job1', 'job2', 'job3']);
  });

  it('Redis is asked for its RDB before the capture session opens: its sync delay runs while the session waits', async () => {
    const pg = cluster.get();
    ws = makeWorkspace(pg, 'source');
    const r = redis();
    fillRedis(r);
    ws.writeConfig({ extra: { redis: { url: r.url } } });
    // The capture session counts accounts' rows (pg_dump, started meanwhile, waits too); while this lock is held it cannot finish.
    const lock = await holdTableLock(pg, 'source', 'accounts');
    const run = startCli(['--config', ws.configFile, 'backup', '--json']);
    const fullSyncs = (): number => Number(/^sync_full:(\d+)/m.exec(r.cli('INFO', 'stats'))?.[1] ?? 0);
    const sessionWaits = (): boolean =>
      pg
        .psql('source', `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%count(*)%accounts%'`)
        .trim() === '1';
    try {
      await waitFor('the capture session to wait for the lock', sessionWaits, 15_000);
      await waitFor('redis-cli to ask Redis for its RDB while the session waits', () => fullSyncs() >= 1, 15_000);
      expect(sessionWaits()).toBe(true);
    } finally {
      await lock.release();
    }
    const done = await run.result;
    expect(done.code, done.stderr).toBe(0);
    const manifest = JSON.parse(done.stdout) as Manifest;
    expect(manifest.files.map((f) => f.part).sort()).toEqual(['database', 'redis', 'roles']);
  });

  it('a redis-cli older than 7 (fake executable) is refused before it runs, so it cannot write a plaintext "-" file', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const r = redis();
    const log = path.join(ws.dir, 'calls.log');
    const fake = path.join(ws.dir, 'redis-cli');
    writeFileSync(fake, `#!/bin/sh\necho "$@" >> ${log}\n[ "$1" = --version ] && echo "redis-cli 6.0.16"\nexit 0\n`, { mode: 0o755 });
    ws.writeConfig({ extra: { redis: { url: r.url, cli: fake } } });
    const { code, stderr } = await backup();
    expect(code).toBe(1);
    expect(errorSentence(stderr)).toMatch(
      /without its redis part: Redis part failed: .*redis-cli is version 6\.0, which cannot stream an RDB into a pipe; install redis-cli 7 or newer/,
    );
    expect(readFileSync(log, 'utf8')).toBe('--version\n');
    expect(partials()).toEqual([]);
    const doctor = await runCli(['--config', ws.configFile, 'doctor']);
    expect(doctor.code).toBe(1);
    expect(doctor.stdout).toMatch(/^FAIL  redis: .*version 6\.0.*— fix: install redis-tools 7 or newer/m);
  });

  it('Redis down: the database dump is kept, the failed part is recorded and listed, and the run exits 1 naming Redis', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const r = redis();
    r.stop();
    ws.writeConfig({ extra: { redis: { url: r.url } } });
    const { code, stderr } = await backup();
    expect(code).toBe(1);
    expect(errorSentence(stderr)).toMatch(
      /^Snapshot \S+ was written with the database but without its redis part: Redis part failed: .*unix:\/\/.*Could not connect.*; check redis\.url.*redis\.optional: true\.$/,
    );
    expect(partials()).toEqual([]);
    const [id] = snapshots();
    expect(readdirSync(path.join(ws.vault, id!)).sort()).toEqual(['database.pgdump.gpg', 'manifest.json', 'roles.sql.gpg']);
    const manifest = JSON.parse(readFileSync(path.join(ws.vault, id!, 'manifest.json'), 'utf8')) as Manifest;
    expect(manifest.files.map((f) => f.part)).toEqual(['database', 'roles']);
    expect(manifest.failed).toEqual([
      { part: 'redis', error: expect.stringMatching(/^Redis part failed: .*Could not connect/), optional: false },
    ]);
    const list = await runCli(['--config', ws.configFile, 'list']);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`^${id}\t.*\tdatabase,roles, redis FAILED\tpassphrase$`, 'm'));
    const json = await runCli(['--config', ws.configFile, 'list', '--json']);
    expect((JSON.parse(json.stdout) as Array<{ failed: unknown[] }>)[0]!.failed).toEqual(manifest.failed);
    // The database part restores: the dump was worth keeping.
    const verify = await runCli(['--config', ws.configFile, 'verify', id!]);
    expect(verify.code, verify.stderr).toBe(0);
  });

  it('a wrong Redis password fails naming Redis, and the password never shows', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const r = redis({ password: 'right-one' });
    const pwFile = path.join(ws.dir, 'redis.password');
    writeFileSync(pwFile, 'wrong-one-XYZZY\n', { mode: 0o600 });
    ws.writeConfig({ extra: { redis: { url: r.url, passwordFile: pwFile } } });
    const { code, stderr } = await backup();
    expect(code).toBe(1);
    expect(stderr).toMatch(/Redis part failed/);
    expect(stderr).toMatch(/WRONGPASS|AUTH/);
    expect(stderr).not.toContain('XYZZY');
    expect(partials()).toEqual([]);
    const [id] = snapshots();
    const manifest = JSON.parse(readFileSync(path.join(ws.vault, id!, 'manifest.json'), 'utf8')) as Manifest;
    expect(manifest.files.map((f) => f.part)).toEqual(['database', 'roles']);
    expect(manifest.failed?.map((f) => f.part)).toEqual(['redis']);
    expect(JSON.stringify(manifest)).not.toContain('XYZZY');
  });

  it('Redis down but optional: the snapshot succeeds with a warning and lists only what was captured', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const r = redis();
    r.stop();
    const env = writeEnvFile();
    ws.writeConfig({ extra: { redis: { url: r.url, optional: true }, secrets: { file: env.file } } });
    const { code, manifest, stderr } = await backup();
    expect(code).toBe(0);
    expect(stderr).toMatch(/^warning: redis part skipped \(marked optional\): Redis part failed/m);
    expect(manifest!.files.map((f) => f.part)).toEqual(['database', 'secrets', 'roles']);
    expect(manifest!.failed).toEqual([{ part: 'redis', error: expect.stringMatching(/^Redis part failed/), optional: true }]);
    expect(readdirSync(path.join(ws.vault, manifest!.id)).sort()).toEqual([
      'database.pgdump.gpg',
      'env.production.gpg',
      'manifest.json',
      'roles.sql.gpg',
    ]);
  });

  it('a missing secrets file fails naming the part but keeps the database; each part can be turned off', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    ws.writeConfig({ extra: { secrets: { file: path.join(ws.dir, 'nope.env') } } });
    const failed = await backup();
    expect(failed.code).toBe(1);
    expect(errorSentence(failed.stderr)).toMatch(/without its secrets part: Secrets part failed: cannot read .*nope\.env \(ENOENT\)/);
    expect(partials()).toEqual([]);
    const [kept] = snapshots();
    expect(readdirSync(path.join(ws.vault, kept!)).sort()).toEqual(['database.pgdump.gpg', 'manifest.json', 'roles.sql.gpg']);

    ws.writeConfig({ extra: { redis: false, secrets: false } });
    const off = await backup();
    expect(off.code).toBe(0);
    expect(off.manifest!.files.map((f) => f.part)).toEqual(['database', 'roles']);
    expect(existsSync(path.join(ws.vault, off.manifest!.id, 'redis.rdb.gpg'))).toBe(false);
  });
  it('the parts run beside the database: a dump that fails while Redis still waits out its sync delay leaves no folder and no redis-cli behind', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    // Redis's production default: 5 s before the RDB streams; the failing dump ends long before.
    const r = redis({ args: ['--repl-diskless-sync-delay', '5'] });
    fillRedis(r);
    const bin = path.join(ws.dir, 'fakebin');
    mkdirSync(bin);
    writeFileSync(
      path.join(bin, 'pg_dump'),
      `#!/bin/sh\nif [ "$1" = "--version" ]; then echo "pg_dump (PostgreSQL) 15.0"; exit 0; fi\nsleep 1\necho "pg_dump: error: connection lost" >&2\nexit 1\n`,
      { mode: 0o755 },
    );
    ws.writeConfig({ database: { binDir: bin }, extra: { redis: { url: r.url } } });
    const { code, stderr } = await backup();
    expect(code).toBe(1);
    expect(errorSentence(stderr)).toBe(`${bin}/pg_dump failed while capturing database "source": connection lost`);
    expect(partials()).toEqual([]);
    expect(snapshots()).toEqual([]);
    // The Redis capture was stopped with the run: no redis-cli of this workspace's socket lives on.
    const ps = spawnSync('pgrep', ['-f', `redis-cli.*${r.url.replace(/^unix:\/\//, '')}`], { encoding: 'utf8' });
    expect(ps.stdout.trim()).toBe('');
  });

  it('with the production sync delay, Redis and secrets are captured while the database dumps: all parts committed', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const r = redis({ args: ['--repl-diskless-sync-delay', '5'] });
    fillRedis(r);
    const env = writeEnvFile();
    ws.writeConfig({ extra: { redis: { url: r.url }, secrets: { file: env.file } } });
    const { code, manifest, stderr } = await backup();
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(manifest!.files.map((f) => f.part).sort()).toEqual(['database', 'redis', 'roles', 'secrets']);
    expect(manifest!.failed).toBeUndefined();
  });
});
