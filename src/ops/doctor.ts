import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { errorMessage, PermafrostError } from '../errors.js';
import {
  checkCheckResults,
  checkDatabase,
  checkDeviceFolder,
  checkFreshness,
  checkMedia,
  checkPassphrase,
  checkPgDump,
  checkRetention,
  checkRolePasswords,
  checkRedis,
  checkSecrets,
  checkVault,
  type CheckLine,
} from '../doctor/checks.js';
import { checkKeys } from '../doctor/keys.js';
import { checkSchedule } from '../doctor/schedule.js';
import { checkSyncthing } from '../doctor/syncthing.js';
import { sweepLeftovers } from '../recover/sweep.js';
import type { JobSecrets } from '../config/secret-values.js';
import { readJobSecrets, withSourceSecrets } from './secrets.js';
import { openVault } from '../vault/layout.js';

/** Sweeps what dead runs left (temp folders, scratch databases) and says what went: a WARN, as a run died there. */
async function sweepLine(config: Config, secrets: JobSecrets): Promise<CheckLine> {
  const { swept, problems } = await sweepLeftovers(config, secrets);
  if (swept.length === 0 && problems.length === 0)
    return { check: 'leftovers', status: 'ok', message: 'no temp folder or scratch database of a dead run' };
  return {
    check: 'leftovers',
    status: 'warn',
    message: [...swept, ...problems].join('; '),
    fix:
      swept.length > 0
        ? 'a run was killed (SIGKILL, out of memory?): check the journal or dmesg for why; what it left is removed now'
        : 'fix what the message says (see the database line)',
  };
}

/** One line per offsite target; the S3 SDK is loaded only when targets are configured. */
async function offsiteLines(targets: NonNullable<Config['offsite']>): Promise<CheckLine[]> {
  const [{ openTarget }, { checkOffsiteTarget }] = await Promise.all([import('./offsite-open.js'), import('../doctor/offsite.js')]);
  const lines: CheckLine[] = [];
  for (const target of targets) {
    let open;
    try {
      open = openTarget(target);
    } catch (err) {
      lines.push({
        check: `offsite ${target.name}`,
        status: 'fail',
        message: errorMessage(err),
        fix: 'make the key files named in offsite.credentials readable by this user, mode 0600, the key on the first line',
      });
      continue;
    }
    try {
      lines.push(await checkOffsiteTarget(open));
    } finally {
      open.client.destroy();
    }
  }
  return lines;
}

export interface DoctorReport {
  configPath: string | null;
  /** A backup device's config (syncthing.role: receiver): its checks are a device's, not a backup's. */
  device: boolean;
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
    return { configPath: null, device: false, lines: [line], ok: false };
  }
  const lines: CheckLine[] = [{ check: 'config', status: 'ok', message: `${config.configPath} is valid` }];
  // Each secret read once; one that cannot be read is its check's FAIL line, not doctor's error.
  const secrets = readJobSecrets(config);
  // A backup device keeps no passphrase (restore takes --passphrase-file): nothing to check then.
  if (config.vault.passphraseFile !== undefined) lines.push(await checkPassphrase(config.vault.passphraseFile, secrets.vaultPassphrase));
  lines.push(...(await checkKeys(config)));
  if (config.role === 'source') {
    const server = withSourceSecrets(config, secrets);
    const db = await checkDatabase(server.database, config.configPath);
    lines.push(db.line);
    if (db.serverMajor !== null) lines.push(await checkRolePasswords(server.database));
    lines.push(await checkPgDump(config.database, db.serverMajor));
    lines.push(await checkRedis(server.redis));
    lines.push(await checkSecrets(config.secrets));
    lines.push(checkRetention(config.vault.keep));
  }
  if (config.role === 'source') lines.push(await checkVault(config.vault.dir));
  else {
    // A backup device makes no backups: what it needs is its folder, room, sound copies and fresh ones.
    lines.push(await checkDeviceFolder(config.vault.dir));
    lines.push(await checkCheckResults(openVault(config.vault.dir)));
    lines.push(await checkFreshness(config));
    lines.push(checkRetention(config.vault.keep));
  }
  lines.push(await sweepLine(config, secrets));
  lines.push(checkSchedule(config));
  lines.push(await checkMedia(config.media));
  lines.push(...(await checkSyncthing(config, secrets.syncthing)));
  if (config.offsite) lines.push(...(await offsiteLines(config.offsite)));
  return { configPath: config.configPath, device: config.role === 'receiver', lines, ok: lines.every((l) => l.status !== 'fail') };
}
