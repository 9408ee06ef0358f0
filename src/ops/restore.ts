/**
 * `permafrost restore`: the database, the Redis RDB, the secrets file and the media folder of one
 * snapshot. The snapshot is looked up once and the passphrase read once; every destination and
 * the target are checked before anything is decrypted, files are decrypted and verified beside
 * their destinations before the database is touched, and put in place only after it was swapped
 * in, so a failed run leaves nothing behind and can simply be run again.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, lstatSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { cp, mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { databaseSchema, type Config } from '../config/schema.js';
import type { RunContext } from '../run-context.js';
import { IntegrityError, PermafrostError, UserError } from '../errors.js';
import { fsyncDir } from '../vault/fs-durable.js';
import type { DecryptSecret, SecretFlags } from '../crypto/keys-identity.js';
import type { JobSecrets } from '../config/secret-values.js';
import type { PgServer } from '../tools/postgres.js';
import { sweepAndReport } from '../recover/sweep.js';
import { decryptSecretFor, readJobSecrets } from './secrets.js';
import { requireSignedManifest, trustedSigner, unpinnedRefusal, type SignerFlags, type SignerKey } from '../crypto/signature.js';
import { findSnapshot, type SnapshotEntry } from '../vault/store.js';
import type { Manifest, ManifestFile } from '../vault/manifest.js';
import { decryptVerifiedPart, partFile, privateTemp, vaultTempBase, type PrivateTemp } from '../recover/decrypt.js';
import { readChain } from '../recover/chain.js';
import {
  assertTargetNames,
  checkTarget,
  inspectTarget,
  restoreDatabase,
  type DatabaseContent,
  type DatabaseRestoreResult,
  type TargetState,
} from '../recover/restore-database.js';

export interface RestoreOptions extends SecretFlags, SignerFlags {
  snapshot?: string;
  /** Target database; default: the manifest's when nothing else is asked for, or with `all`. */
  database?: string;
  /** Where to write the decrypted Redis RDB. */
  redis?: string;
  /** Where to write the decrypted .env.production. */
  secrets?: string;
  /** Where to put Mastodon's media folder (public/system), copied from `mediaFrom`. */
  media?: string;
  /** The media copy to restore from (e.g. a device's Syncthing folder); default: the config's media.dir. */
  mediaFrom?: string;
  /** Lays everything out under this folder: dump.rdb, env.production, system/ (and the database). */
  all?: string;
  /** Replace a non-empty database and existing files or folders (atomically). */
  force?: boolean;
  /** Drop the previous database after the swap instead of keeping it under its dated name. */
  dropPrevious?: boolean;
  /** End other sessions on the target database right before the swap (else they are refused). */
  terminateSessions?: boolean;
  jobs?: number;
  noOwner?: boolean;
  /** With noOwner: the role given every object (pg_restore --role). */
  role?: string;
}

export interface PartOutput {
  part: 'redis' | 'secrets' | 'media';
  path: string;
  bytes: number;
  /** Whether an identical file was already there (a retry), so nothing was written. */
  unchanged: boolean;
  /** Whether an existing, different file or folder was replaced (--force). */
  replaced: boolean;
}

export interface RestoreResult {
  snapshot: string;
  database: DatabaseRestoreResult | null;
  files: PartOutput[];
  /** What the admin still does by hand to bring the whole server back. */
  nextSteps: string[];
  /** Said on stderr: a restore whose authenticity nothing checked. */
  warnings: string[];
}

/** What --all lays out under its folder. */
export const ALL_LAYOUT = { redis: 'dump.rdb', secrets: 'env.production', media: 'system' } as const;

/** Refuses a destination whose folder is missing, or that exists without --force (a retry's identical file is checked later). */
function checkDestination(dest: string, flag: string): void {
  if (!existsSync(path.dirname(dest)))
    throw new UserError(`${flag}: folder ${path.dirname(dest)} does not exist; create it or choose another path.`);
  if (existsSync(dest) && statSync(dest).isDirectory()) throw new UserError(`${flag}: ${dest} is a folder; give the path of a file.`);
}

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file), h);
  return h.digest('hex');
}

/** A part decrypted and verified beside its destination, waiting to be put in place. */
interface StagedFile {
  part: 'redis' | 'secrets';
  dest: string;
  plain: string;
  temp: PrivateTemp;
  unchanged: boolean;
}

/**
 * Decrypts one part into a private temp folder next to `dest` and verifies it against the
 * manifest; an existing destination must be identical (a retry) or --force must be given.
 */
async function stageFile(
  snapshot: SnapshotEntry,
  secret: DecryptSecret,
  part: StagedFile['part'],
  dest: string,
  opts: { force?: boolean },
  ctx: RunContext,
): Promise<StagedFile> {
  const flag = `--${part}`;
  const folder = path.dirname(dest);
  const temp = await privateTemp({ dir: folder, name: `the folder of ${flag} (${folder})`, setting: flag });
  try {
    const plain = await decryptVerifiedPart({ snapshot, secret, temp }, partFile(snapshot, part), ctx);
    const unchanged = existsSync(dest) && (await sha256(dest)) === (await sha256(plain));
    if (existsSync(dest) && !unchanged && !opts.force) {
      throw new UserError(
        `${flag}: ${dest} already exists with other contents; choose a new path, move it away, or pass --force to replace it.`,
      );
    }
    return { part, dest, plain, temp, unchanged };
  } catch (err) {
    await temp.dispose();
    throw err;
  }
}

/** Puts a staged file in place with one rename (mode 0600 from the decrypt), replacing the old one atomically. */
async function placeFile(s: StagedFile): Promise<PartOutput> {
  const replaced = existsSync(s.dest) && !s.unchanged;
  if (!s.unchanged) {
    await rename(s.plain, s.dest);
    await fsyncDir(path.dirname(s.dest));
  }
  return { part: s.part, path: s.dest, bytes: (await stat(s.dest)).size, unchanged: s.unchanged, replaced };
}

/** Syncthing's own files in a folder it shares, and the remote media cache Mastodon fetches again. */
const NOT_MEDIA = new Set(['.stfolder', '.stversions', '.stignore']);

/** Leftovers of a media copy a killed run was making beside the destination: never anyone's data. */
const MEDIA_STAGING = '.permafrost-incoming-';

/**
 * Copies the media folder (without cache/ and Syncthing's files) into a staging folder beside
 * `dest`: directories and regular files only. Mastodon's public/system holds nothing else, and a
 * symlink in a copy (to /etc/shadow, to /root) would be served to the world by the web server.
 */
async function stageMedia(from: string, dest: string): Promise<string> {
  const parent = path.dirname(dest);
  const base = path.basename(dest);
  for (const name of readdirSync(parent)) {
    if (name.startsWith(`${base}${MEDIA_STAGING}`)) await rm(path.join(parent, name), { recursive: true, force: true });
  }
  const staging = path.join(parent, `${base}${MEDIA_STAGING}${process.pid}`);
  const top = realpathSync(path.resolve(from));
  try {
    await cp(top, staging, {
      recursive: true,
      preserveTimestamps: true,
      filter: (src) => {
        const rel = path.relative(top, src);
        if (rel !== '') {
          const st = lstatSync(src);
          if (!st.isDirectory() && !st.isFile()) return false;
        }
        const first = rel.split(path.sep)[0] ?? '';
        return rel === '' || !(first === 'cache' || NOT_MEDIA.has(first) || path.basename(src).startsWith('.syncthing.'));
      },
    });
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw new PermafrostError(
      'io',
      `Could not copy the media from ${from} to ${parent}: ${(err as Error).message}; free space there or fix the permissions, and run restore again.`,
      {
        cause: err,
      },
    );
  }
  return staging;
}

/** Puts the staged media folder in place: a rename, after moving an existing folder away (--force) and removing it. */
async function placeMedia(staging: string, dest: string): Promise<PartOutput> {
  const exists = existsSync(dest);
  const replaced = exists && readdirSync(dest).length > 0;
  if (exists) {
    const old = `${dest}.permafrost-previous-${process.pid}`;
    await rename(dest, old);
    await rename(staging, dest);
    await rm(old, { recursive: true, force: true });
  } else await rename(staging, dest);
  await fsyncDir(path.dirname(dest));
  return { part: 'media', path: dest, bytes: await folderBytes(dest), unchanged: false, replaced };
}

async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += (await stat(path.join(e.parentPath, e.name))).size;
  }
  return total;
}

/** The manual steps around a whole-server restore: what to stop first, where each piece goes, what to run after. */
export function nextSteps(r: {
  database: string | null;
  redis: string | null;
  secrets: string | null;
  media?: string | null;
  snapshot: string;
}): string[] {
  const steps = ['Stop Mastodon first: systemctl stop mastodon-web mastodon-sidekiq mastodon-streaming'];
  if (r.database) {
    steps.push(
      `The database is restored into "${r.database}"; if that is not the one Mastodon uses, set DB_NAME in .env.production to it (or restore again with --database mastodon_production).`,
    );
  } else {
    steps.push(`Restore the database: permafrost restore ${r.snapshot} --database mastodon_production`);
  }
  if (r.secrets) {
    steps.push(
      `Put the secrets back: install -m 600 -o mastodon -g mastodon ${r.secrets} /home/mastodon/live/.env.production (check DB_* and REDIS_* still fit this machine).`,
    );
  } else {
    steps.push(
      'No secrets part was restored: bring .env.production back from your own copy (SECRET_KEY_BASE, OTP_SECRET, the VAPID and Active Record encryption keys: without them sessions, 2FA and push break).',
    );
  }
  if (r.redis) {
    steps.push(
      `Put Redis back: systemctl stop redis-server; install -m 600 -o redis -g redis ${r.redis} /var/lib/redis/dump.rdb (Redis' "dir"/"dbfilename"; with appendonly yes, start once with --appendonly no and then turn AOF back on); systemctl start redis-server`,
    );
  } else {
    steps.push('Without the Redis part, Sidekiq queues are lost; home feeds are rebuilt by: RAILS_ENV=production bin/tootctl feeds build');
  }
  steps.push(
    r.media
      ? `Media: move ${r.media} to /home/mastodon/live/public/system and chown -R mastodon:mastodon it (skip it with S3 or other object storage).`
      : "Media: copy public/system back from a backup device's Syncthing folder, without cache/ (permafrost restore --media DIR --media-from FOLDER; skip it with S3 or other object storage).",
  );
  steps.push(
    'Remote media cache (public/system/cache) is not backed up: RAILS_ENV=production bin/tootctl cache clear, then let Mastodon fetch it again (bin/tootctl accounts refresh --all; bin/tootctl media refresh --days 7 for recent posts).',
  );
  steps.push('Rebuild the search index if you use Elasticsearch/OpenSearch: RAILS_ENV=production bin/tootctl search deploy');
  steps.push('Start Mastodon: systemctl start mastodon-web mastodon-sidekiq mastodon-streaming');
  return steps;
}

/**
 * The server to restore into: the config's database section, or, on a backup device or with no
 * config (which have none), the PostgreSQL that libpq's environment names (PGHOST, PGPORT, PGUSER, PGPASSFILE, …).
 */
function targetServer(config: Config, database: string, secrets: JobSecrets): PgServer {
  return config.role === 'source'
    ? { ...config.database, name: database, password: secrets.database }
    : { ...databaseSchema.parse({ name: database }), password: undefined };
}

/** --all DIR expanded into the single destinations (each still overridable by its own flag). */
async function destinations(
  opts: RestoreOptions,
  mediaFrom: string | undefined,
): Promise<Pick<RestoreOptions, 'redis' | 'secrets' | 'media'>> {
  if (!opts.all) return opts;
  const dir = path.resolve(opts.all);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return {
    redis: opts.redis ?? path.join(dir, ALL_LAYOUT.redis),
    secrets: opts.secrets ?? path.join(dir, ALL_LAYOUT.secrets),
    media: opts.media ?? (mediaFrom ? path.join(dir, ALL_LAYOUT.media) : undefined),
  };
}

/**
 * What the database comes from: a full snapshot's database part, or a delta-mode snapshot's chain,
 * resolved and every file of it checked (size, SHA-256, signatures) before anything is decrypted.
 */
async function databaseContent(
  vaultDir: string,
  snapshot: SnapshotEntry,
  signer: SignerKey | null,
  ctx: RunContext,
): Promise<DatabaseContent> {
  if (!snapshot.manifest?.chain) return { kind: 'full', file: partFile(snapshot, 'database') };
  const read = await readChain(vaultDir, snapshot, signer, ctx);
  if ('problem' in read) {
    throw new IntegrityError(
      `Snapshot ${snapshot.id} cannot be restored: ${read.problem}; restore another snapshot (permafrost list shows them), and run permafrost check.`,
    );
  }
  return { kind: 'chain', chain: read.chain };
}

/**
 * Restores what was asked for from one snapshot: every destination and the target database are
 * checked first, then the requested files are decrypted and verified beside their destinations
 * and the media copied beside its own, then the database is restored and swapped in, and only then
 * is each file and folder put in place with a rename. Temp folders go on every path. A stop
 * request (SIGINT/SIGTERM) stops the programs, removes the temp folders and fails saying how far it got.
 * What dead runs left (temp folders, scratch databases) is swept first.
 */
export async function runRestore(config: Config, ctx: RunContext, opts: RestoreOptions): Promise<RestoreResult> {
  // Every secret the run needs, read once; the steps get the values.
  const secrets = readJobSecrets(config);
  await sweepAndReport(config, ctx.log, secrets);
  const dest = await checkDestinations(config, opts);
  const opened = await openSnapshot(config, opts, secrets);
  const plan = await checkParts(config, opts, opened, chooseParts(opts, opened, dest), ctx, secrets);
  return applyRestore(config, plan, opts, ctx);
}

/** The file destinations as asked for (--all expanded), resolved; media from the copy named by --media-from or the config. */
interface FileDestinations {
  redis: string | undefined;
  secrets: string | undefined;
  media: string | undefined;
  mediaFrom: string | undefined;
}

/** The flags that go together, and every file destination checked before the snapshot is read. */
async function checkDestinations(config: Config, opts: RestoreOptions): Promise<FileDestinations> {
  if (opts.role && !opts.noOwner) throw new UserError('--role NAME goes with --no-owner: pass both to give every object to that role.');
  if (opts.dropPrevious && !opts.force)
    throw new UserError('--drop-previous goes with --force: pass both to replace and drop the previous database.');
  if (opts.mediaFrom && !existsSync(opts.mediaFrom))
    throw new UserError(
      `--media-from: folder ${opts.mediaFrom} does not exist; point it at the media copy (e.g. the device's Syncthing folder).`,
    );
  const mediaFrom = opts.mediaFrom ?? config.media?.dir;
  const dest = await destinations(opts, mediaFrom);
  if (dest.media && !mediaFrom)
    throw new UserError("--media DIR needs a copy to restore from: pass --media-from FOLDER (e.g. the device's Syncthing media folder).");
  const redis = dest.redis ? path.resolve(dest.redis) : undefined;
  const secrets = dest.secrets ? path.resolve(dest.secrets) : undefined;
  const media = dest.media ? path.resolve(dest.media) : undefined;
  if (redis) checkDestination(redis, '--redis');
  if (secrets) checkDestination(secrets, '--secrets');
  if (redis && redis === secrets) throw new UserError('--redis and --secrets name the same file; give each its own path.');
  if (media) {
    if (!existsSync(path.dirname(media)))
      throw new UserError(`--media: folder ${path.dirname(media)} does not exist; create it or choose another path.`);
    if (existsSync(media) && readdirSync(media).length > 0 && !opts.force)
      throw new UserError(`--media: ${media} is not empty; choose a new folder, move it away, or pass --force to replace it.`);
  }
  return { redis, secrets, media, mediaFrom };
}

/** The snapshot found, its signature checked, and the secret that decrypts it. */
interface OpenedSnapshot {
  secret: DecryptSecret;
  snapshot: SnapshotEntry;
  manifest: Manifest;
  signer: SignerKey | null;
  /** Said on stderr: a restore whose authenticity nothing checked. */
  warning: string | null;
}

async function openSnapshot(config: Config, opts: RestoreOptions, secrets: JobSecrets): Promise<OpenedSnapshot> {
  const secret = await decryptSecretFor(config, opts, 'restore', secrets.vaultPassphrase);
  const snapshot = await findSnapshot(config.vault.dir, opts.snapshot);
  const { signer, warning } = await trustedSigner(config.vault, snapshot, opts, 'restore');
  await requireSignedManifest(snapshot, signer);
  const manifest = snapshot.manifest;
  if (!manifest) throw new IntegrityError(`Snapshot ${snapshot.id} failed its integrity check: ${snapshot.problem ?? 'no manifest'}.`);
  return { secret, snapshot, manifest, signer, warning };
}

/** The parts this run restores; pure. */
type ChosenParts = FileDestinations & { database: string | undefined };

/**
 * --all lays out what the snapshot holds: a part it lacks (not configured, or failed and optional)
 * is left out, and the remaining steps say so; a part asked for by its own flag must be there.
 * The manifest's database when nothing else was asked for (or with --all): restore from a bare vault copy.
 */
function chooseParts(opts: RestoreOptions, { manifest }: OpenedSnapshot, dest: FileDestinations): ChosenParts {
  const holds = (part: 'redis' | 'secrets'): boolean => manifest.files.some((f) => f.part === part);
  const redis = opts.all && !opts.redis && !holds('redis') ? undefined : dest.redis;
  const secrets = opts.all && !opts.secrets && !holds('secrets') ? undefined : dest.secrets;
  const media = dest.media;
  const database = opts.database ?? (opts.all || (!redis && !secrets && !media) ? manifest.database.name : undefined);
  return { redis, secrets, media, mediaFrom: dest.mediaFrom, database };
}

/** Everything the run will do, checked before anything is written. */
interface RestorePlan extends OpenedSnapshot, FileDestinations {
  database: { name: string; server: PgServer; target: TargetState; content: DatabaseContent } | null;
  rolesFile: ManifestFile | null;
  steps: string[];
}

/** Every requested part must exist before any is written, so a missing one fails without side effects; then the target and the chain. */
async function checkParts(
  config: Config,
  opts: RestoreOptions,
  opened: OpenedSnapshot,
  chosen: ChosenParts,
  ctx: RunContext,
  jobSecrets: JobSecrets,
): Promise<RestorePlan> {
  const { snapshot, manifest, signer } = opened;
  const { redis, secrets, media, database } = chosen;
  if (database) assertTargetNames(database, opts.database ? '--database' : `the database name in snapshot ${snapshot.id}`);
  if (database && !manifest.chain) partFile(snapshot, 'database');
  const rolesFile = manifest.files.find((f) => f.part === 'roles') ? partFile(snapshot, 'roles') : null;
  if (redis) partFile(snapshot, 'redis');
  if (secrets) partFile(snapshot, 'secrets');
  let planned: RestorePlan['database'] = null;
  if (database) {
    const server = targetServer(config, database, jobSecrets);
    const target = await inspectTarget(server, database);
    checkTarget(target, database, opts);
    // Last of the checks, as it reads every file of a chain: the cheap refusals come first.
    const content = await databaseContent(config.vault.dir, snapshot, signer, ctx);
    // A link that names its signer belongs to a signed vault, even when every signature was removed.
    const signedLink =
      content.kind === 'chain' && !signer && !opts.insecureNoSignatureCheck
        ? content.chain.links.find((l) => l.manifest?.signedBy)
        : undefined;
    if (signedLink)
      throw unpinnedRefusal('restore', `snapshot ${signedLink.id}'s manifest says it was signed by ${signedLink.manifest!.signedBy!}`);
    planned = { name: database, server, target, content };
  }
  const steps = nextSteps({
    database: database ?? null,
    redis: redis ?? null,
    secrets: secrets ?? null,
    media: media ?? null,
    snapshot: snapshot.id,
  });
  return { ...opened, redis, secrets, media, mediaFrom: chosen.mediaFrom, database: planned, rolesFile, steps };
}

/** A step stopped by the signal fails with one sentence: nothing is in place before the end, so nothing was touched. */
async function stoppable<T>(step: Promise<T>, snapshot: string, signal: AbortSignal): Promise<T> {
  try {
    return await step;
  } catch (err) {
    if (!signal.aborted) throw err;
    throw new PermafrostError(
      'stopped',
      `Restore of snapshot ${snapshot} was stopped before it finished; the target database was not touched and no file was half written.`,
      { cause: err },
    );
  }
}

/** Files staged beside their destinations, the database restored and swapped in, then each file and folder renamed into place. */
async function applyRestore(config: Config, plan: RestorePlan, opts: RestoreOptions, ctx: RunContext): Promise<RestoreResult> {
  const { snapshot, secret, redis, secrets, media, mediaFrom } = plan;
  const staged: StagedFile[] = [];
  let mediaStaging: string | undefined;
  try {
    if (redis) {
      ctx.events.phase?.('redis');
      staged.push(await stoppable(stageFile(snapshot, secret, 'redis', redis, opts, ctx), snapshot.id, ctx.signal));
    }
    if (secrets) {
      ctx.events.phase?.('secrets');
      staged.push(await stoppable(stageFile(snapshot, secret, 'secrets', secrets, opts, ctx), snapshot.id, ctx.signal));
    }
    if (media && mediaFrom) {
      ctx.events.phase?.('media');
      mediaStaging = await stoppable(stageMedia(mediaFrom, media), snapshot.id, ctx.signal);
    }
    const db = plan.database ? await restoreDatabaseOf(config, plan, plan.database, opts, ctx) : null;
    const files: PartOutput[] = [];
    for (const s of staged) files.push(await placeFile(s));
    if (media && mediaStaging) {
      files.push(await placeMedia(mediaStaging, media));
      mediaStaging = undefined;
    }
    return { snapshot: snapshot.id, database: db, files, nextSteps: plan.steps, warnings: plan.warning ? [plan.warning] : [] };
  } finally {
    for (const s of staged) await s.temp.dispose();
    if (mediaStaging) await rm(mediaStaging, { recursive: true, force: true });
  }
}

/** The database step (recover/restore-database.ts) with its own temp folder in the vault's temp base. */
async function restoreDatabaseOf(
  config: Config,
  plan: RestorePlan,
  database: NonNullable<RestorePlan['database']>,
  opts: RestoreOptions,
  ctx: RunContext,
): Promise<DatabaseRestoreResult> {
  const temp = await privateTemp(vaultTempBase(config.vault.tempDir));
  try {
    return await stoppable(
      restoreDatabase(
        { snapshot: plan.snapshot, secret: plan.secret, temp },
        database.content,
        {
          server: database.server,
          database: database.name,
          target: database.target,
          manifest: plan.manifest,
          rolesFile: plan.rolesFile,
          jobs: opts.jobs,
          noOwner: opts.noOwner,
          role: opts.role,
          terminateSessions: opts.terminateSessions,
          dropPrevious: opts.dropPrevious,
        },
        ctx,
      ),
      plan.snapshot.id,
      ctx.signal,
    );
  } finally {
    await temp.dispose();
  }
}
