import { z } from 'zod';
import { absPath } from './schema-common.js';

/** redis://, rediss:// (TLS) or unix:///path/to/redis.sock, as Mastodon's REDIS_URL accepts. */
const redisUrl = z
  .string()
  .min(1, 'expected a redis:// or unix:// URL')
  .superRefine((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'expected a URL like redis://127.0.0.1:6379/0 or unix:///run/redis/redis.sock' });
      return;
    }
    if (!['redis:', 'rediss:', 'unix:'].includes(url.protocol)) {
      ctx.addIssue({ code: 'custom', message: `expected redis://, rediss:// or unix://, not ${url.protocol}//` });
    }
    // A password in the URL would end up in the YAML and in argv; it belongs in a 0600 file.
    if (url.password) {
      ctx.addIssue({ code: 'custom', message: 'remove the password from the URL and put it in redis.passwordFile (a file of mode 0600)' });
    }
  });

/** The Redis RDB part of each snapshot (`redis.rdb.gpg`), fetched over the connection with `redis-cli --rdb`. */
export const redisSchema = z.union([
  z.literal(false),
  z.strictObject({
    url: redisUrl,
    /** File whose first line is the Redis password; handed to redis-cli as REDISCLI_AUTH, never argv. */
    passwordFile: absPath.optional(),
    /** When true a failed capture is a warning and the snapshot goes on without this part. */
    optional: z.boolean().default(false),
    /** The redis-cli executable (default: redis-cli on PATH). */
    cli: absPath.optional(),
  }),
]);

/** The secrets part of each snapshot (`env.production.gpg`): Mastodon's .env.production as it is. */
export const secretsSchema = z.union([
  z.literal(false),
  z.strictObject({
    file: absPath,
    /** When true a failed capture is a warning and the snapshot goes on without this part. */
    optional: z.boolean().default(false),
  }),
]);

export type RedisConfig = Exclude<z.output<typeof redisSchema>, false>;
export type SecretsConfig = Exclude<z.output<typeof secretsSchema>, false>;
