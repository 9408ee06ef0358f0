/**
 * `permafrost restore`: the database, the Redis RDB and the secrets file of one snapshot. The
 * snapshot is looked up once and the passphrase read once; every destination is checked before
 * anything is decrypted, and every part is verified against the manifest before it is used.
 */
import { assertDbName } from '../tools/postgres.js';
import { constants, existsSync } from 'node:fs';
import { copyFile, link, stat } from 'node:fs/promises';
import path from 'node:path';
import { databaseSchema, type Config, type DatabaseConfig } from '../config/schema.js';
import type { JobEvents } from '../jobs/events.js';
import { PermafrostError, UserError } from '../errors.js';
import { fsyncDir } from '../vault/fs-durable.js';
import { decryptSecretFor, type DecryptSecret, type SecretFlags } from '../vault/keys-identity.js';
import { readSignerKey, requireSignedManifest } from '../vault/signature.js';
import { findSnapshot, type SnapshotEntry } from '../vault/store.js';
import { decryptVerifiedPart, partFile, privateTemp, vaultTempBase } from './decrypt.js';
import { checkTarget, inspectTarget, PARTLY_RESTORED, restoreDatabase, type DatabaseRestoreResult } from './restore-database.js';

export interface RestoreOptions extends SecretFlags {
  snapshot?: string;
  /** Target database; when absent only the requested files are written. */
  database?: string;
  /** Where to write the decrypted Redis RDB (must not exist). */
  redis?: string;
  /** Where to write the decrypted .env.production (must not exist). */
  secrets?: string;
  force?: boolean;
  /** End other sessions on the target database right before pg_restore (else they are refused). */
  terminateSessions?: boolean;
  jobs?: number;
  noOwner?: boolean;
  events?: JobEvents;
  /** Stop requested (SIGINT/SIGTERM): programs are stopped, temp folders removed, and the run fails saying how far it got. */
  signal?: AbortSignal;
}

export interface PartOutput {
  part: 'redis' | 'secrets';
  path: string;
  bytes: number;
}

export interface RestoreResult {
  snapshot: string;
  database: DatabaseRestoreResult | null;
  files: PartOutput[];
  /** What the admin still does by hand to bring the whole server back. */
  nextSteps: string[];
}

/** Refuses a destination that exists or whose folder is missing, before anything is decrypted. */
function checkDestination(dest: string, flag: string): void {
  if (existsSync(dest))
    throw new UserError(`${flag}: ${dest} already exists; restore never overwrites a file, so choose a new path or move it away.`);
  if (!existsSync(path.dirname(dest)))
    throw new UserError(`${flag}: folder ${path.dirname(dest)} does not exist; create it or choose another path.`);
}

/**
 * Decrypts one part into a private temp folder next to `dest`, verifies it against the manifest,
 * then links it into place (mode 0600), which fails instead of replacing a file that appeared meanwhile.
 */
async function writePart(
  snapshot: SnapshotEntry,
  secret: DecryptSecret,
  part: PartOutput['part'],
  dest: string,
  signal?: AbortSignal,
): Promise<PartOutput> {
  const flag = `--${part}`;
  const folder = path.dirname(dest);
  const temp = await privateTemp({ dir: folder, name: `the folder of ${flag} (${folder})`, setting: flag });
  try {
    const plain = await decryptVerifiedPart({ snapshot, secret, temp }, partFile(snapshot, part), { signal });
    try {
      await link(plain, dest);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST')
        throw new UserError(`${dest} appeared while restoring; restore never overwrites a file, so choose a new path.`);
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
    steps.push(
      `The database was restored into "${r.database}"; if that is not the one Mastodon uses, set DB_NAME in .env.production to it (or restore again with --database mastodon_production).`,
    );
  } else {
    steps.push(`Restore the database: permafrost restore ${r.snapshot} --database mastodon_production`);
  }
  if (r.secrets) {
    steps.push(
      `Put the secrets back: install -m 600 -o mastodon -g mastodon ${r.secrets} /home/mastodon/live/.env.production (check DB_* and REDIS_* still fit this machine).`,
    );
  }
  if (r.redis) {
    steps.push(
      `Put Redis back: systemctl stop redis-server; install -m 600 -o redis -g redis ${r.redis} /var/lib/redis/dump.rdb (Redis' "dir"/"dbfilename"; with appendonly yes, start once with --appendonly no and then turn AOF back on); systemctl start redis-server`,
    );
  } else {
    steps.push('Without the Redis part, Sidekiq queues are lost; home feeds are rebuilt by: RAILS_ENV=production bin/tootctl feeds build');
  }
  steps.push("Media: copy public/system back from a backup device's Syncthing folder (skip it with S3 or other object storage).");
  steps.push(
    'Remote media cache (public/system/cache) is not backed up; let Mastodon fetch it again: RAILS_ENV=production bin/tootctl accounts refresh --all, and bin/tootctl media refresh --days 7 for recent posts.',
  );
  steps.push('Start Mastodon: systemctl start mastodon-web mastodon-sidekiq mastodon-streaming');
  return steps;
}

/**
 * The server to restore into: the config's database section, or, on a backup device (which has
 * none), the PostgreSQL that libpq's environment names (PGHOST, PGPORT, PGUSER, PGPASSFILE, …).
 */
function targetServer(config: Config, database: string): DatabaseConfig {
  return config.role === 'source' ? config.database : databaseSchema.parse({ name: database });
}

/**
 * Restores what was asked for from one snapshot: every destination and the target database are
 * checked first, then the requested files are written (each verified, never overwriting), then
 * the database (decrypted and verified before it is touched). Temp folders go on every path.
 */
export async function runRestore(config: Config, opts: RestoreOptions): Promise<RestoreResult> {
  if (!opts.database && !opts.redis && !opts.secrets) {
    throw new UserError('Nothing to restore: pass --database NAME, --redis FILE and/or --secrets FILE.');
  }
  if (opts.database) assertDbName(opts.database, '--database');
  const redis = opts.redis ? path.resolve(opts.redis) : undefined;
  const secrets = opts.secrets ? path.resolve(opts.secrets) : undefined;
  if (redis) checkDestination(redis, '--redis');
  if (secrets) checkDestination(secrets, '--secrets');
  if (redis && redis === secrets) throw new UserError('--redis and --secrets name the same file; give each its own path.');
  const secret = await decryptSecretFor(config, opts, 'restore');
  const snapshot = await findSnapshot(config.vault.dir, opts.snapshot);
  await requireSignedManifest(snapshot, await readSignerKey(config.vault.signerKeyFile));
  // Every requested part must exist before any is written, so a missing one fails without side effects.
  const dbFile = opts.database ? partFile(snapshot, 'database') : null;
  if (redis) partFile(snapshot, 'redis');
  if (secrets) partFile(snapshot, 'secrets');
  const server = opts.database ? targetServer(config, opts.database) : null;
  const target = opts.database && server ? await inspectTarget(server, opts.database) : null;
  if (opts.database && target) checkTarget(target, opts.database, opts);

  /** A step stopped by the signal fails with one sentence; the database step says itself when the target was touched. */
  const stoppable = <T>(step: Promise<T>): Promise<T> =>
    step.catch((err: unknown) => {
      if (!opts.signal?.aborted || (err instanceof PermafrostError && err.message.includes(PARTLY_RESTORED))) throw err;
      throw new PermafrostError(
        'tool',
        `Restore of snapshot ${snapshot.id} was stopped before it finished; the target database was not touched and no file was half written.`,
        { cause: err },
      );
    });
  const files: PartOutput[] = [];
  if (redis) {
    opts.events?.phase?.('redis');
    files.push(await stoppable(writePart(snapshot, secret, 'redis', redis, opts.signal)));
  }
  if (secrets) {
    opts.events?.phase?.('secrets');
    files.push(await stoppable(writePart(snapshot, secret, 'secrets', secrets, opts.signal)));
  }
  let database: DatabaseRestoreResult | null = null;
  if (opts.database && dbFile && target && server) {
    const temp = await privateTemp(vaultTempBase(config.vault.tempDir));
    try {
      database = await stoppable(
        restoreDatabase({ snapshot, secret, temp }, dbFile, {
          server,
          database: opts.database,
          target,
          jobs: opts.jobs,
          noOwner: opts.noOwner,
          terminateSessions: opts.terminateSessions,
          events: opts.events,
          signal: opts.signal,
        }),
      );
    } finally {
      await temp.dispose();
    }
  }
  return {
    snapshot: snapshot.id,
    database,
    files,
    nextSteps: nextSteps({ database: opts.database ?? null, redis: redis ?? null, secrets: secrets ?? null, snapshot: snapshot.id }),
  };
}
