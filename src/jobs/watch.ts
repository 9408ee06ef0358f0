/**
 * The "prove and watch" side of the daemon: the scheduled verify, the device staleness check, the
 * status page as a daemon service, and the bridge from alert delivery logs to the daemon's logger.
 */
import type { Config } from '../config/schema.js';
import { IntegrityError } from '../errors.js';
import type { NotifyLog } from '../notify/alerts.js';
import { reportDevices, verifyWithAlerts } from '../notify/report.js';
import { replicationStatus } from '../replicate/status.js';
import type { DaemonLogger, DaemonService, JobStatus, ScheduledJob } from '../schedule/daemon.js';
import type { ReplicationReader } from '../web/overview.js';
import { startWebServer, type WebServer } from '../web/server.js';
import { runVerify } from './verify.js';

/** Alert delivery problems as daemon log lines. */
export function daemonNotifyLog(logger: DaemonLogger): NotifyLog {
  return (level, msg, fields) => logger[level]({ event: 'alert.delivery', ...fields }, msg);
}

/** Replication status for the status page and /metrics, when Syncthing is configured. */
export function replicationReaderFor(config: Config): ReplicationReader | undefined {
  return config.syncthing ? (c) => replicationStatus(c) : undefined;
}

/** Alerts for devices whose newest complete snapshot is too old, and their recovery. Never throws. */
export async function checkDevices(config: Config, log: NotifyLog): Promise<void> {
  // Nothing to tell without alert channels; spare Syncthing the queries.
  if (!config.syncthing || !config.notify) return;
  try {
    const status = await replicationStatus(config);
    if (!status.reachable) {
      log('warn', 'device check skipped: Syncthing did not answer', { error: status.error ?? '' });
      return;
    }
    await reportDevices(config, status.devices, { log });
  } catch (err) {
    log('warn', 'device check failed', { error: err instanceof Error ? err.message : String(err) });
  }
}

/** Whether this host can test-restore (a receiver needs verify.connection). */
export function canVerify(config: Config): boolean {
  return config.database !== undefined || config.verify?.connection !== undefined;
}

/** The verify job: test-restores the newest snapshot on schedule.verify; a failed check fails the run. */
export function verifyJob(config: Config, logger: DaemonLogger): ScheduledJob {
  const log = daemonNotifyLog(logger);
  return {
    name: 'verify',
    cron: config.schedule.verify,
    async run(signal) {
      const r = await verifyWithAlerts(config, () => runVerify(config, { signal }), { log, signal });
      await checkDevices(config, log);
      if (!r.ok) throw new IntegrityError(`Snapshot ${r.snapshot} failed verification: ${r.reason}`);
      return { snapshot: r.snapshot, ok: r.ok, durationMs: r.durationMs, checks: r.checks.length };
    },
  };
}

/** The status page and /metrics as a daemon service, when the config has a `web` section. */
export function webService(config: Config, jobs: () => JobStatus[]): DaemonService {
  let server: WebServer | null = null;
  return {
    name: 'web',
    async start() {
      server = await startWebServer(config, { jobs, replication: replicationReaderFor(config) });
    },
    async stop() {
      await server?.close();
      server = null;
    },
  };
}
