/**
 * Watching what a run cannot see by itself: each device's lag after a backup, and a backup device's
 * dead-man alarm. Each judges through the overview (one verdict) and alerts through notify/.
 */
import type { Config } from '../config/schema.js';
import { logAlertingFailure, notifyOutcome, type NotifyLog } from '../notify/alerts.js';
import { systemStatusSchema } from '../replicate/api.js';
import { clientFor } from '../replicate/client.js';
import { errorMessage } from '../errors.js';
import { reportDevices } from '../notify/report.js';
import { gatherOverview, judge, problemSentence, type ReplicationReader } from './overview.js';
import { replicationStatus } from '../replicate/status.js';
import type { JobSecrets } from '../config/secret-values.js';
import { readSyncthingKey } from './secrets.js';

/** Replication status for the status page and /metrics, when Syncthing is configured; the API key is read once, here. */
export function replicationReaderFor(config: Config, apiKey = readSyncthingKey(config)): ReplicationReader | undefined {
  return config.syncthing ? (c, now) => replicationStatus(c, apiKey, { now }) : undefined;
}

/** Alerts for devices whose newest complete snapshot is too old, and their recovery. Never throws. */
export async function checkDevices(config: Config, log: NotifyLog, secrets: JobSecrets): Promise<void> {
  // Nothing to tell without alert channels; spare Syncthing the queries.
  if (!config.syncthing || !config.notify) return;
  try {
    const o = await gatherOverview(config, { replication: (c, now) => replicationStatus(c, secrets.syncthing, { now }) });
    if (!o.replication?.reachable) {
      log('warn', 'device check skipped: Syncthing did not answer', { error: o.replication?.error ?? o.replicationError ?? '' });
      return;
    }
    // Stale as the overview judges it: the device-stale problems `status`, the page and /metrics show.
    const stale = new Set(judge(o).flatMap((p) => (p.code === 'device-stale' && p.subject ? [p.subject] : [])));
    await reportDevices(
      config,
      o.replication.devices.map((d) => ({ ...d, stale: stale.has(d.name) })),
      { log, secrets },
    );
  } catch (err) {
    logAlertingFailure(log, 'device check failed', err);
  }
}

/**
 * Alerts per offsite target as the overview judges it (the offsite-failed and offsite-stale
 * problems `status`, the page and /metrics show): offsite.failed or offsite.stale once when it
 * starts, offsite.resolved once when the target holds the newest snapshot again. Called after
 * each backup, verify and check run (and after a push). Never throws.
 */
export async function checkOffsite(config: Config, log: NotifyLog, secrets: JobSecrets, now = new Date()): Promise<void> {
  if (!config.offsite || !config.notify) return;
  try {
    const o = await gatherOverview(config, { now });
    const problems = judge(o);
    for (const t of o.offsite) {
      const p = problems.find((x) => (x.code === 'offsite-failed' || x.code === 'offsite-stale') && x.subject === t.name);
      const snapshot = t.newestComplete?.id ?? null;
      await notifyOutcome(
        config,
        p
          ? { kind: 'offsite', target: t.name, ok: false, snapshot, stale: p.code === 'offsite-stale', error: problemSentence(p) }
          : { kind: 'offsite', target: t.name, ok: true, snapshot },
        { log, now, secrets },
      );
    }
  } catch (err) {
    logAlertingFailure(log, 'offsite check failed', err);
  }
}

/**
 * The backup device's dead-man alarm: alerts once per channel when its newest complete snapshot is
 * older than syncthing.staleAfter (a dead server sends nothing, so only the device can notice), and
 * once when snapshots arrive again; its own Syncthing not answering is alerted the same way, as one
 * more problem, never a reason to stay silent. Never throws.
 */
export async function watchFreshness(config: Config, log: NotifyLog, secrets: JobSecrets, now = new Date()): Promise<void> {
  try {
    // The staleness verdict is the overview's (the one `status`, the page and /metrics show), not a judgement of its own.
    const o = await gatherOverview(config, { now });
    const stale = judge(o).find((p) => p.code === 'stale');
    const snapshot = o.device?.newest?.id ?? null;
    await notifyOutcome(
      config,
      stale ? { kind: 'stale', ok: false, snapshot, error: problemSentence(stale) } : { kind: 'stale', ok: true, snapshot },
      { log, now, secrets },
    );
    if (!config.syncthing) return;
    let error: string | null = null;
    try {
      await clientFor(config, secrets.syncthing, { timeoutMs: 15_000 }).get('/rest/system/status', systemStatusSchema);
    } catch (err) {
      error = errorMessage(err);
    }
    await notifyOutcome(config, error ? { kind: 'syncthing', ok: false, error } : { kind: 'syncthing', ok: true }, { log, now, secrets });
  } catch (err) {
    logAlertingFailure(log, 'freshness check failed', err);
  }
}
