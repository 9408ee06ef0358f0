import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Manifest } from '../../../src/vault/manifest.js';
import { makeWorkspace, runCli, startCli, type Workspace } from '../../harness/env.js';
import { startSink, type Sink } from '../../harness/http-sinks.js';
import { clusterPerFile } from '../../harness/suite.js';
import { waitFor } from '../../harness/wait.js';
import { holdTableLock } from '../../harness/table-lock.js';

const cluster = clusterPerFile('source');
let ws: Workspace;
const sleepers: ChildProcess[] = [];
const sinks: Sink[] = [];
afterEach(async () => {
  for (const s of sleepers.splice(0)) s.kill('SIGKILL');
  for (const s of sinks.splice(0)) await s.close();
  ws?.cleanup();
});

const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
const startTicks = (pid: number): string => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
};

/** A live process that is not permafrost: what a PID in a stale lock belongs to after a reboot. */
function unrelatedProcess(): number {
  const s = spawn('sleep', ['60'], { stdio: 'ignore' });
  sleepers.push(s);
  return s.pid!;
}

function writeLock(pid: number, boot: string, start: string): void {
  writeFileSync(path.join(ws.vault, '.permafrost.lock'), `${pid}\nbackup\n2026-01-01T00:00:00.000Z\nboot ${boot}\nstart ${start}\n`);
}

/** Every file of the snapshot matches the size and SHA-256 its manifest records. */
function assertComplete(manifest: Manifest): void {
  for (const f of manifest.files) {
    const data = readFileSync(path.join(ws.vault, manifest.id, f.name));
    expect(data.length).toBe(f.bytes);
    expect(createHash('sha256').update(data).digest('hex')).toBe(f.sha256);
  }
}

describe('a stale run lock never stops backups', () => {
  it.each([
    [
      'another boot id (the PID was reused after a reboot)',
      (pid: number) => writeLock(pid, '00000000-0000-0000-0000-000000000000', startTicks(pid)),
    ],
    [
      'another start time (the PID was reused by another program)',
      (pid: number) => writeLock(pid, bootId, String(Number(startTicks(pid)) + 1)),
    ],
  ])('a lock naming a live unrelated process with %s is taken over, and the run says so', async (_why, write) => {
    ws = makeWorkspace(cluster.get(), 'source');
    const pid = unrelatedProcess();
    write(pid);
    const r = await runCli(['--config', ws.configFile, 'backup']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`warning: took over the run lock left by pid ${pid}, which no longer runs`);
    expect(existsSync(path.join(ws.vault, '.permafrost.lock'))).toBe(false);
  });

  // Issue 20 item 8: a lock of an older permafrost names its holder by PID alone; when it was written tells a reused PID.
  const bootMs = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))![1]) * 1000;
  function writeOldLock(pid: number, at: Date): void {
    const file = path.join(ws.vault, '.permafrost.lock');
    writeFileSync(file, `${pid}\nbackup\n${at.toISOString()}\n`);
    utimesSync(file, at, at);
  }

  it.each([
    ['PID 1, the lock written before this boot', () => 1, () => new Date(bootMs - 3_600_000)],
    ['a live unrelated process started after the lock was written', unrelatedProcess, () => new Date(Date.now() - 600_000)],
  ])('an older lock (PID only) naming %s is stale: the backup takes it over and says so', async (_why, pidOf, at) => {
    ws = makeWorkspace(cluster.get(), 'source');
    const pid = pidOf();
    writeOldLock(pid, at());
    const r = await runCli(['--config', ws.configFile, 'backup']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`warning: took over the run lock left by pid ${pid}, which no longer runs`);
    expect(existsSync(path.join(ws.vault, '.permafrost.lock'))).toBe(false);
  });

  it('an older lock (PID only) written after its live holder started still gives exit 4', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const pid = unrelatedProcess();
    writeOldLock(pid, new Date());
    const r = await runCli(['--config', ws.configFile, 'backup']);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain(`Another permafrost run (pid ${pid}) holds the lock on ${ws.vault}`);
  });

  it('a genuinely live holder (same boot, PID and start time) still gives exit 4', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const pid = unrelatedProcess();
    writeLock(pid, bootId, startTicks(pid));
    const r = await runCli(['--config', ws.configFile, 'backup']);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain(`Another permafrost run (pid ${pid}) holds the lock on ${ws.vault}`);
  });

  it("two backups racing over one stale lock: exactly one runs, the other exits 4, the winner's snapshot is complete", async () => {
    const pg = cluster.get();
    for (let round = 0; round < 4; round++) {
      ws = makeWorkspace(pg, 'source');
      // A lock as an older permafrost left it when it died: its PID alone.
      writeFileSync(path.join(ws.vault, '.permafrost.lock'), `${spawnSync('true').pid}\nbackup\n`);
      // The winner waits inside pg_dump (holding the run lock) until the loser has given up.
      const table = await holdTableLock(pg, 'source', 'follows');
      const runs = [startCli(['--config', ws.configFile, 'backup', '--json']), startCli(['--config', ws.configFile, 'backup', '--json'])];
      const first = await Promise.race(runs.map((r) => r.result));
      await table.release();
      const results = await Promise.all(runs.map((r) => r.result));
      expect(first.code, first.stderr).toBe(4);
      expect(results.map((r) => r.code).sort(), results.map((r) => r.stderr).join('\n')).toEqual([0, 4]);
      const manifest = JSON.parse(results.find((r) => r.code === 0)!.stdout) as Manifest;
      assertComplete(manifest);
      expect(readdirSync(ws.vault).filter((n) => n.startsWith('.permafrost.lock') || n.startsWith('.partial-'))).toEqual([]);
      ws.cleanup();
    }
  }, 120_000);
});

describe('the daemon does not skip backups silently', () => {
  it('a lock held by a live process for a whole backup period alerts the webhook once, and the recovery too', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const hook = await startSink();
    sinks.push(hook);
    ws.writeConfig({ extra: { schedule: { backup: '*/2 * * * * *' }, notify: { webhook: { url: hook.url }, backoffMs: 20 } } });
    const holder = spawn('sleep', ['60'], { stdio: 'ignore' });
    sleepers.push(holder);
    writeLock(holder.pid!, bootId, startTicks(holder.pid!));
    const d = startCli(['--config', ws.configFile, 'daemon', '--stop-grace', '10']);
    try {
      const events = (): { event: string; error?: string }[] =>
        hook.received.map((r) => JSON.parse(r.body) as { event: string; error?: string });
      const failed = await waitFor('a backup.failed alert', () => events().find((e) => e.event === 'backup.failed'), 20_000);
      expect(failed.error).toMatch(
        /^no backup since \S+: every run was skipped because the vault is locked\. Another permafrost run \(pid \d+\) holds the lock/,
      );
      // Told once while it lasts; the holder's end lets the next run take over and say backups work again.
      await new Promise((r) => setTimeout(r, 4500));
      expect(events().filter((e) => e.event === 'backup.failed')).toHaveLength(1);
      holder.kill('SIGKILL');
      await waitFor('a backup.resolved alert', () => events().some((e) => e.event === 'backup.resolved'), 20_000);
    } finally {
      d.child.kill('SIGTERM');
      await d.result;
    }
  }, 60_000);
});
