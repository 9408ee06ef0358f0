import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';
import { deadPort, startMastodon, startSink, type Sink } from '../../harness/http-sinks.js';

const cluster = clusterPerFile('source');
const TOKEN = 'bot-token-0123456789abcdef';
let ws: Workspace;
let sinks: Sink[] = [];
afterEach(async () => {
  ws?.cleanup();
  await Promise.all(sinks.map((s) => s.close()));
  sinks = [];
});

function tokenFile(): string {
  const file = path.join(ws.dir, 'mastodon-token');
  writeFileSync(file, `${TOKEN}\n`, { mode: 0o600 });
  return file;
}

function notifyConfig(webhook: string, ping: string, mastodon: string) {
  return {
    webhook: { url: `${webhook}/hooks/permafrost?key=hook-secret` },
    ping: { url: `${ping}/ping/5e2a` },
    mastodon: { server: mastodon, tokenFile: tokenFile(), to: '@admin' },
    retries: 2,
    backoffMs: 20,
    timeoutMs: 2000,
  };
}

const backup = () => runCli(['--config', ws.configFile, 'backup']);

describe('alerts', () => {
  it('a snapshot kept without its failed Redis part alerts as a failed backup naming the part and the snapshot', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const [hook] = (sinks = [await startSink()]);
    // A Redis socket nothing listens on: Redis is down, the database part still succeeds.
    ws.writeConfig({
      extra: {
        redis: { url: `unix://${path.join(ws.dir, 'no-redis.sock')}` },
        notify: { webhook: { url: `${hook!.url}/hook` }, retries: 0, timeoutMs: 2000 },
      },
    });
    const r = await backup();
    expect(r.code).toBe(1);
    const [id] = readdirSync(ws.vault).filter((n) => /^\d{4}-/.test(n));
    expect(id).toBeDefined();
    expect(hook!.received).toHaveLength(1);
    const alert = JSON.parse(hook!.received[0]!.body) as Record<string, unknown>;
    expect(alert).toMatchObject({ event: 'backup.failed' });
    expect(alert.error).toMatch(new RegExp(`Snapshot ${id} was written with the database but without its redis part`));
  });

  it('a failed backup alerts each channel once, a repeat stays quiet, the next success resolves once', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const [hook, ping, masto] = (sinks = [await startSink(), await startSink(), await startMastodon(TOKEN)]);
    const notify = notifyConfig(hook!.url, ping!.url, masto!.url);
    ws.writeConfig({ database: { name: 'no_such_db' }, extra: { notify } });

    const failed = await backup();
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/permafrost: Cannot connect to PostgreSQL database "no_such_db"/);
    expect(failed.stderr).not.toContain('warning:');
    expect(hook!.received).toHaveLength(1);
    const alert = JSON.parse(hook!.received[0]!.body) as Record<string, unknown>;
    expect(alert).toMatchObject({ event: 'backup.failed', snapshot: null, host: expect.any(String) });
    expect(alert.error).toMatch(/Cannot connect to PostgreSQL database "no_such_db"/);
    expect(hook!.received[0]!.path).toBe('/hooks/permafrost?key=hook-secret');
    expect(ping!.received.map((r) => `${r.method} ${r.path}`)).toEqual(['POST /ping/5e2a/start', 'POST /ping/5e2a/fail']);
    expect(ping!.received[1]!.body).toMatch(/no_such_db/);
    expect(masto!.received).toHaveLength(1);
    const status = JSON.parse(masto!.received[0]!.body) as { status: string; visibility: string };
    expect(status.visibility).toBe('direct');
    expect(status.status).toMatch(/^@admin permafrost on .+: backup failed: Cannot connect/);

    // Still failing: no stream of repeats on the edge channels; the ping heartbeat reports every run.
    expect((await backup()).code).toBe(1);
    expect(hook!.received).toHaveLength(1);
    expect(masto!.received).toHaveLength(1);
    expect(ping!.received.map((r) => r.path).slice(2)).toEqual(['/ping/5e2a/start', '/ping/5e2a/fail']);

    ws.writeConfig({ extra: { notify } });
    const ok = await backup();
    expect(ok.code, ok.stderr).toBe(0);
    expect(hook!.received).toHaveLength(2);
    expect(JSON.parse(hook!.received[1]!.body)).toMatchObject({
      event: 'backup.resolved',
      error: null,
      snapshot: expect.stringMatching(/Z$/),
    });
    expect(masto!.received).toHaveLength(2);
    expect((JSON.parse(masto!.received[1]!.body) as { status: string }).status).toMatch(/^@admin .*backups work again/);
    expect(ping!.received.map((r) => r.path).slice(4)).toEqual(['/ping/5e2a/start', '/ping/5e2a']);

    // Healthy again: another success sends heartbeats only.
    expect((await backup()).code).toBe(0);
    expect(hook!.received).toHaveLength(2);
    expect(masto!.received).toHaveLength(2);
    expect(ping!.received).toHaveLength(8);

    // No secret in any alert: not the passphrase, the bot token, or the webhook's key.
    const passphrase = readFileSync(ws.passFile, 'utf8').trim();
    for (const r of [...hook!.received, ...ping!.received, ...masto!.received]) {
      expect(r.body).not.toContain(passphrase);
      expect(r.body).not.toContain(TOKEN);
      expect(r.body).not.toContain('hook-secret');
    }
    expect(masto!.received.every((r) => r.headers.authorization === `Bearer ${TOKEN}`)).toBe(true);
  });

  it('receivers that are down never fail a backup, and a failing backup keeps its own message and exit code', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const port = await deadPort();
    const down = `http://127.0.0.1:${port}`;
    const notify = notifyConfig(down, down, down);
    ws.writeConfig({ extra: { notify } });
    const t0 = Date.now();
    const ok = await backup();
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^snapshot \S+ written to/);
    expect(readdirSync(ws.vault).filter((n) => /Z$/.test(n))).toHaveLength(1);
    // ping start and ping success, each tried 3 times (2 retries), logged as warnings
    expect(ok.stderr).toContain('warning: alert to ping failed (attempt 3/3: POST http://127.0.0.1');
    expect(ok.stderr).not.toContain('/ping/5e2a');
    expect(Date.now() - t0).toBeLessThan(20_000);

    ws.writeConfig({ database: { name: 'no_such_db' }, extra: { notify } });
    const failed = await backup();
    expect(failed.code).toBe(1);
    const lines = failed.stderr.split('\n').filter((l) => l.startsWith('permafrost: '));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^permafrost: Cannot connect to PostgreSQL database "no_such_db"/);
    expect(failed.stderr).toContain('warning: alert to webhook failed (attempt 3/3');
    expect(failed.stderr).toContain('warning: alert to mastodon failed (attempt 3/3');
    const state = JSON.parse(readFileSync(path.join(ws.vault, '.permafrost-alerts.json'), 'utf8')) as {
      deliveryFailures: Record<string, number>;
      conditions: Record<string, { failing: boolean; told: string[] }>;
    };
    expect(state.deliveryFailures).toEqual({ ping: 4, webhook: 1, mastodon: 1 });
    // Nobody was told, so the failure will be announced once a receiver is back.
    expect(state.conditions.backup).toMatchObject({ failing: true, told: [] });
  });

  it('a wrong bot token is refused once, not retried, and does not fail the backup', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const masto = await startMastodon('another-token-9876543210');
    sinks = [masto];
    ws.writeConfig({
      database: { name: 'no_such_db' },
      extra: { notify: { mastodon: { server: masto.url, tokenFile: tokenFile(), to: 'admin@example.org' }, retries: 2, backoffMs: 20 } },
    });
    const r = await backup();
    expect(r.code).toBe(1);
    expect(masto.received).toHaveLength(1);
    expect(r.stderr).toContain('warning: alert to mastodon refused');
  });

  it('a failed verify alerts once, naming the snapshot and the reason', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const hook = await startSink();
    sinks = [hook];
    ws.writeConfig({ extra: { notify: { webhook: { url: hook.url }, backoffMs: 20 } } });
    expect((await backup()).code).toBe(0);
    expect(hook.received).toHaveLength(0);
    const id = readdirSync(ws.vault).find((n) => /Z$/.test(n))!;
    const file = path.join(ws.vault, id, 'database.pgdump.gpg');
    const bytes = readFileSync(file);
    bytes[bytes.length - 40]! ^= 0xff;
    writeFileSync(file, bytes);
    const r = await runCli(['--config', ws.configFile, 'verify']);
    expect(r.code).toBe(3);
    expect(hook.received).toHaveLength(1);
    expect(JSON.parse(hook.received[0]!.body)).toMatchObject({
      event: 'verify.failed',
      snapshot: id,
      error: expect.stringContaining('SHA-256'),
    });
  });
});
