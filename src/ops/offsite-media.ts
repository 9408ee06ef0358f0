/**
 * `permafrost offsite media` and `permafrost offsite media-restore`: Mastodon's own media (not
 * cache/) copied to each offsite target under `<prefix>media/`, and back.
 *
 *   mediaBucket (S3_ENABLED=true) ─ CopyObject (same endpoint) or GET→PUT ─┐
 *   media.dir (public/system)     ─ PUT ────────────────────────────────────┴→ <prefix>media/<path>
 *
 * Incremental: both sides are listed and only what the target lacks or holds differently is copied
 * (offsite/media.ts needsCopy); every object written carries the target's Object Lock. No run lock
 * is taken: a media copy can take hours and must not hold up backups, and two copies running at
 * once only write the same objects twice.
 */
import { readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import type { Config } from '../config/schema.js';
import type { MediaBucket } from '../config/schema-media-bucket.js';
import { readSecretFile } from '../config/secret-file.js';
import { PermafrostError, UserError } from '../errors.js';
import { s3ClientFor, type S3Keys } from '../offsite/client.js';
import {
  copyServerSide,
  copyStreamed,
  downloadFile,
  listBucket,
  listFolder,
  MEDIA_DIR,
  planCopy,
  uploadFile,
  type BucketSide,
  type CopyOptions,
} from '../offsite/media.js';
import { describeTarget, normalizePrefix } from '../offsite/target.js';
import { openTarget, selectTargets, type OpenTarget } from './offsite-open.js';

/** What one source gave one target. */
export interface MediaCopyResult {
  from: string;
  to: string;
  /** server-side: CopyObject within one endpoint; streamed: GET → PUT through this host; upload: local files. */
  mode: 'server-side' | 'streamed' | 'upload' | 'download';
  copied: number;
  bytes: number;
  unchanged: number;
  /** Keys on the source side that are no media path (`../`, absurd sizes): left alone. */
  foreign: number;
}

/** The media bucket's keys, read once when the job starts: two 0600 files, Mastodon's .env.production, or the AWS chain. */
export function readMediaBucketKeys(m: MediaBucket): S3Keys | undefined {
  if (m.credentials)
    return {
      accessKeyId: readSecretFile(m.credentials.accessKeyIdFile, 'mediaBucket.credentials.accessKeyIdFile'),
      secretAccessKey: readSecretFile(m.credentials.secretAccessKeyFile, 'mediaBucket.credentials.secretAccessKeyFile'),
    };
  const e = m.credentialsFromEnv;
  if (!e) return undefined;
  let env: Record<string, string | undefined>;
  try {
    env = parseEnv(readFileSync(e.file, 'utf8'));
  } catch (err) {
    throw new UserError(`mediaBucket.credentialsFromEnv.file: cannot read ${e.file}; run permafrost as a user that may read it.`, {
      cause: err,
    });
  }
  const value = (name: string): string => {
    const v = env[name]?.trim();
    if (!v) throw new UserError(`mediaBucket.credentialsFromEnv: ${e.file} sets no ${name}; name the variable that holds the key.`);
    return v;
  };
  return { accessKeyId: value(e.accessKeyId), secretAccessKey: value(e.secretAccessKey) };
}

function mediaBucketSide(m: MediaBucket, keys = readMediaBucketKeys(m)): BucketSide {
  const loc = { bucket: m.bucket, prefix: normalizePrefix(m.prefix) };
  return { client: s3ClientFor(m, keys), loc, describe: `media bucket ${describeTarget(undefined, loc)}`, section: 'mediaBucket' };
}

/** The target's media folder as a side of a copy. */
function targetMediaSide(t: OpenTarget): BucketSide {
  return {
    client: t.client,
    loc: { bucket: t.location.bucket, prefix: `${t.location.prefix}${MEDIA_DIR}` },
    describe: t.describe,
    section: `offsite[${t.name}]`,
  };
}

/** One endpoint on both sides (same URL, or both AWS in one region): CopyObject works there. */
function sameServer(a: Pick<MediaBucket, 'endpoint' | 'region'>, b: Pick<MediaBucket, 'endpoint' | 'region'>): boolean {
  const norm = (u: string | undefined): string => (u === undefined ? '' : new URL(u).origin);
  return norm(a.endpoint) === norm(b.endpoint) && (a.endpoint !== undefined || a.region === b.region);
}

/** Copies every planned path with `copy`, in order; the first failure ends the run (what was copied stays: the next run goes on). */
async function copyAll(
  plan: ReturnType<typeof planCopy>,
  copy: (rel: string) => Promise<void>,
  signal?: AbortSignal,
): Promise<{ copied: number; bytes: number }> {
  let copied = 0;
  for (const rel of plan.copy) {
    if (signal?.aborted)
      throw new PermafrostError(
        'stopped',
        `Stopped after copying ${copied} of ${plan.copy.length} media files; the next run copies the rest.`,
      );
    await copy(rel);
    copied++;
  }
  return { copied, bytes: plan.bytes };
}

export interface MediaRunOptions {
  target?: string;
  /** GET→PUT even where the endpoint is the same (the target's keys may not read the media bucket, which CopyObject needs). */
  streamed?: boolean;
  signal?: AbortSignal;
  now?: () => Date;
}

/** `permafrost offsite media`: the media bucket and media.dir (whichever are configured) to each selected target. */
export async function runMediaCopy(config: Config, opts: MediaRunOptions = {}): Promise<MediaCopyResult[]> {
  const targets = selectTargets(config.offsite, opts.target);
  if (!config.mediaBucket && !config.media)
    throw new UserError(
      'no media is configured: add mediaBucket (Mastodon with S3_ENABLED=true; `permafrost init` writes it) or media.dir (public/system) to the config.',
    );
  // Keys are read once, before anything is copied.
  const source = config.mediaBucket ? mediaBucketSide(config.mediaBucket) : null;
  const results: MediaCopyResult[] = [];
  for (const t of targets) {
    const open = openTarget(t);
    try {
      const dst = targetMediaSide(open);
      const copyOpts: CopyOptions = { lock: t.lock, now: opts.now, signal: opts.signal };
      if (source && config.mediaBucket) {
        const [src, there] = await Promise.all([listBucket(source, opts.signal), listBucket(dst, opts.signal)]);
        const plan = planCopy(src.entries, there.entries);
        const mode = !opts.streamed && sameServer(config.mediaBucket, t) ? 'server-side' : 'streamed';
        const done = await copyAll(
          plan,
          (rel) => (mode === 'server-side' ? copyServerSide(source, dst, rel, copyOpts) : copyStreamed(source, dst, rel, copyOpts)),
          opts.signal,
        );
        results.push({ from: source.describe, to: open.describe, mode, ...done, unchanged: plan.unchanged, foreign: src.foreign });
      }
      if (config.media) {
        const dir = config.media.dir;
        const [local, there] = await Promise.all([listFolder(dir), listBucket(dst, opts.signal)]);
        const plan = planCopy(local, there.entries);
        const done = await copyAll(plan, (rel) => uploadFile(dir, dst, rel, copyOpts), opts.signal);
        results.push({ from: dir, to: open.describe, mode: 'upload', ...done, unchanged: plan.unchanged, foreign: 0 });
      }
    } finally {
      open.client.destroy();
    }
  }
  source?.client.destroy();
  return results;
}

export interface MediaRestoreOptions extends MediaRunOptions {
  /** A folder to restore into (public/system of a new server); otherwise the config's mediaBucket. */
  to?: string;
}

/**
 * `permafrost offsite media-restore`: a target's `<prefix>media/` back into a folder (`--to DIR`) or
 * into the config's mediaBucket, incrementally (what is already there with its size is skipped).
 */
export async function runMediaRestore(config: Config, opts: MediaRestoreOptions = {}): Promise<MediaCopyResult> {
  const all = selectTargets(config.offsite, opts.target);
  const t = all[0]!;
  if (all.length > 1)
    throw new UserError(`several offsite targets are configured (${all.map((x) => x.name).join(', ')}); name one with --target.`);
  if (opts.to === undefined && !config.mediaBucket)
    throw new UserError('say where the media goes: --to DIR (e.g. /home/mastodon/live/public/system), or configure mediaBucket.');
  const dest = opts.to === undefined && config.mediaBucket ? mediaBucketSide(config.mediaBucket) : null;
  const open = openTarget(t);
  try {
    const src = targetMediaSide(open);
    const listed = await listBucket(src, opts.signal);
    if (dest && config.mediaBucket) {
      const plan = planCopy(listed.entries, (await listBucket(dest, opts.signal)).entries);
      const mode = !opts.streamed && sameServer(config.mediaBucket, t) ? 'server-side' : 'streamed';
      const copyOpts: CopyOptions = { signal: opts.signal, now: opts.now };
      const done = await copyAll(
        plan,
        (rel) => (mode === 'server-side' ? copyServerSide(src, dest, rel, copyOpts) : copyStreamed(src, dest, rel, copyOpts)),
        opts.signal,
      );
      return { from: open.describe, to: dest.describe, mode, ...done, unchanged: plan.unchanged, foreign: listed.foreign };
    }
    const dir = opts.to!;
    const plan = planCopy(listed.entries, await listFolder(dir).catch(() => new Map()));
    const done = await copyAll(plan, (rel) => downloadFile(src, rel, dir, opts.signal), opts.signal);
    return { from: open.describe, to: dir, mode: 'download', ...done, unchanged: plan.unchanged, foreign: listed.foreign };
  } finally {
    open.client.destroy();
    dest?.client.destroy();
  }
}
