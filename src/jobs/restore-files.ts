import { constants, existsSync } from 'node:fs';
import { copyFile, link, stat } from 'node:fs/promises';
import path from 'node:path';
import { readSecretFile } from '../config/secret-file.js';
import type { Config } from '../config/schema.js';
import { UserError } from '../errors.js';
import { decryptVerifiedPart, partFile, privateTemp } from '../recover/decrypt-part.js';
import { fsyncDir } from '../vault/fs-durable.js';
import type { ManifestFile } from '../vault/manifest.js';
import { findSnapshot } from '../vault/store.js';
import { runRestore, type RestoreOptions, type RestoreResult } from './restore.js';

export interface PartOutput {
  part: 'redis' | 'secrets';
  path: string;
  bytes: number;
}

export interface FullRestoreOptions extends Omit<RestoreOptions, 'database'> {
  /** Target database; when absent only the requested files are written. */
  database?: string;
  /** Where to write the decrypted Redis RDB (must not exist). */
  redis?: string;
  /** Where to write the decrypted .env.production (must not exist). */
  secrets?: string;
}

export interface FullRestoreResult {
  snapshot: string;
  database: RestoreResult | null;
  files: PartOutput[];
  /** What the admin still does by hand to bring the whole server back. */
  nextSteps: string[];
}

/** Refuses a destination that exists or whose folder is missing, before anything is decrypted. */
function checkDestination(dest: string, flag: string): void {
  if (existsSync(dest)) throw new UserError(`${flag}: ${dest} already exists; restore never overwrites a file, so choose a new path or move it away.`);
  if (!existsSync(path.dirname(dest))) throw new UserError(`${flag}: folder ${path.dirname(dest)} does not exist; create it or choose another path.`);
}

/**
 * Decrypts one part into a private temp folder next to `dest`, verifies it against the manifest,
 * then links it into place (mode 0600), which fails instead of replacing a file that appeared meanwhile.
 */
async function writePart(config: Config, snapshotRef: string, part: PartOutput['part'], dest: string, passphrase: string): Promise<PartOutput> {
  const snapshot = await findSnapshot(config.vault.dir, snapshotRef);
  const file: ManifestFile = partFile(snapshot, part);
  const temp = await privateTemp(path.dirname(dest));
  try {
    const plain = await decryptVerifiedPart(snapshot, file, passphrase, temp);
    try {
      await link(plain, dest);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw new UserError(`${dest} appeared while restoring; restore never overwrites a file, so choose a new path.`);
      // Filesystems without hard links: an exclusive copy still never overwrites.
      await copyFile(plain, dest, constants.COPYFILE_EXCL);
    }
    await fsyncDir(path.dirname(dest));
    return { part, path: dest, bytes: (await stat(dest)).size };
  } finally {
    await temp.dispose();
  }
}

/** The manual steps that remain after permafrost has put the pieces back, for a whole-server restore. */
export function nextSteps(r: { database: string | null; redis: string | null; secrets: string | null; snapshot: string }): string[] {
  const steps = ['Stop Mastodon first: systemctl stop mastodon-web mastodon-sidekiq mastodon-streaming'];
  if (r.database) {
    steps.push(`The database was restored into "${r.database}"; if that is not the one Mastodon uses, set DB_NAME in .env.production to it (or restore again with --database mastodon_production).`);
  } else {
    steps.push(`Restore the database: permafrost restore ${r.snapshot} --database mastodon_production`);
  }
  if (r.secrets) {
    steps.push(`Put the secrets back: install -m 600 -o mastodon -g mastodon ${r.secrets} /home/mastodon/live/.env.production (check DB_* and REDIS_* still fit this machine).`);
  }
  if (r.redis) {
    steps.push(`Put Redis back: systemctl stop redis-server; install -m 600 -o redis -g redis ${r.redis} /var/lib/redis/dump.rdb (Redis' "dir"/"dbfilename"; with appendonly yes, start once with --appendonly no and then turn AOF back on); systemctl start redis-server`);
  } else {
    steps.push('Without the Redis part, Sidekiq queues are lost; home feeds are rebuilt by: RAILS_ENV=production bin/tootctl feeds build');
  }
  steps.push("Media: copy public/system back from a backup device's Syncthing folder (skip it with S3 or other object storage).");
  steps.push('Remote media cache (public/system/cache) is not backed up; let Mastodon fetch it again: RAILS_ENV=production bin/tootctl accounts refresh --all, and bin/tootctl media refresh --days 7 for recent posts.');
  steps.push('Start Mastodon: systemctl start mastodon-web mastodon-sidekiq mastodon-streaming');
  return steps;
}

/**
 * Restores what was asked for from one snapshot: the requested files first (each verified,
 * never overwriting), then the database. Destinations are checked before anything is decrypted.
 */
export async function runFullRestore(config: Config, opts: FullRestoreOptions): Promise<FullRestoreResult> {
  if (!opts.database && !opts.redis && !opts.secrets) {
    throw new UserError('Nothing to restore: pass --database NAME, --redis FILE and/or --secrets FILE.');
  }
  const redis = opts.redis ? path.resolve(opts.redis) : undefined;
  const secrets = opts.secrets ? path.resolve(opts.secrets) : undefined;
  if (redis) checkDestination(redis, '--redis');
  if (secrets) checkDestination(secrets, '--secrets');
  if (redis && redis === secrets) throw new UserError('--redis and --secrets name the same file; give each its own path.');
  const snapshot = await findSnapshot(config.vault.dir, opts.snapshot);
  const files: PartOutput[] = [];
  if (redis || secrets) {
    const passphrase = readSecretFile(config.vault.passphraseFile, 'vault.passphraseFile');
    // Check the parts exist before writing any, so a missing one fails without side effects.
    if (redis) partFile(snapshot, 'redis');
    if (secrets) partFile(snapshot, 'secrets');
    if (redis) {
      opts.events?.phase?.('redis');
      files.push(await writePart(config, snapshot.id, 'redis', redis, passphrase));
    }
    if (secrets) {
      opts.events?.phase?.('secrets');
      files.push(await writePart(config, snapshot.id, 'secrets', secrets, passphrase));
    }
  }
  const database = opts.database ? await runRestore(config, { ...opts, database: opts.database, snapshot: snapshot.id }) : null;
  return {
    snapshot: snapshot.id,
    database,
    files,
    nextSteps: nextSteps({ database: opts.database ?? null, redis: redis ?? null, secrets: secrets ?? null, snapshot: snapshot.id }),
  };
}
