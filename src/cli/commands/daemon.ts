import { UserError } from '../../errors.js';
import { examples, type RegisterCommand } from '../context.js';

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
      // Loaded here, not at the top: `permafrost --help` and other commands need none of it.
      const [{ chooseLogFormat, jsonLogger, textLogger }, { runUntilStopped }, { effectiveTimeZone }] = await Promise.all([
        import('../daemon-log.js'),
        import('../daemon-run.js'),
        import('../../config/schema-schedule.js'),
      ]);
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
