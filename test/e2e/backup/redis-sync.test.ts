import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Manifest } from '../../../src/vault/manifest.js';
import { errorSentence, makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';
import { destroyRedis, startRedis, type RedisServer } from '../../harness/redis.js';

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

/** Redis's stock settings where they matter here: an RDB save schedule and the 5 s diskless-sync delay. */
const SAVING = ['--save', '3600 1 300 100 60 10000', '--repl-diskless-sync-delay', '5'];

const info = (r: RedisServer, key: string): string => new RegExp(`^${key}:(.*)$`, 'm').exec(r.cli('INFO'))?.[1]?.trim() ?? '';

function fill(r: RedisServer): string {
  const bin = randomBytes(32).toString('base64');
  r.cli('SET', 'feed:home:1', 'hello');
  r.cli('RPUSH', 'queue:default', 'job1', 'job2');
  r.cli('SET', 'bin', bin);
  return bin;
}

function withPassword(pw: string): string {
  const file = path.join(ws.dir, 'redis.password');
  writeFileSync(file, `${pw}\n`, { mode: 0o600 });
  return file;
}

async function backup(): Promise<{ code: number | null; manifest?: Manifest; stderr: string; stdout: string }> {
  const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
  return { ...r, manifest: r.code === 0 ? (JSON.parse(r.stdout) as Manifest) : undefined };
}

/** Restores the snapshot's Redis part and loads it into a fresh redis-server. */
async function restoredRedis(id: string): Promise<RedisServer> {
  const out = path.join(ws.dir, 'rdb', 'dump.rdb');
  mkdirSync(path.dirname(out), { recursive: true });
  const res = await runCli(['--config', ws.configFile, 'restore', id, '--redis', out]);
  expect(res.code, res.stderr).toBe(0);
  return redis({ rdb: out });
}

describe('the Redis part: a plain SYNC when Redis saves RDB files itself, redis-cli otherwise', () => {
  it('a Redis with a save schedule (and the stock 5 s sync delay) is read with SYNC: its own BGSAVE runs, the RDB round-trips', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const r = redis({ password: 'sync pass with spaces QWERTY', args: SAVING });
    const bin = fill(r);
    expect(info(r, 'rdb_saves')).toBe('0');
    expect(existsSync(path.join(r.dir, 'dump.rdb'))).toBe(false);
    ws.writeConfig({ extra: { redis: { url: r.url, passwordFile: withPassword('sync pass with spaces QWERTY') } } });
    const { code, manifest, stderr, stdout } = await backup();
    expect(stderr).toBe('');
    expect(code).toBe(0);
    // A disk-based BGSAVE answered the SYNC (redis-cli's `capa eof` gets a diskless one, no file).
    expect(Number(info(r, 'rdb_saves'))).toBeGreaterThanOrEqual(1);
    expect(existsSync(path.join(r.dir, 'dump.rdb'))).toBe(true);
    expect(stdout + stderr).not.toContain('QWERTY');
    expect(JSON.stringify(manifest)).not.toContain('QWERTY');
    const fresh = await restoredRedis(manifest!.id);
    expect(fresh.cli('GET', 'feed:home:1').trim()).toBe('hello');
    expect(fresh.cli('LRANGE', 'queue:default', '0', '-1').trim().split('\n')).toEqual(['job1', 'job2']);
    expect(fresh.cli('GET', 'bin').trim()).toBe(bin);
    expect(fresh.cli('DBSIZE').trim()).toBe('3');
    // The stored RDB is the one Redis wrote for that SYNC, byte for byte.
    expect(readFileSync(path.join(ws.dir, 'rdb', 'dump.rdb')).equals(readFileSync(path.join(r.dir, 'dump.rdb')))).toBe(true);
  });

  it('a Redis with save "" is read with redis-cli: no dump file appears in its folder', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const r = redis(); // the harness's Redis: save "", no delay
    fill(r);
    ws.writeConfig({ extra: { redis: { url: r.url } } });
    const { code, manifest, stderr } = await backup();
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(readdirSync(r.dir).filter((n) => n.endsWith('.rdb'))).toEqual([]);
    expect(info(r, 'rdb_saves')).toBe('0');
    expect(info(r, 'sync_full')).toBe('1');
    expect((await restoredRedis(manifest!.id)).cli('DBSIZE').trim()).toBe('3');
  });

  it('a saving Redis whose CONFIG command is renamed away falls back to redis-cli and still captures', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const r = redis({ args: [...SAVING.slice(0, 2), '--repl-diskless-sync-delay', '0', '--rename-command', 'CONFIG', ''] });
    fill(r);
    ws.writeConfig({ extra: { redis: { url: r.url } } });
    const { code, manifest, stderr } = await backup();
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(info(r, 'rdb_saves')).toBe('0');
    expect((await restoredRedis(manifest!.id)).cli('DBSIZE').trim()).toBe('3');
  });

  it('a wrong password for a saving Redis: the Redis-part sentence, exit 1, the password nowhere', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const r = redis({ password: 'right-one', args: SAVING });
    ws.writeConfig({ extra: { redis: { url: r.url, passwordFile: withPassword('wrong-one-XYZZY') } } });
    const { code, stderr, stdout } = await backup();
    expect(code).toBe(1);
    expect(errorSentence(stderr)).toMatch(
      /without its redis part: Redis part failed: unix:\/\/\S+: Redis refused the password \(WRONGPASS [^)]*\); check redis\.url, redis\.passwordFile and that Redis is running, or set redis\.optional: true\.$/,
    );
    expect(stdout + stderr).not.toContain('XYZZY');
    const [id] = readdirSync(ws.vault).filter((n) => /^\d{4}-/.test(n));
    const manifest = readFileSync(path.join(ws.vault, id!, 'manifest.json'), 'utf8');
    expect(manifest).not.toContain('XYZZY');
    expect((JSON.parse(manifest) as Manifest).failed?.map((f) => f.part)).toEqual(['redis']);
  });
});
