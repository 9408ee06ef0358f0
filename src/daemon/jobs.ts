/**
 * What `permafrost daemon` runs: the scheduled jobs and the services, composed from the config by
 * its role. Add a job to `scheduledJobs`, and a service (e.g. the status page and /metrics) to
 * `daemonServices`, which gets the Daemon to read `daemon.status()`.
 */
import { Cron } from 'croner';
import { effectiveTimeZone } from '../config/schema-schedule.js';
import { BusyError } from '../errors.js';
import { notifyOutcome } from '../notify/alerts.js';
import type { Config, SourceConfig } from '../config/schema.js';
import { daemonSchedules } from '../schedule/collisions.js';
import { Daemon, type DaemonLogger, type DaemonService, type ScheduledJob } from './scheduler.js';
import { checkFailed } from '../ops/check.js';
import { runBackupJob, runCheckJob, runVerifyJob, verificationFailed } from '../ops/runs.js';
import { runPrune } from '../ops/prune.js';
import { watchFreshness } from '../ops/watch.js';
import { runContext } from '../run-context.js';
import { readJobSecrets } from '../ops/secrets.js';
import { daemonNotifyLog, webService } from './watch.js';

/** The time between two consecutive runs of `cron` from now, in ms (one backup period). */
function periodMs(cron: string, timezone: string): number {
  const [a, b] = new Cron(cron, { timezone, mode: '5-or-6-parts', paused: true }).nextRuns(2);
  return a && b ? b.getTime() - a.getTime() : Infinity;
}

/**
 * The backup job: one snapshot (plus retention when vault.keep is set) per run. A run that finds
 * the vault locked by another live run is skipped, as a late run would be; once every run for a
 * whole backup period was skipped so, that is alerted as a failed backup (a lock that is never
 * released would otherwise stop backups silently).
 */
function backupJob(config: SourceConfig, logger: DaemonLogger): ScheduledJob {
  const log = daemonNotifyLog(logger);
  const timezone = effectiveTimeZone(config.schedule);
  let skippedSince: Date | null = null;
  return {
    name: 'backup',
    cron: config.schedule.backup,
    async run(signal) {
      let r;
      const secrets = readJobSecrets(config);
      try {
        r = await runBackupJob(config, runContext({ signal, log }), secrets);
      } catch (err) {
        if (!(err instanceof BusyError)) throw err;
        skippedSince ??= new Date();
        if (Date.now() - skippedSince.getTime() >= periodMs(config.schedule.backup, timezone)) {
          const error = `no backup since ${skippedSince.toISOString()}: every run was skipped because the vault is locked. ${err.message}`;
          await notifyOutcome(config, { kind: 'backup', ok: false, error }, { log, secrets });
        }
        throw err;
      }
      skippedSince = null;
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

/** The verify job: test-restores the newest snapshot on schedule.verify; a failed check fails the run. */
function verifyJob(config: Config, logger: DaemonLogger): ScheduledJob {
  const log = daemonNotifyLog(logger);
  return {
    name: 'verify',
    cron: config.schedule.verify,
    async run(signal) {
      const r = await runVerifyJob(config, runContext({ signal, log }));
      if (!r.ok) throw verificationFailed(r);
      return { snapshot: r.snapshot, ok: r.ok, durationMs: r.durationMs, checks: r.checks.length };
    },
  };
}

/**
 * The check job: every snapshot against its manifest on schedule.check (no passphrase needed);
 * damage fails the run. On a backup device it is also the device's watch: vault.keep applied to
 * `.stversions` first (bounded disk), and after the check the dead-man alarm (watchFreshness).
 */
function checkJob(config: Config, logger: DaemonLogger): ScheduledJob {
  const log = daemonNotifyLog(logger);
  const device = config.role === 'receiver';
  return {
    name: 'check',
    cron: config.schedule.check,
    async run(signal) {
      let pruned: string[] | null = null;
      const secrets = readJobSecrets(config);
      try {
        if (device && config.vault.keep) pruned = (await runPrune(config)).removed;
        const r = await runCheckJob(config, runContext({ signal, log }), { secrets });
        if (!r.ok) throw checkFailed(r);
        return { checked: r.snapshots.length, durationMs: r.durationMs, ...(pruned ? { pruned } : {}) };
      } finally {
        if (device) await watchFreshness(config, log, secrets);
      }
    },
  };
}

/** Jobs on a schedule, by role (daemonSchedules says which). */
function scheduledJobs(config: Config, logger: DaemonLogger): ScheduledJob[] {
  return daemonSchedules(config).map(({ name }) => {
    if (name === 'check') return checkJob(config, logger);
    if (name === 'verify') return verifyJob(config, logger);
    if (config.role !== 'source') throw new Error('backup is scheduled only on a server');
    return backupJob(config, logger);
  });
}

/** Services started and stopped with the daemon: the status page and /metrics when the config has `web`. */
function daemonServices(config: Config, daemon: Daemon): DaemonService[] {
  return config.web ? [webService(config, () => daemon.status())] : [];
}

/** The daemon for a config, with every job and service; call start(), and stop() on SIGTERM. */
export function createDaemon(config: Config, logger: DaemonLogger, opts: { stopGraceMs?: number } = {}): Daemon {
  const daemon = new Daemon({
    jobs: scheduledJobs(config, logger),
    timezone: effectiveTimeZone(config.schedule),
    logger,
    stopGraceMs: opts.stopGraceMs,
  });
  for (const svc of daemonServices(config, daemon)) daemon.addService(svc);
  return daemon;
}
