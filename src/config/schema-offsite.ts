import { z } from 'zod';
import { absPath } from './schema-common.js';
import { durationSeconds } from './schema-replicate.js';
import { keepSchema } from './schema-schedule.js';

/** A bucket name as S3 and its peers accept it (3–63 of a-z, 0-9, dot, dash). */
const bucketName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'expected a bucket name: 3-63 lowercase letters, digits, dots and dashes');

/** A key prefix inside the bucket: no leading slash, no `..`, ends with `/` once normalized (offsite/target.ts). */
const prefix = z
  .string()
  .regex(/^[A-Za-z0-9._\-/]*$/, 'expected a prefix of letters, digits, ".", "_", "-" and "/"')
  .refine((p) => !p.startsWith('/') && !p.split('/').includes('..'), 'a prefix must not start with "/" or contain ".."');

/**
 * Object Lock retention set on every object permafrost uploads (the bucket must have Object Lock
 * enabled). governance: a user with s3:BypassGovernanceRetention can still delete; compliance:
 * nobody can, not even the account's root, until the date passes. See docs/offsite.md.
 */
export const offsiteLockSchema = z.strictObject({
  mode: z.enum(['governance', 'compliance']),
  days: z.number().int().min(1).max(36500),
});

/**
 * Where the keys come from: two 0600 files (first line each), or, without this section, the
 * standard AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, the
 * instance role). Never the YAML itself.
 */
export const offsiteCredentialsSchema = z.strictObject({
  accessKeyIdFile: absPath,
  secretAccessKeyFile: absPath,
});

export const offsiteTargetSchema = z.strictObject({
  /** How commands and alerts name this target (`permafrost offsite push --target NAME`). */
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, 'expected a short name of lowercase letters, digits, "-" and "_"'),
  /** https://s3.eu-central-003.backblazeb2.com, http://127.0.0.1:9000 …; absent: AWS S3 itself. */
  endpoint: z.url({ protocol: /^https?$/, error: 'expected an http(s):// URL' }).optional(),
  region: z.string().min(1).default('us-east-1'),
  bucket: bucketName,
  prefix: prefix.default(''),
  /** Path-style addressing (endpoint/bucket/key): MinIO, Garage, Ceph and most self-hosted servers need it. */
  pathStyle: z.boolean().default(false),
  credentials: offsiteCredentialsSchema.optional(),
  lock: offsiteLockSchema.optional(),
  /** Retention on the target (GFS, as vault.keep); without it nothing is ever deleted there. */
  keep: keepSchema.optional(),
  /**
   * The target is stale (status, the page, /metrics, alert offsite.stale) once it has lacked a
   * local snapshot for this long (`2h`, `1d`); absent: the devices' threshold, syncthing.staleAfter (default 2 h).
   */
  staleAfter: durationSeconds.optional(),
});

export const offsiteSchema = z
  .array(offsiteTargetSchema)
  .min(1, 'list at least one target, or leave offsite out')
  .superRefine((targets, ctx) => {
    const seen = new Set<string>();
    for (const [i, t] of targets.entries()) {
      if (seen.has(t.name))
        ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `a second target named ${t.name}; names must differ` });
      seen.add(t.name);
    }
  });

export type OffsiteTarget = z.output<typeof offsiteTargetSchema>;
export type OffsiteLock = z.output<typeof offsiteLockSchema>;
