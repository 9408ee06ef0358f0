/**
 * The daemon's own services: the status page as a daemon service, and the bridge from alert
 * delivery logs to the daemon's logger.
 */
import type { Config } from '../config/schema.js';
import type { NotifyLog } from '../notify/alerts.js';
import { replicationReaderFor } from '../ops/watch.js';
import { readJobSecrets } from '../ops/secrets.js';
import type { DaemonLogger, DaemonService, JobStatus } from './scheduler.js';
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

/** The status page and /metrics as a daemon service, when the config has a `web` section; its secrets are read as it starts. */
export function webService(config: Config, jobs: () => JobStatus[]): DaemonService {
  let server: WebServer | null = null;
  return {
    name: 'web',
    async start() {
      const secrets = readJobSecrets(config);
      server = await startWebServer(config, { jobs, replication: replicationReaderFor(config, secrets.syncthing), token: secrets.web });
      return { url: server.url };
    },
    async stop() {
      await server?.close();
      server = null;
    },
  };
}
