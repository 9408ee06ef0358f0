import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applySync, executeChanges, localDeviceId, readCurrentState, revertLocalChanges } from '../../../src/replicate/apply.js';
import { syncthingSchema } from '../../../src/config/schema-replicate.js';
import { Secret } from '../../../src/config/secret-values.js';
import type { Config } from '../../../src/config/schema.js';
import { HttpError } from '../../../src/net/http.js';
import { SNAPSHOTS_FOLDER } from '../../../src/replicate/plan.js';
import { startSyncthingPair, syncthingSection, type StPair } from '../../harness/syncthing.js';

// Two real Syncthing instances (harness: offline, loopback-only namespace, REST on unix sockets).
let pair: StPair;
let dir: string;
let key: (side: 'a' | 'b') => Secret;

function config(side: 'source' | 'receiver'): Config {
  const vault = path.join(dir, side, 'vault');
  mkdirSync(vault, { recursive: true });
  return {
    configPath: `/etc/permafrost/${side}.yaml`,
    role: side === 'source' ? 'source' : 'receiver',
    vault: { dir: vault },
    syncthing: syncthingSchema.parse(syncthingSection(pair, side)),
  } as Config;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'permafrost-apply-'));
  pair = await startSyncthingPair();
  key = (side) => Secret.of(readFileSync((side === 'a' ? pair.a : pair.b).apiKeyFile, 'utf8').trim());
}, 120_000);
afterAll(async () => {
  await pair?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

describe('applySync against a real Syncthing', () => {
  it('--dry-run plans and changes nothing; then apply makes the changes; a second run has none (idempotent)', async () => {
    const cfg = config('source');
    const dry = await applySync(cfg, key('a'), { dryRun: true });
    expect(dry).toMatchObject({ role: 'source', myID: pair.a.id, dryRun: true, warnings: [] });
    expect(dry.changes.map((c) => c.kind)).toEqual(expect.arrayContaining(['add-device', 'add-folder']));
    expect((await readCurrentState(pair.a.api)).folders.map((f) => f.id)).not.toContain(SNAPSHOTS_FOLDER);

    const done = await applySync(cfg, key('a'));
    expect(done.dryRun).toBe(false);
    expect(done.changes.map((c) => c.summary)).toEqual(dry.changes.map((c) => c.summary));
    const now = await readCurrentState(pair.a.api);
    const folder = now.folders.find((f) => f.id === SNAPSHOTS_FOLDER)!;
    expect([folder.type, folder.path]).toEqual(['sendonly', cfg.vault.dir]);
    expect(now.devices.map((d) => d.deviceID)).toContain(pair.b.id);

    expect((await applySync(cfg, key('a'))).changes).toEqual([]);
  });

  it('localDeviceId is the ID Syncthing reports', async () => {
    expect(await localDeviceId(config('receiver'), key('b'))).toBe(pair.b.id);
  });

  it('a change Syncthing refuses: one sentence naming the change and the config key to fix', async () => {
    const bad = {
      kind: 'add-device' as const,
      summary: 'add device nas (NOTANID) at dynamic',
      method: 'POST' as const,
      path: '/rest/config/devices',
      body: { deviceID: 'NOT-AN-ID', name: 'nas' },
      key: 'syncthing.devices[0]',
    };
    const err = (await executeChanges(pair.a.api, [bad]).catch((e: unknown) => e)) as HttpError;
    expect(err).toBeInstanceOf(HttpError);
    expect(err.message).toMatch(
      /^Syncthing refused to add device nas \(NOTANID\) at dynamic \(HTTP 4\d\d: .*\); fix syncthing\.devices\[0\]\.id and syncthing\.devices\[0\]\.addresses\.$/,
    );
  });
});

describe('revertLocalChanges', () => {
  it("on the server's config: refused (exit 2), its folders are send-only", async () => {
    await expect(revertLocalChanges(config('source'), key('a'))).rejects.toThrow(
      "permafrost sync revert undoes local changes on a backup device, but /etc/permafrost/source.yaml is the server's (syncthing.role: source), whose folders are send-only; run it on the device.",
    );
  });

  it('on a device: reverts the receive-only folder that has local changes, names it; then there is nothing', async () => {
    const cfg = config('receiver');
    await applySync(cfg, key('b'));
    writeFileSync(path.join(cfg.vault.dir, 'added-here.txt'), 'a local change');
    await pair.b.api.post(`/rest/db/scan?folder=${SNAPSHOTS_FOLDER}`);
    expect(await revertLocalChanges(cfg, key('b'))).toEqual([SNAPSHOTS_FOLDER]);
  });

  it('without a syncthing section: the UserError that names what to add', async () => {
    const none: Config = { ...config('receiver'), syncthing: undefined };
    await expect(revertLocalChanges(none, undefined)).rejects.toThrow(/has no syncthing section/);
  });
});
