/**
 * Issue 9 items 3 and 9 on a real small disk: vault.dir on a tmpfs of a few hundred KiB (mounted
 * here as root, unmounted after each test), full before the run, full mid-dump, full while writing
 * an optional Redis part, and read-only. Each is exit 1 with one sentence naming vault.dir, no lock
 * file, no .partial-*, and earlier snapshots untouched.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../../src/vault/manifest.js';
import { errorSentence, makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { destroyRedis, startRedis, type RedisServer } from '../../harness/redis.js';
import { clusterPerFile } from '../../harness/suite.js';

const cluster = clusterPerFile('source');
// The fixture's snapshot is a few pages; padding makes it large enough that page rounding does not decide the tests.
beforeAll(() => cluster.get().psql('source', 'CREATE TABLE padding AS SELECT md5(i::text) AS h FROM generate_series(1, 20000) i'));
let ws: Workspace;
let mounted: string | null = null;
let redis: RedisServer | null = null;

afterEach(() => {
  if (mounted) spawnSync('umount', [mounted]);
  mounted = null;
  if (redis) destroyRedis(redis);
  redis = null;
  ws?.cleanup();
});

function mustRun(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}

/** A fresh tmpfs of `bytes` (rounded up to pages) as vault.dir. */
function smallVault(bytes: number, extra: Record<string, unknown> = { redis: false, secrets: false }): string {
  const dir = path.join(ws.dir, 'small-vault');
  mkdirSync(dir);
  mustRun('mount', ['-t', 'tmpfs', '-o', `size=${Math.ceil(bytes / 4096) * 4096},mode=0750`, 'tmpfs', dir]);
  mounted = dir;
  ws.writeConfig({ vault: { dir }, extra });
  return dir;
}

/** The encrypted size of one snapshot of the fixture database, taken in the workspace's ordinary vault. */
async function snapshotSize(): Promise<number> {
  ws.writeConfig({ extra: { redis: false, secrets: false } });
  const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as Manifest).files.reduce((n, f) => n + f.bytes, 0);
}

/** Every entry of the vault with its bytes: nothing may change in a refused or failed run. */
function contents(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    if (/^\d{4}-/.test(name))
      for (const f of readdirSync(p).sort()) out.push(`${name}/${f}:${readFileSync(path.join(p, f)).toString('base64')}`);
    else out.push(name);
  }
  return out;
}

async function backup(): Promise<{ code: number | null; sentence: string; stderr: string }> {
  const r = await runCli(['--config', ws.configFile, 'backup']);
  return { code: r.code, sentence: errorSentence(r.stderr), stderr: r.stderr };
}

describe('a full or read-only vault', () => {
  it('room for one snapshot but not two: the second run is refused before it starts, naming vault.dir, the space needed and free', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const size = await snapshotSize();
    // Twice the snapshot less two pages: the first fits (with its manifest), then less than a snapshot is free.
    expect(size).toBeGreaterThan(32 * 1024);
    const dir = smallVault(2 * size - 8192);
    const first = await backup();
    expect(first.code, first.stderr).toBe(0);
    const before = contents(dir);
    const second = await backup();
    expect(second.code).toBe(1);
    expect(second.sentence).toMatch(
      new RegExp(
        `^vault\\.dir ${dir} has [\\d.]+ KiB free, but the newest snapshot \\(\\S+\\) took [\\d.]+ KiB, so the next one would not fit; free some space`,
      ),
    );
    expect(contents(dir)).toEqual(before);
    // Nothing but the recorded outcome of the run (what `status` judges a failed last backup from).
    expect(readdirSync(dir).filter((n) => n.startsWith('.') && n !== '.permafrost-runs.json')).toEqual([]);
    expect(JSON.parse(readFileSync(path.join(dir, '.permafrost-runs.json'), 'utf8'))).toMatchObject({ backup: { outcome: 'failed' } });
  });

  it('full mid-dump (no earlier snapshot to judge by): exit 1 naming vault.dir, no partial folder, no lock', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const size = await snapshotSize();
    const dir = smallVault(size / 2);
    const r = await backup();
    expect(r.code, r.stderr).toBe(1);
    expect(r.sentence).toMatch(
      new RegExp(
        `^vault\\.dir ${dir} is full \\(ENOSPC\\), so no snapshot was written \\(a dump cut short by the disk cannot be trusted, so the database part is not kept either\\); free some space`,
      ),
    );
    expect(readdirSync(dir)).toEqual([]);
  });

  it('full before the lock is written: exit 1, and no empty lock file is left behind', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const dir = smallVault(64 * 1024);
    // Fill the disk to the last byte.
    spawnSync('dd', ['if=/dev/zero', `of=${path.join(dir, 'filler')}`, 'bs=4096'], { encoding: 'utf8' });
    const r = await backup();
    expect(r.code, r.stderr).toBe(1);
    expect(r.sentence).toMatch(new RegExp(`^vault\\.dir ${dir} is full \\(ENOSPC\\)`));
    expect(readdirSync(dir)).toEqual(['filler']);
  });

  it('full while writing an optional Redis part: a vault error (exit 1), never "Redis part failed", and no snapshot', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const size = await snapshotSize();
    redis = startRedis();
    for (let i = 0; i < 16; i++) redis.cli('SET', `blob:${i}`, randomBytes(90 * 1024).toString('base64'));
    const dir = smallVault(size + 256 * 1024, { redis: { url: redis.url, optional: true }, secrets: false });
    const r = await backup();
    expect(r.code, r.stderr).toBe(1);
    expect(r.sentence).toMatch(new RegExp(`^vault\\.dir ${dir} is full \\(ENOSPC\\), so no snapshot was written`));
    expect(r.stderr).not.toMatch(/Redis part failed|part skipped/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('read-only (EROFS): exit 1 naming vault.dir, the earlier snapshot untouched', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const size = await snapshotSize();
    const dir = smallVault(size * 3 + 64 * 1024);
    expect((await backup()).code).toBe(0);
    const before = contents(dir);
    mustRun('mount', ['-o', 'remount,ro', dir]);
    const r = await backup();
    expect(r.code, r.stderr).toBe(1);
    expect(r.sentence).toMatch(
      new RegExp(
        `^vault\\.dir ${dir} is on a read-only file system \\(EROFS\\), so no snapshot was written .*; remount it read-write and run the backup again\\.$`,
      ),
    );
    expect(contents(dir)).toEqual(before);
  });
});
