/**
 * `permafrost check` of a bucket (--vault s3://…, --target): the bucket as a check source
 * (ops/check.ts runCheck, the one comparison and chain judgement a vault folder's check runs too),
 * its listing's sizes and, with --read-data, its bytes. Its own module so that a local check never
 * loads the S3 SDK.
 */
import type { Config } from '../config/schema.js';
import { findBucketSnapshot, hashObject, readBucketSnapshots, type BucketEntry } from '../offsite/read.js';
import { bucketSigner, bucketWarnings, openBucket, signedEntry, type BucketFlags } from './bucket-vault.js';
import { runCheck, type CheckResult } from './check.js';

/**
 * `check` of a bucket (--vault s3://…, --target): every chosen snapshot's objects against its
 * manifest by the listing's sizes, with `readData` every part downloaded and re-hashed (streamed),
 * signatures against vault.signerKeyFile or --signer, and each delta's chain. Nothing is recorded:
 * the bucket is only read. Snapshots without a manifest (an upload not finished) are not checked.
 */
export async function runBucketCheck(
  config: Config,
  flags: BucketFlags,
  ref: string | undefined,
  opts: { readData?: boolean; signer?: string; signal?: AbortSignal } = {},
): Promise<CheckResult & { warnings: string[]; describe: string }> {
  const started = { t0: Date.now(), checkedAt: new Date().toISOString() };
  const bucket = openBucket(config, flags);
  try {
    const found = await readBucketSnapshots(bucket.reader, { signal: opts.signal });
    const chosen =
      ref === undefined || ref === 'all' ? found.entries : [findBucketSnapshot(found, ref, bucket.describe, bucket.listCommand)];
    const signer = await bucketSigner(config, bucket, found, opts.signer, opts.signal);
    const result = await runCheck(
      {
        reader: bucket.reader,
        listing: found.listing,
        all: found.entries,
        chosen,
        ...(opts.readData === true ? { hashFile: (id: string, name: string) => hashObject(bucket.reader, id, name, opts.signal) } : {}),
        signed: (s) => signedEntry(bucket, found, s as BucketEntry, signer, opts.signal),
      },
      started,
    );
    return { ...result, warnings: bucketWarnings(bucket, found), describe: bucket.describe };
  } finally {
    bucket.close();
  }
}
