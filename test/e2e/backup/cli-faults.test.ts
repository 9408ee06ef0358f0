import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, errorSentence, makeWorkspace, runCli, startCli, type Workspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';
import { holdTableLock } from '../../harness/table-lock.js';
import { waitFor } from '../../harness/wait.js';

// issue 9 item 13: bad flags and bad config refused as the README says; closed pipes end nothing.
const cluster = clusterPerFile('source');
let ws: Workspace | undefined;
afterEach(() => {
  ws?.cleanup();
  ws = undefined;
});

/** A config naming a database that is never connected to, for commands that only read the config and vault. */
function configOnly(): Workspace {
  const w = makeWorkspace(null, '');
  w.writeConfig({ extra: { database: { name: 'never_connected' } } });
  return w;
}

describe("bad flags exit 2 with commander's message, for every command", () => {
  it.each([
    'init --mastodon /nonexistent',
    'doctor',
    'backup',
    'list',
    'restore',
    'verify',
    'metrics',
    'prune',
    'daemon',
    'systemd',
    'status',
    'device-id',
    'sync apply',
    'sync status',
  ])('%s --nope', async (command) => {
    const r = await runCli([...command.split(' '), '--nope']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain("error: unknown option '--nope'");
  });

  it.each(['abc', '0', '-3', '2.5'])('restore --jobs %s is refused before anything is read', async (jobs) => {
    const r = await runCli(['--config', '/nonexistent.yaml', 'restore', 'latest', '--database', 'x', '--jobs', jobs]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(
      `error: option '-j, --jobs <n>' argument '${jobs}' is invalid. expected a whole number of at least 1, e.g. --jobs 2.`,
    );
  });
});

describe('bad config and paths exit 2 naming what to fix', () => {
  it('metrics --textfile into a missing folder: refused naming the folder, which is not created', async () => {
    ws = configOnly();
    const folder = path.join(ws.dir, 'node-exporter');
    const r = await runCli(['--config', ws.configFile, 'metrics', '--textfile', path.join(folder, 'permafrost.prom')]);
    expect(r.code, r.stderr).toBe(2);
    expect(errorSentence(r.stderr)).toBe(
      `--textfile: folder ${folder} does not exist; create it or point --textfile at node_exporter's textfile directory.`,
    );
    expect(existsSync(folder)).toBe(false);
  });

  it('notify.mastodon.server over plain http:// beyond loopback is refused at load (it would send the bot token)', async () => {
    ws = configOnly();
    ws.writeConfig({
      extra: {
        database: { name: 'never_connected' },
        notify: { mastodon: { server: 'http://mastodon.example.org', tokenFile: ws.passFile, to: '@admin' } },
      },
    });
    const r = await runCli(['--config', ws.configFile, 'list']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('notify.mastodon.server: plain http:// would send the bot token unencrypted; use https://');
  });

  it('a vault.tempDir writable by others without the sticky bit is refused at load', async () => {
    ws = configOnly();
    const open = path.join(ws.dir, 'shared-tmp');
    mkdirSync(open);
    chmodSync(open, 0o777);
    ws.writeConfig({ vault: { tempDir: open }, extra: { database: { name: 'never_connected' } } });
    const r = await runCli(['--config', ws.configFile, 'list']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`vault.tempDir: ${open} is writable by every user but lacks the sticky bit`);
    chmodSync(open, 0o1777);
    expect((await runCli(['--config', ws.configFile, 'list'])).code).toBe(0);
  });
});

describe('a reader that goes away ends nothing', () => {
  it('`permafrost backup 2>&1 | head -1`: the backup runs to the end, exit 0, a complete snapshot, no partial folder or lock', async () => {
    const pg = cluster.get();
    ws = makeWorkspace(pg, 'source');
    // pg_dump waits for this lock, so the pipe closes while the backup is mid-way.
    const lock = await holdTableLock(pg, 'source', 'follows');
    const head = spawn('head', ['-1'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let firstLine = '';
    head.stdout.on('data', (d: Buffer) => (firstLine += d.toString()));
    const headExited = new Promise<void>((r) => head.once('close', () => r()));
    const backup = spawn(process.execPath, [CLI, '--config', ws.configFile, 'backup'], { stdio: ['ignore', head.stdin, head.stdin] });
    const exited = new Promise<number | null>((r) => backup.once('close', (code) => r(code)));
    // Only the two processes hold the pipe now: once head exits, every write of the backup gets EPIPE.
    head.stdin.destroy();
    try {
      await headExited;
      expect(backup.exitCode).toBe(null);
      expect(readdirSync(ws.vault).filter((n) => n.startsWith('.partial-'))).toHaveLength(1);
    } finally {
      await lock.release();
    }
    expect(firstLine).toMatch(/^backup: /);
    expect(await exited).toBe(0);
    const list = await runCli(['--config', ws.configFile, 'list', '--json']);
    expect(list.code, list.stderr).toBe(0);
    const snapshots = JSON.parse(list.stdout) as Array<{ id: string; problem?: string | null }>;
    expect(snapshots).toHaveLength(1);
    expect(snapshots[0]!.problem ?? null).toBe(null);
    expect(readdirSync(ws.vault).filter((n) => n.startsWith('.partial-') || n === '.permafrost.lock')).toEqual([]);
    const verify = await runCli(['--config', ws.configFile, 'verify', snapshots[0]!.id]);
    expect(verify.code, verify.stderr).toBe(0);
  });

  it('the daemon keeps running when its stdout closes, logs to stderr from then on, and stops cleanly on SIGTERM', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    // A verify every second (of an empty vault: it fails at once) gives a log line every second.
    ws.writeConfig({ extra: { schedule: { verify: '* * * * * *' } } });
    const d = startCli(['--config', ws.configFile, 'daemon', '--stop-grace', '5']);
    let out = '';
    d.child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    await waitFor('the first log line', () => out.includes('"daemon.start"'));
    d.child.stdout.destroy();
    let err = '';
    d.child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    await waitFor('log lines on stderr', () => (err.match(/"event":"run\.start"/g) ?? []).length >= 2 || d.child.exitCode !== null, 15_000);
    expect(d.child.exitCode).toBe(null);
    d.child.kill('SIGTERM');
    const r = await d.result;
    expect(r.code).toBe(0);
    expect(err).toContain('"event":"daemon.stop"');
  });
});
