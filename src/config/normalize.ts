import { UserError } from '../errors.js';
import type { Config, RawConfig, SourceConfig } from './schema.js';

/** A normalized config, or the `key: message` lines that keep the raw one from becoming one. */
export type Normalized = { ok: true; config: Config } | { ok: false; problems: string[] };

/**
 * Decides once whether this config is the server's (source: it backs up, so it needs `database`)
 * or a backup device's (syncthing.role: receiver: it only holds replicas, so it has none).
 */
export function normalizeConfig(raw: RawConfig, configPath: string): Normalized {
  const { database, ...common } = raw;
  if (raw.syncthing?.role === 'receiver') {
    if (database !== undefined) {
      return {
        ok: false,
        problems: [
          'database: a backup device (syncthing.role: receiver) makes no backups, so it takes no database section; remove it (its test-restore server is verify.connection), or set syncthing.role: source',
        ],
      };
    }
    return { ok: true, config: { ...common, configPath, role: 'receiver' } };
  }
  if (database === undefined) {
    return { ok: false, problems: ['database: required (only a Syncthing receiver, syncthing.role: receiver, may leave it out)'] };
  }
  return { ok: true, config: { ...common, configPath, role: 'source', database } };
}

/** The config as a source's, for a job that needs the database; on a backup device one UserError says what to change. */
export function requireSource(config: Config, job: string): SourceConfig {
  if (config.role === 'source') return config;
  throw new UserError(
    `permafrost ${job} needs a database, but ${config.configPath} has no database section (it is a backup device's config, syncthing.role: receiver): ` +
      'run it on the server, or add a database section and set syncthing.role: source.',
  );
}
