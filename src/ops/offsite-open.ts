import type { S3Client } from '@aws-sdk/client-s3';
import { readSecretFile } from '../config/secret-file.js';
import type { OffsiteTarget } from '../config/schema-offsite.js';
import { bucketStorage } from '../offsite/bucket.js';
import { s3ClientFor, type S3Keys } from '../offsite/client.js';
import { describeTarget, locationOf, type BucketLocation } from '../offsite/target.js';
import type { SnapshotWriter } from '../vault/storage.js';
import { UserError } from '../errors.js';

/** An offsite target ready to use: its client (destroy() it when done), its location, its storage. */
export interface OpenTarget {
  readonly name: string;
  readonly target: OffsiteTarget;
  readonly location: BucketLocation;
  readonly client: S3Client;
  readonly storage: SnapshotWriter;
  readonly describe: string;
}

/** The keys of a target, read once when the job starts (first line of each 0600 file); none: the AWS chain. */
export function readTargetKeys(target: OffsiteTarget): S3Keys | undefined {
  const c = target.credentials;
  if (c === undefined) return undefined;
  return {
    accessKeyId: readSecretFile(c.accessKeyIdFile, `offsite[${target.name}].credentials.accessKeyIdFile`),
    secretAccessKey: readSecretFile(c.secretAccessKeyFile, `offsite[${target.name}].credentials.secretAccessKeyFile`),
  };
}

export function openTarget(target: OffsiteTarget, keys: S3Keys | undefined = readTargetKeys(target)): OpenTarget {
  const location = locationOf(target);
  const describe = describeTarget(target.name, location);
  const client = s3ClientFor(target, keys);
  return {
    name: target.name,
    target,
    location,
    client,
    describe,
    storage: bucketStorage(client, location, { describe, lock: target.lock }),
  };
}

/** The targets a command names (`--target NAME`), or all of them; a UserError for an unknown name or none configured. */
export function selectTargets(targets: readonly OffsiteTarget[] | undefined, name: string | undefined): OffsiteTarget[] {
  if (targets === undefined || targets.length === 0)
    throw new UserError('no offsite targets are configured; add an offsite: section to the config (docs/offsite.md).');
  if (name === undefined) return [...targets];
  const t = targets.find((x) => x.name === name);
  if (!t) throw new UserError(`no offsite target is named ${name}; the config has ${targets.map((x) => x.name).join(', ')}.`);
  return [t];
}
