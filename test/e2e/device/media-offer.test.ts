/**
 * Issue 21 item 8: a device whose config has no media.dir while the server shares its media
 * folder: `sync apply` (and doctor) warn, with the fix, from Syncthing's pending folder offers
 * (two real Syncthing instances, test/harness/syncthing.ts).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { startSyncthingPair, type StPair, syncthingSection } from '../../harness/syncthing.js';
import { waitFor } from '../../harness/wait.js';
import type { ApplyResult } from '../../../src/replicate/apply.js';
import { pendingFoldersSchema, stFolderSchema } from '../../../src/replicate/api.js';

let pair: StPair;
let src: Workspace;
let rcv: Workspace;

const cli = (ws: Workspace, ...args: string[]) => runCli(['--config', ws.configFile, ...args]);

beforeAll(async () => {
  pair = await startSyncthingPair();
  src = makeWorkspace(null, 'unused');
  rcv = makeWorkspace(null, 'unused');
  const srcMedia = path.join(src.dir, 'public/system');
  mkdirSync(path.join(srcMedia, 'accounts'), { recursive: true });
  writeFileSync(path.join(srcMedia, 'accounts/a.png'), 'avatar');
  src.writeConfig({
    extra: {
      // sync apply never connects to the database; the server's config only has to name one.
      database: { name: 'mastodon_production', host: '/var/run/postgresql' },
      media: { dir: srcMedia },
      syncthing: syncthingSection(pair, 'source'),
    },
  });
  rcv.writeConfig({ extra: { syncthing: syncthingSection(pair, 'receiver') } });
}, 120_000);

afterAll(async () => {
  await pair?.destroy();
  src?.cleanup();
  rcv?.cleanup();
});

describe('sync apply on a device without media.dir', () => {
  it('warns that the server shares media the device does not take, says how to take it, and stops warning once media.dir is set', async () => {
    let r = await cli(src, 'sync', 'apply');
    expect(r.code, r.stderr).toBe(0);
    r = await cli(rcv, 'sync', 'apply');
    expect(r.code, r.stderr).toBe(0);
    // The device sees the server's offer of its media folder once they are connected.
    await waitFor(
      'the media folder offered to the device',
      async () => 'mastodon-media' in (await pair.b.api.get('/rest/cluster/pending/folders', pendingFoldersSchema)),
      90_000,
    );

    r = await cli(rcv, 'sync', 'apply');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('no change');
    expect(r.stderr).toContain(
      `warning: server (${pair.a.id.slice(0, 7)}) shares its media folder mastodon-media, but ${rcv.configFile} has no media.dir`,
    );
    expect(r.stderr).toContain('permafrost init --device --media DIR');
    const json = JSON.parse((await cli(rcv, 'sync', 'apply', '--dry-run', '--json')).stdout) as ApplyResult;
    expect(json.warnings).toHaveLength(1);
    expect(json.warnings[0]!.fix).toContain('media: { dir:');
    const doctor = await cli(rcv, 'doctor');
    expect(doctor.stdout).toMatch(/media.*shares its media folder mastodon-media/);

    // The server's own config (it shares media) gets no such warning.
    r = await cli(src, 'sync', 'apply');
    expect(r.stderr).not.toContain('warning');

    // The config `init --device` writes has media.dir: the device takes the folder, the media
    // arrive, and the warning is gone.
    const rcvMedia = path.join(rcv.dir, 'media');
    r = await cli(
      rcv,
      'init',
      '--device',
      '--force',
      '--vault',
      rcv.vault,
      '--media',
      rcvMedia,
      '--syncthing-home',
      pair.b.home,
      '--syncthing-url',
      pair.b.socket,
      '--server-id',
      pair.a.id,
    );
    expect(r.code, r.stderr).toBe(0);
    r = await cli(rcv, 'sync', 'apply');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('add folder mastodon-media (receiveonly)');
    await waitFor('the media on the device', () => existsSync(path.join(rcvMedia, 'accounts/a.png')), 90_000);
    expect(readFileSync(path.join(rcvMedia, 'accounts/a.png'), 'utf8')).toBe('avatar');
    expect(r.stderr).not.toContain('warning');
    const folders = await pair.b.api.get('/rest/config/folders', z.array(stFolderSchema));
    expect(folders.map((f) => f.id)).toContain('mastodon-media');
    r = await cli(rcv, 'sync', 'apply');
    expect(r.stderr).not.toContain('warning');
  }, 240_000);
});
