import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../../src/vault/manifest.js';
import { errorSentence, makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { fingerprint } from '../../harness/fingerprint.js';
import { destroyRedis, startRedis, type RedisServer } from '../../harness/redis.js';
import { clusterPerFile } from '../../harness/suite.js';

// issue 10 item 6: a whole-instance restore (--all), retried after a failure without clean-up,
// --force over files, the remaining steps printed before anything starts.
const cluster = clusterPerFile('source');
let ws: Workspace;
let redis: RedisServer;
let manifest: Manifest;
let env: Buffer;
let media: string;

beforeAll(async () => {
  ws = makeWorkspace(cluster.get(), 'source');
  redis = startRedis();
  redis.cli('SET', 'feed:home:1', 'hello');
  env = Buffer.from('LOCAL_DOMAIN=example.social\nSECRET_KEY_BASE=abc\n');
  const envFile = path.join(ws.dir, '.env.production');
  writeFileSync(envFile, env, { mode: 0o600 });
  // The device's Syncthing copy of public/system: media, the skipped cache, Syncthing's own files.
  media = path.join(ws.dir, 'device-media');
  for (const d of ['accounts/avatars/1', 'cache/remote', '.stfolder']) mkdirSync(path.join(media, d), { recursive: true });
  writeFileSync(path.join(media, 'accounts/avatars/1/a.png'), 'avatar bytes');
  writeFileSync(path.join(media, 'cache/remote/b.png'), 'cached remote media');
  // Links out of the media tree (a tampered copy): never carried into the restored public/system.
  symlinkSync('/etc/shadow', path.join(media, 'accounts/avatars/1/shadow.png'));
  symlinkSync('/root', path.join(media, 'accounts/rootdir'));
  symlinkSync('../../a.png', path.join(media, 'accounts/avatars/rel.png'));
  ws.writeConfig({ extra: { redis: { url: redis.url }, secrets: { file: envFile } } });
  const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
  expect(r.code, r.stderr).toBe(0);
  manifest = JSON.parse(r.stdout) as Manifest;
});
afterAll(() => {
  ws?.cleanup();
  if (redis) destroyRedis(redis);
});

const listing = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();

describe('restore --all: the whole instance', () => {
  it('a failed database step leaves no file behind; and prints no steps; the retry lays everything out, then prints the steps that follow', async () => {
    const pg = cluster.get();
    const out = path.join(ws.dir, 'restored');
    const fake = path.join(ws.dir, 'failing-bin');
    mkdirSync(fake, { recursive: true });
    writeFileSync(path.join(fake, 'pg_restore'), '#!/bin/sh\necho "pg_restore: error: simulated" >&2\nexit 1\n');
    chmodSync(path.join(fake, 'pg_restore'), 0o755);
    ws.writeConfig({ database: { binDir: fake }, extra: {} });
    const args = ['--config', ws.configFile, 'restore', 'latest', '--all', out, '--database', 'whole', '--media-from', media];
    const failed = await runCli(args);
    expect(failed.code).toBe(1);
    expect(errorSentence(failed.stderr)).toContain('database "whole" was not touched');
    expect(readdirSync(out)).toEqual([]);
    // A refused restore has no steps to follow up.
    expect(failed.stdout + failed.stderr).not.toContain('Stop Mastodon');

    ws.writeConfig();
    const r = await runCli(args);
    expect(r.code, r.stderr).toBe(0);
    // The steps that bring the rest of the server back follow the summary, once the restore succeeded.
    const stop = r.stdout.indexOf('1. Stop Mastodon first');
    expect(stop).toBeGreaterThanOrEqual(0);
    expect(stop).toBeGreaterThan(r.stdout.indexOf(`restored snapshot ${manifest.id} into database "whole" (created)`));
    expect(r.stdout).toContain('tootctl search deploy');
    expect(r.stdout).toContain('tootctl cache clear');
    expect(readdirSync(out).sort()).toEqual(['dump.rdb', 'env.production', 'system']);
    expect(readFileSync(path.join(out, 'env.production'))).toEqual(env);
    for (const f of ['env.production', 'dump.rdb']) expect(statSync(path.join(out, f)).mode & 0o777).toBe(0o600);
    expect(readFileSync(path.join(out, 'dump.rdb')).subarray(0, 5).toString()).toBe('REDIS');
    expect(listing(path.join(out, 'system'))).toEqual(['accounts/avatars/1/a.png']);
    const links = readdirSync(path.join(out, 'system'), { recursive: true, withFileTypes: true }).filter((e) => e.isSymbolicLink());
    expect(links.map((e) => e.name)).toEqual([]);
    expect(fingerprint(pg, 'whole')).toEqual(fingerprint(pg, 'source'));
    expect(readdirSync(ws.dir).filter((n) => n.startsWith('permafrost-'))).toEqual([]);
    expect(readdirSync(out).filter((n) => n.includes('.permafrost-'))).toEqual([]);
  });

  it('existing files: identical ones count as done, different ones are refused (exit 2) unless --force replaces them', async () => {
    const out = path.join(ws.dir, 'again');
    mkdirSync(out);
    writeFileSync(path.join(out, 'env.production'), 'an older env\n', { mode: 0o600 });
    const args = [
      '--config',
      ws.configFile,
      'restore',
      'latest',
      '--secrets',
      path.join(out, 'env.production'),
      '--redis',
      path.join(out, 'dump.rdb'),
    ];
    const refused = await runCli(args);
    expect(refused.code).toBe(2);
    expect(errorSentence(refused.stderr)).toBe(
      `--secrets: ${path.join(out, 'env.production')} already exists with other contents; choose a new path, move it away, or pass --force to replace it.`,
    );
    expect(existsSync(path.join(out, 'dump.rdb'))).toBe(false);
    expect(readFileSync(path.join(out, 'env.production'), 'utf8')).toBe('an older env\n');

    const forced = await runCli([...args, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toContain(`secrets part of snapshot ${manifest.id} replaced: ${path.join(out, 'env.production')}`);
    expect(readFileSync(path.join(out, 'env.production'))).toEqual(env);

    const again = await runCli(args);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`secrets part of snapshot ${manifest.id} already in place (identical)`);
    expect(readdirSync(out).sort()).toEqual(['dump.rdb', 'env.production']);
  });

  it('--json prints the steps on stderr and only JSON on stdout', async () => {
    const out = path.join(ws.dir, 'json');
    mkdirSync(out);
    const r = await runCli(['--config', ws.configFile, 'restore', 'latest', '--secrets', path.join(out, 'env'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('1. Stop Mastodon first');
    expect((JSON.parse(r.stdout) as { files: Array<{ part: string }> }).files.map((f) => f.part)).toEqual(['secrets']);
  });
});
