import { UserError } from '../errors.js';
import type { OffsiteTarget } from '../config/schema-offsite.js';

/**
 * Where a target's objects live. The bucket mirrors a vault folder exactly, so that stock tools
 * (`aws s3 cp --recursive`, `rclone copy`) bring back a folder `restore.sh` and
 * `permafrost restore --vault` read as they are:
 *
 *   <prefix><snapshot id>/<file>      a snapshot's files as on disk (ciphertext, manifest, signature)
 *   <prefix>RESTORE.md, restore.sh …  the runbook, rewritten after each push
 *
 * A snapshot counts only once its manifest.json is there: it is uploaded last of all.
 */
export interface BucketLocation {
  readonly bucket: string;
  /** '' or ending in '/'. */
  readonly prefix: string;
}

/** `prefix` as keys are built from it: '' or `a/b/`. */
export function normalizePrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+|\/+$/g, '');
  return trimmed === '' ? '' : `${trimmed}/`;
}

export function locationOf(target: Pick<OffsiteTarget, 'bucket' | 'prefix'>): BucketLocation {
  return { bucket: target.bucket, prefix: normalizePrefix(target.prefix) };
}

/** The key of a file at `rel` (`ID/name` or a runbook file) inside the location. */
export function keyOf(loc: BucketLocation, rel: string): string {
  return `${loc.prefix}${rel}`;
}

/** `s3://BUCKET/PREFIX` (as `restore --vault` takes it) → the location; a UserError for anything else. */
export function parseS3Url(url: string): BucketLocation {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(url);
  const bucket = m?.[1];
  if (!m || bucket === undefined || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new UserError(`${url} is not an s3://BUCKET/PREFIX address; write it as s3://my-bucket/permafrost/.`);
  }
  const prefix = m[2] ?? '';
  if (prefix.split('/').includes('..')) throw new UserError(`${url}: a prefix must not contain "..".`);
  return { bucket, prefix: normalizePrefix(prefix) };
}

export function isS3Url(s: string): boolean {
  return s.startsWith('s3://');
}

/** How messages name a target: `offsite target b2 (s3://bucket/prefix/)`. */
export function describeTarget(name: string | undefined, loc: BucketLocation): string {
  const url = `s3://${loc.bucket}/${loc.prefix}`;
  return name === undefined ? url : `offsite target ${name} (${url})`;
}
