import { describe, expect, it } from 'vitest';
import { healthFailure, renderHuman, renderStatus, statusFailure, statusJson } from '../../../src/cli/status-render.js';
import type { Io } from '../../../src/cli/run.js';
import type { OffsiteView, Overview, Problem, ReplicationView, SnapshotRow } from '../../../src/ops/overview.js';
import type { ReplicationStatus } from '../../../src/replicate/status.js';

const NOW = Date.parse('2026-12-01T12:00:00.000Z');
const iso = (secondsAgo: number): string => new Date(NOW - secondsAgo * 1000).toISOString();

function capture(): { io: Io; out: string[] } {
  const out: string[] = [];
  return { io: { out: (t) => out.push(t), err: () => undefined, isTTY: false }, out };
}

function snap(id: string, over: Partial<SnapshotRow> = {}): SnapshotRow {
  return {
    id,
    startedAt: iso(600),
    finishedAt: iso(600),
    ageSeconds: 600,
    durationMs: 1000,
    bytes: 1,
    plainBytes: 1,
    parts: [],
    kind: 'full',
    depth: null,
    base: null,
    reference: null,
    neededBy: [],
    database: 'mastodon',
    keys: {},
    signedBy: null,
    verified: 'verified',
    verifiedAt: iso(300),
    verifyReason: null,
    checked: 'ok',
    checkedAt: '2026-12-01T11:55:00.000Z',
    checkProblems: [],
    problem: null,
    failed: [],
    future: false,
    versionsOnly: false,
    ...over,
  };
}

function overview(over: Partial<Overview> = {}): Overview {
  const snapshots = over.snapshots ?? [snap('2026-12-01T11-50-00Z')];
  return {
    generatedAt: new Date(NOW).toISOString(),
    role: 'source',
    vaultDir: '/vault',
    host: 'h',
    snapshots,
    newest: snapshots[0]?.id ?? null,
    lastBackup: { outcome: 'ok', finishedAt: iso(600), snapshot: snapshots[0]?.id ?? null, error: null },
    lastVerify: null,
    lastCheck: null,
    alerts: { formatVersion: 1, conditions: {}, deliveryFailures: {}, lastDelivery: {} },
    retention: { last: 6 },
    staleAfterSeconds: 7200,
    verifies: true,
    device: null,
    replication: null,
    replicationError: null,
    syncthingConfigured: false,
    schedule: [{ name: 'backup', cron: '40 * * * *', timezone: 'UTC', running: false, nextRun: '2026-12-01T12:40:00.000Z', lastRun: null }],
    timeZone: 'UTC',
    disk: { free: 10 * 2 ** 30, total: 20 * 2 ** 30 },
    growth: { day: null, week: null, perDayBytes: null, basis: null, daysLeft: null },
    needsOffsite: false,
    offsite: [],
    ...over,
  };
}

function problem(over: Partial<Problem>): Problem {
  return { code: 'stale', severity: 'error', message: 'm', fix: 'f', subject: null, ...over };
}

const replication: ReplicationView = {
  reachable: true,
  error: null,
  issues: [],
  staleAfterSeconds: 7200,
  myID: 'ABCDEFG-HIJKLMN',
  localFolders: [{ folder: 'permafrost-snapshots', state: 'idle', paused: true, needBytes: 2048, receiveOnlyChangedFiles: 2, errors: 1 }],
  devices: [
    {
      name: 'laptop',
      id: 'LAPTOPX-YYYY',
      connected: false,
      since: null,
      lastSeen: iso(3 * 3600),
      newestSnapshotComplete: false,
      newestOnDevice: '2026-12-01T08-40-00Z',
      lagSeconds: 600,
      lagPending: true,
      stale: true,
      problem: 'laptop lacks a snapshot older than 2h',
      folders: [{ folder: 'permafrost-snapshots', completion: 87.25, needBytes: 4096 }],
    },
  ],
};

describe('renderHuman (permafrost status)', () => {
  it('a healthy source: newest snapshot with verify and check, the last backup, syncthing, schedule, disk', () => {
    const { io, out } = capture();
    renderHuman(io, overview(), []);
    expect(out).toEqual([
      'newest snapshot: 2026-12-01T11-50-00Z (10m old), verified ✓',
      'check of the newest snapshot: ✓ at 2026-12-01T11:55:00.000Z',
      'last backup: ok, 10m ago (2026-12-01T11-50-00Z)',
      'syncthing: not configured',
      'next backup: in 40m (2026-12-01T12:40:00.000Z, 40 * * * *)',
      'disk: 10.0 GiB free of 20.0 GiB',
    ]);
  });

  it('failed verify and check, a failed backup with its error, growth and days left, warnings', () => {
    const { io, out } = capture();
    renderHuman(
      io,
      overview({
        snapshots: [
          snap('S', {
            verified: 'failed',
            verifyReason: 'row counts differ',
            checked: 'failed',
            checkProblems: ['a', 'b'],
            checkedAt: null,
          }),
        ],
        lastBackup: { outcome: 'failed', finishedAt: iso(60), snapshot: null, error: 'Cannot connect to PostgreSQL.' },
        growth: { day: null, week: null, perDayBytes: 2 ** 30, basis: 'week', daysLeft: 10.8 },
        schedule: [{ name: 'verify', cron: '', timezone: 'UTC', running: false, nextRun: null, lastRun: null }],
      }),
      [problem({ severity: 'warning', code: 'no-retention', message: 'no retention', fix: 'set vault.keep' })],
    );
    expect(out[0]).toBe('newest snapshot: S (10m old), verify failed ✗ (row counts differ)');
    expect(out[1]).toBe('check of the newest snapshot: ✗ a; b');
    expect(out[2]).toBe('last backup: failed, 60s ago: Cannot connect to PostgreSQL.');
    expect(out).toContain('next verify: not scheduled');
    expect(out).toContain(
      'disk: 10.0 GiB free of 20.0 GiB; grows 1.0 GiB a day (measured over the last week), room for about 10 days (before pruning)',
    );
    expect(out.at(-1)).toMatch(/^warning: no retention/);
  });

  it('syncthing: paused folder notes, a stale offline device with completion, newest there, lag and problem', () => {
    const { io, out } = capture();
    renderHuman(io, overview({ syncthingConfigured: true, replication, schedule: [], disk: null }), []);
    expect(out.slice(3)).toEqual([
      'syncthing: source, device ABCDEFG',
      '  folder permafrost-snapshots: idle, PAUSED, 2.0 KiB to receive, 2 locally changed, 1 error(s)',
      'device laptop (LAPTOPX): not connected (last seen 3h ago) — STALE',
      '  permafrost-snapshots: 87.3%, 4.0 KiB to send',
      '  newest snapshot: not yet on the device; newest there: 2026-12-01T08-40-00Z',
      '  lag: waiting for 10m',
      '  problem: laptop lacks a snapshot older than 2h',
    ]);
  });

  it('syncthing unreachable says why; a receiver shows itself and not the per-device folders', () => {
    let c = capture();
    renderHuman(c.io, overview({ syncthingConfigured: true, replicationError: 'connect ECONNREFUSED', schedule: [], disk: null }), []);
    expect(c.out.at(-1)).toBe('syncthing: unreachable (connect ECONNREFUSED)');
    c = capture();
    renderHuman(
      c.io,
      overview({
        role: 'receiver',
        syncthingConfigured: true,
        replication: { ...replication, devices: [{ ...replication.devices[0]!, connected: true, since: iso(60), stale: false }] },
        device: {
          newest: { id: 'S', finishedAt: iso(900), arrivedAt: '2026-12-01T11:46:00.000Z', ageSeconds: 900, lagSeconds: 60 },
          staleAfterSeconds: 7200,
          stale: false,
          problem: null,
          disk: { snapshotBytes: 3 * 2 ** 20, versionsBytes: 2 ** 20 },
        },
        schedule: [],
        disk: null,
      }),
      [],
    );
    expect(c.out).not.toContain('last backup: none recorded');
    expect(c.out).toContain('on this device: S complete since 2026-12-01T11:46:00.000Z (lag 60s after its commit), 15m old');
    expect(c.out).toContain('disk used: 4.0 MiB (3.0 MiB snapshots, 1.0 MiB in .stversions)');
    expect(c.out.at(-1)).toBe('device laptop (LAPTOPX): connected since 60s ago');
  });

  it('offsite targets: FAILED/STALE from the verdict, newest, size, lag, what it lacks, the last push', () => {
    const { io, out } = capture();
    const t = {
      name: 'b2',
      describe: 'offsite target b2 (s3://bk/p/)',
      newestComplete: { id: 'S', pushedAt: iso(60) },
      bytes: 2048,
      objects: 4,
      lagSeconds: 120,
      lagPending: true,
      missing: 2,
      lastAttemptAt: iso(60),
      lastError: 'AccessDenied',
      lockedDeletes: 1,
    } as unknown as OffsiteView;
    renderHuman(io, overview({ offsite: [t], schedule: [], disk: null }), [problem({ code: 'offsite-failed', subject: 'b2' })]);
    expect(out.slice(-2)).toEqual([
      'offsite target b2 (s3://bk/p/) — FAILED: newest S, 2.0 KiB in 4 objects, lag 2m (waiting), lacks 2 snapshots',
      '  last push 60s ago: failed: AccessDenied; 1 deletes refused by Object Lock',
    ]);
  });
});

describe('statusJson and the failures', () => {
  it('statusJson: the newest snapshot figures, the verdict, errors and warnings as sentences, issues structured', () => {
    const problems = [
      problem({ code: 'backup-failed', message: 'the last backup failed', fix: 'run permafrost backup' }),
      problem({ severity: 'warning', code: 'no-retention', message: 'no keep', fix: 'set vault.keep' }),
    ];
    const j = statusJson(overview(), problems) as Record<string, unknown>;
    expect(j).toMatchObject({
      role: 'source',
      snapshot: { id: '2026-12-01T11-50-00Z', ageSeconds: 600 },
      verify: { status: 'verified' },
      check: { status: 'ok', problems: [] },
      healthy: false,
      ok: false,
      issues: problems,
    });
    expect(j.problems).toEqual([expect.stringContaining('the last backup failed')]);
    expect(j.warnings).toEqual([expect.stringContaining('no keep')]);
    expect((statusJson(overview({ snapshots: [] }), []) as Record<string, unknown>).healthy).toBe(true);
  });

  it('healthFailure: errors only, "Replication needs" when every error is about replication, exit 1', () => {
    const repl = healthFailure([
      problem({ code: 'device-stale', message: 'laptop is stale', fix: 'check it' }),
      problem({ severity: 'warning', message: 'w' }),
    ]);
    expect(repl.message).toMatch(/^Replication needs attention: laptop is stale/);
    expect(repl.message).not.toContain('w:');
    expect(repl.exitCode).toBe(1);
    const snaps = healthFailure([problem({ code: 'device-stale', message: 'a' }), problem({ code: 'backup-failed', message: 'b' })]);
    expect(snaps.message).toMatch(/^The snapshots need attention: a.*; b/);
  });

  it('sync status: rendered from a ReplicationStatus (JSON as is), and statusFailure joins its problems', () => {
    const s = {
      role: 'source',
      syncthing: true,
      reachable: false,
      error: 'timeout',
      myID: null,
      snapshot: { id: 'S', finishedAt: iso(7200), ageSeconds: 7200 },
      localFolders: [],
      device: null,
      devices: [],
      staleAfterSeconds: 7200,
      ok: false,
      problems: ['Syncthing is unreachable.', 'no device.'],
    } as unknown as ReplicationStatus;
    const { io, out } = capture();
    renderStatus(io, s, false);
    expect(out).toEqual(['newest snapshot: S (2h old)', 'syncthing: unreachable (timeout)']);
    const j = capture();
    renderStatus(j.io, s, true);
    expect(JSON.parse(j.out.join('\n'))).toEqual(s);
    expect(statusFailure(s).message).toBe('Replication needs attention: Syncthing is unreachable; no device.');
    expect(statusFailure({ ...s, syncthing: false }).message).toBe('The snapshots need attention: Syncthing is unreachable; no device.');
  });
});
