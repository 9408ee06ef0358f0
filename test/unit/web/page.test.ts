import { describe, expect, it } from 'vitest';
import { judge, measureGrowth, type Overview } from '../../../src/ops/overview.js';
import { renderPage as renderWith } from '../../../src/web/page.js';

/** The page as the server renders it: the overview and its judgement. */
const renderPage = (o: Overview, jobs: Overview['schedule'] | null = null): string => {
  const newest = o.snapshots.find((s) => s.problem === null && !s.future)?.id ?? null;
  const full = { ...o, schedule: jobs ?? [], newest, growth: measureGrowth(o.snapshots, Date.parse(o.generatedAt), o.disk) };
  return renderWith(full, judge(full));
};

const overview: Overview = {
  generatedAt: '2026-11-26T10:00:00.000Z',
  role: 'source',
  vaultDir: '/var/lib/permafrost',
  host: 'masto<1>',
  snapshots: [
    {
      id: '2026-11-26T09-40-00Z',
      startedAt: '2026-11-26T09:40:00.000Z',
      finishedAt: '2026-11-26T09:40:02.000Z',
      ageSeconds: 1198,
      durationMs: 2000,
      bytes: 2048,
      plainBytes: 4096,
      parts: [{ part: 'database', bytes: 2048, plainBytes: 4096, durationMs: 1900 }],
      kind: 'full',
      depth: null,
      base: null,
      reference: null,
      neededBy: [],
      database: 'mastodon',
      keys: {},
      signedBy: null,
      verified: 'failed',
      verifiedAt: '2026-11-26T09:50:00.000Z',
      verifyReason: 'statuses has 1 rows, the manifest says "<2>"',
      problem: null,
      checked: 'never',
      checkedAt: null,
      checkProblems: [],
      failed: [],
      future: false,
      versionsOnly: false,
    },
  ],
  newest: '2026-11-26T09-40-00Z',
  lastBackup: { outcome: 'failed', finishedAt: '2026-11-26T09:50:00.000Z', snapshot: null, error: '<script>alert(1)</script>' },
  lastVerify: null,
  lastCheck: { checkedAt: '2026-11-26T09:55:00.000Z', durationMs: 12, failed: ['2026-11-26T09-40-00Z'] },
  alerts: {
    formatVersion: 1,
    conditions: { backup: { failing: true, since: '2026-11-26T09:00:00.000Z', error: '<script>alert(1)</script>', told: [] } },
    deliveryFailures: {},
    lastDelivery: {},
  },
  retention: { last: 6 },
  staleAfterSeconds: 7200,
  verifies: true,
  device: null,
  replication: null,
  replicationError: null,
  syncthingConfigured: true,
  schedule: [],
  timeZone: 'UTC',
  disk: { free: 10 * 2 ** 30, total: 20 * 2 ** 30 },
  growth: { day: null, week: null, perDayBytes: null, basis: null, daysLeft: null },
  needsOffsite: true,
  offsite: [],
};

/** Syncthing with one backup device that holds the newest snapshot. */
const offsite: Overview['replication'] = {
  reachable: true,
  error: null,
  issues: [],
  staleAfterSeconds: 7200,
  localFolders: [],
  myID: 'AAAAAAA',
  devices: [
    {
      name: 'nas',
      id: 'BBBBBBB',
      since: null,
      connected: true,
      lastSeen: null,
      newestSnapshotComplete: true,
      newestOnDevice: '2026-11-26T09-40-00Z',
      lagSeconds: 30,
      lagPending: false,
      stale: false,
      problem: null,
      folders: [],
    },
  ],
};

/** A second snapshot row like the first, with `over` applied; its age counted from its finishedAt to the overview's now. */
const row = (over: Partial<Overview['snapshots'][number]>): Overview['snapshots'][number] => {
  const r = { ...overview.snapshots[0]!, verified: 'never' as const, ...over };
  return { ...r, ageSeconds: Math.round((Date.parse(overview.generatedAt) - Date.parse(r.finishedAt!)) / 1000) };
};

describe('status page rendering', () => {
  it('escapes everything that comes from the vault and state files', () => {
    const html = renderPage(overview, null);
    expect(html).not.toContain('<script');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('masto&lt;1&gt;');
    expect(html).toContain('title="statuses has 1 rows, the manifest says &quot;&lt;2&gt;&quot;"');
    expect(html).not.toMatch(/style=|<script|https?:\/\/(?!www\.w3\.org)/);
    expect(html).toContain('Newest snapshot <code id="newest">2026-11-26T09-40-00Z</code>, <strong>20 min old</strong>');
  });

  it('shows a failed check in the parts cell and as a problem, escaped', () => {
    const damaged = { ...overview.snapshots[0]!, checked: 'failed' as const, checkProblems: ['unexpected file <x> (not in the manifest)'] };
    const html = renderPage({ ...overview, snapshots: [damaged] }, null);
    expect(html).toContain('<span class="bad" title="unexpected file &lt;x&gt; (not in the manifest)">check failed</span>');
    expect(html).toContain('snapshot 2026-11-26T09-40-00Z failed its check: unexpected file &lt;x&gt; (not in the manifest)');
  });

  it('lists as problems: no retention policy, a failed part of the newest snapshot, a future-dated snapshot (never the headline)', () => {
    const calm: Overview = {
      ...overview,
      alerts: { ...overview.alerts, conditions: {} },
      lastBackup: null,
      snapshots: [row({ verified: 'verified', verifiedAt: '2026-11-26T09:50:00.000Z' })],
      replication: offsite,
    };
    expect(renderPage(calm, null)).toContain('<p class="ok">No problems.</p>');
    const noPolicy = renderPage({ ...calm, retention: null }, null);
    expect(noPolicy).toContain(
      '<li data-code="no-retention">no retention policy (vault.keep): every snapshot is kept until the disk is full. <span class="fix">',
    );
    const future = row({
      id: '2099-01-01T00-00-00Z',
      startedAt: '2099-01-01T00:00:00.000Z',
      finishedAt: '2099-01-01T00:00:01.000Z',
      future: true,
    });
    const failed = row({ failed: [{ part: 'redis', error: 'Redis part failed: down.', optional: false }] });
    const html = renderPage({ ...calm, snapshots: [future, failed] }, null);
    expect(html).toContain('<li data-code="future-snapshot">snapshot 2099-01-01T00-00-00Z is dated in the future (the clock ran ahead?)');
    expect(html).toContain(
      '<li data-code="part-failed">the newest snapshot 2026-11-26T09-40-00Z lacks its redis part: Redis part failed: down. <span class="fix">',
    );
    expect(html).toContain('<code id="newest">2026-11-26T09-40-00Z</code>');
    expect(html).toContain('<td><span class="bad">in the future</span></td>');
    expect(html).toContain('<span class="bad" title="Redis part failed: down.">redis failed</span>');
  });

  it('no off-site copy and no recent verify are problems; "No problems." only when none of them holds', () => {
    const calm: Overview = {
      ...overview,
      alerts: { ...overview.alerts, conditions: {} },
      lastBackup: null,
      snapshots: [row({ verified: 'verified', verifiedAt: '2026-11-26T09:50:00.000Z' })],
      replication: offsite,
    };
    const noSyncthing = renderPage({ ...calm, replication: null, syncthingConfigured: false }, null);
    expect(noSyncthing).toContain(
      '<li data-code="no-offsite">no off-site copy: no syncthing section is configured, so every snapshot lives on this host only. <span class="fix">',
    );
    expect(noSyncthing).not.toContain('No problems.');
    expect(renderPage({ ...calm, replication: null, syncthingConfigured: false, needsOffsite: false }, null)).toContain('No problems.');
    const behind = { ...offsite, devices: [{ ...offsite.devices[0]!, newestSnapshotComplete: false }] };
    expect(renderPage({ ...calm, replication: behind }, null)).toContain(
      '<li data-code="no-offsite">no off-site copy of the newest snapshot 2026-11-26T09-40-00Z: no backup device holds it yet. <span class="fix">',
    );
    // A young vault has had no chance to verify yet; one whose oldest snapshot is over a week old has.
    const young = renderPage({ ...calm, snapshots: [row({})] }, null);
    expect(young).not.toContain('verify-overdue');
    expect(young).toContain('<span class="muted">never verified</span>');
    expect(young).not.toMatch(/>never</);
    const never = renderPage(
      {
        ...calm,
        snapshots: [
          row({}),
          row({ id: '2026-11-18T10-00-00Z', startedAt: '2026-11-18T10:00:00.000Z', finishedAt: '2026-11-18T10:00:02.000Z' }),
        ],
      },
      null,
    );
    expect(never).toContain(
      '<li data-code="verify-overdue">no snapshot was ever verified, and the oldest is 8 d old. <span class="fix">run `permafrost verify`, and check schedule.verify runs.</span></li>',
    );
    const old = renderPage({ ...calm, snapshots: [row({ verified: 'verified', verifiedAt: '2026-11-18T10:00:00.000Z' })] }, null);
    expect(old).toMatch(/>no successful verify for 8 d \(more than 7 days\)\. <span class="fix">run `permafrost verify`/);
  });

  it('shows times in schedule.timezone, one age per snapshot, disk free and vault growth', () => {
    const o: Overview = {
      ...overview,
      timeZone: 'Europe/Berlin',
      snapshots: [
        row({}),
        row({ id: '2026-11-25T09-40-00Z', startedAt: '2026-11-25T09:40:00.000Z', finishedAt: '2026-11-25T09:40:02.000Z' }),
      ],
    };
    const jobs = [{ name: 'backup', cron: '40 * * * *', running: false, nextRun: '2026-11-26T10:40:00.000Z', lastRun: null }];
    const html = renderPage(o, jobs);
    expect(html).toContain('(2026-11-26 11:40 Europe/Berlin)');
    expect(html).toContain('<li data-code="backup-failed">the last backup, 10 min ago, failed: &lt;script&gt;alert(1)&lt;/script&gt;.');
    expect(html).toContain('Generated 2026-11-26 11:00 Europe/Berlin');
    expect(html).not.toContain(' UTC');
    // The headline and the table count the age from the same moment.
    expect(html).toContain('<strong>20 min old</strong>');
    expect(html).toMatch(/<td><code>2026-11-26T09-40-00Z<\/code><\/td><td>20 min ago<\/td>/);
    // Growth from the sizes by time over the span measured: one snapshot a day later added 2 KiB (the last day holds only one).
    expect(html).toContain(
      'vault.dir: <strong>10.0 GiB free of 20.0 GiB</strong>; growth measured over the last week (2026-11-25T09-40-00Z to 2026-11-26T09-40-00Z, 24 h): 2.0 KiB a day; room for about 5242880 days at the faster rate (before pruning).',
    );
  });

  it('on a backup device: its own newest snapshot, its lag and its disk use (snapshots and .stversions)', () => {
    const device = {
      newest: {
        id: '2026-11-26T09-40-00Z',
        finishedAt: '2026-11-26T09-40-10Z',
        arrivedAt: '2026-11-26T09-40-22Z',
        ageSeconds: 600,
        lagSeconds: 12,
      },
      staleAfterSeconds: 7200,
      stale: false,
      problem: null,
      disk: { snapshotBytes: 3 * 2 ** 20, versionsBytes: 2 ** 20 },
    };
    const html = renderPage({ ...overview, role: 'receiver', needsOffsite: false, device, replication: { ...offsite, devices: [] } }, null);
    expect(html).toContain(
      '<p id="this-device">This device: newest complete snapshot <code>2026-11-26T09-40-00Z</code>, 10 min old, arrived 12 s after its commit; disk used 4.0 MiB (3.0 MiB snapshots, 1.0 MiB in .stversions).</p>',
    );
  });
});

describe('offsite targets on the page', () => {
  const view = (name: string, over: Partial<Overview['offsite'][number]> = {}): Overview['offsite'][number] => ({
    name,
    describe: `offsite target ${name} (s3://pf-${name}/)`,
    staleAfterSeconds: 7200,
    newestComplete: { id: overview.snapshots[0]!.id, pushedAt: '2026-11-26T09:50:00.000Z' },
    lagSeconds: 30,
    lagPending: false,
    behindSeconds: null,
    missing: 0,
    lastAttemptAt: '2026-11-26T09:50:00.000Z',
    lastSuccessAt: '2026-11-26T09:50:00.000Z',
    lastError: null,
    failingSince: null,
    bytes: 2048,
    objects: 4,
    lockedDeletes: 0,
    ...over,
  });
  it("one row per target in the verdict's words: up to date, failed with its escaped error, stale", () => {
    const html = renderPage({
      ...overview,
      offsite: [
        view('b2'),
        view('r2', { lastError: 'The bucket <pf-r2> does not exist.', failingSince: '2026-11-26T08:00:00.000Z', lastSuccessAt: null }),
        view('s3', { missing: 3, behindSeconds: 3 * 3600, lagSeconds: 3 * 3600, lagPending: true }),
      ],
    });
    expect(html).toMatch(/<tr data-target="b2">.*<span class="ok">up to date<\/span>.*2\.0 KiB · 4/);
    expect(html).toMatch(/<tr data-target="r2">.*<span class="bad">failed<\/span>.*The bucket &lt;pf-r2&gt; does not exist\./);
    expect(html).toMatch(/<tr data-target="s3">.*<span class="bad">stale<\/span>.*3 h \(waiting\)/);
    expect(html).toContain('<li data-code="offsite-failed">');
    expect(html).toContain('<li data-code="offsite-stale">');
    expect(html).not.toContain('<pf-r2>');
  });
});
