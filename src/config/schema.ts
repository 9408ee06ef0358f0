import { z } from 'zod';
import { absPath } from './schema-common.js';
import { notifySchema, verifySchema, webSchema } from './schema-watch.js';
import { keepSchema, scheduleSchema } from './schema-schedule.js';
import { redisSchema, secretsSchema } from './schema-parts.js';
import { durationSeconds, mediaSchema, syncthingSchema } from './schema-replicate.js';
import { offsiteSchema } from './schema-offsite.js';
import { mediaBucketSchema } from './schema-media-bucket.js';

export const databaseSchema = z.strictObject({
  name: z.string().min(1, 'expected a database name'),
  /** A directory (starting with '/') means a unix socket folder, as in libpq. */
  host: z.string().min(1).optional(),
  port: z.number().int().min(1).max(65535).optional(),
  user: z.string().min(1).optional(),
  /** File whose first line is the password; handed to libpq tools via the environment, never argv. */
  passwordFile: absPath.optional(),
  /** Folder holding pg_dump, pg_restore and psql of the right major version (default: PATH). */
  binDir: absPath.optional(),
  /**
   * A number: zlib level of permafrost's OpenPGP compression (pg_dump then writes an uncompressed
   * archive; 0 = none). A string (lz4, zstd:3, gzip:6; PostgreSQL 16+): pg_dump's own. See README, Performance.
   */
  compression: z.union([z.number().int().min(0).max(9), z.string().regex(/^(none|gzip|lz4|zstd)(:\d+)?$/)]).default(1),
  /**
   * Row-level delta snapshots (src/capture/delta.ts): a base at least every `fullEvery`, and in
   * between snapshots that hold only the rows that changed since the previous one. See README, Delta snapshots.
   */
  delta: z.strictObject({ fullEvery: durationSeconds.default(86400) }).optional(),
});

export const vaultSchema = z.strictObject({
  dir: absPath,
  /**
   * The vault passphrase (a 0600 file). The server needs it or `recipients` (or both) to encrypt;
   * a backup device needs none (restore --passphrase-file gives it then). See normalize.ts.
   */
  passphraseFile: absPath.optional(),
  /**
   * OpenPGP public keys (armored or binary files) every part is encrypted to as well: the server
   * then needs no secret to back up, and any one recipient's secret key decrypts (`gpg -d`,
   * restore --identity). See README, Keys.
   */
  recipients: z.array(absPath).min(1, 'list at least one public key file, or leave recipients out').optional(),
  /**
   * The server's OpenPGP secret signing key (unprotected, mode 0600): every manifest gets a
   * detached signature manifest.json.sig made with it. See README, Keys.
   */
  signingKeyFile: absPath.optional(),
  /** The public key manifests must be signed by: check, verify and restore refuse (exit 3) any other. */
  signerKeyFile: absPath.optional(),
  /** Where restore/verify decrypt snapshots (a private 0700 folder is made inside). */
  tempDir: absPath.optional(),
  /** Retention (GFS); without it nothing is ever pruned. */
  keep: keepSchema.optional(),
});

export const configSchema = z.strictObject({
  /** Required on a source; a Syncthing receiver (syncthing.role: receiver) only holds replicas and has none. See normalize.ts. */
  database: databaseSchema.optional(),
  vault: vaultSchema,
  schedule: scheduleSchema.prefault({}),
  verify: verifySchema.optional(),
  notify: notifySchema.optional(),
  web: webSchema.optional(),
  /** Redis RDB part of each snapshot; absent or false: not captured. */
  redis: redisSchema.optional(),
  /** .env.production part of each snapshot; absent or false: not captured. */
  secrets: secretsSchema.optional(),
  /** Mastodon's public/system, replicated live by Syncthing. */
  media: mediaSchema.optional(),
  /** Replication through Syncthing (see `permafrost sync apply`). */
  syncthing: syncthingSchema.optional(),
  /** Copies of every snapshot in S3-compatible buckets (see `permafrost offsite`, docs/offsite.md). */
  offsite: offsiteSchema.optional(),
  /** Mastodon's media bucket (S3_ENABLED=true): `permafrost offsite media` copies it to the offsite targets. */
  mediaBucket: mediaBucketSchema.optional(),
});

export type ConfigInput = z.input<typeof configSchema>;
/** The config's shape as the schema accepts it, before normalize.ts decides its role. */
export type RawConfig = z.output<typeof configSchema>;
export type DatabaseConfig = z.output<typeof databaseSchema>;

type CommonConfig = Omit<RawConfig, 'database'> & { configPath: string };
export type VaultConfig = RawConfig['vault'];

/** The server's config: it makes the backups, so it has a database and a passphrase or recipients (or both) to encrypt to. */
export type SourceConfig = CommonConfig & {
  role: 'source';
  database: DatabaseConfig;
};

/** A backup device's (syncthing.role: receiver, or no syncthing section and no database): it holds replicas, has no database and needs no passphrase. */
export type ReceiverConfig = CommonConfig & { role: 'receiver' };

/** A loaded config; a job that needs the database asks for a SourceConfig (normalize.ts: requireSource). */
export type Config = SourceConfig | ReceiverConfig;
