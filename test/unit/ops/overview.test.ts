import { describe, expect, it } from 'vitest';
import { growthOver, isHealthy, judge, measureGrowth, offsiteView, type Overview, type SnapshotRow } from '../../../src/ops/overview.js';
import { offsiteTargetSchema } from '../../../src/config/schema-offsite.js';
import { EMPTY_TARGET_STATE, type OffsiteTargetState } from '../../../src/offsite/state.js';

const NOW = Date.parse('2026-12-01T12:00:00.000Z');
const MiB = 2 ** 20;

/** A snapshot committed `ageSeconds` before NOW, of `bytes`. */
function snap(ageSeconds: number, bytes = MiB, over: Partial<SnapshotRow> = {}): SnapshotRow {
  const t = new Date(NOW - ageSeconds * 1000);
  const id = t
    .toISOString()
    .replace(/:/g, '-')
    .replace(/\.\d{3}Z$/, 'Z');
  return {
    id,
    startedAt: t.toISOString(),
    finishedAt: t.toISOString(),
    ageSeconds,
    durationMs: 1000,
    bytes,
    plainBytes: bytes,
    parts: [{ part: 'database', bytes, plainBytes: bytes, durationMs: 900 }],
    kind: 'full',
    depth: null,
    base: null,
    reference: null,
    neededBy: [],
    database: 'mastodon',
    keys: {},
    signedBy: null,
    verified: 'never',
    verifiedAt: null,
    verifyReason: null,
    checked: 'never',
    checkedAt: null,
    checkProblems: [],
    problem: null,
    failed: [],
    future: false,
    versionsOnly: false,
    ...over,
  };
}

/** A healthy source: one fresh verified snapshot, keep set, a device holding it. */
function overview(over: Partial<Overview> = {}): Overview {
  const snapshots = over.snapshots ?? [snap(600, MiB, { verified: 'verified', verifiedAt: new Date(NOW - 300_000).toISOString() })];
  const o: Overview = {
    generatedAt: new Date(NOW).toISOString(),
    role: 'source',
    vaultDir: '/vault',
    host: 'h',
    snapshots,
    newest: snapshots.find((s) => s.problem === null && !s.future && !s.versionsOnly)?.id ?? null,
    lastBackup: { outcome: 'ok', finishedAt: new Date(NOW - 600_000).toISOString(), snapshot: snapshots[0]?.id ?? null, error: null },
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
    schedule: [],
    timeZone: 'UTC',
    disk: { free: 10 * 2 ** 30, total: 20 * 2 ** 30 },
    growth: { day: null, week: null, perDayBytes: null, basis: null, daysLeft: null },
    needsOffsite: false,
    offsite: [],
    ...over,
  };
  return o;
}

const errors = (o: Overview): string[] =>
  judge(o)
    .filter((p) => p.severity === 'error')
    .map((p) => p.code);

describe('judge: one verdict, each condition once', () => {
  it('a healthy vault has no problem', () => {
    expect(judge(overview())).toEqual([]);
    expect(isHealthy(judge(overview()))).toBe(true);
  });

  it('a failed last backup run is a problem with its error and fix; a newer snapshot supersedes it', () => {
    const failed = overview({
      lastBackup: {
        outcome: 'failed',
        finishedAt: new Date(NOW - 60_000).toISOString(),
        snapshot: null,
        error: 'Cannot connect to PostgreSQL.',
      },
    });
    const [p] = judge(failed);
    expect(p).toMatchObject({ code: 'backup-failed', severity: 'error' });
    expect(p!.message).toBe('the last backup, 60 s ago, failed: Cannot connect to PostgreSQL');
    expect(p!.fix).toContain('permafrost backup');
    expect(isHealthy(judge(failed))).toBe(false);
    const older = overview({
      lastBackup: { outcome: 'failed', finishedAt: new Date(NOW - 3_600_000).toISOString(), snapshot: null, error: 'x' },
    });
    expect(errors(older)).toEqual([]);
  });

  it('a snapshot without its Redis part is judged once, from its manifest, not again as a failed run', () => {
    const s = snap(60, MiB, { failed: [{ part: 'redis', error: 'Redis is down.', optional: false }] });
    const o = overview({
      snapshots: [s],
      lastBackup: { outcome: 'partial', finishedAt: new Date(NOW - 60_000).toISOString(), snapshot: s.id, error: 'without redis' },
    });
    expect(errors(o)).toEqual(['part-failed']);
    // An optional part that failed is not a problem.
    expect(errors(overview({ snapshots: [snap(60, MiB, { failed: [{ part: 'redis', error: 'x', optional: true }] })] }))).toEqual([]);
  });

  it('a failed check and a failed verify are problems; staleness is measured against staleAfter', () => {
    expect(
      errors(overview({ snapshots: [snap(60, MiB, { checked: 'failed', checkProblems: ['database.pgdump.gpg: SHA-256 differs'] })] })),
    ).toEqual(['check-failed']);
    expect(errors(overview({ snapshots: [snap(60, MiB, { verified: 'failed', verifyReason: 'row counts differ' })] }))).toEqual([
      'verify-failed',
    ]);
    const run = { snapshot: null, ok: false, checkedAt: new Date(NOW).toISOString(), durationMs: 5, reason: 'PostgreSQL is down' };
    expect(errors(overview({ lastVerify: run }))).toEqual(['verify-failed']);
    expect(errors(overview({ snapshots: [snap(7201)] }))).toEqual(['stale']);
    expect(errors(overview({ snapshots: [] }))).toEqual(['stale']);
  });

  it('on a device: its freshness, never what only the server can fix (no verify, parts, backups)', () => {
    const old = snap(30 * 86_400, MiB, { failed: [{ part: 'redis', error: 'down', optional: false }] });
    const device = (stale: boolean): Overview['device'] => ({
      newest: { id: old.id, finishedAt: old.finishedAt!, arrivedAt: old.finishedAt!, ageSeconds: stale ? 9000 : 60, lagSeconds: 1 },
      staleAfterSeconds: 7200,
      stale,
      problem: null,
      disk: { snapshotBytes: 1, versionsBytes: 0 },
    });
    const base = { role: 'receiver' as const, verifies: false, snapshots: [old], lastBackup: null };
    expect(judge(overview({ ...base, device: device(false) }))).toEqual([]);
    expect(errors(overview({ ...base, device: device(true) }))).toEqual(['stale']);
  });

  it('replication issues become problems, except the freshness the judgement makes itself', () => {
    const replication: Overview['replication'] = {
      reachable: true,
      error: null,
      staleAfterSeconds: 7200,
      localFolders: [],
      myID: 'A',
      devices: [],
      issues: [
        { code: 'device-stale', device: 'nas', message: 'device nas lacks snapshot X, older than 7200s', fix: null },
        { code: 'device-freshness', device: null, message: 'the newest complete snapshot here is old', fix: null },
        {
          code: 'folder',
          device: null,
          message: 'folder permafrost-snapshots is paused on this server',
          fix: 'run `permafrost sync apply`',
        },
      ],
    };
    const ps = judge(overview({ replication, syncthingConfigured: true }));
    expect(ps.map((p) => [p.code, p.subject])).toEqual([
      ['device-stale', 'nas'],
      ['replication', null],
    ]);
  });

  it('setup weaknesses are warnings: shown, never unhealthy', () => {
    const ps = judge(overview({ retention: null, needsOffsite: true }));
    expect(ps.map((p) => [p.code, p.severity])).toEqual([
      ['no-retention', 'warning'],
      ['no-offsite', 'warning'],
    ]);
    expect(isHealthy(ps)).toBe(true);
  });
});

describe('offsite targets: watched like a device', () => {
  const target = offsiteTargetSchema.parse({ name: 'b2', bucket: 'my-bucket', prefix: 'pf' });
  // Hourly snapshots: 30 min, 90 min, 150 min and 210 min old.
  const rows = [snap(1800), snap(5400), snap(9000), snap(12600)];
  const pushed = (row: SnapshotRow, lagS: number, over: Partial<OffsiteTargetState> = {}): OffsiteTargetState => {
    const at = new Date(Date.parse(row.finishedAt!) + lagS * 1000).toISOString();
    return { ...EMPTY_TARGET_STATE, newestComplete: { id: row.id, pushedAt: at }, lastAttemptAt: at, lastSuccessAt: at, ...over };
  };
  const view = (state: OffsiteTargetState, t = target) => offsiteView(t, state, rows, NOW, 7200);
  const withTargets = (...offsite: Overview['offsite']) => overview({ snapshots: rows, offsite, retention: { last: 6 } });

  it('a target holding the newest snapshot: its lag is commit → push, nothing missing, healthy', () => {
    const v = view(pushed(rows[0]!, 42, { bytes: 1000, objects: 7 }));
    expect(v).toMatchObject({ lagSeconds: 42, lagPending: false, behindSeconds: null, missing: 0, bytes: 1000, objects: 7 });
    expect(v.describe).toBe('offsite target b2 (s3://my-bucket/pf/)');
    expect(judge(withTargets(v))).toEqual([]);
  });

  it('a target behind for less than staleAfter is pending, not stale; longer is offsite-stale naming what it lacks', () => {
    const behind = view(pushed(rows[1]!, 10));
    expect(behind).toMatchObject({ lagSeconds: 1800, lagPending: true, behindSeconds: 1800, missing: 1 });
    expect(errors(withTargets(behind))).toEqual([]);
    const stale = view(pushed(rows[3]!, 10));
    expect(stale).toMatchObject({ behindSeconds: 9000, missing: 3 });
    const [p] = judge(withTargets(stale));
    expect(p).toMatchObject({ code: 'offsite-stale', severity: 'error', subject: 'b2' });
    expect(p!.message).toBe(
      `offsite target b2 (s3://my-bucket/pf/) lacks 3 snapshots newer than its newest, ${rows[3]!.id}, the oldest for 3 h, longer than 2 h`,
    );
  });

  it("a target's own staleAfter wins over the devices' threshold; a target that holds nothing is stale once the vault is older", () => {
    const strict = offsiteTargetSchema.parse({ name: 'b2', bucket: 'my-bucket', staleAfter: '10m' });
    expect(errors(withTargets(view(pushed(rows[1]!, 10), strict)))).toEqual(['offsite-stale']);
    const never = view(EMPTY_TARGET_STATE);
    expect(never).toMatchObject({ newestComplete: null, lagPending: true, missing: 4, behindSeconds: 12600 });
    expect(judge(withTargets(never))[0]!.message).toMatch(/holds no snapshot, and the vault has held one for 4 h, longer than 2 h$/);
  });

  it('a failed last push is offsite-failed with its sentence and since when; not judged stale as well', () => {
    const failing = new Date(NOW - 3 * 3600_000).toISOString();
    const v = view(pushed(rows[3]!, 10, { lastError: 'The bucket my-bucket does not exist.', failingSince: failing }));
    const ps = judge(withTargets(v));
    expect(ps.map((p) => p.code)).toEqual(['offsite-failed']);
    expect(ps[0]!.message).toBe(
      'the last push to offsite target b2 (s3://my-bucket/pf/) (failing for 3 h) failed: The bucket my-bucket does not exist',
    );
    expect(ps[0]!.fix).toContain('permafrost offsite push --target b2');
  });

  it('a configured target counts as the off-site copy: no "no-offsite" warning without syncthing', () => {
    const o = withTargets(view(pushed(rows[0]!, 5)));
    expect(judge({ ...o, needsOffsite: true }).map((p) => p.code)).toEqual([]);
    expect(judge({ ...o, needsOffsite: true, offsite: [] }).map((p) => p.code)).toEqual(['no-offsite']);
  });
});

describe('growth and the disk forecast', () => {
  it('hourly snapshots of 6 MiB over the last day: 144 MiB a day, not one snapshot averaged over a week', () => {
    const rows = Array.from({ length: 24 }, (_, i) => snap(i * 3600 + 60, 6 * MiB));
    const g = measureGrowth(rows, NOW, { free: 10 * 2 ** 30, total: 20 * 2 ** 30 });
    expect(g.day).toMatchObject({ window: 'day', seconds: 23 * 3600, bytes: 23 * 6 * MiB, perDayBytes: 144 * MiB });
    expect(g.perDayBytes).toBe(144 * MiB);
    expect(Math.floor(g.daysLeft!)).toBe(71);
    const o = overview({
      snapshots: rows,
      disk: { free: 300 * MiB, total: 2 ** 30 },
      growth: measureGrowth(rows, NOW, { free: 300 * MiB, total: 2 ** 30 }),
    });
    expect(judge(o).find((p) => p.code === 'disk-full-soon')).toMatchObject({
      severity: 'warning',
      message: 'at the growth measured over the last day, the disk of /vault is full in about 2 days (before pruning)',
    });
  });

  it('one snapshot measures nothing; a week measures over the span its snapshots cover', () => {
    expect(measureGrowth([snap(3600)], NOW, { free: 1, total: 2 })).toMatchObject({ perDayBytes: null, daysLeft: null });
    const week = growthOver([snap(86_400 * 2, 4 * MiB), snap(86_400 * 6, 4 * MiB)], NOW, 'week');
    expect(week).toMatchObject({ seconds: 4 * 86_400, bytes: 4 * MiB, perDayBytes: MiB });
    // Future-dated, damaged and .stversions-only copies are not growth.
    expect(growthOver([snap(60), snap(120, MiB, { future: true }), snap(180, MiB, { versionsOnly: true })], NOW, 'day')).toBeNull();
  });
});
