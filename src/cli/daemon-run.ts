import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { createDaemon } from '../daemon/jobs.js';
import { errorMessage, PermafrostError } from '../errors.js';
import type { Daemon, DaemonLogger } from '../daemon/scheduler.js';

/**
 * Runs the daemon until SIGTERM/SIGINT; on SIGHUP reads the config file again: a config that does
 * not load is logged and the running one kept; a valid one replaces it once the run in flight
 * (if any) has finished. A second SIGTERM/SIGINT kills the process as usual.
 */
export async function runUntilStopped(
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
