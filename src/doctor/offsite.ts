import type { S3Client } from '@aws-sdk/client-s3';
import type { OffsiteTarget } from '../config/schema-offsite.js';
import { errorMessage, PermafrostError } from '../errors.js';
import { objectLockEnabled, probeBucket } from '../offsite/lock-config.js';
import type { BucketLocation } from '../offsite/target.js';
import type { CheckLine } from './checks.js';

/** The fix for each way reaching a bucket fails (s3Error's kinds). */
function fixFor(err: unknown): string {
  if (err instanceof PermafrostError && err.kind === 'connection')
    return 'check offsite.endpoint (scheme, host, port) and that this host can reach it (firewall, DNS)';
  if (err instanceof PermafrostError && err.kind === 'user' && /bucket does not exist/.test(err.message))
    return 'create the bucket (with Object Lock enabled when offsite.lock is set) or correct offsite.bucket';
  if (err instanceof PermafrostError && err.kind === 'user')
    return 'check the key files named in offsite.credentials (first line: key id / secret), or the AWS_* environment, and that the key may list and write the bucket';
  return 'see the message; run doctor again once the endpoint answers';
}

/**
 * One line per offsite target: reachable, keys accepted, bucket there (one listing), and when
 * `lock` is set, Object Lock enabled on the bucket (GetObjectLockConfiguration); each FAIL with its fix.
 */
export async function checkOffsiteTarget(t: {
  target: OffsiteTarget;
  client: S3Client;
  location: BucketLocation;
  describe: string;
}): Promise<CheckLine> {
  const check = `offsite ${t.target.name}`;
  try {
    await probeBucket(t.client, t.location, t.describe);
  } catch (err) {
    return { check, status: 'fail', message: errorMessage(err), fix: fixFor(err) };
  }
  if (!t.target.lock) {
    return {
      check,
      status: 'ok',
      message: `${t.describe} reachable, keys accepted, bucket there (no lock: a stolen server key can delete the copies)`,
    };
  }
  try {
    if (!(await objectLockEnabled(t.client, t.location, t.describe))) {
      return {
        check,
        status: 'fail',
        message: `${t.describe}: offsite.lock is set (${t.target.lock.mode}, ${t.target.lock.days} days) but the bucket has no Object Lock, so pushes are refused`,
        fix: 'create a bucket with Object Lock enabled (most providers cannot enable it on an existing bucket) and point offsite.bucket at it, or remove lock',
      };
    }
  } catch (err) {
    return { check, status: 'fail', message: errorMessage(err), fix: fixFor(err) };
  }
  return {
    check,
    status: 'ok',
    message: `${t.describe} reachable, keys accepted, bucket there with Object Lock (${t.target.lock.mode}, ${t.target.lock.days} days on every object)`,
  };
}
