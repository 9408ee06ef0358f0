import { z } from 'zod';
import { absPath } from './schema-common.js';
import { notifySchema, verifySchema, webSchema } from './schema-watch.js';
import { keepSchema, scheduleSchema } from './schema-schedule.js';
import { redisSchema, secretsSchema } from './schema-parts.js';
import { mediaSchema, syncthingSchema } from './schema-replicate.js';

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
});

export const vaultSchema = z.strictObject({
  dir: absPath,
  passphraseFile: absPath,
  /** Where restore/verify decrypt snapshots (a private 0700 folder is made inside). */
  tempDir: absPath.optional(),
  /** Retention (GFS); without it nothing is ever pruned. */
  keep: keepSchema.optional(),
});

export const configSchema = z.strictObject({
  /** Required except on a Syncthing receiver (syncthing.role: receiver), which only holds replicas. */
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
}).superRefine((c, ctx) => {
  if (c.database === undefined && c.syncthing?.role !== 'receiver') {
    ctx.addIssue({ code: 'custom', path: ['database'], message: 'required (only a Syncthing receiver, syncthing.role: receiver, may leave it out)' });
  }
});

export type ConfigInput = z.input<typeof configSchema>;
/** `database` is only absent on a Syncthing receiver; reading it there throws (see config/receiver.ts). */
export type Config = Omit<z.output<typeof configSchema>, 'database'> & { database: DatabaseConfig; configPath: string };
export type DatabaseConfig = z.output<typeof databaseSchema>;
