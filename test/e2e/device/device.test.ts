/**
 * Issue 11 items 3–8: the backup device as a first-class side, with two real Syncthing instances
 * (test/harness/syncthing.ts: loopback-only namespace, safe config). A is the server (source), B
 * the device, whose config holds no passphrase and no database.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { ReplicationStatus } from '../../../src/replicate/status.js';
import type { Manifest } from '../../../src/vault/manifest.js';
import { ClusterFixture, makeWorkspace, runCli, startDaemonLog, type Workspace } from '../../harness/env.js';
import { startMastodon, startSink, type Sink } from '../../harness/http-sinks.js';
import { connected, folderSynced, startSyncthingPair, type StPair, syncthingSection } from '../../harness/syncthing.js';
import { waitFor } from '../../harness/wait.js';

const cluster = new ClusterFixture();
let pair: StPair;
let src: Workspace;
let dev: Workspace;

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const FOLDER = 'permafrost-snapshots';

function sourceConfig(vault: Record<string, unknown> = {}): void {
  src.writeConfig({
    vault,
    extra: {
      syncthing: {
        ...syncthingSection(pair, 'source'),
      },
    },
  });
}

/** The device's config: vault.dir and its Syncthing, no passphrase, no database; `extra` merged at top level. */
function deviceConfig(extra: Record<string, unknown> = {}, syncthing: Record<string, unknown> = {}): void {
  writeFileSync(
    dev.configFile,
    stringify({
      vault: { dir: dev.vault, keep: { last: 3 } },
      syncthing: {
        ...syncthingSection(pair, 'receiver'),
        ...syncthing,
      },
      ...extra,
    }),
  );
}

const cli = (ws: Workspace, ...args: string[]) => runCli(['--config', ws.configFile, ...args]);

async function backup(): Promise<Manifest> {
  const r = await cli(src, 'backup', '--json');
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Manifest;
}

/** Every file of the snapshot on the device with the manifest's SHA-256. */
function arrived(m: Manifest): boolean {
  const dir = path.join(dev.vault, m.id);
  if (!existsSync(path.join(dir, 'manifest.json'))) return false;
  return m.files.every((f) => existsSync(path.join(dir, f.name)) && sha256(path.join(dir, f.name)) === f.sha256);
}

async function status(ws: Workspace): Promise<{ code: number | null; s: ReplicationStatus; stdout: string; stderr: string }> {
  const r = await cli(ws, 'status', '--json');
  return { code: r.code, s: JSON.parse(r.stdout) as ReplicationStatus, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
  cluster.createDb('source');
  pair = await startSyncthingPair();
  src = makeWorkspace(cluster.get(), 'source');
  dev = makeWorkspace(null, 'unused');
  sourceConfig();
  deviceConfig();
  // --dry-run shows the versioning the device will get, and who bounds it.
  const dry = await cli(dev, 'sync', 'apply', '--dry-run');
  expect(dry.code, dry.stderr).toBe(0);
  expect(dry.stdout).toContain(`add folder ${FOLDER} (receiveonly) at ${dev.vault}`);
  expect(dry.stdout).toContain('versioning simple {"keep":"6","cleanoutDays":"0"} (replaced and deleted files go to .stversions;');
  for (const ws of [src, dev]) {
    const r = await cli(ws, 'sync', 'apply');
    expect(r.code, r.stderr).toBe(0);
  }
  await waitFor('A and B to connect', () => connected(pair.a, pair.b), 15_000);
}, 90_000);

afterAll(async () => {
  await pair?.destroy();
  cluster.destroy();
  src?.cleanup();
  dev?.cleanup();
});

describe('the backup device as a first-class side', () => {
  it('lag: a snapshot that arrives in N s reports a lag within N + 2 s on both sides, however late status runs', async () => {
    expect(readFileSync(dev.configFile, 'utf8')).not.toMatch(/passphrase|database/);
    const m = await backup();
    await waitFor(`snapshot ${m.id} on the device`, () => arrived(m), 30_000, 50);
    const n = (Date.now() - Date.parse(m.finishedAt)) / 1000;
    // status looks late: long after the arrival.
    await sleep(6000);
    const server = await status(src);
    expect(server.code, server.stderr).toBe(0);
    const d = server.s.devices[0]!;
    expect(d).toMatchObject({ newestOnDevice: m.id, newestSnapshotComplete: true, lagPending: false });
    expect(d.lagSeconds!).toBeLessThanOrEqual(n + 2);
    const device = await status(dev);
    expect(device.code, device.stderr).toBe(0);
    expect(device.s.device?.newest).toMatchObject({ id: m.id });
    expect(device.s.device!.newest!.lagSeconds).toBeLessThanOrEqual(n + 2);
    const human = await cli(dev, 'status');
    expect(human.stdout).toMatch(new RegExp(`on this device: ${m.id} complete since .* \\(lag \\d+`));
    expect(human.stdout).toMatch(/disk used: .* in \.stversions\)/);
  });

  it('a part changed on the server after commit: the server check exits 3 naming it; the device keeps the good copy, says which, and restores from it', async () => {
    const m = await backup();
    await waitFor(`snapshot ${m.id} on the device`, () => arrived(m), 30_000, 50);
    const part = m.files.find((f) => f.part === 'database')!;
    const file = path.join(src.vault, m.id, part.name);
    const bytes = readFileSync(file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    writeFileSync(file, bytes);
    const check = await cli(src, 'check', m.id);
    expect(check.code).toBe(3);
    expect(check.stderr).toContain(
      `permafrost: Snapshot ${m.id} failed its check: ${part.name} does not match the SHA-256 in the manifest`,
    );

    await pair.a.api.post(`/rest/db/scan?folder=${FOLDER}`);
    const versions = path.join(dev.vault, '.stversions', m.id);
    await waitFor(
      'the changed part on the device, the good one in .stversions',
      () => existsSync(versions) && sha256(path.join(dev.vault, m.id, part.name)) !== part.sha256,
      30_000,
      100,
    );
    const good = readdirSync(versions).find((n) => n.startsWith('database.pgdump~'))!;
    expect(sha256(path.join(versions, good))).toBe(part.sha256);

    const devCheck = await cli(dev, 'check', 'all');
    expect(devCheck.code, devCheck.stderr).toBe(0);
    expect(devCheck.stdout).toContain(`✓ ${m.id}`);
    expect(devCheck.stdout).toContain(`${part.name}: the good copy is ${path.join(versions, good)}`);
    const list = JSON.parse((await cli(dev, 'list', '--json')).stdout) as Array<{ id: string; checked: string }>;
    expect(list.find((r) => r.id === m.id)).toMatchObject({ checked: 'ok' });

    const pg = cluster.get();
    const env = { PGHOST: pg.socketDir, PGPORT: String(pg.port), PGUSER: pg.user, PATH: `${pg.binDir}:${process.env.PATH ?? ''}` };
    const r = await runCli(['--config', dev.configFile, 'restore', m.id, '--database', 'from_device', '--passphrase-file', src.passFile], {
      env,
    });
    expect(r.code, r.stderr).toBe(0);
    const count = (db: string) => pg.psql(db, 'SELECT count(*) FROM statuses').trim();
    expect(count('from_device')).toBe(count('source'));
  });

  it('paused folder and locally changed files: the device status exits 1 saying what to do; sync apply and sync revert fix them', async () => {
    await pair.b.api.patch(`/rest/config/folders/${FOLDER}`, { paused: true });
    let r = await status(dev);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `folder ${FOLDER} is paused on this backup device, so nothing arrives: run \`permafrost sync apply\` here to resume it`,
    );
    expect((await cli(dev, 'sync', 'apply')).code).toBe(0);

    writeFileSync(path.join(dev.vault, 'device-only.txt'), 'added on the device');
    await pair.b.api.post(`/rest/db/scan?folder=${FOLDER}`);
    r = await waitFor(
      'the device to see its local change',
      async () => {
        const x = await status(dev);
        return x.code === 1 && x.stderr.includes('locally changed') ? x : undefined;
      },
      15_000,
      250,
    );
    expect(r.stderr).toContain(
      `folder ${FOLDER} has 1 locally changed file(s) on this backup device, which hide the server's copies: run \`permafrost sync revert\` here`,
    );
    // The server is not the side that is wrong about replication: its one problem is the part an earlier test changed there.
    const server = await status(src);
    expect(
      (server.s as unknown as { issues: Array<{ code: string; severity: string }> }).issues
        .filter((i) => i.severity === 'error')
        .map((i) => i.code),
      server.stderr,
    ).toEqual(['check-failed']);
    const revert = await cli(dev, 'sync', 'revert');
    expect(revert.code, revert.stderr).toBe(0);
    expect(revert.stdout).toBe(`reverted local changes in ${FOLDER}\n`);
    await waitFor('the device clean again', async () => (await status(dev)).code === 0, 15_000, 250);
    expect(existsSync(path.join(dev.vault, 'device-only.txt'))).toBe(false);
  });

  it('20 snapshots with keep { last: 3 }: the device holds the 3 newest, versions included, and its disk use stays within them', async () => {
    sourceConfig({ keep: { last: 3 } });
    const made: Manifest[] = [];
    for (let i = 0; i < 20; i++) made.push(await backup());
    // Newest by id, as retention counts (two backups within one second take the next free second).
    const newest = [...made].sort((a, b) => b.id.localeCompare(a.id)).slice(0, 3);
    await waitFor('the device in sync', async () => arrived(newest[0]!) && (await folderSynced(pair.a, pair.b, FOLDER)), 60_000, 200);
    const dry = await cli(dev, 'prune', '--dry-run');
    expect(dry.code, dry.stderr).toBe(0);
    // What the server pruned went to the device's .stversions; the device's prune removes it there.
    expect(dry.stdout).toMatch(/^would delete {2}\S+Z$/m);
    const prune = await cli(dev, 'prune', '--json');
    expect(prune.code, prune.stderr).toBe(0);
    const list = JSON.parse((await cli(dev, 'list', '--json')).stdout) as Array<{ id: string }>;
    expect(list.map((r) => r.id)).toEqual(newest.map((m) => m.id));
    expect(readdirSync(path.join(dev.vault, '.stversions')).filter((n) => /Z$/.test(n))).toEqual([]);
    const { s } = await status(dev);
    const held = newest.reduce((n, m) => n + m.files.reduce((k, f) => k + f.bytes, 0) + 4096, 0);
    // Allocated bytes: each file rounds up to a 4 KiB block.
    expect(s.device!.disk.snapshotBytes + s.device!.disk.versionsBytes).toBeLessThanOrEqual(held + 3 * 4 * 4096);
    // Nothing the device pruned is a local change in its receive-only folder.
    const after = await status(dev);
    expect(after.code, after.stderr).toBe(0);
  }, 180_000);

  it('dead-man alarm: the device daemon alerts stale exactly once per channel, resolved once when a snapshot arrives, and once when its Syncthing is unreachable', async () => {
    const hook = await startSink();
    const ping = await startSink();
    const token = path.join(dev.dir, 'mastodon.token');
    writeFileSync(token, 'tok\n', { mode: 0o600 });
    const masto = await startMastodon('tok');
    const notify = {
      webhook: { url: hook.url },
      ping: { url: `${ping.url}/hc` },
      mastodon: { server: masto.url, tokenFile: token, to: '@admin' },
      backoffMs: 10,
    };
    const sinks: Sink[] = [hook, ping, masto];
    try {
      deviceConfig({ schedule: { check: '*/2 * * * * *' }, notify }, { staleAfter: '8s' });
      await sleep(9000 - (Date.now() - Date.parse((await status(src)).s.snapshot!.finishedAt)));
      let d = startDaemonLog(dev.configFile);
      const events = () => hook.received.map((x) => (JSON.parse(x.body) as { event: string }).event);
      try {
        await waitFor(
          'the stale alert on every channel',
          () => events().length >= 1 && ping.received.length >= 1 && masto.received.length >= 1,
          15_000,
        );
        // Three more check intervals: still exactly one each.
        await sleep(6000);
        expect(events()).toEqual(['snapshots.stale']);
        expect(ping.received.map((x) => x.path)).toEqual(['/hc/fail']);
        expect(masto.received).toHaveLength(1);
        expect((JSON.parse(masto.received[0]!.body) as { status: string }).status).toMatch(
          /^@admin .*no new snapshot: the newest complete snapshot here/,
        );

        const m = await backup();
        await waitFor(
          'the resolved alert on every channel',
          () => events().length >= 2 && ping.received.length >= 2 && masto.received.length >= 2,
          15_000,
        );
        expect(arrived(m)).toBe(true);
        expect(events()).toEqual(['snapshots.stale', 'snapshots.resolved']);
        expect(ping.received.map((x) => x.path)).toEqual(['/hc/fail', '/hc']);
      } finally {
        d.child.kill('SIGTERM');
      }
      expect((await d.result).code).toBe(0);

      // Its own Syncthing gone: one more problem to report, once per channel.
      deviceConfig({ schedule: { check: '*/2 * * * * *' }, notify }, { staleAfter: '1h', url: path.join(dev.dir, 'no-syncthing.sock') });
      d = startDaemonLog(dev.configFile);
      try {
        await waitFor(
          'the unreachable alert',
          () => events().length >= 3 && ping.received.length >= 3 && masto.received.length >= 3,
          15_000,
        );
        await sleep(4000);
      } finally {
        d.child.kill('SIGTERM');
      }
      expect((await d.result).code).toBe(0);
      expect(events()).toEqual(['snapshots.stale', 'snapshots.resolved', 'syncthing.stale']);
      expect(ping.received.map((x) => x.path)).toEqual(['/hc/fail', '/hc', '/hc/fail']);
      expect(masto.received).toHaveLength(3);
    } finally {
      for (const s of sinks) await s.close();
      deviceConfig();
    }
  }, 120_000);

  it('doctor on the device checks its folder, Syncthing, check results and freshness, and nothing about backups', async () => {
    const r = await cli(dev, 'doctor', '--json');
    const report = JSON.parse(r.stdout) as { device: boolean; lines: Array<{ check: string; status: string }> };
    expect(report.device).toBe(true);
    const checks = report.lines.map((l) => l.check);
    expect(checks).toEqual(expect.arrayContaining(['config', 'device folder', 'check results', 'freshness', 'retention']));
    expect(checks).not.toEqual(expect.arrayContaining(['database']));
    expect(checks.some((c) => /passphrase|pg_dump|redis|secrets|^vault$/.test(c))).toBe(false);
    expect(report.lines.filter((l) => l.check.startsWith('syncthing')).length).toBeGreaterThan(0);
    expect(r.stdout).not.toMatch(/backup will create|running backups/);
  });

  it('without a syncthing section, status shows the newest snapshot and its age, exit 0 when fresh, 1 without a snapshot', async () => {
    writeFileSync(dev.configFile, stringify({ vault: { dir: dev.vault } }));
    const r = await cli(dev, 'status');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^newest snapshot: \S+ \(.* old\)/);
    expect(r.stdout).toContain('syncthing: not configured');
    src.writeConfig();
    const s = await cli(src, 'status');
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toContain('syncthing: not configured');
    // A server without a single snapshot is not fresh: exit 1 with what to do (older than 2h is the same).
    const empty = makeWorkspace(cluster.get(), 'source');
    try {
      const e = await cli(empty, 'status');
      expect(e.code).toBe(1);
      expect(e.stderr).toContain('permafrost: The snapshots need attention: there is no snapshot yet: run `permafrost backup`.');
    } finally {
      empty.cleanup();
    }
    deviceConfig();
  });
});
