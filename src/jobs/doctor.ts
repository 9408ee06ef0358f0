import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { errorMessage, PermafrostError } from '../errors.js';
import {
  checkDatabase,
  checkMedia,
  checkPassphrase,
  checkPgDump,
  checkRetention,
  checkRedis,
  checkSecrets,
  checkVault,
  type CheckLine,
} from '../doctor/checks.js';
import { checkSyncthing } from '../doctor/syncthing.js';

export interface DoctorReport {
  configPath: string | null;
  lines: CheckLine[];
  /** False when any line is a FAIL. */
  ok: boolean;
}

/**
 * Checks everything a backup needs and returns one line per check. A config that does not load
 * is itself a FAIL line (the other checks need it and are skipped), never a thrown error.
 */
export async function runDoctor(opts: { configFlag?: string }): Promise<DoctorReport> {
  let config: Config;
  try {
    config = loadConfig(opts.configFlag);
  } catch (err) {
    const details = err instanceof PermafrostError ? err.details : [];
    const line: CheckLine = {
      check: 'config',
      status: 'fail',
      message: [errorMessage(err), ...details].join('; '),
      fix: 'fix the config as the message says (or write one with `permafrost init --mastodon DIR`); the other checks need it',
    };
    return { configPath: null, lines: [line], ok: false };
  }
  const lines: CheckLine[] = [{ check: 'config', status: 'ok', message: `${config.configPath} is valid` }];
  lines.push(await checkPassphrase(config.vault.passphraseFile));
  if (config.role === 'source') {
    const db = await checkDatabase(config.database);
    lines.push(db.line);
    lines.push(await checkPgDump(config.database, db.serverMajor));
    lines.push(await checkRedis(config.redis));
    lines.push(await checkSecrets(config.secrets));
    lines.push(checkRetention(config.vault.keep));
  }
  lines.push(await checkVault(config.vault.dir));
  lines.push(await checkMedia(config.media));
  lines.push(...(await checkSyncthing(config)));
  return { configPath: config.configPath, lines, ok: lines.every((l) => l.status !== 'fail') };
}
