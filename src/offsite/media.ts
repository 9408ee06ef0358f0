import { CopyObjectCommand, GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, mkdir, opendir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { OffsiteLock } from '../config/schema-offsite.js';
import { PermafrostError } from '../errors.js';
import { MAX_OBJECT_BYTES, PART_BYTES } from './bucket.js';
import { s3Error } from './client.js';
import type { BucketLocation } from './target.js';

/**
 * Mastodon's media copied between its bucket (or its local public/system), an offsite target's
 * `<prefix>media/` and back. Incremental by listing both sides: an object is copied when the other
 * side lacks its key, holds another size, or (both ETags being plain MD5s) another ETag; a local
 * file also when it changed after its copy was made. The target itself is the record, so any
 * machine with its keys sees what is there. `cache/` (remote media Mastodon fetched from other
 * servers, refetched on demand) is never copied.
 */

/** The folder of an offsite target's prefix that holds the media. */
export const MEDIA_DIR = 'media/';

/** One side of a copy: a bucket location, its client and how messages name it. */
export interface BucketSide {
  readonly client: S3Client;
  readonly loc: BucketLocation;
  readonly describe: string;
  /** The config section messages name (`offsite`, `mediaBucket`). */
  readonly section: string;
}

/** An object or file by its path relative to the side's root (`media_attachments/files/…`). */
export interface MediaEntry {
  readonly size: number;
  /** The object's ETag without quotes; null for a local file. */
  readonly etag: string | null;
  /** Last modified, ms since the epoch. */
  readonly modified: number;
}

export type MediaListing = Map<string, MediaEntry>;

/**
 * Whether `rel` is media this copies: a relative path of plain segments (no `..`, `.`, empty or
 * absolute parts: a hostile listing cannot point outside the folder it is restored into) outside cache/.
 */
export function isMediaPath(rel: string): boolean {
  if (rel === '' || rel.startsWith('/') || rel.includes('\\') || rel.includes('\0')) return false;
  const parts = rel.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..')) return false;
  return parts[0] !== 'cache';
}

const plainMd5 = (etag: string | null): boolean => etag !== null && /^[0-9a-f]{32}$/.test(etag);

/**
 * Whether `src` must be copied over what the other side holds at its key: it lacks it, another size,
 * another content by plain-MD5 ETag (a multipart ETag `…-N` says nothing comparable), or a local file
 * changed after the copy was made.
 */
export function needsCopy(src: MediaEntry, dst: MediaEntry | undefined): boolean {
  if (dst === undefined || dst.size !== src.size) return true;
  if (plainMd5(src.etag) && plainMd5(dst.etag)) return src.etag !== dst.etag;
  // An object's LastModified is an HTTP date (whole seconds): a file written in the second its copy was stored is not newer.
  if (src.etag === null) return Math.floor(src.modified / 1000) > Math.floor(dst.modified / 1000);
  return false;
}

/** What a copy plans: the paths to copy (sorted), and how many of the source's are already there. */
export function planCopy(src: MediaListing, dst: MediaListing): { copy: string[]; unchanged: number; bytes: number } {
  const copy: string[] = [];
  let unchanged = 0;
  let bytes = 0;
  for (const [rel, e] of src) {
    if (!isMediaPath(rel)) continue;
    if (needsCopy(e, dst.get(rel))) {
      copy.push(rel);
      bytes += e.size;
    } else unchanged++;
  }
  return { copy: copy.sort(), unchanged, bytes };
}

/** Every object under the side's prefix, by relative path; foreign keys (bad paths, absurd sizes) are counted, not listed. */
export async function listBucket(side: BucketSide, signal?: AbortSignal): Promise<{ entries: MediaListing; foreign: number }> {
  const entries: MediaListing = new Map();
  let foreign = 0;
  let token: string | undefined;
  try {
    do {
      const page = await side.client.send(
        new ListObjectsV2Command({ Bucket: side.loc.bucket, Prefix: side.loc.prefix, ContinuationToken: token }),
        { abortSignal: signal },
      );
      for (const o of page.Contents ?? []) {
        const rel = (o.Key ?? '').slice(side.loc.prefix.length);
        const size = o.Size ?? -1;
        if (rel.split('/')[0] === 'cache') continue;
        if (!isMediaPath(rel) || !Number.isSafeInteger(size) || size < 0 || size > MAX_OBJECT_BYTES) {
          foreign++;
          continue;
        }
        entries.set(rel, { size, etag: o.ETag?.replace(/"/g, '') ?? null, modified: o.LastModified?.getTime() ?? 0 });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  } catch (err) {
    throw s3Error(err, side.describe, 'listing the media', side.section);
  }
  return { entries, foreign };
}

/** Every regular file under `dir` but cache/ (symlinks and other special files are not media: skipped). */
export async function listFolder(dir: string): Promise<MediaListing> {
  const entries: MediaListing = new Map();
  async function walk(rel: string): Promise<void> {
    const d = await opendir(path.join(dir, rel));
    for await (const e of d) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      if (rel === '' && e.name === 'cache') continue;
      if (e.isDirectory()) await walk(r);
      else if (e.isFile() && isMediaPath(r)) {
        const st = await lstat(path.join(dir, r));
        entries.set(r, { size: st.size, etag: null, modified: st.mtimeMs });
      }
    }
  }
  try {
    await walk('');
  } catch (err) {
    throw new PermafrostError(
      'io',
      `Cannot read the media folder ${dir}: ${(err as Error).message}; check media.dir and that this user may read it.`,
      {
        cause: err,
      },
    );
  }
  return entries;
}

function lockParams(
  lock: OffsiteLock | undefined,
  now: Date,
): { ObjectLockMode?: 'GOVERNANCE' | 'COMPLIANCE'; ObjectLockRetainUntilDate?: Date } {
  return lock === undefined
    ? {}
    : {
        ObjectLockMode: lock.mode === 'governance' ? 'GOVERNANCE' : 'COMPLIANCE',
        ObjectLockRetainUntilDate: new Date(now.getTime() + lock.days * 86_400_000),
      };
}

/** Copy options: the Object Lock every written object carries, the clock, the stop signal. */
export interface CopyOptions {
  readonly lock?: OffsiteLock;
  readonly now?: () => Date;
  readonly signal?: AbortSignal;
}

/** A server-side copy (CopyObject) within one endpoint: no byte passes through this host. */
export async function copyServerSide(src: BucketSide, dst: BucketSide, rel: string, opts: CopyOptions = {}): Promise<void> {
  const Key = `${dst.loc.prefix}${rel}`;
  const source = `${src.loc.bucket}/${`${src.loc.prefix}${rel}`.split('/').map(encodeURIComponent).join('/')}`;
  try {
    await dst.client.send(
      new CopyObjectCommand({
        Bucket: dst.loc.bucket,
        Key,
        CopySource: source,
        MetadataDirective: 'COPY',
        ...lockParams(opts.lock, (opts.now ?? (() => new Date()))()),
      }),
      { abortSignal: opts.signal },
    );
  } catch (err) {
    throw s3Error(err, dst.describe, `copying ${src.loc.bucket}/${src.loc.prefix}${rel} to ${Key}`, dst.section);
  }
}

/** Streams a body to `dst` (parts of PART_BYTES, each with its SHA-256 for the server to check; bounded memory). */
async function putStream(dst: BucketSide, rel: string, body: Readable, opts: CopyOptions): Promise<void> {
  const Key = `${dst.loc.prefix}${rel}`;
  const abortController = new AbortController();
  const onAbort = (): void => abortController.abort(opts.signal?.reason);
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await new Upload({
      client: dst.client,
      params: {
        Bucket: dst.loc.bucket,
        Key,
        Body: body,
        ChecksumAlgorithm: 'SHA256',
        ...lockParams(opts.lock, (opts.now ?? (() => new Date()))()),
      },
      partSize: PART_BYTES,
      queueSize: 2,
      leavePartsOnError: false,
      abortController,
    }).done();
  } catch (err) {
    throw s3Error(err, dst.describe, `uploading ${Key}`, dst.section);
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    body.destroy();
  }
}

async function getBody(src: BucketSide, rel: string, signal?: AbortSignal): Promise<Readable> {
  const Key = `${src.loc.prefix}${rel}`;
  try {
    const out = await src.client.send(new GetObjectCommand({ Bucket: src.loc.bucket, Key }), { abortSignal: signal });
    if (!(out.Body instanceof Readable)) throw new PermafrostError('remote', `${src.describe} returned no body for ${Key}.`);
    return out.Body;
  } catch (err) {
    throw s3Error(err, src.describe, `reading ${Key}`, src.section);
  }
}

/** A streamed copy between two endpoints: GET from one, PUT (multipart when large) to the other. */
export async function copyStreamed(src: BucketSide, dst: BucketSide, rel: string, opts: CopyOptions = {}): Promise<void> {
  await putStream(dst, rel, await getBody(src, rel, opts.signal), opts);
}

/** Uploads the local file `dir/rel`. */
export async function uploadFile(dir: string, dst: BucketSide, rel: string, opts: CopyOptions = {}): Promise<void> {
  await putStream(dst, rel, createReadStream(path.join(dir, rel)), opts);
}

/** Downloads `rel` into `dir/rel`: written beside it under a temporary name, then renamed in (never a half file). */
export async function downloadFile(src: BucketSide, rel: string, dir: string, signal?: AbortSignal): Promise<void> {
  if (!isMediaPath(rel)) throw new PermafrostError('integrity', `${src.describe}: ${rel} is not a media path; it is not written.`);
  const file = path.join(dir, rel);
  // isMediaPath already refused `..`; this keeps it so whatever the path module does with odd names.
  if (!file.startsWith(`${path.resolve(dir)}/`)) throw new PermafrostError('integrity', `${src.describe}: ${rel} points outside ${dir}.`);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
  const tmp = `${file}.permafrost-${process.pid}.tmp`;
  try {
    await pipeline(await getBody(src, rel, signal), createWriteStream(tmp, { mode: 0o644 }), { signal });
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    if (err instanceof PermafrostError) throw err;
    throw new PermafrostError(
      'io',
      `Cannot write ${file}: ${(err as Error).message}; check free space and that this user may write there.`,
      {
        cause: err,
      },
    );
  }
}
