import { Counter, Gauge, Registry } from 'prom-client';
import { isHealthy, type Overview, type Problem } from '../ops/overview.js';

export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

const seconds = (iso: string): number => Date.parse(iso) / 1000;

/** Makes a gauge in one registry. */
type GaugeMaker = <L extends string>(name: string, help: string, labelNames?: L[]) => Gauge<L>;

/**
 * Prometheus text for an overview of the vault and its judgement (src/ops/overview.ts). A fresh
 * registry per call: every value comes from the vault and its state files, so a scrape always
 * shows what is on disk now.
 */
export async function renderMetrics(o: Overview, problems: readonly Problem[]): Promise<string> {
  const registry = new Registry();
  const gauge: GaugeMaker = <L extends string>(name: string, help: string, labelNames: L[] = []): Gauge<L> =>
    new Gauge({ name, help, labelNames, registers: [registry] });
  healthGauges(gauge, o, problems);
  // The folder's own snapshots: a device's .stversions copies are not counted here.
  const inFolder = o.snapshots.filter((s) => !s.versionsOnly);
  const complete = inFolder.filter((s) => s.problem === null);
  // A future-dated snapshot would make the last success look fresh forever, so no age alert could fire.
  const newest = complete.find((s) => !s.future);
  snapshotGauges(gauge, inFolder, complete);
  if (newest) newestGauges(gauge, newest);
  verifyGauges(gauge, o, complete, newest);
  checkGauges(gauge, o, inFolder);
  alertMetrics(gauge, registry, o);
  if (o.replication || o.replicationError) {
    gauge('permafrost_replication_up', 'Whether Syncthing answered the status query.').set(o.replication?.reachable ? 1 : 0);
  }
  if (o.replication) deviceGauges(gauge, o.replication.devices);
  if (o.device) localGauges(gauge, o.device);
  if (o.offsite.length > 0) offsiteGauges(gauge, o.offsite, problems);
  return registry.metrics();
}

type SnapshotRow = Overview['snapshots'][number];

/** The verdict, its problems by code, and the vault's growth. */
function healthGauges(gauge: GaugeMaker, o: Overview, problems: readonly Problem[]): void {
  gauge(
    'permafrost_healthy',
    'The one judgement of health (as `permafrost status` and the status page): 1 healthy, 0 a problem needs fixing.',
  ).set(isHealthy(problems) ? 1 : 0);
  const byCode = gauge(
    'permafrost_problems',
    'Problems the judgement found, by code and severity (error: unhealthy; warning: shown, not failing).',
    ['code', 'severity'],
  );
  for (const p of problems) byCode.inc({ code: p.code, severity: p.severity });
  if (o.growth.perDayBytes !== null)
    gauge(
      'permafrost_vault_growth_bytes_per_day',
      'Bytes new snapshots add a day (before pruning), measured over the last day or week.',
    ).set(o.growth.perDayBytes);
}

/** How many snapshots the folder holds: complete, unreadable, future-dated, and their bytes. */
function snapshotGauges(gauge: GaugeMaker, inFolder: readonly SnapshotRow[], complete: readonly SnapshotRow[]): void {
  gauge('permafrost_snapshots', 'Complete snapshots in the vault.').set(complete.length);
  gauge('permafrost_snapshots_unreadable', 'Snapshot folders whose manifest cannot be read.').set(inFolder.length - complete.length);
  gauge('permafrost_snapshots_bytes', 'Encrypted bytes of all complete snapshots.').set(complete.reduce((n, s) => n + (s.bytes ?? 0), 0));
  gauge('permafrost_snapshots_future', 'Snapshots dated in the future (a clock that ran ahead); never counted as the newest.').set(
    inFolder.filter((s) => s.future).length,
  );
}

/** The newest complete snapshot: when it finished, how long it took, its size, and each part's. */
function newestGauges(gauge: GaugeMaker, newest: SnapshotRow): void {
  if (!newest.finishedAt) return;
  gauge('permafrost_last_success_timestamp_seconds', 'When the newest complete snapshot finished (Unix time).').set(
    seconds(newest.finishedAt),
  );
  gauge('permafrost_last_backup_duration_seconds', 'Duration of the newest snapshot, start to commit.').set(
    (newest.durationMs ?? 0) / 1000,
  );
  gauge('permafrost_last_backup_bytes', 'Encrypted size of the newest snapshot.').set(newest.bytes ?? 0);
  const bytes = gauge('permafrost_last_backup_part_bytes', 'Encrypted size of each part of the newest snapshot.', ['part']);
  const plain = gauge('permafrost_last_backup_part_plain_bytes', 'Size before encryption of each part of the newest snapshot.', ['part']);
  const dur = gauge('permafrost_last_backup_part_duration_seconds', 'Capture time of each part of the newest snapshot.', ['part']);
  for (const p of newest.parts) {
    bytes.set({ part: p.part }, p.bytes);
    plain.set({ part: p.part }, p.plainBytes);
    dur.set({ part: p.part }, p.durationMs / 1000);
  }
}

/** Snapshots by verify result, the newest one's, and the last verify run. */
function verifyGauges(gauge: GaugeMaker, o: Overview, complete: readonly SnapshotRow[], newest: SnapshotRow | undefined): void {
  const byResult = gauge('permafrost_snapshots_verify', 'Snapshots by their verify result.', ['result']);
  for (const result of ['verified', 'failed', 'never'] as const)
    byResult.set({ result }, complete.filter((s) => s.verified === result).length);
  if (newest) {
    gauge('permafrost_newest_snapshot_verified', 'Verify result of the newest snapshot: 1 passed, 0 failed, -1 never verified.').set(
      newest.verified === 'verified' ? 1 : newest.verified === 'failed' ? 0 : -1,
    );
  }
  if (o.lastVerify) {
    gauge('permafrost_last_verify_success', 'Whether the most recent verify passed (1) or failed (0).').set(o.lastVerify.ok ? 1 : 0);
    gauge('permafrost_last_verify_timestamp_seconds', 'When the most recent verify ran (Unix time).').set(seconds(o.lastVerify.checkedAt));
    gauge('permafrost_last_verify_duration_seconds', 'How long the most recent verify took.').set(o.lastVerify.durationMs / 1000);
  }
}

/** Snapshots by check result, each one's, and the last check run. */
function checkGauges(gauge: GaugeMaker, o: Overview, inFolder: readonly SnapshotRow[]): void {
  const byCheck = gauge('permafrost_snapshots_check', 'Snapshots by their check result (sizes and SHA-256 against the manifest).', [
    'result',
  ]);
  for (const result of ['ok', 'failed', 'never'] as const) byCheck.set({ result }, inFolder.filter((s) => s.checked === result).length);
  const checkOk = gauge('permafrost_snapshot_check_ok', 'Check result per snapshot: 1 passed, 0 failed (unchecked ones are absent).', [
    'snapshot',
  ]);
  for (const s of inFolder) if (s.checked !== 'never') checkOk.set({ snapshot: s.id }, s.checked === 'ok' ? 1 : 0);
  if (o.lastCheck) {
    gauge('permafrost_last_check_timestamp_seconds', 'When permafrost check last ran (Unix time).').set(seconds(o.lastCheck.checkedAt));
    gauge('permafrost_last_check_failed_snapshots', 'Snapshots the most recent check found damaged.').set(o.lastCheck.failed.length);
  }
}

/** Alert conditions failing now, and deliveries that failed after every retry. */
function alertMetrics(gauge: GaugeMaker, registry: Registry, o: Overview): void {
  const failing = gauge('permafrost_condition_failing', 'Alert conditions currently failing (backup, verify, device:NAME).', ['condition']);
  for (const [condition, c] of Object.entries(o.alerts.conditions)) failing.set({ condition }, c.failing ? 1 : 0);
  const deliveries = new Counter({
    name: 'permafrost_alert_delivery_failures_total',
    help: 'Alert deliveries that failed after every retry, per channel.',
    labelNames: ['channel'],
    registers: [registry],
  });
  for (const [channel, n] of Object.entries(o.alerts.deliveryFailures)) deliveries.inc({ channel }, n ?? 0);
}

/** On the server: each device's connection, completeness, true lag, staleness and folder completion. */
function deviceGauges(gauge: GaugeMaker, devices: NonNullable<Overview['replication']>['devices']): void {
  const connected = gauge('permafrost_device_connected', 'Whether the device is connected to Syncthing.', ['device']);
  const completeG = gauge(
    'permafrost_device_newest_snapshot_complete',
    'Whether the newest snapshot is fully on the device (1/0; -1 unknown).',
    ['device'],
  );
  const lag = gauge(
    'permafrost_device_lag_seconds',
    "From the newest snapshot's commit (manifest finishedAt) to the moment the device held it complete (still waiting: so far).",
    ['device'],
  );
  const stale = gauge('permafrost_device_stale', 'Whether the device lacks a snapshot older than syncthing.staleAfter.', ['device']);
  const completion = gauge('permafrost_device_folder_completion_ratio', "Syncthing's completion of each folder on the device (0..1).", [
    'device',
    'folder',
  ]);
  for (const d of devices) {
    connected.set({ device: d.name }, d.connected ? 1 : 0);
    completeG.set({ device: d.name }, d.newestSnapshotComplete === null ? -1 : d.newestSnapshotComplete ? 1 : 0);
    if (d.lagSeconds !== null) lag.set({ device: d.name }, d.lagSeconds);
    stale.set({ device: d.name }, d.stale ? 1 : 0);
    for (const f of d.folders) completion.set({ device: d.name, folder: f.folder }, f.completion / 100);
  }
}

/** A backup device about itself: its true lag (commit to complete here), the newest snapshot's age, and its disk. */
function localGauges(gauge: GaugeMaker, self: NonNullable<Overview['device']>): void {
  if (self.newest) {
    gauge(
      'permafrost_local_lag_seconds',
      'On a backup device: from the newest snapshot held complete here finishing on the server to its arrival here.',
    ).set(self.newest.lagSeconds);
    gauge('permafrost_local_newest_snapshot_age_seconds', 'On a backup device: age of the newest snapshot held complete here.').set(
      self.newest.ageSeconds,
    );
  }
  gauge('permafrost_local_stale', 'On a backup device: whether its newest complete snapshot is older than syncthing.staleAfter.').set(
    self.stale ? 1 : 0,
  );
  const disk = gauge('permafrost_local_disk_bytes', "On a backup device: disk used by its snapshots and by Syncthing's .stversions.", [
    'where',
  ]);
  disk.set({ where: 'snapshots' }, self.disk.snapshotBytes);
  disk.set({ where: 'versions' }, self.disk.versionsBytes);
}

/** Each offsite target as the judgement sees it: up is its last push, stale its lack of a snapshot for longer than its staleAfter. */
function offsiteGauges(gauge: GaugeMaker, offsite: Overview['offsite'], problems: readonly Problem[]): void {
  // Each target as the judgement sees it: up is its last push, stale its lack of a snapshot for longer than its staleAfter.
  const judged = (code: Problem['code']) => new Set(problems.flatMap((p) => (p.code === code && p.subject ? [p.subject] : [])));
  const failed = judged('offsite-failed');
  const staleT = judged('offsite-stale');
  const up = gauge(
    'permafrost_offsite_up',
    'Whether the last push to the offsite target succeeded (1) or failed (0); absent before the first push.',
    ['target'],
  );
  const last = gauge(
    'permafrost_offsite_last_success_timestamp_seconds',
    'When the last successful push to the target ended (Unix time).',
    ['target'],
  );
  const newestT = gauge(
    'permafrost_offsite_newest_snapshot_timestamp_seconds',
    'When the newest snapshot complete in the bucket was pushed (Unix time).',
    ['target'],
  );
  const lagT = gauge(
    'permafrost_offsite_lag_seconds',
    "From the newest local snapshot's commit to its push to the target (still missing there: so far).",
    ['target'],
  );
  const behind = gauge('permafrost_offsite_missing_snapshots', 'Local snapshots newer than the newest one complete in the bucket.', [
    'target',
  ]);
  const bytesT = gauge('permafrost_offsite_bytes', "Bytes of permafrost's objects in the bucket after the last push.", ['target']);
  const objectsT = gauge('permafrost_offsite_objects', "permafrost's objects in the bucket after the last push.", ['target']);
  const locked = gauge(
    'permafrost_offsite_locked_deletes',
    'Deletes the bucket refused (Object Lock in force) at the last retention pass.',
    ['target'],
  );
  const staleG = gauge('permafrost_offsite_stale', 'Whether the target has lacked a local snapshot for longer than its staleAfter.', [
    'target',
  ]);
  for (const t of offsite) {
    const target = t.name;
    if (t.lastAttemptAt !== null) up.set({ target }, failed.has(target) ? 0 : 1);
    if (t.lastSuccessAt !== null) last.set({ target }, seconds(t.lastSuccessAt));
    if (t.newestComplete) newestT.set({ target }, seconds(t.newestComplete.pushedAt));
    if (t.lagSeconds !== null) lagT.set({ target }, t.lagSeconds);
    behind.set({ target }, t.missing);
    bytesT.set({ target }, t.bytes);
    objectsT.set({ target }, t.objects);
    locked.set({ target }, t.lockedDeletes);
    staleG.set({ target }, staleT.has(target) ? 1 : 0);
  }
}
