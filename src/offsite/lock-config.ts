import { GetObjectLockConfigurationCommand, HeadObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { UserError } from '../errors.js';
import { s3Error } from './client.js';
import type { BucketLocation } from './target.js';

/** What the bucket says of Object Lock: enabled (with its default retention, if any) or not. */
export async function objectLockEnabled(client: S3Client, loc: BucketLocation, where: string, signal?: AbortSignal): Promise<boolean> {
  try {
    const out = await client.send(new GetObjectLockConfigurationCommand({ Bucket: loc.bucket }), { abortSignal: signal });
    return out.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled';
  } catch (err) {
    const name = (err as { name?: string }).name;
    // The answer of a bucket made without Object Lock (AWS, B2, MinIO alike).
    if (name === 'ObjectLockConfigurationNotFoundError') return false;
    throw s3Error(err, where, 'reading the bucket\u2019s Object Lock configuration');
  }
}

/** The one sentence (exit 2) for a target whose config asks for a lock its bucket cannot hold. */
export function lockMissingError(where: string, bucket: string): UserError {
  return new UserError(
    `${where}: offsite.lock is set but bucket ${bucket} has no Object Lock, so nothing uploaded could be protected; ` +
      'create a new bucket with Object Lock enabled (it cannot be turned on for most existing buckets), or remove lock from the target.',
  );
}

/** Reaches the bucket with the keys (one listing of at most one key under the prefix): reachable, keys accepted, bucket there. */
export async function probeBucket(client: S3Client, loc: BucketLocation, where: string, signal?: AbortSignal): Promise<void> {
  try {
    await client.send(new ListObjectsV2Command({ Bucket: loc.bucket, Prefix: loc.prefix, MaxKeys: 1 }), { abortSignal: signal });
  } catch (err) {
    throw s3Error(err, where, 'listing the bucket');
  }
}

/**
 * Until when an object is locked: the date the server reports (x-amz-object-lock-retain-until-date),
 * else, when a lock is configured, its upload time plus the configured days (servers that do not
 * report it, and s3rver in the tests); null: not locked as far as anyone can tell.
 */
export async function lockedUntil(
  client: S3Client,
  loc: BucketLocation,
  key: string,
  lockDays: number | undefined,
  where: string,
  signal?: AbortSignal,
): Promise<Date | null> {
  try {
    const head = await client.send(new HeadObjectCommand({ Bucket: loc.bucket, Key: key }), { abortSignal: signal });
    if (head.ObjectLockRetainUntilDate) return head.ObjectLockRetainUntilDate;
    if (lockDays === undefined || !head.LastModified) return null;
    return new Date(head.LastModified.getTime() + lockDays * 86_400_000);
  } catch (err) {
    throw s3Error(err, where, `reading ${key}`);
  }
}
