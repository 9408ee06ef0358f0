import { z } from 'zod';
import { absPath } from './schema-common.js';
import { offsiteCredentialsSchema } from './schema-offsite.js';

const envName = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'expected an environment variable name such as AWS_ACCESS_KEY_ID');

/**
 * Where Mastodon keeps its media when S3_ENABLED=true (`permafrost offsite media` copies it to the
 * offsite targets under `<prefix>media/`). The keys are never in the YAML: two 0600 files
 * (`credentials`), or the names of the variables in Mastodon's own .env.production that hold them
 * (`credentialsFromEnv`, read when a job starts), or neither: the standard AWS chain.
 */
export const mediaBucketSchema = z
  .strictObject({
    /** S3_ENDPOINT; absent: AWS S3 itself. */
    endpoint: z.url({ protocol: /^https?$/, error: 'expected an http(s):// URL' }).optional(),
    /** S3_REGION. */
    region: z.string().min(1).default('us-east-1'),
    /** S3_BUCKET. */
    bucket: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/, 'expected a bucket name: 3-63 lowercase letters, digits, dots and dashes'),
    /** Where the media keys start in the bucket ('' for Mastodon, which writes accounts/, media_attachments/, cache/ … at the top). */
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9._\-/]*$/, 'expected a prefix of letters, digits, ".", "_", "-" and "/"')
      .refine((p) => !p.startsWith('/') && !p.split('/').includes('..'), 'a prefix must not start with "/" or contain ".."')
      .default(''),
    /** Mastodon addresses an S3_ENDPOINT path-style unless S3_OVERRIDE_PATH_STYLE=true. */
    pathStyle: z.boolean().default(false),
    credentials: offsiteCredentialsSchema.optional(),
    credentialsFromEnv: z
      .strictObject({
        /** Mastodon's .env.production. */
        file: absPath,
        accessKeyId: envName.default('AWS_ACCESS_KEY_ID'),
        secretAccessKey: envName.default('AWS_SECRET_ACCESS_KEY'),
      })
      .optional(),
  })
  .refine((m) => !(m.credentials && m.credentialsFromEnv), {
    message: 'give credentials (two key files) or credentialsFromEnv (.env.production), not both',
    path: ['credentialsFromEnv'],
  });

export type MediaBucket = z.output<typeof mediaBucketSchema>;
