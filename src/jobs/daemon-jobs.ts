/**
 * What `permafrost daemon` runs: the scheduled jobs and the extra services, composed from the
 * config. Add a job (e.g. verify on schedule.verify) to `scheduledJobs`, and a service (e.g. the
 * status page and /metrics) to `daemonServices`; both get the Daemon to read `daemon.status()`.
 */
import { effectiveTimeZone } from '../config/schema-schedule.js';
import type { Config } from '../config/schema.js';
import { Daemon, type DaemonLogger, type DaemonService, type ScheduledJob } from '../schedule/daemon.js';
import { backupWithAlerts } from '../notify/report.js';
import { runBackup } from './backup.js';
import { canVerify, checkDevices, daemonNotifyLog, verifyJob, webService } from './watch.js';

/** The backup job: one snapshot (plus retention when vault.keep is set) per run. */
export function backupJob(config: Config, logger?: DaemonLogger): ScheduledJob {
  const log = logger ? daemonNotifyLog(logger) : undefined;
  return {
    name: 'backup',
    cron: config.schedule.backup,
    async run(signal) {
      // Alerts (notify.*) after the run; delivery never fails it. Then each device's staleness.
      const r = await backupWithAlerts(config, () => runBackup(config, { signal }), { log, signal });
      if (log) await checkDevices(config, log);
      return {
        snapshot: r.manifest.id,
        bytes: r.manifest.files.reduce((s, f) => s + f.bytes, 0),
        parts: r.manifest.files.map((f) => f.part),
        cleaned: r.cleaned,
        pruned: r.pruned ? r.pruned.removed : null,
        warnings: r.warnings,
      };
    },
  };
}

/** Jobs on a schedule. */
export function scheduledJobs(config: Config, logger?: DaemonLogger): ScheduledJob[] {
  // A receiver without verify.connection has no server to test-restore on.
  return [backupJob(config, logger), ...(logger && canVerify(config) ? [verifyJob(config, logger)] : [])];
}

/** Services started and stopped with the daemon: the status page and /metrics when the config has `web`. */
export function daemonServices(config: Config, daemon: Daemon): DaemonService[] {
  return config.web ? [webService(config, () => daemon.status())] : [];
}

/** The daemon for a config, with every job and service; call start(), and stop() on SIGTERM. */
export function createDaemon(
  config: Config,
  logger: DaemonLogger,
  opts: { extraJobs?: ScheduledJob[]; extraServices?: DaemonService[]; stopGraceMs?: number } = {},
): Daemon {
  const daemon = new Daemon({
    jobs: [...scheduledJobs(config, logger), ...(opts.extraJobs ?? [])],
    timezone: effectiveTimeZone(config.schedule),
    logger,
    stopGraceMs: opts.stopGraceMs,
  });
  for (const svc of [...daemonServices(config, daemon), ...(opts.extraServices ?? [])]) daemon.addService(svc);
  return daemon;
}
