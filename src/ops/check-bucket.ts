/**
 * `permafrost check` of a bucket (--vault s3://…, --target): the same comparison and chain
 * judgement as a vault folder's (ops/check.ts), from the listing and, with --read-data, the bytes.
 * Its own module so that a local check never loads the S3 SDK.
 */
import type { Config } from '../config/schema.js';
import { compareFolder, type FolderEntry } from '../vault/check.js';
import type { SignerKey } from '../crypto/signature.js';
import type { SnapshotEntry } from '../vault/store.js';
import { findBucketSnapshot, hashObject, readBucketSnapshots, type BucketEntry, type BucketSnapshots } from '../offsite/read.js';
import { bucketSigner, bucketWarnings, openBucket, signedEntry, type BucketFlags, type OpenBucket } from './bucket-vault.js';
import { judgeChains, type CheckResult, type SnapshotCheck } from './check.js';

/** A snapshot in a bucket against its manifest: the listing's sizes, with `readData` each part downloaded and hashed, and its signature. */
async function checkBucketOne(
  bucket: OpenBucket,
  found: BucketSnapshots,
  s: BucketEntry,
  signer: SignerKey | null,
  readData: boolean,
  signal?: AbortSignal,
): Promise<SnapshotCheck> {
  const signed = await signedEntry(bucket, found, s, signer, signal);
  if (!signed.manifest)
    return { id: s.id, ok: false, problems: [signed.problem ?? 'its manifest cannot be used'], arriving: false, goodCopies: [] };
  const sizes = new Map(signed.manifest.files.map((f) => [f.name as string, f.bytes]));
  const entries: FolderEntry[] = [];
  for (const f of found.listing.snapshots.find((x) => x.id === s.id)?.files ?? []) {
    const entry: FolderEntry = { name: f.name, regular: true, bytes: f.bytes };
    if (readData && sizes.get(f.name) === f.bytes) {
      const read = await hashObject(bucket.reader, s.id, f.name, signal);
      entry.bytes = read.bytes;
      entry.sha256 = read.sha256;
    }
    entries.push(entry);
  }
  const problems = compareFolder(signed.manifest, entries);
  return { id: s.id, ok: problems.length === 0, problems, arriving: false, goodCopies: [] };
}

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
  const t0 = Date.now();
  const checkedAt = new Date().toISOString();
  const bucket = openBucket(config, flags);
  try {
    const found = await readBucketSnapshots(bucket.reader, { signal: opts.signal });
    const chosen =
      ref === undefined || ref === 'all' ? found.entries : [findBucketSnapshot(found, ref, bucket.describe, bucket.listCommand)];
    const signer = await bucketSigner(config, bucket, found, opts.signer, opts.signal);
    const check = (s: SnapshotEntry): Promise<SnapshotCheck> =>
      checkBucketOne(bucket, found, s as BucketEntry, signer, opts.readData === true, opts.signal);
    const snapshots: SnapshotCheck[] = [];
    const verdicts = new Map<string, SnapshotCheck | null>();
    for (const s of chosen) {
      const r = await check(s);
      verdicts.set(s.id, r);
      snapshots.push(r);
    }
    await judgeChains(chosen, found.entries, snapshots, verdicts, check);
    return {
      ok: snapshots.every((s) => s.ok),
      checkedAt,
      durationMs: Date.now() - t0,
      snapshots,
      warnings: bucketWarnings(bucket, found),
      describe: bucket.describe,
    };
  } finally {
    bucket.close();
  }
}
