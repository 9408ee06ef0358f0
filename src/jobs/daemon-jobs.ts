/**
 * What `permafrost daemon` runs: the scheduled jobs and the extra services, composed from the
 * config. Add a job (e.g. verify on schedule.verify) to `scheduledJobs`, and a service (e.g. the
 * status page and /metrics) to `daemonServices`; both get the Daemon to read `daemon.status()`.
 */
import { effectiveTimeZone } from '../config/schema-schedule.js';
import type { Config } from '../config/schema.js';
import { Daemon, type DaemonLogger, type DaemonService, type ScheduledJob } from '../schedule/daemon.js';
import { runBackup } from './backup.js';

/** The backup job: one snapshot (plus retention when vault.keep is set) per run. */
export function backupJob(config: Config): ScheduledJob {
  return {
    name: 'backup',
    cron: config.schedule.backup,
    async run(signal) {
      const r = await runBackup(config, { signal });
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
export function scheduledJobs(config: Config): ScheduledJob[] {
  return [backupJob(config)];
}

/** Services started and stopped with the daemon (none yet: the status page hooks in here). */
export function daemonServices(_config: Config, _daemon: Daemon): DaemonService[] {
  return [];
}

/** The daemon for a config, with every job and service; call start(), and stop() on SIGTERM. */
export function createDaemon(
  config: Config,
  logger: DaemonLogger,
  opts: { extraJobs?: ScheduledJob[]; extraServices?: DaemonService[]; stopGraceMs?: number } = {},
): Daemon {
  const daemon = new Daemon({
    jobs: [...scheduledJobs(config), ...(opts.extraJobs ?? [])],
    timezone: effectiveTimeZone(config.schedule),
    logger,
    stopGraceMs: opts.stopGraceMs,
  });
  for (const svc of [...daemonServices(config, daemon), ...(opts.extraServices ?? [])]) daemon.addService(svc);
  return daemon;
}
