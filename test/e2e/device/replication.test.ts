/**
 * Issue 3 acceptance: replication through two real Syncthing instances (Debian's package),
 * started by test/harness/syncthing.ts in one loopback-only network namespace with a verified
 * safe config, driven here through their unix sockets, and stopped by PID.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterFixture, makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { connected, folderSynced, startSyncthingPair, type StPair, syncthingSection } from '../../harness/syncthing.js';
import { waitFor } from '../../harness/wait.js';
import type { Manifest } from '../../../src/vault/manifest.js';
import type { ReplicationStatus } from '../../../src/replicate/status.js';
import { z } from 'zod';
import type { ApplyResult } from '../../../src/replicate/apply.js';
import { fileInfoSchema, folderStatusSchema, stFolderSchema } from '../../../src/replicate/api.js';

const cluster = new ClusterFixture();
let pair: StPair;
let src: Workspace;
let rcv: Workspace;
let srcMedia: string;
let rcvMedia: string;
let firstSnapshot: Manifest;

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function writeFiles(root: string, files: Record<string, string>): void {
  for (const [rel, body] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    writeFileSync(path.join(root, rel), body);
  }
}

function sourceConfig(extra: { syncthing?: Record<string, unknown>; vault?: Record<string, unknown> } = {}): string {
  return src.writeConfig({
    vault: extra.vault,
    extra: {
      media: { dir: srcMedia },
      syncthing: {
        ...syncthingSection(pair, 'source'),
        ...extra.syncthing,
      },
    },
  });
}

function receiverConfig(): string {
  return rcv.writeConfig({
    extra: {
      media: { dir: rcvMedia },
      syncthing: {
        ...syncthingSection(pair, 'receiver'),
        versioning: { type: 'simple', keep: 6 },
      },
    },
  });
}

const cli = (ws: Workspace, ...args: string[]) => runCli(['--config', ws.configFile, ...args]);

async function backup(): Promise<{ manifest: Manifest; stderr: string }> {
  const r = await cli(src, 'backup', '--json');
  expect(r.code, r.stderr).toBe(0);
  return { manifest: JSON.parse(r.stdout) as Manifest, stderr: r.stderr };
}

/** Every file of the snapshot on the receiver, with the manifest's SHA-256. */
function arrived(m: Manifest): boolean {
  const dir = path.join(rcv.vault, m.id);
  if (!existsSync(path.join(dir, 'manifest.json'))) return false;
  return m.files.every((f) => existsSync(path.join(dir, f.name)) && sha256(path.join(dir, f.name)) === f.sha256);
}

beforeAll(async () => {
  cluster.createDb('source');
  pair = await startSyncthingPair();
  src = makeWorkspace(cluster.get(), 'source');
  rcv = makeWorkspace(null, 'unused');
  srcMedia = path.join(src.dir, 'public/system');
  rcvMedia = path.join(rcv.dir, 'public/system');
  writeFiles(srcMedia, {
    'accounts/avatars/000/000/001/original/a.png': 'avatar of account 1',
    'media_attachments/files/000/000/002/original/b.jpg': 'a photo',
    'cache/top.bin': 'remote media, top level of cache/',
    'cache/accounts/avatars/000/000/009/original/deep.png': 'remote media, nested in cache/',
    'accounts/cache/nested.bin': 'a cache/ folder below the top level',
  });
  sourceConfig();
  receiverConfig();
}, 90_000);

afterAll(async () => {
  await pair?.destroy();
  cluster.destroy();
  src?.cleanup();
  rcv?.cleanup();
});

describe('replication through Syncthing', () => {
  it('sync apply on a source and a receiver, then backup: the snapshot arrives with matching SHA-256 and status shows the device complete', async () => {
    const dry = await cli(src, 'sync', 'apply', '--dry-run');
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain('would make 7 changes');
    expect(await pair.a.api.get('/rest/config/folders', z.array(z.unknown()))).toEqual([]);

    for (const ws of [src, rcv]) {
      const r = await cli(ws, 'sync', 'apply', '--json');
      expect(r.code, r.stderr).toBe(0);
      const result = JSON.parse(r.stdout) as ApplyResult;
      expect(result.changes.map((c) => c.kind)).toEqual([
        'add-device',
        'add-folder',
        'set-ignores',
        'resume-folder',
        'add-folder',
        'set-ignores',
        'resume-folder',
      ]);
    }
    const aFolders = await pair.a.api.get('/rest/config/folders', z.array(stFolderSchema));
    expect(aFolders.map((f) => [f.id, f.type, f.path]).sort()).toEqual([
      ['mastodon-media', 'sendonly', srcMedia],
      ['permafrost-snapshots', 'sendonly', src.vault],
    ]);
    const bFolders = await pair.b.api.get('/rest/config/folders', z.array(stFolderSchema));
    for (const f of bFolders) {
      expect(f.type).toBe('receiveonly');
      expect(f.paused).toBe(false);
      expect(f.versioning.type).toBe('simple');
      expect(f.versioning.params.keep).toBe('6');
    }
    await waitFor('A and B to connect', () => connected(pair.a, pair.b), 15_000);

    const { manifest, stderr } = await backup();
    expect(stderr).not.toContain('warning');
    firstSnapshot = manifest;
    await waitFor(`snapshot ${manifest.id} on the receiver`, () => arrived(manifest), 30_000, 100);
    expect(sha256(path.join(rcv.vault, manifest.id, 'manifest.json'))).toBe(sha256(path.join(src.vault, manifest.id, 'manifest.json')));

    const status = await waitFor(
      'status to show the device complete',
      async () => {
        const r = await cli(src, 'status', '--json');
        const s = JSON.parse(r.stdout) as ReplicationStatus;
        return r.code === 0 && s.devices[0]?.newestSnapshotComplete === true ? s : undefined;
      },
      15_000,
      250,
    );
    expect(status.ok).toBe(true);
    expect(status.snapshot?.id).toBe(manifest.id);
    const dev = status.devices[0]!;
    expect(dev).toMatchObject({
      name: 'nas',
      id: pair.b.id,
      connected: true,
      stale: false,
      newestOnDevice: manifest.id,
      lagPending: false,
    });
    expect(dev.lagSeconds).toBeGreaterThanOrEqual(0);
    expect(dev.folders.map((f) => f.folder).sort()).toEqual(['mastodon-media', 'permafrost-snapshots']);
    const human = await cli(src, 'status');
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/device nas \(\w{7}\): connected since/);
    expect(human.stdout).toContain('newest snapshot: fully on the device');

    // In-progress snapshots and permafrost's own files are never even announced.
    writeFiles(src.vault, { '.partial-2026-01-01T00-00-00Z-1/database.pgdump.gpg': 'half written', '.permafrost.lock': '1\nbackup\n' });
    await pair.a.api.post('/rest/db/scan?folder=permafrost-snapshots');
    for (const f of ['.partial-2026-01-01T00-00-00Z-1/database.pgdump.gpg', '.permafrost.lock']) {
      await expect(
        pair.a.api.get(`/rest/db/file?folder=permafrost-snapshots&file=${encodeURIComponent(f)}`, fileInfoSchema),
      ).rejects.toMatchObject({ status: 404 });
    }
    expect(readdirSync(rcv.vault).filter((n) => n.startsWith('.partial') || n.startsWith('.permafrost'))).toEqual([]);
    rmSync(path.join(src.vault, '.permafrost.lock'));
  });

  it('media: files under public/system arrive; cache/ at the top level and nested does not', async () => {
    await waitFor('media in sync', () => folderSynced(pair.a, pair.b, 'mastodon-media'), 20_000, 100);
    expect(readFileSync(path.join(rcvMedia, 'accounts/avatars/000/000/001/original/a.png'), 'utf8')).toBe('avatar of account 1');
    expect(readFileSync(path.join(rcvMedia, 'media_attachments/files/000/000/002/original/b.jpg'), 'utf8')).toBe('a photo');
    expect(existsSync(path.join(rcvMedia, 'cache/top.bin'))).toBe(false);
    expect(existsSync(path.join(rcvMedia, 'cache/accounts/avatars/000/000/009/original/deep.png'))).toBe(false);
    expect(existsSync(path.join(rcvMedia, 'accounts/cache/nested.bin'))).toBe(false);
    // Ignored on the source itself: excluded files are never announced.
    await expect(pair.a.api.get('/rest/db/file?folder=mastodon-media&file=cache%2Ftop.bin', fileInfoSchema)).rejects.toMatchObject({
      status: 404,
    });
  });

  it('a file changed or added on the receiver never reaches the source', async () => {
    const avatar = 'accounts/avatars/000/000/001/original/a.png';
    writeFileSync(path.join(rcvMedia, avatar), 'changed on the receiver');
    writeFileSync(path.join(rcvMedia, 'b-only.txt'), 'added on the receiver');
    writeFileSync(path.join(rcv.vault, 'b-only.txt'), 'added on the receiver');
    await pair.b.api.post('/rest/db/scan?folder=mastodon-media');
    await pair.b.api.post('/rest/db/scan?folder=permafrost-snapshots');
    await waitFor(
      'B to register its local changes',
      async () => (await pair.b.api.get('/rest/db/status?folder=mastodon-media', folderStatusSchema)).receiveOnlyChangedFiles! >= 2,
      10_000,
    );
    await pair.a.api.post('/rest/db/scan?folder=mastodon-media');
    await pair.a.api.post('/rest/db/scan?folder=permafrost-snapshots');
    await sleep(2000);
    expect(readFileSync(path.join(srcMedia, avatar), 'utf8')).toBe('avatar of account 1');
    expect(existsSync(path.join(srcMedia, 'b-only.txt'))).toBe(false);
    expect(existsSync(path.join(src.vault, 'b-only.txt'))).toBe(false);
    // The receiver's status names the local change; reverting brings the source's copy back.
    const st = await cli(rcv, 'status', '--json');
    expect((JSON.parse(st.stdout) as ReplicationStatus).problems.join(' ')).toMatch(/mastodon-media has \d+ locally changed file/);
    for (const folder of ['mastodon-media', 'permafrost-snapshots']) await pair.b.api.post(`/rest/db/revert?folder=${folder}`);
    await waitFor('B to revert', () => readFileSync(path.join(rcvMedia, avatar), 'utf8') === 'avatar of account 1', 15_000, 100);
    await waitFor('media in sync again', () => folderSynced(pair.a, pair.b, 'mastodon-media'), 15_000, 100);
  });

  it('versioning keep 6: a pruned snapshot is kept on the receiver, and 8 rewrites of one file keep the 6 older copies', async () => {
    // A backup with retention "last 1" prunes the first snapshot on the source.
    sourceConfig({ vault: { keep: { last: 1 } } });
    const { manifest } = await backup();
    expect(existsSync(path.join(src.vault, firstSnapshot.id))).toBe(false);
    await waitFor('new snapshot on B', () => arrived(manifest), 30_000, 100);
    await waitFor('pruned snapshot gone from B', () => !existsSync(path.join(rcv.vault, firstSnapshot.id)), 30_000, 100);
    const kept = path.join(rcv.vault, '.stversions', firstSnapshot.id);
    for (const f of firstSnapshot.files) {
      const base = f.name.replace(/\.gpg$/, '');
      const copy = readdirSync(kept).find((n) => new RegExp(`^${base.replace(/\./g, '\\.')}~\\d{8}-\\d{6}\\.gpg$`).test(n));
      expect(copy, `${f.name} kept in ${kept}: ${readdirSync(kept).join(', ')}`).toBeDefined();
      expect(sha256(path.join(kept, copy!))).toBe(f.sha256);
    }

    // Same name rewritten 8 times (> 1 s apart: version names have 1-second resolution).
    const name = 'rewritten.txt';
    for (let gen = 1; gen <= 8; gen++) {
      const started = Date.now();
      writeFileSync(path.join(src.vault, name), `generation ${gen}\n`);
      await pair.a.api.post('/rest/db/scan?folder=permafrost-snapshots');
      await waitFor(`generation ${gen} on B`, () => readFileSync(path.join(rcv.vault, name), 'utf8') === `generation ${gen}\n`, 15_000, 50);
      await sleep(Math.max(0, 1100 - (Date.now() - started)));
    }
    const versions = readdirSync(path.join(rcv.vault, '.stversions'))
      .filter((n) => /^rewritten~\d{8}-\d{6}\.txt$/.test(n))
      .sort();
    expect(versions.map((v) => readFileSync(path.join(rcv.vault, '.stversions', v), 'utf8').trim())).toEqual(
      [2, 3, 4, 5, 6, 7].map((g) => `generation ${g}`),
    );
  });

  it('sync apply twice: the second run reports no change and the Syncthing config is identical; --dry-run changes nothing', async () => {
    sourceConfig();
    const before = { a: await pair.a.api.get('/rest/config', z.unknown()), b: await pair.b.api.get('/rest/config', z.unknown()) };
    for (const ws of [src, rcv]) {
      const r = await cli(ws, 'sync', 'apply');
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^no change: Syncthing \((source|receiver)\) already matches the config/);
      const j = await cli(ws, 'sync', 'apply', '--json');
      expect((JSON.parse(j.stdout) as ApplyResult).changes).toEqual([]);
    }
    expect(await pair.a.api.get('/rest/config', z.unknown())).toEqual(before.a);
    expect(await pair.b.api.get('/rest/config', z.unknown())).toEqual(before.b);

    sourceConfig({ syncthing: { devices: [{ name: 'nas-renamed', id: pair.b.id, addresses: [pair.b.listen] }] } });
    const dry = await cli(src, 'sync', 'apply', '--dry-run');
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain('would make 1 change');
    expect(dry.stdout).toContain('update device nas-renamed');
    expect(await pair.a.api.get('/rest/config', z.unknown())).toEqual(before.a);
    sourceConfig();
  });

  it('device-id prints the local ID; wrong API key, unreachable API and a malformed device ID end in clear errors', async () => {
    const id = await cli(src, 'device-id');
    expect(id.code, id.stderr).toBe(0);
    expect(id.stdout.trim()).toBe(pair.a.id);

    const wrongKey = path.join(src.dir, 'wrong.key');
    writeFileSync(wrongKey, 'not-the-key\n', { mode: 0o600 });
    sourceConfig({ syncthing: { apiKeyFile: wrongKey } });
    let r = await cli(src, 'sync', 'apply');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/refused the API key \(HTTP 403\): fix syncthing\.apiKeyFile/);
    expect(r.stderr).toContain('GET /rest/system/status → 403');
    expect(r.stderr).not.toContain('not-the-key');

    sourceConfig({ syncthing: { url: path.join(pair.root, 'nothing-here.sock') } });
    r = await cli(src, 'sync', 'apply');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unreachable \(ENOENT\): start Syncthing, or fix syncthing\.url/);
    sourceConfig({ syncthing: { url: 'http://127.0.0.1:1' } });
    r = await cli(src, 'device-id');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unreachable \(ECONNREFUSED\).*syncthing\.url/);

    sourceConfig({ syncthing: { devices: [{ name: 'nas', id: 'ABCDEFG-HIJKLMN-OPQRSTU' }] } });
    r = await cli(src, 'sync', 'apply');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('syncthing.devices[0].id: not a valid Syncthing device ID');
    // A well-formed ID with a wrong check character is caught too.
    const typo = pair.b.id.slice(0, -1) + (pair.b.id.endsWith('A') ? 'B' : 'A');
    sourceConfig({ syncthing: { devices: [{ name: 'nas', id: typo }] } });
    r = await cli(src, 'sync', 'apply');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('syncthing.devices[0].id');
    sourceConfig();
  });

  it('a device that stops receiving makes status fail once it lacks a snapshot older than staleAfter', async () => {
    const before = JSON.parse((await cli(src, 'status', '--json')).stdout) as ReplicationStatus;
    const had = before.devices[0]!.newestOnDevice;
    expect(had).toBe(before.snapshot?.id);
    // The receiver goes away (paused on the source's side: the connection drops).
    await pair.a.api.patch(`/rest/config/devices/${pair.b.id}`, { paused: true });
    await waitFor('B disconnected', async () => !(await connected(pair.a, pair.b)), 10_000);
    const { manifest } = await backup();
    let r = await cli(src, 'status', '--json');
    expect(r.code, r.stderr).toBe(0); // the new snapshot is younger than staleAfter (2h)
    let s = JSON.parse(r.stdout) as ReplicationStatus;
    expect(s.devices[0]).toMatchObject({
      connected: false,
      newestOnDevice: had,
      newestSnapshotComplete: null,
      lagPending: true,
      stale: false,
    });

    sourceConfig({ syncthing: { staleAfter: 1 } });
    await sleep(1500);
    r = await cli(src, 'status', '--json');
    expect(r.code).toBe(1);
    s = JSON.parse(r.stdout) as ReplicationStatus;
    expect(s.devices[0]).toMatchObject({ stale: true, newestOnDevice: had });
    expect(r.stderr).toContain(
      `device nas lacks snapshot ${manifest.id}, older than 1s (its newest snapshot is ${had}; it is not connected)`,
    );

    sourceConfig();
    await pair.a.api.patch(`/rest/config/devices/${pair.b.id}`, { paused: false });
    await waitFor('B reconnected', () => connected(pair.a, pair.b), 15_000);
    await waitFor('the new snapshot on B', () => arrived(manifest), 30_000, 100);
  });

  it('Syncthing stopped: backup still succeeds and says replication is unreachable; status says so and exits non-zero', async () => {
    await pair.stop();
    expect(pair.running()).toBe(false);
    const r = await cli(src, 'backup');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^snapshot \S+ written to/);
    expect(r.stderr).toMatch(/warning: replication is unreachable: Syncthing's API at .* is unreachable/);
    const s = await cli(src, 'status');
    expect(s.code).toBe(1);
    expect(s.stdout).toContain('syncthing: unreachable');
    expect(s.stderr).toMatch(/Replication needs attention: Syncthing: .*unreachable/);
    const j = await cli(src, 'status', '--json');
    expect(j.code).toBe(1);
    expect(JSON.parse(j.stdout)).toMatchObject({ reachable: false, ok: false });
  });
});
