import { cpSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeWorkspace, runCli, startCli, startDaemonLog, type Workspace } from '../../harness/env.js';
import { deadPort, startSink, type Sink } from '../../harness/http-sinks.js';
import { clusterPerFile } from '../../harness/suite.js';
import { waitFor } from '../../harness/wait.js';

/**
 * A backup device (syncthing.role: receiver, no database section) with snapshots a source made:
 * the daemon, `verify` on verify.connection, and alerts. Syncthing itself does not run: the
 * snapshots are copied in as Syncthing would, and syncthing.url names a socket nobody serves.
 */
const cluster = clusterPerFile('source');
let src: Workspace;
let rcv: Workspace;
let hook: Sink;
let snapshot: string;

beforeAll(async () => {
  src = makeWorkspace(cluster.get(), 'source');
  const r = await runCli(['--config', src.configFile, 'backup', '--json']);
  expect(r.code, r.stderr).toBe(0);
  snapshot = (JSON.parse(r.stdout) as { id: string }).id;
}, 60_000);

afterAll(() => src?.cleanup());

afterEach(async () => {
  rcv?.cleanup();
  await hook?.close();
});

/** A receiver workspace holding a copy of the source's snapshot; `extra` is merged at top level of its config. */
async function receiver(extra: Record<string, unknown> = {}): Promise<Workspace> {
  rcv = makeWorkspace(null, 'unused');
  hook = await startSink();
  cpSync(path.join(src.vault, snapshot), path.join(rcv.vault, snapshot), { recursive: true });
  const pg = cluster.get();
  rcv.writeConfig({
    // The device has to hold the passphrase to test-restore (issue 11 will lift that).
    vault: { passphraseFile: src.passFile },
    extra: {
      syncthing: { url: path.join(rcv.dir, 'no-syncthing.sock'), apiKeyFile: rcv.passFile, role: 'receiver' },
      verify: { connection: { host: pg.socketDir, port: pg.port, user: pg.user, binDir: pg.binDir } },
      notify: { webhook: { url: hook.url }, backoffMs: 10 },
      ...extra,
    },
  });
  expect(readFileSync(rcv.configFile, 'utf8')).not.toMatch(/^database:/m);
  return rcv;
}

function damage(ws: Workspace): void {
  const file = path.join(ws.vault, snapshot, 'database.pgdump.gpg');
  const bytes = readFileSync(file);
  bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
  writeFileSync(file, bytes);
}

function scratchDbs(): string {
  return cluster.get().psql('postgres', "SELECT count(*) FROM pg_database WHERE datname LIKE 'permafrost_verify%'").trim();
}

const events = () => hook.received.map((r) => JSON.parse(r.body) as { event: string; snapshot: string | null; error: string | null });

describe('a backup device (syncthing.role: receiver, no database)', () => {
  it('permafrost verify test-restores on verify.connection: exit 0 for a good snapshot, recorded for list', async () => {
    const ws = await receiver();
    const r = await runCli(['--config', ws.configFile, 'verify', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { ok: boolean; snapshot: string; checks: Array<{ name: string }> };
    expect(result).toMatchObject({ ok: true, snapshot });
    expect(result.checks.map((c) => c.name)).toEqual([
      'decrypt-database',
      'archive',
      'restore',
      'tables',
      'row-counts',
      'schema-migration',
      'decrypt-roles',
    ]);
    expect(scratchDbs()).toBe('0');
    const list = JSON.parse((await runCli(['--config', ws.configFile, 'list', '--json'])).stdout) as Array<{
      id: string;
      verified: string;
    }>;
    expect(list).toMatchObject([{ id: snapshot, verified: 'verified' }]);
    expect(events()).toEqual([]);
  });

  it('permafrost verify of a damaged snapshot exits 3 and delivers the alert to the webhook', async () => {
    const ws = await receiver();
    damage(ws);
    const r = await runCli(['--config', ws.configFile, 'verify']);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain(
      `permafrost: Snapshot ${snapshot} failed verification: database.pgdump.gpg does not match the SHA-256 in the manifest`,
    );
    expect(r.stderr).not.toContain('alerting failed');
    expect(events()).toEqual([expect.objectContaining({ event: 'verify.failed', snapshot, error: expect.stringContaining('SHA-256') })]);
    expect(scratchDbs()).toBe('0');
  });

  it('permafrost backup there is one sentence saying what to change (exit 2)', async () => {
    const ws = await receiver();
    const r = await runCli(['--config', ws.configFile, 'backup']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`permafrost: permafrost backup needs a database, but ${ws.configFile} has no database section`);
    expect(events()).toEqual([]);
  });

  it('the daemon starts, schedules verify and no backup, serves /metrics, alerts a failed verify, and exits 0 on SIGTERM', async () => {
    const port = await deadPort();
    const ws = await receiver({ schedule: { backup: '* * * * * *', verify: '*/2 * * * * *' }, web: { listen: `127.0.0.1:${port}` } });
    damage(ws);
    const d = startDaemonLog(ws.configFile);
    const lines = d.lines;
    let metrics = '';
    try {
      await waitFor('a failed verify run', () => lines().some((l) => l.event === 'run.fail' && l.job === 'verify'), 30_000);
      metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    } finally {
      d.child.kill('SIGTERM');
    }
    const end = await d.result;
    expect(end.code, end.stderr).toBe(0);
    const start = lines().find((l) => l.event === 'daemon.start') as { jobs: Array<{ name: string }> };
    expect(start.jobs.map((j) => j.name)).toEqual(['verify', 'check']);
    expect(lines().some((l) => l.job === 'backup')).toBe(false);
    expect(lines().find((l) => l.event === 'run.fail')!.error).toMatch(
      new RegExp(`^Snapshot ${snapshot} failed verification: database.pgdump.gpg does not match the SHA-256`),
    );
    expect(metrics).toContain('permafrost_');
    expect(events().map((e) => e.event)).toEqual(['verify.failed']);
    expect(readdirSync(ws.vault).filter((n) => /Z$/.test(n))).toEqual([snapshot]);
    expect(scratchDbs()).toBe('0');
  });

  it('the daemon without verify.connection runs only the check, stays up, and exits 0 on SIGTERM', async () => {
    const ws = await receiver({ verify: undefined });
    const d = startCli(['--config', ws.configFile, 'daemon']);
    let out = '';
    d.child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    await waitFor('the daemon to start', () => out.includes('"daemon.start"'), 10_000);
    // Still running a while later: nothing but the stop signal ends it.
    await new Promise((r) => setTimeout(r, 1000));
    expect(d.child.exitCode).toBeNull();
    d.child.kill('SIGTERM');
    const end = await d.result;
    expect(end.code, end.stderr).toBe(0);
    expect((JSON.parse(out.split('\n')[0]!) as { jobs: unknown[] }).jobs).toEqual([expect.objectContaining({ name: 'check' })]);
  });
});
