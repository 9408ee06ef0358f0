import { pino } from 'pino';
import { createDaemon } from '../../jobs/daemon-jobs.js';
import { UserError } from '../../errors.js';
import { examples, type RegisterCommand } from '../context.js';

/** Resolves with the name of the first SIGTERM/SIGINT; a second one kills the process as usual. */
function nextStopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals): void => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(sig);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}

export const registerDaemon: RegisterCommand = (program, { io, config }) => {
  program
    .command('daemon')
    .description(
      'Run in the foreground: `backup` on schedule.backup (cron, default "40 * * * *": hourly at minute 40) in schedule.timezone, and `verify latest` on schedule.verify (default "10 4 * * *"). ' +
        'On a backup device (syncthing.role: receiver) there is no backup, and verify runs only with verify.connection. ' +
        'With a `web` section it serves the status page, /metrics and /api/status.json (default 127.0.0.1:9580). ' +
        'Runs never overlap: a run whose time comes while another is still going waits and starts right after it (at most one waiting run per job; `permafrost doctor` warns of schedules that meet). ' +
        'Logs one JSON line per event on stdout (on stderr once stdout is closed; the daemon keeps running). SIGTERM/SIGINT abort a backup in flight (its partial folder is removed, no snapshot is written) and exit 0.',
    )
    .option('--stop-grace <seconds>', 'how long to wait for an aborted run to end on SIGTERM', '30')
    .addHelpText(
      'after',
      examples([
        'permafrost daemon',
        'permafrost daemon | jq -c "select(.event == \\"run.finish\\")"',
        '# in permafrost.yaml:  schedule: { backup: "40 * * * *", timezone: Europe/Berlin }',
        '# 6 fields = with seconds:  schedule: { backup: "*/20 * * * * *" }',
        '# status page:  web: { listen: "127.0.0.1:9580" }   then open http://127.0.0.1:9580/',
      ]),
    )
    .action(async (opts: { stopGrace: string }) => {
      const grace = Number(opts.stopGrace);
      if (!Number.isFinite(grace) || grace < 0)
        throw new UserError(`--stop-grace: "${opts.stopGrace}" is not a number of seconds; pass e.g. --stop-grace 30.`);
      const cfg = config();
      // Scheduled backups matter more than the log: a reader of stdout going away must not stop them.
      io.outToErrWhenClosed?.();
      const logger = pino(
        {
          base: { pid: process.pid },
          timestamp: pino.stdTimeFunctions.isoTime,
          formatters: { level: (label) => ({ level: label }) },
        },
        { write: (line: string) => io.out(line.trimEnd()) },
      );
      const daemon = createDaemon(cfg, logger, { stopGraceMs: grace * 1000 });
      const stopSignal = nextStopSignal();
      await daemon.start();
      const sig = await stopSignal;
      await daemon.stop(sig);
      // A run abandoned after the grace period may still hold sockets open; don't let it keep us alive.
      setTimeout(() => process.exit(), 1000).unref();
    });
};
