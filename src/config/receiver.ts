import { UserError } from '../errors.js';
import type { Config } from './schema.js';

/**
 * A Syncthing receiver's config has no `database`. Rather than make every job check for it,
 * reading `config.database` there throws one clear UserError, so backup, restore and verify
 * fail with a sentence that says what to fix.
 */
export function guardMissingDatabase(config: Omit<Config, 'database'> & { database?: Config['database'] }): Config {
  if (config.database !== undefined) return config as Config;
  const path = config.configPath;
  Object.defineProperty(config, 'database', {
    enumerable: false,
    get() {
      throw new UserError(
        `Config ${path} has no database section (it is a Syncthing receiver's, syncthing.role: receiver); ` +
          'add a database section to back up, restore or verify from this machine.',
      );
    },
  });
  return config as Config;
}

/** Whether the config has a database section, without tripping the guard above. */
export function hasDatabase(config: Config): boolean {
  return Object.getOwnPropertyDescriptor(config, 'database')?.get === undefined && config.database !== undefined;
}
