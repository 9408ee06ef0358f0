/**
 * Issue 10 item 7, the drill: the day the server is gone. A source whose database is owned by
 * `mastodon` is backed up and replicated by two real Syncthing instances; then the source cluster
 * and vault are destroyed. On a new cluster with no roles, the device folder's own restore.sh
 * (verbatim) brings the database back equal, owners and grants included; on another new cluster,
 * `permafrost restore --vault … --all` with no config file at all does the same and lays out the
 * media (equal to the source's without cache/), Redis-less secrets and all, from the device's copies.
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterFixture, makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { fingerprint, ownership } from '../../harness/fingerprint.js';
import { destroyCluster, startCluster, type PgCluster } from '../../harness/postgres.js';
import { createOwnedSource, libpqEnv, plaintextDumps, runSh } from '../../harness/restore-sh.js';
import { connected, folderSynced, startSyncthingPair, type StPair, syncthingSection } from '../../harness/syncthing.js';
import { waitFor } from '../../harness/wait.js';

const source = new ClusterFixture();
let pair: StPair;
let src: Workspace;
let rcv: Workspace;
let fresh: PgCluster | undefined;
let second: PgCluster | undefined;

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

/** Every file under `root` with its SHA-256, by relative path; dot entries (Syncthing's .stfolder, .stversions, permafrost's own state) left out. */
function tree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else out[path.relative(root, p)] = sha256(p);
    }
  };
  walk(root);
  return out;
}

const cli = (ws: Workspace, ...args: string[]) => runCli(['--config', ws.configFile, ...args]);

beforeAll(async () => {
  createOwnedSource(source.get(), 'mastodon_production');
  pair = await startSyncthingPair();
  src = makeWorkspace(source.get(), 'mastodon_production');
  rcv = makeWorkspace(null, 'unused');
  const srcMedia = path.join(src.dir, 'public/system');
  for (const [rel, body] of Object.entries({
    'accounts/avatars/000/000/001/original/a.png': 'avatar of account 1',
    'media_attachments/files/000/000/002/original/b.jpg': 'a photo',
    'cache/accounts/avatars/000/000/009/original/remote.png': 'remote media Mastodon fetches again',
  })) {
    mkdirSync(path.dirname(path.join(srcMedia, rel)), { recursive: true });
    writeFileSync(path.join(srcMedia, rel), body);
  }
  const env = path.join(src.dir, '.env.production');
  writeFileSync(env, 'LOCAL_DOMAIN=example.social\nSECRET_KEY_BASE=drill\n', { mode: 0o600 });
  src.writeConfig({
    extra: {
      secrets: { file: env },
      media: { dir: srcMedia },
      syncthing: {
        ...syncthingSection(pair, 'source'),
      },
    },
  });
  rcv.writeConfig({
    extra: {
      media: { dir: path.join(rcv.dir, 'public/system') },
      syncthing: {
        ...syncthingSection(pair, 'receiver'),
        versioning: { type: 'simple', keep: 6 },
      },
    },
  });
}, 120_000);

afterAll(async () => {
  await pair?.destroy();
  source.destroy();
  if (fresh) destroyCluster(fresh);
  if (second) destroyCluster(second);
  src?.cleanup();
  rcv?.cleanup();
});

describe('the drill: the server is gone, the device folder and the passphrase remain', () => {
  it("restore.sh from the device's folder onto a new cluster with no roles: equal incl. owners and grants; media equal without cache/", async () => {
    for (const ws of [src, rcv]) {
      const r = await cli(ws, 'sync', 'apply');
      expect(r.code, r.stderr).toBe(0);
    }
    await waitFor('A and B to connect', () => connected(pair.a, pair.b), 15_000);
    const b = await cli(src, 'backup', '--json');
    expect(b.code, b.stderr).toBe(0);
    const id = (JSON.parse(b.stdout) as { id: string }).id;
    await pair.a.api.post('/rest/db/scan?folder=permafrost-snapshots');
    await waitFor(
      'the snapshot folder and the runbook on the device',
      () => folderSynced(pair.a, pair.b, 'permafrost-snapshots'),
      30_000,
      100,
    );
    await waitFor('media on the device', () => folderSynced(pair.a, pair.b, 'mastodon-media'), 30_000, 100);
    const device = tree(rcv.vault);
    expect(device).toEqual(tree(src.vault));
    expect(Object.keys(device)).toEqual(
      expect.arrayContaining(['RESTORE.md', 'restore.sh', `${id}/roles.sql.gpg`, `${id}/database.pgdump.gpg`]),
    );
    const wantMedia = Object.fromEntries(
      Object.entries(tree(path.join(src.dir, 'public/system'))).filter(([rel]) => !rel.startsWith('cache/')),
    );
    const wantDb = fingerprint(source.get(), 'mastodon_production');
    const wantOwners = ownership(source.get(), 'mastodon_production');
    // The passphrase survives offline; everything else on the server goes.
    const passphrase = path.join(rcv.dir, 'passphrase-from-the-safe');
    cpSync(src.passFile, passphrase);
    const wantEnv = readFileSync(path.join(src.dir, '.env.production'), 'utf8');
    await pair.stop();
    source.destroy();
    rmSync(src.dir, { recursive: true, force: true });

    fresh = startCluster();
    expect(fresh.psql('postgres', `SELECT count(*) FROM pg_roles WHERE rolname LIKE 'mastodon%'`).trim()).toBe('0');
    const tmp = path.join(rcv.dir, 'tmp');
    mkdirSync(tmp, { mode: 0o700 });
    const r = await runSh(path.join(rcv.vault, 'restore.sh'), ['--passphrase-file', passphrase], libpqEnv(fresh, tmp));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`restored snapshot ${id} into database "mastodon_production".`);
    expect(fingerprint(fresh, 'mastodon_production')).toEqual(wantDb);
    expect(ownership(fresh, 'mastodon_production')).toEqual(wantOwners);
    const deviceMedia = tree(path.join(rcv.dir, 'public/system'));
    expect(deviceMedia).toEqual(wantMedia);
    expect(Object.keys(deviceMedia).filter((rel) => rel.startsWith('cache/'))).toEqual([]);
    expect(readdirSync(tmp)).toEqual([]);
    expect(plaintextDumps(rcv.dir)).toEqual([]);

    // The same day with permafrost installed but no config anywhere: the device's folder, its media
    // copy, the passphrase and libpq's variables; the whole instance laid out under one folder.
    second = startCluster();
    const out = path.join(rcv.dir, 'restored');
    const pf = await runCli(
      [
        'restore',
        'latest',
        '--vault',
        rcv.vault,
        '--passphrase-file',
        passphrase,
        '--all',
        out,
        '--media-from',
        path.join(rcv.dir, 'public/system'),
      ],
      { cwd: tmp, env: { PERMAFROST_CONFIG: '', ...libpqEnv(second, tmp) } },
    );
    expect(pf.code, pf.stderr).toBe(0);
    // The remaining steps come before the restore starts, the summary after.
    // The snapshot holds no Redis part (none configured): --all lays out what it holds and says so.
    expect(pf.stdout.indexOf('Stop Mastodon first')).toBeGreaterThan(-1);
    expect(pf.stdout.indexOf('Stop Mastodon first')).toBeGreaterThan(pf.stdout.indexOf(`restored snapshot ${id}`));
    expect(pf.stdout).toContain('Without the Redis part, Sidekiq queues are lost');
    expect(existsSync(path.join(out, 'dump.rdb'))).toBe(false);
    expect(fingerprint(second, 'mastodon_production')).toEqual(wantDb);
    expect(ownership(second, 'mastodon_production')).toEqual(wantOwners);
    expect(tree(path.join(out, 'system'))).toEqual(wantMedia);
    expect(readFileSync(path.join(out, 'env.production'), 'utf8')).toBe(wantEnv);
    expect(readdirSync(tmp)).toEqual([]);
    expect(plaintextDumps(rcv.dir)).toEqual([]);
  });
});
