import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseEnv } from 'node:util';
import { UserError } from '../errors.js';

/**
 * Mastodon's own defaults where .env.production leaves a variable out: config/database.yml
 * (production) and lib/mastodon/redis_configuration.rb.
 */
export const MASTODON_DEFAULTS = {
  dbHost: 'localhost',
  dbPort: 5432,
  dbName: 'mastodon_production',
  dbUser: 'mastodon',
  redisHost: 'localhost',
  redisPort: 6379,
  redisDb: 0,
} as const;

/** Where init puts the secrets it finds, so that they never enter the YAML. */
export interface SecretPaths {
  databasePasswordFile: string;
  redisPasswordFile: string;
}

/** What `init` derives from a Mastodon directory: config sections, secrets to store, notes for the admin. */
export interface MastodonDerivation {
  database: { name: string; host: string; port: number; user: string; passwordFile?: string };
  redis: { url: string; passwordFile?: string };
  secrets: { file: string };
  /** Absent when media lives in object storage. */
  media?: { dir: string; ignore: string[] };
  /**
   * Mastodon's media bucket (S3_ENABLED=true), for `permafrost offsite media`: where it is, and the
   * names of the .env.production variables holding its keys (read when a job starts), never the keys.
   */
  mediaBucket?: {
    bucket: string;
    endpoint?: string;
    region: string;
    pathStyle: boolean;
    credentialsFromEnv?: { file: string; accessKeyId: string; secretAccessKey: string };
  };
  /** Secret values to write (mode 0600) to the matching passwordFile; never into the YAML. */
  passwords: { database?: string; redis?: string };
  /** One sentence each: things the admin should know about what was (not) derived. */
  notes: string[];
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

function intOr(v: string | undefined, key: string, fallback: number): number {
  const s = nonEmpty(v);
  if (s === undefined) return fallback;
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new UserError(`.env.production: ${key}=${s} is not a port or number; fix it in Mastodon's config.`);
  return n;
}

/** DATABASE_URL, merged over DB_* and Mastodon's defaults the way Rails merges it over database.yml. */
function deriveDatabase(env: Record<string, string | undefined>): { db: MastodonDerivation['database']; password?: string } {
  let host = nonEmpty(env.DB_HOST) ?? MASTODON_DEFAULTS.dbHost;
  let port = intOr(env.DB_PORT, 'DB_PORT', MASTODON_DEFAULTS.dbPort);
  let name = nonEmpty(env.DB_NAME) ?? MASTODON_DEFAULTS.dbName;
  let user = nonEmpty(env.DB_USER) ?? MASTODON_DEFAULTS.dbUser;
  let password = nonEmpty(env.DB_PASS);
  const rawUrl = nonEmpty(env.DATABASE_URL);
  if (rawUrl !== undefined) {
    let url: URL;
    try {
      url = new URL(rawUrl);
    } catch {
      throw new UserError('.env.production: DATABASE_URL is not a valid URL; fix it (postgresql://USER:PASSWORD@HOST:PORT/DATABASE).');
    }
    if (!['postgres:', 'postgresql:'].includes(url.protocol)) {
      throw new UserError(`.env.production: DATABASE_URL must start with postgresql:// (found ${url.protocol}//).`);
    }
    if (url.hostname) host = decodeURIComponent(url.hostname).replace(/^\[(.*)\]$/, '$1');
    const hostParam = url.searchParams.get('host');
    if (hostParam) host = hostParam;
    if (url.port) port = Number(url.port);
    const dbName = decodeURIComponent(url.pathname.replace(/^\//, ''));
    if (dbName) name = dbName;
    if (url.username) user = decodeURIComponent(url.username);
    if (url.password) password = decodeURIComponent(url.password);
  }
  return { db: { name, host, port, user }, password };
}

/** REDIS_URL (alone: Mastodon then ignores REDIS_PASSWORD), else REDIS_HOST/PORT/DB/USER/PASSWORD, as Mastodon's RedisConfiguration builds it. */
function deriveRedis(env: Record<string, string | undefined>): { url: string; password?: string } {
  const rawUrl = nonEmpty(env.REDIS_URL);
  if (rawUrl !== undefined) {
    let url: URL;
    try {
      url = new URL(rawUrl);
    } catch {
      throw new UserError('.env.production: REDIS_URL is not a valid URL; fix it (redis://HOST:PORT/DB or unix:///path/to/redis.sock).');
    }
    if (!['redis:', 'rediss:', 'unix:'].includes(url.protocol)) {
      throw new UserError(`.env.production: REDIS_URL must start with redis://, rediss:// or unix:// (found ${url.protocol}//).`);
    }
    const password = url.password ? decodeURIComponent(url.password) : undefined;
    url.password = '';
    return { url: url.toString(), password };
  }
  const host = nonEmpty(env.REDIS_HOST) ?? MASTODON_DEFAULTS.redisHost;
  const port = intOr(env.REDIS_PORT, 'REDIS_PORT', MASTODON_DEFAULTS.redisPort);
  const db = intOr(env.REDIS_DB, 'REDIS_DB', MASTODON_DEFAULTS.redisDb);
  const url = new URL('redis://localhost');
  url.hostname = host.includes(':') ? `[${host}]` : host;
  url.port = String(port);
  url.pathname = `/${db}`;
  const user = nonEmpty(env.REDIS_USER);
  if (user !== undefined) url.username = encodeURIComponent(user);
  return { url: url.toString(), password: nonEmpty(env.REDIS_PASSWORD) };
}

/** S3 bucket names as Mastodon's provider accepts them (mediaBucket.bucket's rule). */
const BUCKET_RE = /^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/;

/**
 * Mastodon's S3 settings (config/initializers/paperclip.rb) as a mediaBucket section: S3_BUCKET,
 * S3_ENDPOINT (absent: AWS in S3_REGION), path-style with an endpoint unless S3_OVERRIDE_PATH_STYLE=true,
 * and the keys by the names of their variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
 */
function deriveMediaBucket(env: Record<string, string | undefined>, dir: string, notes: string[]): MastodonDerivation['mediaBucket'] {
  const bucket = nonEmpty(env.S3_BUCKET);
  if (bucket === undefined || !BUCKET_RE.test(bucket)) {
    notes.push(
      `Media lives in object storage (S3_ENABLED=true), but S3_BUCKET ${bucket === undefined ? 'is not set' : `(${bucket}) is not a bucket name`}; add a mediaBucket section by hand to copy it offsite (docs/offsite.md, Media).`,
    );
    return undefined;
  }
  const endpoint = nonEmpty(env.S3_ENDPOINT);
  const hasKeys = nonEmpty(env.AWS_ACCESS_KEY_ID) !== undefined && nonEmpty(env.AWS_SECRET_ACCESS_KEY) !== undefined;
  notes.push(
    `Media lives in the bucket ${bucket} (S3_ENABLED=true): mediaBucket names it; add an offsite target and run \`permafrost offsite media\` to copy it (docs/offsite.md, Media).` +
      (hasKeys
        ? ' Its keys are read from .env.production when a job starts, never copied into this file.'
        : ' .env.production has no AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY: the standard AWS chain (environment, profile, instance role) is used.'),
  );
  return {
    bucket,
    ...(endpoint === undefined ? {} : { endpoint }),
    region: nonEmpty(env.S3_REGION) ?? 'us-east-1',
    pathStyle: endpoint !== undefined && nonEmpty(env.S3_OVERRIDE_PATH_STYLE) !== 'true',
    ...(hasKeys
      ? {
          credentialsFromEnv: {
            file: path.join(dir, '.env.production'),
            accessKeyId: 'AWS_ACCESS_KEY_ID',
            secretAccessKey: 'AWS_SECRET_ACCESS_KEY',
          },
        }
      : {}),
  };
}

/**
 * Derives permafrost's config sections from the variables of Mastodon's .env.production in `dir`.
 * Pure: reads nothing, writes nothing; the caller stores `passwords` in the given files.
 */
export function deriveFromMastodonEnv(env: Record<string, string | undefined>, dir: string, paths: SecretPaths): MastodonDerivation {
  const notes: string[] = [];
  const { db, password: dbPassword } = deriveDatabase(env);
  const redis = deriveRedis(env);
  const database: MastodonDerivation['database'] = { ...db };
  if (dbPassword !== undefined) database.passwordFile = paths.databasePasswordFile;
  const redisSection: MastodonDerivation['redis'] = { url: redis.url };
  if (redis.password !== undefined) redisSection.passwordFile = paths.redisPasswordFile;

  const sidekiqRedis = nonEmpty(env.SIDEKIQ_REDIS_URL);
  if (sidekiqRedis !== undefined && sidekiqRedis !== nonEmpty(env.REDIS_URL)) {
    notes.push(
      'SIDEKIQ_REDIS_URL points at a separate Redis for the job queues; only the main Redis (REDIS_URL) is captured, so add a second backup for it if its queues matter to you.',
    );
  }

  let media: MastodonDerivation['media'];
  let mediaBucket: MastodonDerivation['mediaBucket'];
  const objectStorage = (['S3_ENABLED', 'SWIFT_ENABLED', 'AZURE_ENABLED'] as const).find((k) => nonEmpty(env[k]) === 'true');
  if (objectStorage === 'S3_ENABLED') {
    mediaBucket = deriveMediaBucket(env, dir, notes);
  } else if (objectStorage !== undefined) {
    notes.push(
      `Media lives in object storage (${objectStorage}=true), so no local media folder is replicated; back up the bucket with your storage provider (versioning or snapshots).`,
    );
  } else {
    const root = nonEmpty(env.PAPERCLIP_ROOT_PATH)?.replace(/^:rails_root/, dir) ?? path.join(dir, 'public', 'system');
    media = { dir: path.resolve(dir, root), ignore: ['cache/**'] };
  }
  return {
    database,
    redis: redisSection,
    secrets: { file: path.join(dir, '.env.production') },
    media,
    ...(mediaBucket ? { mediaBucket } : {}),
    passwords: { database: dbPassword, redis: redis.password },
    notes,
  };
}

/**
 * How permafrost will reach the database, judged from what init derived: with a password (DB_PASS
 * or DATABASE_URL's), over a unix socket without one (PostgreSQL's `local` lines: peer
 * authentication on Debian and in Mastodon's guide, where only the OS user of the role's name
 * connects as that role), or over TCP without one (~/.pgpass, or a trust line).
 */
export type DatabaseAccess =
  | { method: 'password' }
  | { method: 'peer'; socket: string; role: string }
  | { method: 'passwordless-tcp'; host: string };

export function databaseAccess(database: MastodonDerivation['database']): DatabaseAccess {
  if (database.passwordFile !== undefined) return { method: 'password' };
  if (database.host.startsWith('/')) return { method: 'peer', socket: database.host, role: database.user };
  return { method: 'passwordless-tcp', host: database.host };
}

/** Reads and parses DIR/.env.production (the dotenv syntax Mastodon uses). */
export function readMastodonEnv(dir: string): Record<string, string> {
  const file = path.join(dir, '.env.production');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UserError(
      code === 'ENOENT'
        ? `${file} does not exist: pass --mastodon the folder of your Mastodon install (the one holding .env.production, e.g. /home/mastodon/live).`
        : `Cannot read ${file} (${code ?? 'error'}): run init as a user that can read it (e.g. root or mastodon).`,
      { cause: err },
    );
  }
  return parseEnv(text) as Record<string, string>;
}
