import { UserError } from '../errors.js';
import type { Config, RawConfig, SourceConfig } from './schema.js';

/** A normalized config, or the `key: message` lines that keep the raw one from becoming one. */
export type Normalized = { ok: true; config: Config } | { ok: false; problems: string[] };

/**
 * Decides once whether this config is the server's (source: it backs up, so it needs `database`
 * and `vault.passphraseFile` or `vault.recipients`) or a backup device's (it only holds replicas, so it has neither).
 * A device is `syncthing.role: receiver`, or a config with no syncthing section and no database
 * (`vault.dir` alone): such a config can make no backup, so it is read as a device's, for list,
 * check, status and `restore --passphrase-file`.
 */
export function normalizeConfig(raw: RawConfig, configPath: string): Normalized {
  const { database, ...common } = raw;
  const device = raw.syncthing?.role === 'receiver' || (raw.syncthing === undefined && database === undefined);
  if (device) {
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
  const problems: string[] = [];
  if (database === undefined) {
    problems.push(
      "database: required on the server (syncthing.role: source); a backup device's config sets syncthing.role: receiver, or has no syncthing section",
    );
  }
  const { passphraseFile, recipients } = raw.vault;
  if (passphraseFile === undefined && recipients === undefined) {
    problems.push(
      'vault: the server encrypts every snapshot, so it needs vault.recipients (public keys), vault.passphraseFile, or both (`permafrost init` creates a passphrase file)',
    );
  }
  if (database === undefined || problems.length > 0) return { ok: false, problems };
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
