import { loadConfig } from '../../config/load.js';
import type { Config } from '../../config/schema.js';
import { effectiveTimeZone } from '../../config/schema-schedule.js';
import { createDaemon } from '../../jobs/daemon-jobs.js';
import { errorMessage, PermafrostError, UserError } from '../../errors.js';
import type { Daemon, DaemonLogger } from '../../schedule/daemon.js';
import { chooseLogFormat, jsonLogger, textLogger } from '../daemon-log.js';
import { examples, type RegisterCommand } from '../context.js';

/**
 * Runs the daemon until SIGTERM/SIGINT; on SIGHUP reads the config file again: a config that does
 * not load is logged and the running one kept; a valid one replaces it once the run in flight
 * (if any) has finished. A second SIGTERM/SIGINT kills the process as usual.
 */
async function runUntilStopped(
  first: Config,
  logger: DaemonLogger,
  stopGraceMs: number,
  onConfig: (config: Config) => void,
): Promise<void> {
  let config = first;
  let daemon: Daemon = createDaemon(config, logger, { stopGraceMs });
  let stopping: NodeJS.Signals | null = null;
  let failed: (err: unknown) => void = () => undefined;
  const fatal = new Promise<never>((_, reject) => (failed = reject));
  const stopSignal = new Promise<NodeJS.Signals>((resolve) => {
    const on = (sig: NodeJS.Signals): void => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      stopping = sig;
      resolve(sig);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });

  const reload = async (): Promise<void> => {
    if (stopping) return;
    let next: Config;
    try {
      next = loadConfig(config.configPath);
    } catch (err) {
      const details = err instanceof PermafrostError ? err.details : [];
      logger.error(
        {
          event: 'config.reload',
          outcome: 'refused',
          config: config.configPath,
          error: errorMessage(err),
          ...(details.length ? { details } : {}),
        },
        `SIGHUP: ${config.configPath} not reloaded, the daemon goes on with the config it has: ${[errorMessage(err), ...details].join('; ')}`,
      );
      return;
    }
    logger.info(
      { event: 'config.reload', outcome: 'reloading', config: config.configPath },
      `SIGHUP: reloading ${config.configPath} (after the run in flight, if any)`,
    );
    await daemon.stop('SIGHUP: reloading the config', { abort: false });
    if (stopping) return;
    const fresh = createDaemon(next, logger, { stopGraceMs });
    onConfig(next);
    try {
      await fresh.start();
      daemon = fresh;
      config = next;
    } catch (err) {
      onConfig(config);
      logger.error(
        { event: 'config.reload', outcome: 'failed', config: config.configPath, error: errorMessage(err) },
        `SIGHUP: the new config does not start (${errorMessage(err)}); going on with the old one`,
      );
      daemon = createDaemon(config, logger, { stopGraceMs });
      await daemon.start();
    }
  };
  let reloads = Promise.resolve();
  const onHup = (): void => {
    reloads = reloads.then(reload).catch((err: unknown) => failed(err));
  };
  process.on('SIGHUP', onHup);
  try {
    await daemon.start();
    const sig = await Promise.race([stopSignal, fatal]);
    await daemon.stop(sig);
    // A reload waiting for its run sees `stopping` and starts nothing.
    await reloads;
    await daemon.stop(sig);
  } finally {
    process.off('SIGHUP', onHup);
  }
}

export const registerDaemon: RegisterCommand = (program, { io, config }) => {
  program
    .command('daemon')
    .description(
      'Run in the foreground: `backup` on schedule.backup (cron, default "40 * * * *": hourly at minute 40) in schedule.timezone, `verify latest` on schedule.verify (default "10 4 * * *") and `check` on schedule.check (default "25 * * * *"). ' +
        'On a backup device (syncthing.role: receiver) there is no backup, and verify runs only with verify.connection; its check also raises the dead-man alarm when no snapshot arrives. ' +
        'With a `web` section it serves the status page, /metrics and /api/status.json (default 127.0.0.1:9580) and prints the address. ' +
        'Runs never overlap: a run whose time comes while another is still going waits and starts right after it (at most one waiting run per job; `permafrost doctor` warns of schedules that meet). ' +
        'Logs one line per event on stdout (on stderr once stdout is closed; the daemon keeps running): readable on a TTY, one JSON object otherwise or with --log-format json; every alert sent is logged too. ' +
        'SIGHUP reads the config again (an invalid one is logged and the running one kept; a valid one takes over once the run in flight has finished). ' +
        'SIGTERM/SIGINT abort a backup in flight (its partial folder is removed, no snapshot is written) and exit 0.',
    )
    .option('--stop-grace <seconds>', 'how long to wait for an aborted run to end on SIGTERM', '30')
    .option('--log-format <format>', 'text (one readable line per event; the default on a TTY) or json (the default otherwise)')
    .addHelpText(
      'after',
      examples([
        'permafrost daemon',
        'permafrost daemon | jq -c "select(.event == \\"run.finish\\")"',
        'systemctl reload permafrost-daemon    # SIGHUP: read the config again (or kill -HUP the daemon)',
        '# in permafrost.yaml:  schedule: { backup: "40 * * * *", timezone: Europe/Berlin }',
        '# 6 fields = with seconds:  schedule: { backup: "*/20 * * * * *" }',
        '# status page:  web: { listen: "127.0.0.1:9580" }   then open http://127.0.0.1:9580/',
      ]),
    )
    .action(async (opts: { stopGrace: string; logFormat?: string }) => {
      const grace = Number(opts.stopGrace);
      if (!Number.isFinite(grace) || grace < 0)
        throw new UserError(`--stop-grace: "${opts.stopGrace}" is not a number of seconds; pass e.g. --stop-grace 30.`);
      const format = chooseLogFormat(opts.logFormat, Boolean(process.stdout.isTTY));
      const cfg = config();
      // Scheduled backups matter more than the log: a reader of stdout going away must not stop them.
      io.outToErrWhenClosed?.();
      const write = (line: string): void => io.out(line);
      let timezone = effectiveTimeZone(cfg.schedule);
      const logger = format === 'json' ? jsonLogger(write) : textLogger(write, () => timezone);
      await runUntilStopped(cfg, logger, grace * 1000, (next) => (timezone = effectiveTimeZone(next.schedule)));
      // A run abandoned after the grace period may still hold sockets open; don't let it keep us alive.
      setTimeout(() => process.exit(), 1000).unref();
    });
};
