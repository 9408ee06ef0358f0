/**
 * The one overview of a vault and its runs, and the one judgement of its health. Every edge
 * (`list`, `status`, the status page, `/metrics`, the daemon's staleness alarm) renders what
 * `gatherOverview` read and `judge` decided:
 *
 *   gatherOverview (reads the vault, its state files, Syncthing) → judge (pure) → render (the edge)
 */
import { Cron } from 'croner';
import { DEFAULT_STALE_AFTER_S } from '../config/schema-replicate.js';
import { effectiveTimeZone } from '../config/schema-schedule.js';
import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { formatAge } from '../format.js';
import { readAlertState, type AlertState } from '../notify/alerts.js';
import { readLastVerifyRun, readVerifyState, verifyStatus, type VerifyRecord, type VerifyStatus } from '../recover/verify-state.js';
import { deviceDiskUse, deviceFreshness, type DeviceFreshness } from '../replicate/device.js';
import type { DeviceStatus, FolderCompletion, ReplicationStatus } from '../replicate/status.js';
import { checkStatus, readCheckState, type CheckRecord, type CheckStatus } from '../vault/check.js';
import { diskSpace } from '../vault/fs-durable.js';
import type { FailedPart, Manifest, ManifestFile } from '../vault/manifest.js';
import { neededBy, type KeepPolicy } from '../vault/retention.js';
import { readLastBackupRun, type BackupRun } from '../vault/runs-state.js';
import { listSnapshots, type SnapshotEntry } from '../vault/store.js';
import { openVault } from '../vault/layout.js';
import { EMPTY_TARGET_STATE, readOffsiteState, type OffsiteTargetState } from '../offsite/state.js';
import { describeTarget, locationOf } from '../offsite/target.js';

const DAY_MS = 86_400_000;
/** No successful verify for this long is a problem: a week, seven chances for the daily schedule.verify. */
export const VERIFY_STALE_DAYS = 7;
/** A disk that the measured growth fills within this many days is a problem. */
export const DISK_WARN_DAYS = 7;

export interface SnapshotRow {
  id: string;
  /** Start of the backup (from the manifest; the folder name when the manifest is unreadable). */
  startedAt: string;
  finishedAt: string | null;
  /** The one age of a snapshot, in every edge: seconds from its commit (finishedAt, else the folder name) to the overview's `now`; negative when future-dated. */
  ageSeconds: number;
  durationMs: number | null;
  /** Encrypted bytes on disk, all parts. */
  bytes: number | null;
  plainBytes: number | null;
  parts: Array<Pick<ManifestFile, 'part' | 'bytes' | 'plainBytes' | 'durationMs'>>;
  /** full (restores alone), base or delta (database.delta); null when the manifest is unusable. */
  kind: 'full' | 'base' | 'delta' | null;
  /** A delta's place in its chain: deltas since its base, the base, the snapshot it applies on top of. */
  depth: number | null;
  base: string | null;
  reference: string | null;
  /** The snapshots whose restore reads this one (newest first): prune keeps it while any of them is kept. */
  neededBy: string[];
  database: string | null;
  /** Which keys open each part (manifests from before recipients: the passphrase only), and who signed it. */
  keys: Record<string, NonNullable<ManifestFile['keys']>>;
  signedBy: Manifest['signedBy'] | null;
  verified: VerifyStatus;
  verifiedAt: string | null;
  verifyReason: string | null;
  /** `permafrost check`'s verdict (sizes and SHA-256 against the manifest) and what it found wrong. */
  checked: CheckStatus;
  checkedAt: string | null;
  checkProblems: string[];
  /** Why the entry is damaged (unreadable manifest, …); null when it is a usable snapshot. */
  problem: string | null;
  /** Parts that failed in this backup (the snapshot holds the rest). */
  failed: FailedPart[];
  /** Dated in the future (a clock that ran ahead): never counted as the newest. */
  future: boolean;
  /** Held only in Syncthing's .stversions on this device (pruned on the server); restorable by its id. */
  versionsOnly: boolean;
}

/** The part of replication status (src/replicate/status.ts) the overview keeps; a type-only import, so the two cannot drift apart. */
export type ReplicationView = Pick<ReplicationStatus, 'reachable' | 'error' | 'issues' | 'staleAfterSeconds' | 'localFolders' | 'myID'> & {
  devices: Array<
    Pick<
      DeviceStatus,
      | 'name'
      | 'id'
      | 'connected'
      | 'since'
      | 'lastSeen'
      | 'newestSnapshotComplete'
      | 'newestOnDevice'
      | 'lagSeconds'
      | 'lagPending'
      | 'stale'
      | 'problem'
    > & {
      folders: Array<Pick<FolderCompletion, 'folder' | 'completion' | 'needBytes'>>;
    }
  >;
};

/** Asks for replication status; the edges pass src/replicate/status.ts's replicationStatus (ops/watch.ts replicationReaderFor). */
export type ReplicationReader = (config: Config, now: Date) => Promise<ReplicationView>;

/** One scheduled job: from the running daemon (last run included) or, elsewhere, from the config's schedule. */
export interface JobView {
  name: string;
  cron: string;
  timezone?: string;
  running: boolean;
  nextRun: string | null;
  lastRun: { outcome: string; finishedAt: string; error?: string } | null;
}

/** How fast the vault grows, measured from snapshot sizes by their commit time over the span a window actually covers. */
export interface GrowthWindow {
  /** The window asked for: the last day or the last week. */
  window: 'day' | 'week';
  /** Oldest and newest snapshot in it; the span between them is what was measured. */
  from: string;
  to: string;
  seconds: number;
  /** Bytes the snapshots after the oldest added in that span (before pruning). */
  bytes: number;
  perDayBytes: number;
}

export interface Growth {
  day: GrowthWindow | null;
  week: GrowthWindow | null;
  /** The faster of the two (the forecast errs on the side of a full disk); null when neither could be measured. */
  perDayBytes: number | null;
  basis: 'day' | 'week' | null;
  /** Days until vault.dir's disk is full at that rate (before pruning); null when unknown. */
  daysLeft: number | null;
}

/**
 * One offsite target as this host last saw it (offsite/state.ts, written by each push), measured
 * against the vault's own snapshots with the overview's `now`. The bucket itself is the truth
 * (`permafrost offsite list`); this is what status, the page, /metrics and the alerts judge.
 */
export interface OffsiteView {
  name: string;
  /** `offsite target b2 (s3://bucket/prefix/)`. */
  describe: string;
  /** offsite[].staleAfter, else syncthing.staleAfter (default 2 h). */
  staleAfterSeconds: number;
  /** The newest snapshot whose every file, manifest last, is in the bucket, and when its push ended. */
  newestComplete: OffsiteTargetState['newestComplete'];
  /**
   * The newest local snapshot's lag, as a device's: from its commit to its push (the target holds
   * it), or from its commit until now while the target still lacks it (lagPending); null with no snapshot here.
   */
  lagSeconds: number | null;
  lagPending: boolean;
  /** How long the target has lacked a snapshot this vault holds: the age of the oldest local snapshot newer than its newest; null when it has them all. */
  behindSeconds: number | null;
  /** Local snapshots the target lacks (newer than its newest complete one). */
  missing: number;
  lastAttemptAt: string | null;
  lastSuccessAt: string | null;
  lastError: string | null;
  failingSince: string | null;
  bytes: number;
  objects: number;
  lockedDeletes: number;
}

/** Everything any edge shows about the vault, read once with one `now`. */
export interface Overview {
  generatedAt: string;
  role: 'source' | 'receiver';
  vaultDir: string;
  host: string | null;
  /** Newest first; on a device also the copies held only in `.stversions` (versionsOnly). */
  snapshots: SnapshotRow[];
  /** The newest usable snapshot (readable, not future-dated, in the folder itself); null when none. */
  newest: string | null;
  /** The last backup run (this host's record); null when none was recorded. */
  lastBackup: BackupRun | null;
  /** The most recent verify run, also one that failed before reaching a verdict (snapshot null: none was chosen). */
  lastVerify: { snapshot: string | null; ok: boolean; checkedAt: string; durationMs: number; reason: string | null } | null;
  /** When `permafrost check` last ran; null when never. */
  lastCheck: { checkedAt: string; durationMs: number; failed: string[] } | null;
  alerts: AlertState;
  /** vault.keep; null when none is set (then snapshots pile up until the disk is full). */
  retention: KeepPolicy | null;
  /** syncthing.staleAfter (default 2 h), also without a syncthing section. */
  staleAfterSeconds: number;
  /** Whether this host test-restores: a source, or a device with verify.connection. */
  verifies: boolean;
  /** On a backup device: its newest complete snapshot (with its chain), when it arrived, and the disk its copies use. */
  device: (DeviceFreshness & { disk: { snapshotBytes: number; versionsBytes: number } }) | null;
  /** null when no syncthing section is configured, or Syncthing could not be asked (replicationError). */
  replication: ReplicationView | null;
  replicationError: string | null;
  syncthingConfigured: boolean;
  /** The scheduled jobs and their next runs. */
  schedule: JobView[];
  /** schedule.timezone (else the system's): the page shows times in it. */
  timeZone: string;
  /** Free and total bytes of the file system holding vault.dir; null when it cannot be read. */
  disk: { free: number; total: number } | null;
  growth: Growth;
  /** Whether this host is expected to have an off-site copy: a source (a receiver is the copy). */
  needsOffsite: boolean;
  /** The configured offsite targets (config order), each as this host last pushed to it. */
  offsite: OffsiteView[];
}

export interface GatherOptions {
  replication?: ReplicationReader;
  /** The running daemon's jobs (last runs included); otherwise the schedule is read from the config. */
  jobs?: () => JobView[];
  now?: Date;
}

/** The snapshot's commit time: the manifest's finishedAt, else the folder name's time. */
function commitTime(s: { manifest?: Manifest | null; time: Date }): number {
  const t = s.manifest?.finishedAt ? Date.parse(s.manifest.finishedAt) : Number.NaN;
  return Number.isNaN(t) ? s.time.getTime() : t;
}

/** The jobs `permafrost daemon` schedules for this config (src/daemon/jobs.ts scheduledJobs), with their next runs. */
function scheduleFromConfig(config: Config, now: Date): JobView[] {
  const timezone = effectiveTimeZone(config.schedule);
  const names: Array<'backup' | 'verify' | 'check'> =
    config.role === 'source' ? ['backup', 'verify', 'check'] : config.verify?.connection ? ['verify', 'check'] : ['check'];
  return names.map((name) => {
    const cron = config.schedule[name];
    let nextRun: string | null = null;
    try {
      nextRun = new Cron(cron, { timezone, mode: '5-or-6-parts', paused: true }).nextRun(now)?.toISOString() ?? null;
    } catch {
      nextRun = null; // the config schema already refused a bad pattern; nothing to add here
    }
    return { name, cron, timezone, running: false, nextRun, lastRun: null };
  });
}

/**
 * Growth over the last `window`: the bytes the snapshots after the oldest one in it added, over the
 * span from the oldest to the newest (what was measured, not the window's nominal length). Null
 * with fewer than two snapshots or a span under a minute.
 */
export function growthOver(rows: readonly SnapshotRow[], now: number, window: 'day' | 'week'): GrowthWindow | null {
  const span = window === 'day' ? DAY_MS : 7 * DAY_MS;
  const inside = rows
    .filter((r) => r.problem === null && !r.future && !r.versionsOnly && r.bytes !== null && r.ageSeconds * 1000 <= span)
    .sort((a, b) => a.ageSeconds - b.ageSeconds);
  const newest = inside[0];
  const oldest = inside[inside.length - 1];
  if (!newest || !oldest || inside.length < 2) return null;
  const seconds = oldest.ageSeconds - newest.ageSeconds;
  if (seconds < 60) return null;
  const bytes = inside.slice(0, -1).reduce((n, r) => n + (r.bytes ?? 0), 0);
  return { window, from: oldest.id, to: newest.id, seconds, bytes, perDayBytes: Math.round((bytes / seconds) * 86_400) };
}

/** Growth of the last day and week, and the days the disk's free space lasts at the faster rate. */
export function measureGrowth(rows: readonly SnapshotRow[], now: number, disk: Overview['disk']): Growth {
  const day = growthOver(rows, now, 'day');
  const week = growthOver(rows, now, 'week');
  const faster = [day, week].filter((g): g is GrowthWindow => g !== null).sort((a, b) => b.perDayBytes - a.perDayBytes)[0] ?? null;
  const perDayBytes = faster?.perDayBytes ?? null;
  return {
    day,
    week,
    perDayBytes,
    basis: faster?.window ?? null,
    daysLeft: disk && perDayBytes ? disk.free / perDayBytes : null,
  };
}

/** One snapshot as the edges show it, from its manifest and the verify and check state files; pure. */
function snapshotRow(s: SnapshotEntry, now: Date, v: VerifyRecord | undefined, c: CheckRecord | undefined, needs: string[]): SnapshotRow {
  const m = s.manifest;
  const files = m?.files ?? [];
  return {
    id: s.id,
    startedAt: m?.startedAt ?? s.time.toISOString(),
    finishedAt: m?.finishedAt ?? null,
    ageSeconds: Math.round((now.getTime() - commitTime(s)) / 1000),
    durationMs: m ? Date.parse(m.finishedAt) - Date.parse(m.startedAt) : null,
    bytes: m ? files.reduce((n, f) => n + f.bytes, 0) : null,
    plainBytes: m ? files.reduce((n, f) => n + f.plainBytes, 0) : null,
    parts: files.map(({ part, bytes, plainBytes, durationMs }) => ({ part, bytes, plainBytes, durationMs })),
    kind: m ? (m.chain?.kind ?? 'full') : null,
    depth: m?.chain?.depth ?? null,
    base: m?.chain?.base ?? null,
    reference: m?.chain?.reference ?? null,
    neededBy: needs,
    database: m?.database.name ?? null,
    keys: Object.fromEntries(files.map((f) => [f.part, f.keys ?? { recipients: [], passphrase: true }])),
    signedBy: m?.signedBy ?? null,
    verified: verifyStatus(v),
    verifiedAt: v?.checkedAt ?? null,
    verifyReason: v?.reason ?? null,
    checked: checkStatus(c),
    checkedAt: c?.checkedAt ?? null,
    checkProblems: c?.problems ?? [],
    problem: s.problem ?? null,
    failed: m?.failed ?? [],
    future: s.future,
    versionsOnly: s.versionsOnly === true,
  };
}

/**
 * The rows `list` shows for `snaps` (a vault folder's, or a bucket's read as one), with the verify
 * and check results recorded for them (none for a bucket) and who needs each in its delta chain.
 */
export function snapshotRows(
  snaps: readonly SnapshotEntry[],
  now: Date,
  verified: Record<string, VerifyRecord> = {},
  checks: Record<string, CheckRecord> = {},
): SnapshotRow[] {
  const needs = neededBy(snaps.filter((s) => s.manifest).map((s) => ({ id: s.id, time: s.time, chain: s.manifest?.chain })));
  return snaps.map((s) => snapshotRow(s, now, verified[s.id], checks[s.id], needs.get(s.id) ?? []));
}

/** Replication as the given reader sees it; its failure is a sentence for the edges, not a failed overview. */
async function readReplication(
  config: Config,
  opts: GatherOptions,
  now: Date,
): Promise<{ replication: ReplicationView | null; replicationError: string | null }> {
  if (!opts.replication) return { replication: null, replicationError: null };
  try {
    return { replication: await opts.replication(config, now), replicationError: null };
  } catch (err) {
    return { replication: null, replicationError: errorMessage(err) };
  }
}

/** The snapshots a target can be measured against: usable, in the folder, not future-dated (newest first, as listed). */
function pushable(rows: readonly SnapshotRow[]): SnapshotRow[] {
  return rows.filter((r) => r.problem === null && !r.future && !r.versionsOnly);
}

/** One target's view from its recorded state and the local snapshots (newest first); pure. */
export function offsiteView(
  target: NonNullable<Config['offsite']>[number],
  state: OffsiteTargetState,
  rows: readonly SnapshotRow[],
  now: number,
  defaultStaleAfter: number,
): OffsiteView {
  const local = pushable(rows);
  const held = state.newestComplete;
  // Snapshot ids are UTC times of one fixed width, so they order as strings do.
  const missing = local.filter((r) => held === null || r.id > held.id);
  const newest = local[0];
  let lagSeconds: number | null = null;
  let lagPending = false;
  if (newest && missing.includes(newest)) {
    lagSeconds = newest.ageSeconds;
    lagPending = true;
  } else if (newest && held?.id === newest.id) {
    lagSeconds = Math.max(0, Math.round((Date.parse(held.pushedAt) - (now - newest.ageSeconds * 1000)) / 1000));
  }
  const oldestMissing = missing[missing.length - 1];
  return {
    name: target.name,
    describe: describeTarget(target.name, locationOf(target)),
    staleAfterSeconds: target.staleAfter ?? defaultStaleAfter,
    newestComplete: held,
    lagSeconds,
    lagPending,
    behindSeconds: oldestMissing ? oldestMissing.ageSeconds : null,
    missing: missing.length,
    lastAttemptAt: state.lastAttemptAt,
    lastSuccessAt: state.lastSuccessAt,
    lastError: state.lastError,
    failingSince: state.failingSince,
    bytes: state.bytes,
    objects: state.objects,
    lockedDeletes: state.lockedDeletes,
  };
}

/** Every configured target's view; an unreadable state file is thrown (its one sentence), as other state files are. */
async function readOffsite(config: Config, rows: readonly SnapshotRow[], now: Date, staleAfter: number): Promise<OffsiteView[]> {
  const targets = config.offsite ?? [];
  if (targets.length === 0) return [];
  const state = await readOffsiteState(openVault(config.vault.dir));
  return targets.map((t) => offsiteView(t, state.targets[t.name] ?? EMPTY_TARGET_STATE, rows, now.getTime(), staleAfter));
}

/** Reads the vault, its state files and (when a reader is given) Syncthing: everything the edges show, with one `now`. */
export async function gatherOverview(config: Config, opts: GatherOptions = {}): Promise<Overview> {
  const now = opts.now ?? new Date();
  const dir = config.vault.dir;
  const snaps = await listSnapshots(dir, { versions: true });
  const verified = await readVerifyState(dir);
  const vault = openVault(dir);
  const checks = await readCheckState(vault);
  const rows = snapshotRows(snaps, now, verified, checks.snapshots);
  // The last run, not the newest verdict: a verify that could not check its snapshot (or whose snapshot was pruned since) counts.
  const lastRun = await readLastVerifyRun(dir);
  const { replication, replicationError } = await readReplication(config, opts, now);
  let disk: Overview['disk'] = null;
  try {
    disk = await diskSpace(dir);
  } catch {
    disk = null; // a vault not created yet: the snapshot list already says so
  }
  const device =
    config.role === 'receiver'
      ? { ...(await deviceFreshness(config, now)), disk: await deviceDiskUse(vault).catch(() => ({ snapshotBytes: 0, versionsBytes: 0 })) }
      : null;
  return {
    generatedAt: now.toISOString(),
    role: config.role,
    vaultDir: dir,
    host: snaps.find((s) => s.manifest)?.manifest?.host ?? null,
    snapshots: rows,
    newest: rows.find((r) => r.problem === null && !r.future && !r.versionsOnly)?.id ?? null,
    lastBackup: config.role === 'source' ? await readLastBackupRun(vault) : null,
    lastVerify: lastRun && { ...lastRun, reason: lastRun.reason ?? null },
    lastCheck: checks.lastRun ?? null,
    alerts: await readAlertState(vault),
    retention: config.vault.keep ?? null,
    staleAfterSeconds: config.syncthing?.staleAfter ?? DEFAULT_STALE_AFTER_S,
    verifies: config.role === 'source' || config.verify?.connection !== undefined,
    device,
    replication,
    replicationError,
    syncthingConfigured: config.syncthing !== undefined,
    schedule: opts.jobs?.() ?? scheduleFromConfig(config, now),
    timeZone: effectiveTimeZone(config.schedule),
    disk,
    growth: measureGrowth(rows, now.getTime(), disk),
    needsOffsite: config.role === 'source',
    offsite: await readOffsite(config, rows, now, config.syncthing?.staleAfter ?? DEFAULT_STALE_AFTER_S),
  };
}

export type ProblemCode =
  | 'backup-failed'
  | 'part-failed'
  | 'snapshot-damaged'
  | 'check-failed'
  | 'verify-failed'
  | 'verify-overdue'
  | 'stale'
  | 'device-stale'
  | 'syncthing'
  | 'replication'
  | 'future-snapshot'
  | 'no-retention'
  | 'no-offsite'
  | 'offsite-failed'
  | 'offsite-stale'
  | 'disk-full-soon';

/**
 * One thing that is wrong, with what fixes it. An `error` makes the vault unhealthy (`status` exits
 * 1, `permafrost_healthy` is 0, the page lists it under Problems); a `warning` is a weakness of
 * the setup that loses nothing yet (shown, never failing).
 */
export interface Problem {
  code: ProblemCode;
  severity: 'error' | 'warning';
  /** What is wrong, one sentence without its final period. */
  message: string;
  /** What to do about it. */
  fix: string;
  /** The snapshot or device it is about, when it is about one. */
  subject: string | null;
}

/** A problem as one line: what is wrong, then what to do. */
export function problemSentence(p: Pick<Problem, 'message' | 'fix'>): string {
  return `${p.message}: ${p.fix}`;
}

/** Healthy: no problem of severity error. */
export function isHealthy(problems: readonly Problem[]): boolean {
  return !problems.some((p) => p.severity === 'error');
}

const trimDot = (s: string): string => s.trim().replace(/\.$/, '');

/** Replication issues this judgement covers itself (the age of this host's newest snapshot) are left out here. */
const JUDGED_AS_STALENESS = new Set(['device-freshness', 'no-snapshot', 'snapshot-stale']);

function staleness(o: Overview, newest: SnapshotRow | undefined): Problem | null {
  const after = `${formatAge(o.staleAfterSeconds * 1000, 'spaced')} (syncthing.staleAfter)`;
  if (o.role === 'receiver') {
    const n = o.device?.newest;
    if (!o.device || !o.device.stale) return null;
    return n
      ? {
          code: 'stale',
          severity: 'error',
          message: `the newest complete snapshot here, ${n.id}, is ${formatAge(n.ageSeconds * 1000, 'spaced')} old, older than ${after}`,
          fix: 'check that the server still makes backups and that Syncthing connects both sides (permafrost status on the server)',
          subject: n.id,
        }
      : {
          code: 'stale',
          severity: 'error',
          message: `no complete snapshot in ${o.vaultDir}`,
          fix: 'check that the server makes backups and that Syncthing shares the folder (permafrost sync apply on both sides)',
          subject: null,
        };
  }
  if (!newest)
    return { code: 'stale', severity: 'error', message: 'there is no snapshot yet', fix: 'run `permafrost backup`', subject: null };
  if (newest.ageSeconds <= o.staleAfterSeconds) return null;
  return {
    code: 'stale',
    severity: 'error',
    message: `the newest snapshot, ${newest.id}, is ${formatAge(newest.ageSeconds * 1000, 'spaced')} old, older than ${after}`,
    fix: 'check that backups run (permafrost daemon, or its timer)',
    subject: newest.id,
  };
}

function replicationProblems(o: Overview): Problem[] {
  if (o.replicationError)
    return [
      {
        code: 'syncthing',
        severity: 'error',
        message: `replication status could not be read: ${trimDot(o.replicationError)}`,
        fix: 'check the syncthing section and that Syncthing runs',
        subject: null,
      },
    ];
  return (o.replication?.issues ?? [])
    .filter((i) => !JUDGED_AS_STALENESS.has(i.code))
    .map((i) => ({
      code: i.code === 'device-stale' ? 'device-stale' : i.code === 'syncthing-unreachable' ? 'syncthing' : 'replication',
      severity: 'error',
      message: trimDot(i.message),
      fix:
        i.fix ??
        (i.code === 'device-stale'
          ? `check that device ${i.device ?? ''} is on and connected (Syncthing GUI on both sides), then run \`permafrost status\` again`
          : 'check that Syncthing runs and that syncthing.url and its API key are right (permafrost doctor)'),
      subject: i.device,
    }));
}

function verifyProblems(o: Overview, now: number, newest: SnapshotRow | undefined): Problem[] {
  const out: Problem[] = [];
  for (const s of o.snapshots) {
    if (s.verified === 'failed' && s.problem === null)
      out.push({
        code: 'verify-failed',
        severity: 'error',
        message: `snapshot ${s.id} failed verification: ${trimDot(s.verifyReason ?? 'no reason recorded')}`,
        fix: 'restore from another snapshot if needed, and find out what damaged this one (permafrost check)',
        subject: s.id,
      });
  }
  const last = o.lastVerify;
  // A verify that ended before its verdict (server down, no space) fails the run but marks no snapshot.
  if (last && !last.ok && !o.snapshots.some((s) => s.id === last.snapshot && s.verified === 'failed'))
    out.push({
      code: 'verify-failed',
      severity: 'error',
      message: `the last verify run${last.snapshot ? ` (of ${last.snapshot})` : ''} failed: ${trimDot(last.reason ?? 'no reason recorded')}`,
      fix: 'fix what it names, then run `permafrost verify`',
      subject: last.snapshot,
    });
  if (!o.verifies || !newest) return out;
  const lastGood = o.snapshots.reduce((t, s) => (s.verified === 'verified' && s.verifiedAt ? Math.max(t, Date.parse(s.verifiedAt)) : t), 0);
  // A young vault has had no chance yet: count from the oldest snapshot when none was ever verified.
  const oldest = o.snapshots.reduce((t, s) => (s.problem === null && !s.future ? Math.max(t, s.ageSeconds * 1000) : t), 0);
  const since = lastGood ? now - lastGood : oldest;
  if (since > VERIFY_STALE_DAYS * DAY_MS)
    out.push({
      code: 'verify-overdue',
      severity: 'warning',
      message: lastGood
        ? `no successful verify for ${formatAge(since, 'spaced')} (more than ${VERIFY_STALE_DAYS} days)`
        : `no snapshot was ever verified, and the oldest is ${formatAge(since, 'spaced')} old`,
      fix: 'run `permafrost verify`, and check schedule.verify runs',
      subject: null,
    });
  return out;
}

/** The last backup run and the newest snapshot's parts: what only the server's backups can fix. */
function backupProblems(o: Overview, now: number, newestRow: SnapshotRow | undefined): Problem[] {
  if (o.role !== 'source') return [];
  const out: Problem[] = [];
  const b = o.lastBackup;
  // A snapshot committed after the failed run (another host's permafrost, a manual copy) supersedes it.
  const superseded = newestRow?.finishedAt && b && Date.parse(newestRow.finishedAt) > Date.parse(b.finishedAt);
  if (b?.outcome === 'failed' && !superseded)
    out.push({
      code: 'backup-failed',
      severity: 'error',
      message: `the last backup, ${formatAge(now - Date.parse(b.finishedAt), 'spaced')} ago, failed: ${trimDot(b.error ?? 'no reason recorded')}`,
      fix: 'fix what it names, then run `permafrost backup` (or wait for the next scheduled run)',
      subject: null,
    });
  for (const f of newestRow?.failed ?? []) {
    if (!f.optional)
      out.push({
        code: 'part-failed',
        severity: 'error',
        message: `the newest snapshot ${newestRow!.id} lacks its ${f.part} part: ${trimDot(f.error)}`,
        fix: `fix what keeps the ${f.part} part from being captured, then run \`permafrost backup\``,
        subject: newestRow!.id,
      });
  }
  return out;
}

/** Damaged snapshots and those `permafrost check` found damaged, with the fix this side can make. */
function integrityProblems(o: Overview): Problem[] {
  const source = o.role === 'source';
  return o.snapshots.flatMap((s): Problem[] => {
    if (s.problem)
      return [
        {
          code: 'snapshot-damaged',
          severity: 'error',
          message: `snapshot ${s.id} is damaged: ${trimDot(s.problem)}`,
          fix: source
            ? 'move it out of the vault, or replace it from a backup device'
            : "move it out of the folder, or run `permafrost sync revert` to fetch the server's copy",
          subject: s.id,
        },
      ];
    if (s.checked !== 'failed') return [];
    return [
      {
        code: 'check-failed',
        severity: 'error',
        message: `snapshot ${s.id} failed its check: ${trimDot(s.checkProblems.join('; '))}`,
        fix: source
          ? "replace it from a backup device's copy (or remove it and run `permafrost backup`), then run `permafrost check`"
          : "run `permafrost sync revert` so Syncthing fetches the server's copy, then `permafrost check`",
        subject: s.id,
      },
    ];
  });
}

/** Weaknesses of the setup that lose nothing yet: future-dated snapshots, no retention, no off-site copy, a disk soon full. */
function setupWarnings(o: Overview, newestRow: SnapshotRow | undefined): Problem[] {
  const warn = (code: ProblemCode, message: string, fix: string, subject: string | null = null): Problem => ({
    code,
    severity: 'warning',
    message,
    fix,
    subject,
  });
  const out = o.snapshots
    .filter((s) => s.future)
    .map((s) =>
      warn(
        'future-snapshot',
        `snapshot ${s.id} is dated in the future (the clock ran ahead?): it is never taken as the newest`,
        'move it out of the vault once it is not needed',
        s.id,
      ),
    );
  if (!o.retention)
    out.push(
      warn(
        'no-retention',
        'no retention policy (vault.keep): every snapshot is kept until the disk is full',
        'set vault.keep (e.g. { last: 6, hourly: 24, daily: 7 })',
      ),
    );
  if (o.needsOffsite && newestRow && !o.syncthingConfigured && o.offsite.length === 0)
    out.push(
      warn(
        'no-offsite',
        'no off-site copy: no syncthing section is configured, so every snapshot lives on this host only',
        'add a backup device (syncthing section, then `permafrost sync apply`)',
      ),
    );
  const devices = o.replication?.devices ?? [];
  const inBucket = o.offsite.some((t) => t.newestComplete !== null && t.newestComplete.id >= newestRow!.id);
  if (o.needsOffsite && newestRow && devices.length > 0 && !devices.some((d) => d.newestSnapshotComplete) && !inBucket)
    out.push(
      warn(
        'no-offsite',
        `no off-site copy of the newest snapshot ${newestRow.id}: no backup device holds it yet`,
        'wait for Syncthing, or check the devices below',
        newestRow.id,
      ),
    );
  const g = o.growth;
  if (g.daysLeft !== null && g.daysLeft < DISK_WARN_DAYS)
    out.push(
      warn(
        'disk-full-soon',
        `at the growth measured over the last ${g.basis}, the disk of ${o.vaultDir} is full in about ${Math.floor(g.daysLeft)} days (before pruning)`,
        'free space, keep fewer snapshots (vault.keep), or move vault.dir to a larger disk',
      ),
    );
  return out;
}

/**
 * Each offsite target, judged once: a failed last push (offsite-failed, with its one sentence), or
 * else a target that has lacked a local snapshot for longer than its staleAfter (offsite-stale: the
 * pushes stopped, e.g. no job pushes any more). A failing target is not judged stale as well: the
 * failure is the cause, and fixing it fixes both.
 */
export function offsiteProblems(o: Pick<Overview, 'offsite' | 'generatedAt'>): Problem[] {
  const now = Date.parse(o.generatedAt);
  return o.offsite.flatMap((t): Problem[] => {
    if (t.lastError !== null) {
      const since = t.failingSince ?? t.lastAttemptAt;
      return [
        {
          code: 'offsite-failed',
          severity: 'error',
          message: `the last push to ${t.describe}${since ? ` (failing for ${formatAge(now - Date.parse(since), 'spaced')})` : ''} failed: ${trimDot(t.lastError)}`,
          fix: `fix what it names, then run \`permafrost offsite push --target ${t.name}\``,
          subject: t.name,
        },
      ];
    }
    if (t.behindSeconds === null || t.behindSeconds <= t.staleAfterSeconds) return [];
    const after = formatAge(t.staleAfterSeconds * 1000, 'spaced');
    return [
      {
        code: 'offsite-stale',
        severity: 'error',
        message: t.newestComplete
          ? `${t.describe} lacks ${t.missing} snapshot${t.missing > 1 ? 's' : ''} newer than its newest, ${t.newestComplete.id}, the oldest for ${formatAge(t.behindSeconds * 1000, 'spaced')}, longer than ${after}`
          : `${t.describe} holds no snapshot, and the vault has held one for ${formatAge(t.behindSeconds * 1000, 'spaced')}, longer than ${after}`,
        fix: `run \`permafrost offsite push --target ${t.name}\`, and check that pushes run after each backup`,
        subject: t.name,
      },
    ];
  });
}

/**
 * The one judgement of health: pure, from the overview alone. Each condition is judged once, from
 * the record that holds it (the last backup run, the newest snapshot's manifest, the check and
 * verify results, the age of the newest snapshot, replication). On a backup device only what the
 * device can fix is judged: it makes no backups and holds no secret.
 */
export function judge(o: Overview): Problem[] {
  const now = Date.parse(o.generatedAt);
  const newestRow = o.snapshots.find((s) => s.id === o.newest);
  const stale = staleness(o, newestRow);
  return [
    ...backupProblems(o, now, newestRow),
    ...integrityProblems(o),
    ...verifyProblems(o, now, newestRow),
    ...(stale ? [stale] : []),
    ...replicationProblems(o),
    ...offsiteProblems(o),
    ...setupWarnings(o, newestRow),
  ];
}
