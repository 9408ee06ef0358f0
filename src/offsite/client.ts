import { S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { PermafrostError, UserError } from '../errors.js';
import type { OffsiteTarget } from '../config/schema-offsite.js';

// The SDK prints a notice on Node 20 at the first client; permafrost documents its own Node support (README).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** Keys read once when a job starts (ops/), never from the YAML; absent: the SDK's standard chain. */
export interface S3Keys {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

/** How many times the SDK tries a request (throttling 503 SlowDown, resets, 5xx) before we report it. */
export const S3_MAX_ATTEMPTS = 5;

/**
 * The one place an S3 client is made: the official SDK (its own signing, retries with backoff on
 * throttling and 5xx, checksums), path-style where asked, bounded timeouts so an unreachable
 * endpoint ends in a sentence instead of a hang.
 */
export function s3ClientFor(target: Pick<OffsiteTarget, 'endpoint' | 'region' | 'pathStyle'>, keys?: S3Keys): S3Client {
  return new S3Client({
    region: target.region,
    ...(target.endpoint === undefined ? {} : { endpoint: target.endpoint }),
    forcePathStyle: target.pathStyle,
    ...(keys === undefined ? {} : { credentials: { accessKeyId: keys.accessKeyId, secretAccessKey: keys.secretAccessKey } }),
    maxAttempts: S3_MAX_ATTEMPTS,
    requestHandler: { connectionTimeout: 10_000, requestTimeout: 120_000 },
  });
}

const CREDENTIAL_CODES = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'InvalidToken',
  'ExpiredToken',
  'CredentialsProviderError',
]);
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'TimeoutError',
  'RequestTimeout',
]);

function codeOf(err: unknown): string {
  if (err instanceof S3ServiceException) return err.name;
  if (err !== null && typeof err === 'object') {
    const e = err as { code?: unknown; name?: unknown; cause?: unknown };
    if (typeof e.code === 'string') return e.code;
    if (e.cause !== undefined && e.cause !== err) {
      const inner = codeOf(e.cause);
      if (inner !== 'Error') return inner;
    }
    if (typeof e.name === 'string') return e.name;
  }
  return 'Error';
}

/**
 * An SDK failure as one sentence naming what to fix: wrong keys and a missing bucket are the admin's
 * (exit 2); an unreachable endpoint is a connection (exit 1); anything else the server said is remote
 * (exit 1). Never includes the keys (the SDK's messages do not carry them).
 */
export function s3Error(err: unknown, where: string, doing: string, section = 'offsite'): PermafrostError {
  if (err instanceof PermafrostError) return err;
  const code = codeOf(err);
  const status = err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
  if (code === 'NoSuchBucket') {
    return new UserError(
      `${where}: the bucket does not exist; create it${section.startsWith('offsite') ? ' (with Object Lock if offsite.lock is set)' : ''} or fix ${section}.bucket.`,
      { cause: err },
    );
  }
  if (CREDENTIAL_CODES.has(code) || status === 403) {
    return new UserError(
      `${where} refused the credentials (${code}) while ${doing}; check the key files in ${section}.credentials (or AWS_ACCESS_KEY_ID/AWS_PROFILE) and the key's permissions on the bucket.`,
      { cause: err },
    );
  }
  if (CONNECTION_CODES.has(code)) {
    return new PermafrostError(
      'connection',
      `${where} could not be reached (${code}) while ${doing}; check ${section}.endpoint and the network, then run it again.`,
      { cause: err },
    );
  }
  const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
  return new PermafrostError(
    'remote',
    `${where} failed while ${doing}: ${code}${status === undefined ? '' : ` (HTTP ${status})`}${msg && msg !== code ? `: ${msg}` : ''}.`,
    { cause: err },
  );
}
