import { z } from 'zod';
import { isLoopback } from '../net/loopback.js';
import { absPath } from './schema-common.js';

const httpUrl = z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' });

/** A URL that requests carry a secret to (the bot token): https://, or plain http:// only to this machine. */
const secretBearingUrl = httpUrl.refine((url) => {
  // zod 4 runs refinements after a failed format check too: a non-URL is z.url's to report.
  if (!URL.canParse(url)) return true;
  const u = new URL(url);
  return u.protocol === 'https:' || isLoopback(u.hostname);
}, 'plain http:// would send the bot token unencrypted; use https:// (http:// only to 127.0.0.1, ::1 or localhost)');

/** Where `verify` test-restores: a scratch database it creates and always drops. */
export const verifySchema = z.strictObject({
  /** Scratch database name (default: permafrost_verify_<pid>). Must not exist unless an earlier verify left it. */
  database: z
    .string()
    .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/, 'expected a plain database name (letters, digits, _ . -)')
    .optional(),
  /** Another PostgreSQL server for the test-restore (default: the one in `database`). */
  connection: z
    .strictObject({
      host: z.string().min(1).optional(),
      port: z.number().int().min(1).max(65535).optional(),
      user: z.string().min(1).optional(),
      passwordFile: absPath.optional(),
      binDir: absPath.optional(),
    })
    .optional(),
  /** Parallel pg_restore jobs for the test-restore. */
  jobs: z.number().int().min(1).max(64).optional(),
});

/** Alert channels; any number at once. */
export const notifySchema = z.strictObject({
  webhook: z.strictObject({ url: httpUrl }).optional(),
  ping: z.strictObject({ url: httpUrl }).optional(),
  mastodon: z
    .strictObject({
      server: secretBearingUrl,
      /** File (mode 0600) whose first line is the bot account's access token. */
      tokenFile: absPath,
      /** The admin to message, as @user or @user@domain. */
      to: z.string().regex(/^@?[A-Za-z0-9_]+(@[A-Za-z0-9.-]+)?$/, 'expected an account like @admin or @admin@example.org'),
    })
    .optional(),
  /** Delivery attempts per alert and the first backoff in ms (doubles each retry). */
  retries: z.number().int().min(0).max(10).default(3),
  backoffMs: z.number().int().min(0).default(2000),
  /** Per-request timeout in ms. */
  timeoutMs: z.number().int().min(100).default(10_000),
});

/** The status page and /metrics. */
export const webSchema = z.strictObject({
  /** host:port; anything but loopback requires tokenFile. */
  listen: z
    .string()
    .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:9580')
    .default('127.0.0.1:9580'),
  /** File (mode 0600) whose first line is the bearer token the page requires. */
  tokenFile: absPath.optional(),
});

export type VerifyConfig = z.output<typeof verifySchema>;
export type NotifyConfig = z.output<typeof notifySchema>;
export type WebConfig = z.output<typeof webSchema>;
