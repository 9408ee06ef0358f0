/**
 * The "watch" side of runs and the daemon: the device staleness check, the status page as a daemon
 * service, and the bridge from alert delivery logs to the daemon's logger.
 */
import type { Config } from '../config/schema.js';
import { logAlertingFailure, notifyOutcome, type NotifyLog } from '../notify/alerts.js';
import { systemStatusSchema } from '../replicate/api.js';
import { clientFor } from '../replicate/client.js';
import { errorMessage } from '../errors.js';
import { reportDevices } from '../notify/report.js';
import { gatherOverview, judge, problemSentence, type ReplicationReader } from '../ops/overview.js';
import { replicationStatus } from '../replicate/status.js';
import type { DaemonLogger, DaemonService, JobStatus } from '../schedule/daemon.js';
import { startWebServer, type WebServer } from '../web/server.js';

/**
 * Alerts sent (`alert.sent`) and delivery problems (`alert.delivery`) as daemon log lines; the
 * alert's own event name (e.g. backup.failed) goes into `alert`, as `event` is the log line's.
 */
export function daemonNotifyLog(logger: DaemonLogger): NotifyLog {
  return (level, msg, fields) => {
    const { event: alert, sent, ...rest } = fields;
    logger[level]({ event: sent === true ? 'alert.sent' : 'alert.delivery', ...(alert === undefined ? {} : { alert }), ...rest }, msg);
  };
}

/** Replication status for the status page and /metrics, when Syncthing is configured. */
export function replicationReaderFor(config: Config): ReplicationReader | undefined {
  return config.syncthing ? (c, now) => replicationStatus(c, { now }) : undefined;
}

/** Alerts for devices whose newest complete snapshot is too old, and their recovery. Never throws. */
export async function checkDevices(config: Config, log: NotifyLog): Promise<void> {
  // Nothing to tell without alert channels; spare Syncthing the queries.
  if (!config.syncthing || !config.notify) return;
  try {
    const o = await gatherOverview(config, { replication: (c, now) => replicationStatus(c, { now }) });
    if (!o.replication?.reachable) {
      log('warn', 'device check skipped: Syncthing did not answer', { error: o.replication?.error ?? o.replicationError ?? '' });
      return;
    }
    // Stale as the overview judges it: the device-stale problems `status`, the page and /metrics show.
    const stale = new Set(judge(o).flatMap((p) => (p.code === 'device-stale' && p.subject ? [p.subject] : [])));
    await reportDevices(
      config,
      o.replication.devices.map((d) => ({ ...d, stale: stale.has(d.name) })),
      { log },
    );
  } catch (err) {
    logAlertingFailure(log, 'device check failed', err);
  }
}

/** The status page and /metrics as a daemon service, when the config has a `web` section. */
export function webService(config: Config, jobs: () => JobStatus[]): DaemonService {
  let server: WebServer | null = null;
  return {
    name: 'web',
    async start() {
      server = await startWebServer(config, { jobs, replication: replicationReaderFor(config) });
      return { url: server.url };
    },
    async stop() {
      await server?.close();
      server = null;
    },
  };
}

/**
 * The backup device's dead-man alarm: alerts once per channel when its newest complete snapshot is
 * older than syncthing.staleAfter (a dead server sends nothing, so only the device can notice), and
 * once when snapshots arrive again; its own Syncthing not answering is alerted the same way, as one
 * more problem, never a reason to stay silent. Never throws.
 */
export async function watchFreshness(config: Config, log: NotifyLog, now = new Date()): Promise<void> {
  try {
    // The staleness verdict is the overview's (the one `status`, the page and /metrics show), not a judgement of its own.
    const o = await gatherOverview(config, { now });
    const stale = judge(o).find((p) => p.code === 'stale');
    const snapshot = o.device?.newest?.id ?? null;
    await notifyOutcome(
      config,
      stale ? { kind: 'stale', ok: false, snapshot, error: problemSentence(stale) } : { kind: 'stale', ok: true, snapshot },
      { log, now },
    );
    if (!config.syncthing) return;
    let error: string | null = null;
    try {
      await clientFor(config, { timeoutMs: 15_000 }).get('/rest/system/status', systemStatusSchema);
    } catch (err) {
      error = errorMessage(err);
    }
    await notifyOutcome(config, error ? { kind: 'syncthing', ok: false, error } : { kind: 'syncthing', ok: true }, { log, now });
  } catch (err) {
    logAlertingFailure(log, 'freshness check failed', err);
  }
}
