/**
 * A bucket as the vault of `list`, `check`, `verify` and `restore` (`--vault s3://BUCKET/PREFIX`
 * or `--target NAME`), on a machine with no copy of the vault: only the bucket's credentials and
 * the key. list and check read the listing and the manifests; verify and restore bring the one
 * snapshot (and its delta chain) into a private temp folder as ciphertext, then run the local
 * verify or restore on it unchanged, so every check and the `_incoming` + swap safety are the same.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Config } from '../config/schema.js';
import type { OffsiteTarget } from '../config/schema-offsite.js';
import { UserError } from '../errors.js';
import { bucketStorage } from '../offsite/bucket.js';
import { s3ClientFor } from '../offsite/client.js';
import {
  chainOf,
  fetchSnapshots,
  MAX_RUNBOOK_BYTES,
  pickBucketSnapshot,
  readBucketSignature,
  readBucketSnapshots,
  type BucketEntry,
  type BucketSnapshots,
} from '../offsite/read.js';
import { describeTarget, normalizePrefix, parseS3Url } from '../offsite/target.js';
import {
  parseFingerprint,
  pinnedSignerFrom,
  readSignerKey,
  signatureBytesProblem,
  SIGNER_KEY_NAME,
  type SignerKey,
} from '../crypto/signature.js';
import { privateTemp, vaultTempBase } from '../recover/decrypt.js';
import type { SnapshotReader } from '../vault/storage.js';
import { openVault } from '../vault/layout.js';
import { openTarget, readTargetKeys, selectTargets } from './offsite-open.js';

/** What the command line says about the bucket to read. */
export interface BucketFlags {
  /** `s3://BUCKET/PREFIX`. */
  vault?: string;
  /** A configured offsite target's name. */
  target?: string;
  /** --endpoint (else $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, a configured target of that bucket, AWS itself). */
  endpoint?: string;
  pathStyle?: boolean;
}

/** A bucket opened for reading: its storage, how messages name it, and how to list it again. */
export interface OpenBucket {
  readonly reader: SnapshotReader;
  readonly describe: string;
  /** The list command for this bucket, for "run … to see the snapshots". */
  readonly listCommand: string;
  close(): void;
}

/** An endpoint given on the command line or in the environment: an http(s) URL, else exit 2 naming where it came from. */
function endpointFrom(value: string, from: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UserError(`${from}: ${value} is not a URL; give the endpoint as https://s3.example.com or http://127.0.0.1:9000.`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new UserError(`${from}: ${value} is not an http(s) URL; give the endpoint as https://s3.example.com.`);
  return value;
}

/** Opens the bucket the flags name; a configured target of the same bucket and prefix lends its endpoint, region and key files. */
export function openBucket(config: Config, flags: BucketFlags, env: NodeJS.ProcessEnv = process.env): OpenBucket {
  if (flags.target !== undefined) {
    if (flags.vault !== undefined) throw new UserError('--target and --vault both name a place to read; pass one of them.');
    if (flags.endpoint !== undefined || flags.pathStyle)
      throw new UserError('--endpoint and --path-style go with --vault s3://…; a --target has its own in the config (offsite:).');
    const t = openTarget(selectTargets(config.offsite, flags.target)[0]!);
    return { reader: t.storage, describe: t.describe, listCommand: `permafrost list --target ${t.name}`, close: () => t.client.destroy() };
  }
  const url = flags.vault ?? '';
  const loc = parseS3Url(url);
  const match: OffsiteTarget | undefined = config.offsite?.find((t) => t.bucket === loc.bucket && normalizePrefix(t.prefix) === loc.prefix);
  const endpoint =
    flags.endpoint !== undefined
      ? endpointFrom(flags.endpoint, '--endpoint')
      : env.AWS_ENDPOINT_URL_S3
        ? endpointFrom(env.AWS_ENDPOINT_URL_S3, 'AWS_ENDPOINT_URL_S3')
        : env.AWS_ENDPOINT_URL
          ? endpointFrom(env.AWS_ENDPOINT_URL, 'AWS_ENDPOINT_URL')
          : match?.endpoint;
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || match?.region || 'us-east-1';
  const client: S3Client = s3ClientFor(
    { endpoint, region, pathStyle: flags.pathStyle === true || match?.pathStyle === true },
    match ? readTargetKeys(match) : undefined,
  );
  const describe = describeTarget(match?.name, loc);
  return {
    reader: bucketStorage(client, loc, { describe }),
    describe,
    listCommand: `permafrost list --vault s3://${loc.bucket}/${loc.prefix}`,
    close: () => client.destroy(),
  };
}

/**
 * The key every manifest listed or checked must be signed by: --signer (the key material from
 * vault.signerKeyFile or the bucket's signer.pub.asc), else vault.signerKeyFile; null: none asked.
 */
export async function bucketSigner(
  config: Config,
  bucket: OpenBucket,
  found: BucketSnapshots,
  pin: string | undefined,
  signal?: AbortSignal,
): Promise<SignerKey | null> {
  const configured = await readSignerKey(config.vault.signerKeyFile);
  if (pin === undefined) return configured;
  const held = found.listing.rootFiles.some((f) => f.name === SIGNER_KEY_NAME);
  return pinnedSignerFrom(
    {
      where: bucket.describe,
      file: `${bucket.describe.replace(/\/$/, '')}/${SIGNER_KEY_NAME}`,
      read: () =>
        held ? bucket.reader.readSmall(undefined, SIGNER_KEY_NAME, MAX_RUNBOOK_BYTES, signal) : Promise.reject(new Error('none')),
    },
    parseFingerprint(pin),
    configured,
  );
}

/** `entry` with its signature checked against `signer`: unsigned, foreign or edited makes it damaged (its manifest unused). */
export async function signedEntry(
  bucket: OpenBucket,
  found: BucketSnapshots,
  entry: BucketEntry,
  signer: SignerKey | null,
  signal?: AbortSignal,
): Promise<BucketEntry> {
  if (!signer || !entry.manifest || !entry.manifestBytes) return entry;
  const sig = await readBucketSignature(bucket.reader, entry, found.listing, signal);
  const problem = await signatureBytesProblem(entry.manifestBytes, sig, signer);
  return problem ? { ...entry, manifest: null, manifestBytes: null, problem: `${entry.dir}: ${problem}` } : entry;
}

/** What the listing held that no snapshot is, one sentence each: foreign keys (ignored) and uploads not finished (not listed). */
export function bucketWarnings(bucket: OpenBucket, found: BucketSnapshots): string[] {
  const out: string[] = [];
  const foreign = found.listing.foreign;
  if (foreign.length > 0) {
    const shown = foreign.slice(0, 3).map((f) => `${f.key} (${f.why})`);
    out.push(
      `${bucket.describe} holds ${foreign.length} key${foreign.length > 1 ? 's' : ''} that permafrost does not write, ignored (never read, never deleted): ${shown.join(', ')}${foreign.length > 3 ? ', …' : ''}.`,
    );
  }
  for (const id of found.incomplete)
    out.push(`snapshot ${id} in ${bucket.describe} has no manifest.json (its upload did not finish): not listed, never restored.`);
  return out;
}

/** The complete snapshots of a bucket (signatures checked when a signer is known) and what was ignored. */
export async function listBucket(
  config: Config,
  flags: BucketFlags,
  opts: { signer?: string; now?: Date } = {},
): Promise<{ entries: BucketEntry[]; warnings: string[]; describe: string }> {
  const bucket = openBucket(config, flags);
  try {
    const found = await readBucketSnapshots(bucket.reader, { now: opts.now });
    const signer = await bucketSigner(config, bucket, found, opts.signer);
    const entries: BucketEntry[] = [];
    for (const e of found.entries) entries.push(await signedEntry(bucket, found, e, signer));
    return { entries, warnings: bucketWarnings(bucket, found), describe: bucket.describe };
  } finally {
    bucket.close();
  }
}

/**
 * Brings snapshot `ref` of the bucket and its delta chain into a private 0700 folder in
 * vault.tempDir (the one restore and verify decrypt into), as a vault folder with the bucket's
 * runbook files, and runs `run` on a config whose vault is that folder. The folder is removed on
 * every way out (a failure, SIGTERM through `signal`); one left by a killed run is swept by the next.
 */
export async function withBucketSnapshot<T>(
  config: Config,
  flags: BucketFlags,
  ref: string | undefined,
  signal: AbortSignal | undefined,
  run: (local: Config, id: string, warnings: string[]) => Promise<T>,
): Promise<T> {
  const bucket = openBucket(config, flags);
  try {
    const found = await readBucketSnapshots(bucket.reader, { signal });
    const entry = pickBucketSnapshot(found, ref, bucket.describe, bucket.listCommand);
    const temp = await privateTemp(vaultTempBase(config.vault.tempDir));
    try {
      const dir = path.join(temp.dir, 'vault');
      await mkdir(dir, { mode: 0o700 });
      await fetchSnapshots(bucket.reader, chainOf(entry, found.entries), found.listing, openVault(dir), signal);
      return await run({ ...config, vault: { ...config.vault, dir } }, entry.id, bucketWarnings(bucket, found));
    } finally {
      await temp.dispose();
    }
  } finally {
    bucket.close();
  }
}
