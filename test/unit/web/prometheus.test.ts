import { describe, expect, it } from 'vitest';
import { judge, type Overview, type Problem } from '../../../src/ops/overview.js';
import { renderMetrics } from '../../../src/web/prometheus.js';

type Row = Overview['snapshots'][number];
const row = (id: string, finishedAt: string, over: Partial<Row> = {}): Row => ({
  id,
  startedAt: finishedAt,
  finishedAt,
  ageSeconds: 600,
  durationMs: 2500,
  bytes: 2048,
  plainBytes: 4096,
  parts: [
    { part: 'database', bytes: 2000, plainBytes: 4000, durationMs: 2000 },
    { part: 'redis', bytes: 48, plainBytes: 96, durationMs: 500 },
  ],
  kind: 'full',
  depth: null,
  base: null,
  reference: null,
  neededBy: [],
  database: 'mastodon',
  keys: {},
  signedBy: null,
  verified: 'verified',
  verifiedAt: finishedAt,
  verifyReason: null,
  problem: null,
  checked: 'ok',
  checkedAt: finishedAt,
  checkProblems: [],
  failed: [],
  future: false,
  versionsOnly: false,
  ...over,
});

const overview = (over: Partial<Overview> = {}): Overview => ({
  generatedAt: '2026-11-26T10:00:00.000Z',
  role: 'source',
  vaultDir: '/var/lib/permafrost',
  host: 'masto',
  snapshots: [
    row('2026-11-26T09-50-00Z', '2026-11-26T09:50:00.000Z'),
    row('2026-11-26T08-50-00Z', '2026-11-26T08:50:00.000Z', { verified: 'never', checked: 'failed', bytes: 1000 }),
    row('2026-11-26T07-50-00Z', '2026-11-26T07:50:00.000Z', { problem: 'manifest.json: unreadable', bytes: null, checked: 'never' }),
  ],
  newest: '2026-11-26T09-50-00Z',
  lastBackup: { outcome: 'ok', finishedAt: '2026-11-26T09:50:00.000Z', snapshot: '2026-11-26T09-50-00Z', error: null },
  lastVerify: { ok: true, checkedAt: '2026-11-26T09:55:00.000Z', durationMs: 4000, snapshot: '2026-11-26T09-50-00Z', reason: null },
  lastCheck: { checkedAt: '2026-11-26T09:56:00.000Z', durationMs: 12, failed: ['2026-11-26T08-50-00Z'] },
  alerts: {
    formatVersion: 1,
    conditions: { backup: { failing: false, since: '2026-11-26T09:50:00.000Z', error: null, told: [] } },
    deliveryFailures: { webhook: 3 },
    lastDelivery: {},
  },
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
  growth: { day: null, week: null, perDayBytes: 1234, basis: null, daysLeft: null },
  needsOffsite: false,
  offsite: [],
  ...over,
});

/** Each sample line of the exposition as `name{labels}` → value. */
async function samples(o: Overview, problems: readonly Problem[] = judge(o)): Promise<Map<string, number>> {
  const text = await renderMetrics(o, problems);
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

describe('renderMetrics', () => {
  it('renders the snapshots, the newest one, verify, check and alert gauges from the overview', async () => {
    const m = await samples(overview(), []);
    expect(m.get('permafrost_healthy')).toBe(1);
    expect(m.get('permafrost_snapshots')).toBe(2);
    expect(m.get('permafrost_snapshots_unreadable')).toBe(1);
    expect(m.get('permafrost_snapshots_bytes')).toBe(3048);
    expect(m.get('permafrost_snapshots_future')).toBe(0);
    expect(m.get('permafrost_last_success_timestamp_seconds')).toBe(Date.parse('2026-11-26T09:50:00.000Z') / 1000);
    expect(m.get('permafrost_last_backup_duration_seconds')).toBe(2.5);
    expect(m.get('permafrost_last_backup_part_bytes{part="redis"}')).toBe(48);
    expect(m.get('permafrost_last_backup_part_plain_bytes{part="database"}')).toBe(4000);
    expect(m.get('permafrost_snapshots_verify{result="verified"}')).toBe(1);
    expect(m.get('permafrost_snapshots_verify{result="never"}')).toBe(1);
    expect(m.get('permafrost_newest_snapshot_verified')).toBe(1);
    expect(m.get('permafrost_last_verify_duration_seconds')).toBe(4);
    expect(m.get('permafrost_snapshots_check{result="failed"}')).toBe(1);
    expect(m.get('permafrost_snapshots_check{result="never"}')).toBe(1);
    expect(m.get('permafrost_snapshot_check_ok{snapshot="2026-11-26T08-50-00Z"}')).toBe(0);
    expect(m.has('permafrost_snapshot_check_ok{snapshot="2026-11-26T07-50-00Z"}')).toBe(false);
    expect(m.get('permafrost_last_check_failed_snapshots')).toBe(1);
    expect(m.get('permafrost_condition_failing{condition="backup"}')).toBe(0);
    expect(m.get('permafrost_alert_delivery_failures_total{channel="webhook"}')).toBe(3);
    expect(m.get('permafrost_vault_growth_bytes_per_day')).toBe(1234);
    expect(m.has('permafrost_replication_up')).toBe(false);
  });

  it('the health gauge and problem counts are the judgement passed in', async () => {
    const o = overview({
      lastBackup: { outcome: 'failed', finishedAt: '2026-11-26T09:58:00.000Z', snapshot: null, error: 'pg_dump failed' },
    });
    const problems = judge(o);
    expect(problems.some((p) => p.severity === 'error')).toBe(true);
    const m = await samples(o, problems);
    expect(m.get('permafrost_healthy')).toBe(0);
    const counted = [...m].filter(([k]) => k.startsWith('permafrost_problems{')).reduce((n, [, v]) => n + v, 0);
    expect(counted).toBe(problems.length);
    const warnOnly = await samples(o, [{ code: 'no-retention', severity: 'warning', message: 'w', fix: 'f', subject: null }]);
    expect(warnOnly.get('permafrost_healthy')).toBe(1);
    expect(warnOnly.get('permafrost_problems{code="no-retention",severity="warning"}')).toBe(1);
  });

  it('a future-dated snapshot is never the newest success; none at all leaves the newest gauges out', async () => {
    const future = row('2027-01-01T00-00-00Z', '2027-01-01T00:00:00.000Z', { future: true });
    const m = await samples(overview({ snapshots: [future, ...overview().snapshots] }), []);
    expect(m.get('permafrost_snapshots_future')).toBe(1);
    expect(m.get('permafrost_last_success_timestamp_seconds')).toBe(Date.parse('2026-11-26T09:50:00.000Z') / 1000);
    const empty = await samples(overview({ snapshots: [], newest: null }), []);
    expect(empty.get('permafrost_snapshots')).toBe(0);
    expect(empty.has('permafrost_last_success_timestamp_seconds')).toBe(false);
    expect(empty.has('permafrost_newest_snapshot_verified')).toBe(false);
  });

  it('escapes a hostile device name in its label', async () => {
    const o = overview({
      replication: {
        reachable: true,
        error: null,
        issues: [],
        staleAfterSeconds: 7200,
        localFolders: [],
        myID: 'AAAAAAA',
        devices: [
          {
            name: 'nas"} 1\nevil_metric 9',
            id: 'BBBBBBB',
            since: null,
            connected: true,
            lastSeen: null,
            newestSnapshotComplete: null,
            newestOnDevice: null,
            lagSeconds: 30,
            lagPending: false,
            stale: true,
            problem: null,
            folders: [{ folder: 'permafrost', completion: 50, needBytes: 10 }],
          },
        ],
      },
    });
    const text = await renderMetrics(o, []);
    expect(text).not.toMatch(/^evil_metric/m);
    const m = await samples(o, []);
    expect(m.get('permafrost_replication_up')).toBe(1);
    expect(m.get('permafrost_device_connected{device="nas\\"} 1\\nevil_metric 9"}')).toBe(1);
    expect(m.get('permafrost_device_newest_snapshot_complete{device="nas\\"} 1\\nevil_metric 9"}')).toBe(-1);
    expect(m.get('permafrost_device_stale{device="nas\\"} 1\\nevil_metric 9"}')).toBe(1);
    expect(m.get('permafrost_device_folder_completion_ratio{device="nas\\"} 1\\nevil_metric 9",folder="permafrost"}')).toBe(0.5);
  });
});
