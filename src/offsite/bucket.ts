import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Readable } from 'node:stream';
import { PermafrostError } from '../errors.js';
import { VAULT_NAMES } from '../vault/layout.js';
import { MANIFEST_NAME } from '../vault/manifest.js';
import { SNAPSHOT_ID_RE } from '../vault/store.js';
import type {
  ForeignEntry,
  PutOptions,
  RemoveResult,
  SnapshotWriter,
  StorageListing,
  StoredFile,
  StoredSnapshot,
} from '../vault/storage.js';
import type { OffsiteLock } from '../config/schema-offsite.js';
import { s3Error } from './client.js';
import { keyOf, type BucketLocation } from './target.js';

/** A snapshot file's name as permafrost writes them (database.pgdump.gpg, manifest.json.sig …): nothing with a slash or a leading dot. */
const FILE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** Far above any real part (S3's own object limit is 5 TiB); a listing claiming more is hostile. */
export const MAX_OBJECT_BYTES = 5 * 1024 ** 4;
/** Files up to this size go in one request (checked whole by the server against the manifest's SHA-256); larger ones as a multipart upload. */
export const PART_BYTES = 16 * 1024 * 1024;
/**
 * A multipart upload's parts: memory is bounded by about twice the part size × QUEUE whatever the
 * file's size (lib-storage assembles each part in memory). 5 MiB (S3's minimum) and one part in
 * flight keep a push's peak RSS near 134 MiB, flat from 0.5 to 1 GiB, at rclone's throughput on
 * loopback (bench/offsite.ts; 16 MiB × 2 peaked above 200 MiB, 8 MiB × 2 at 162, 8 MiB × 1 at 152);
 * a file above ~44 GiB gets larger parts, as S3 allows at most 10,000 per upload.
 */
export const MULTIPART_PART_BYTES = 5 * 1024 * 1024;
const MAX_PARTS = 9_000;
const QUEUE = 1;

/** The part size for a file of `bytes`: MULTIPART_PART_BYTES, or more when that would take more than MAX_PARTS parts. */
export function partSizeFor(bytes: number): number {
  return Math.max(MULTIPART_PART_BYTES, Math.ceil(bytes / MAX_PARTS));
}

export interface BucketOptions {
  readonly describe: string;
  /** Object Lock retention set on every object written. */
  readonly lock?: OffsiteLock;
  /** The clock (tests). */
  readonly now?: () => Date;
}

/** Sorts one listed key into a snapshot file, a runbook file or a foreign entry. */
function classify(rest: string, size: number | undefined): { id?: string; file?: StoredFile; foreign?: string } {
  const bytes = size ?? -1;
  if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > MAX_OBJECT_BYTES)
    return { foreign: `its size (${String(size)}) is not a size a snapshot file has` };
  const parts = rest.split('/');
  if (parts.length === 1) {
    return (VAULT_NAMES.runbook as readonly string[]).includes(rest)
      ? { file: { name: rest, bytes } }
      : { foreign: 'not a snapshot file nor a runbook file' };
  }
  const [id, name] = parts;
  if (parts.length !== 2 || id === undefined || name === undefined || !SNAPSHOT_ID_RE.test(id))
    return { foreign: 'not under a snapshot id' };
  if (!FILE_NAME_RE.test(name)) return { foreign: 'not a file name permafrost writes' };
  return { id, file: { name, bytes } };
}

/** What every request of one bucket storage needs. */
interface Bucket {
  readonly client: S3Client;
  readonly loc: BucketLocation;
  readonly where: string;
  readonly opts: BucketOptions;
}

const keyIn = (b: Bucket, id: string | undefined, name: string): string => keyOf(b.loc, id === undefined ? name : `${id}/${name}`);

function lockParams(b: Bucket): { ObjectLockMode?: 'GOVERNANCE' | 'COMPLIANCE'; ObjectLockRetainUntilDate?: Date } {
  const lock = b.opts.lock;
  if (lock === undefined) return {};
  const now = b.opts.now?.() ?? new Date();
  return {
    ObjectLockMode: lock.mode === 'governance' ? 'GOVERNANCE' : 'COMPLIANCE',
    ObjectLockRetainUntilDate: new Date(now.getTime() + lock.days * 86_400_000),
  };
}

async function getObject(b: Bucket, id: string | undefined, name: string, signal?: AbortSignal): Promise<Readable> {
  const Key = keyIn(b, id, name);
  try {
    const out = await b.client.send(new GetObjectCommand({ Bucket: b.loc.bucket, Key }), { abortSignal: signal });
    if (!(out.Body instanceof Readable)) throw new PermafrostError('remote', `${b.where} returned no body for ${Key}.`);
    return out.Body;
  } catch (err) {
    throw s3Error(err, b.where, `reading ${Key}`);
  }
}

/** Every key under the prefix, page by page, sorted into snapshots, runbook files and foreign entries. */
async function listBucket(b: Bucket, signal?: AbortSignal): Promise<StorageListing> {
  const byId = new Map<string, StoredFile[]>();
  const rootFiles: StoredFile[] = [];
  const foreign: ForeignEntry[] = [];
  let token: string | undefined;
  try {
    do {
      const page = await b.client.send(new ListObjectsV2Command({ Bucket: b.loc.bucket, Prefix: b.loc.prefix, ContinuationToken: token }), {
        abortSignal: signal,
      });
      for (const o of page.Contents ?? []) {
        const k = o.Key ?? '';
        const c = classify(k.slice(b.loc.prefix.length), o.Size);
        if (c.foreign !== undefined) foreign.push({ key: k, why: c.foreign });
        else if (c.id === undefined) rootFiles.push(c.file!);
        else byId.set(c.id, [...(byId.get(c.id) ?? []), c.file!]);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  } catch (err) {
    throw s3Error(err, b.where, 'listing the bucket');
  }
  const snapshots: StoredSnapshot[] = [...byId]
    .map(([id, files]) => ({ id, files, complete: files.some((f) => f.name === MANIFEST_NAME) }))
    .sort((x, y) => y.id.localeCompare(x.id));
  return { snapshots, rootFiles, foreign };
}

async function readSmallObject(b: Bucket, id: string | undefined, name: string, maxBytes: number, signal?: AbortSignal): Promise<Buffer> {
  const body = await getObject(b, id, name, signal);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) {
      body.destroy();
      throw new PermafrostError(
        'integrity',
        `${b.where}: ${keyIn(b, id, name)} is larger than ${maxBytes} bytes, more than any ${name} permafrost writes.`,
      );
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

async function writeObject(b: Bucket, id: string | undefined, name: string, body: Readable, putOpts: PutOptions): Promise<void> {
  const Key = keyIn(b, id, name);
  try {
    if (putOpts.bytes <= PART_BYTES) {
      // One request, and the server checks the whole object against the manifest's own SHA-256.
      const buf = Buffer.concat(await body.toArray());
      const checksum =
        putOpts.sha256 === undefined
          ? { ChecksumAlgorithm: 'SHA256' as const }
          : { ChecksumSHA256: Buffer.from(putOpts.sha256, 'hex').toString('base64') };
      await b.client.send(
        new PutObjectCommand({ Bucket: b.loc.bucket, Key, Body: buf, ContentLength: buf.length, ...checksum, ...lockParams(b) }),
        {
          abortSignal: putOpts.signal,
        },
      );
      return;
    }
    // Multipart, streamed: every part carries its SHA-256 for the server to check; an interrupted
    // upload leaves no object. A failed upload is aborted here (leavePartsOnError false); the parts
    // of one cut off by a kill stay invisible until the bucket's lifecycle rule removes them
    // (docs/offsite.md asks for "abort incomplete multipart uploads").
    const upload = new Upload({
      client: b.client,
      params: { Bucket: b.loc.bucket, Key, Body: body, ChecksumAlgorithm: 'SHA256', ...lockParams(b) },
      partSize: partSizeFor(putOpts.bytes),
      queueSize: QUEUE,
      leavePartsOnError: false,
      abortController: putOpts.signal === undefined ? undefined : abortControllerFor(putOpts.signal),
    });
    await upload.done();
  } catch (err) {
    throw s3Error(err, b.where, `uploading ${Key}`);
  }
}

/** Deletes the manifest first (the snapshot stops counting), then the rest; a delete the lock refuses is reported, not thrown. */
async function removeSnapshot(b: Bucket, id: string, names: readonly string[], signal?: AbortSignal): Promise<RemoveResult> {
  const ordered = [...names].sort((x, y) => Number(y === MANIFEST_NAME) - Number(x === MANIFEST_NAME));
  const removed: string[] = [];
  const refused: { name: string; why: string }[] = [];
  for (const name of ordered) {
    try {
      await b.client.send(new DeleteObjectCommand({ Bucket: b.loc.bucket, Key: keyIn(b, id, name) }), { abortSignal: signal });
      removed.push(name);
    } catch (err) {
      const e = s3Error(err, b.where, `deleting ${keyIn(b, id, name)}`);
      if (e.kind === 'connection') throw e;
      refused.push({ name, why: e.message });
    }
  }
  return { removed, refused };
}

/** A bucket prefix as a place for snapshots (vault/storage.ts), through the official SDK. */
export function bucketStorage(client: S3Client, loc: BucketLocation, opts: BucketOptions): SnapshotWriter {
  const b: Bucket = { client, loc, where: opts.describe, opts };
  return {
    describe: opts.describe,
    list: (signal) => listBucket(b, signal),
    read: (id, name, signal) => getObject(b, id, name, signal),
    readSmall: (id, name, maxBytes, signal) => readSmallObject(b, id, name, maxBytes, signal),
    write: (id, name, body, putOpts) => writeObject(b, id, name, body, putOpts),
    remove: (id, names, signal) => removeSnapshot(b, id, names, signal),
  };
}

/** lib-storage takes an AbortController; ours is a signal. */
function abortControllerFor(signal: AbortSignal): AbortController {
  const c = new AbortController();
  if (signal.aborted) c.abort(signal.reason);
  else signal.addEventListener('abort', () => c.abort(signal.reason), { once: true });
  return c;
}
