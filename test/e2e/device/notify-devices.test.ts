/**
 * Device staleness alerts against two real Syncthing instances (test/harness/syncthing.ts):
 * a device that stops receiving is reported once, and its recovery once.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterFixture, makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { startSink, type Sink } from '../../harness/http-sinks.js';
import { connected, startSyncthingPair, type StPair, syncthingSection } from '../../harness/syncthing.js';
import { waitFor } from '../../harness/wait.js';
import type { Manifest } from '../../../src/vault/manifest.js';

const cluster = new ClusterFixture();
let pair: StPair;
let src: Workspace;
let rcv: Workspace;
let hook: Sink;

function sourceConfig(staleAfter?: number): void {
  src.writeConfig({
    extra: {
      syncthing: {
        ...syncthingSection(pair, 'source'),
        ...(staleAfter ? { staleAfter } : {}),
      },
      notify: { webhook: { url: `${hook.url}/hook` }, backoffMs: 10 },
    },
  });
}

const events = () => hook.received.map((r) => JSON.parse(r.body) as { event: string; error: string | null; snapshot: string | null });

async function backup(): Promise<Manifest> {
  const r = await runCli(['--config', src.configFile, 'backup', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Manifest;
}

beforeAll(async () => {
  cluster.createDb('source');
  pair = await startSyncthingPair();
  hook = await startSink();
  src = makeWorkspace(cluster.get(), 'source');
  rcv = makeWorkspace(null, 'unused');
  sourceConfig();
  rcv.writeConfig({
    extra: {
      syncthing: {
        ...syncthingSection(pair, 'receiver'),
      },
    },
  });
  for (const ws of [src, rcv]) {
    const r = await runCli(['--config', ws.configFile, 'sync', 'apply']);
    expect(r.code, r.stderr).toBe(0);
  }
}, 90_000);

afterAll(async () => {
  await pair?.destroy();
  await hook?.close();
  cluster.destroy();
  src?.cleanup();
  rcv?.cleanup();
});

describe('device alerts', () => {
  it('a device that stops receiving alerts once when stale, and once when it has caught up', async () => {
    const first = await backup();
    await waitFor('the first snapshot on the device', () => existsSync(path.join(rcv.vault, first.id, 'manifest.json')), 30_000);
    expect(events()).toEqual([]);
    // Status records that the device has it (Syncthing does not remember when a remote got a file),
    // and shows the newest snapshot's verify result.
    let st = await runCli(['--config', src.configFile, 'status']);
    expect(st.code, st.stderr).toBe(0);
    expect(st.stdout).toMatch(new RegExp(`^newest snapshot: ${first.id} \\(\\d+s old\\), never verified$`, 'm'));
    expect((await runCli(['--config', src.configFile, 'verify'])).code).toBe(0);
    st = await runCli(['--config', src.configFile, 'status', '--json']);
    expect((JSON.parse(st.stdout) as { verify: { status: string } }).verify.status).toBe('verified');
    st = await runCli(['--config', src.configFile, 'status']);
    expect(st.stdout).toMatch(/^newest snapshot: \S+ \(\d+s old\), verified ✓$/m);

    await pair.a.api.patch(`/rest/config/devices/${pair.b.id}`, { paused: true });
    await waitFor('the device disconnected', async () => !(await connected(pair.a, pair.b)), 10_000);
    const missed = await backup();
    expect(events()).toEqual([]); // younger than staleAfter (2h)

    sourceConfig(1);
    await new Promise((r) => setTimeout(r, 1500));
    await backup();
    await backup();
    expect(events().map((e) => e.event)).toEqual(['device.stale']);
    expect(events()[0]!.error).toBe(`its newest complete snapshot is ${first.id}`);
    expect(events()[0]!.snapshot).toBe(first.id);

    sourceConfig();
    await pair.a.api.patch(`/rest/config/devices/${pair.b.id}`, { paused: false });
    await waitFor('the device reconnected', () => connected(pair.a, pair.b), 15_000);
    await waitFor('the missed snapshot on the device', () => existsSync(path.join(rcv.vault, missed.id, 'manifest.json')), 30_000);
    await backup();
    expect(events().map((e) => e.event)).toEqual(['device.stale', 'device.resolved']);
  });
});
