/**
 * A bucket read as a vault (`list`, `check`, `verify`, `restore` with `--vault s3://…` or
 * `--target NAME`): its listing and manifests as the vault's snapshot entries, and one snapshot
 * with its delta chain brought into a local folder, ciphertext as it is in the bucket, for the
 * local verify and restore to read unchanged. Everything the bucket returns is hostile: manifests
 * are bounded and parsed by the schema with their own id, downloads are cut at the size the
 * manifest lists, and only the files a manifest names (plus its signature) are fetched.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import { errorMessage, IntegrityError, PermafrostError, UserError } from '../errors.js';
import { VAULT_NAMES, type Vault } from '../vault/layout.js';
import { MANIFEST_NAME, MAX_CHAIN_DEPTH, SIGNATURE_NAME } from '../vault/manifest.js';
import { isFuture, MAX_MANIFEST_BYTES, parseManifest, snapshotIdTime, type SnapshotEntry } from '../vault/store.js';
import type { SnapshotReader, StorageListing } from '../vault/storage.js';

/** A detached signature is a few hundred bytes; anything near this is not one. */
export const MAX_SIGNATURE_BYTES = 64 * 1024;
/** RESTORE.md, restore.sh and signer.pub.asc are a few KiB each. */
export const MAX_RUNBOOK_BYTES = 4 * 1024 * 1024;

/** A complete snapshot of the bucket as the vault's listing shows it; `manifestBytes` exactly as read (signatures are over them). */
export interface BucketEntry extends SnapshotEntry {
  manifestBytes: Buffer | null;
}

export interface BucketSnapshots {
  /** Complete snapshots (manifest.json there), newest first; one whose manifest cannot be used carries its `problem`. */
  entries: BucketEntry[];
  /** Snapshots without manifest.json (an upload not finished): never listed, never restored. */
  incomplete: string[];
  listing: StorageListing;
}

/** The listing and each complete snapshot's manifest, read with the same bounds and schema as a vault folder's. */
export async function readBucketSnapshots(
  reader: SnapshotReader,
  opts: { signal?: AbortSignal; now?: Date } = {},
): Promise<BucketSnapshots> {
  const now = opts.now ?? new Date();
  const listing = await reader.list(opts.signal);
  const entries: BucketEntry[] = [];
  const incomplete: string[] = [];
  for (const s of listing.snapshots) {
    const time = snapshotIdTime(s.id);
    if (!time) continue;
    if (!s.complete) {
      incomplete.push(s.id);
      continue;
    }
    const dir = `${reader.describe.replace(/\/$/, '')}/${s.id}`;
    const base = { id: s.id, dir, time, future: isFuture(time, now) };
    let bytes: Buffer;
    try {
      bytes = await reader.readSmall(s.id, MANIFEST_NAME, MAX_MANIFEST_BYTES, opts.signal);
    } catch (err) {
      // A huge manifest is this snapshot's problem; a bucket that stopped answering is the run's.
      if (err instanceof PermafrostError && err.kind === 'integrity') {
        entries.push({
          ...base,
          manifest: null,
          manifestBytes: null,
          problem: `${dir}/${MANIFEST_NAME} is larger than any manifest (at most ${MAX_MANIFEST_BYTES} bytes)`,
        });
        continue;
      }
      throw err;
    }
    const read = parseManifest(bytes.toString('utf8'), `${dir}/${MANIFEST_NAME}`, s.id);
    entries.push(
      'manifest' in read
        ? { ...base, manifest: read.manifest, manifestBytes: bytes }
        : { ...base, manifest: null, manifestBytes: null, problem: read.problem },
    );
  }
  return { entries, incomplete, listing };
}

/** The signature of a snapshot in the bucket, or null when there is none. */
export async function readBucketSignature(
  reader: SnapshotReader,
  entry: BucketEntry,
  listing: StorageListing,
  signal?: AbortSignal,
): Promise<Buffer | null> {
  const files = listing.snapshots.find((s) => s.id === entry.id)?.files ?? [];
  if (!files.some((f) => f.name === SIGNATURE_NAME)) return null;
  return reader.readSmall(entry.id, SIGNATURE_NAME, MAX_SIGNATURE_BYTES, signal);
}

/**
 * The snapshot `ref` names ("latest"/undefined: the newest complete one not dated in the future),
 * refused with one sentence when it is missing or incomplete; one whose manifest cannot be used is
 * returned with its problem (check reports it).
 */
export function findBucketSnapshot(found: BucketSnapshots, ref: string | undefined, where: string, listCommand: string): BucketEntry {
  if (ref === undefined || ref === 'latest') {
    const newest = found.entries.find((e) => !e.future);
    if (!newest) {
      const why = found.incomplete.length > 0 ? ` (only incomplete uploads: ${found.incomplete.join(', ')})` : '';
      throw new UserError(
        `No complete snapshot in ${where}${why}: push one there first (permafrost offsite push), or check the bucket and prefix.`,
      );
    }
    return newest;
  }
  const entry = found.entries.find((e) => e.id === ref);
  if (entry) return entry;
  if (found.incomplete.includes(ref)) {
    throw new UserError(
      `Snapshot ${ref} in ${where} is incomplete (no ${MANIFEST_NAME}: its upload did not finish), so it is never restored; pick a complete one (\`${listCommand}\`), or push it again.`,
    );
  }
  throw new UserError(`No snapshot named ${ref} in ${where}: run \`${listCommand}\` to see the snapshots.`);
}

/** findBucketSnapshot, refused (exit 3) when its manifest cannot be used: what verify and restore read. */
export function pickBucketSnapshot(found: BucketSnapshots, ref: string | undefined, where: string, listCommand: string): BucketEntry {
  const entry = findBucketSnapshot(found, ref, where, listCommand);
  if (!entry.manifest) {
    throw new IntegrityError(
      `Snapshot ${entry.id} failed its integrity check: ${entry.problem ?? 'its manifest cannot be used'}; restore another snapshot, and find out who wrote this one.`,
    );
  }
  return entry;
}

/** The snapshot and every link of its delta chain that the bucket holds, the snapshot first (a missing link is for the local check to name). */
export function chainOf(entry: BucketEntry, entries: readonly BucketEntry[]): BucketEntry[] {
  const byId = new Map(entries.map((e) => [e.id, e]));
  const out = [entry];
  let c = entry.manifest?.chain;
  for (let n = 0; c?.reference && n <= MAX_CHAIN_DEPTH; n++) {
    const link = byId.get(c.reference);
    if (!link || out.includes(link)) break;
    out.push(link);
    c = link.manifest?.chain;
  }
  return out;
}

/** Passes at most `limit` bytes, then fails naming the file: a bucket cannot fill the disk with a file longer than its manifest says. */
function capped(limit: number, what: string, bound: string): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      seen += chunk.length;
      if (seen > limit)
        done(
          new IntegrityError(
            `${what} is longer than ${bound} (${limit} bytes); it was changed in the bucket, so use another snapshot or copy.`,
          ),
        );
      else done(null, chunk);
    },
  });
}

/** Downloads one object to `file` (created 0600, never over an existing one), cut at `limit` bytes. */
async function download(
  reader: SnapshotReader,
  id: string | undefined,
  name: string,
  file: string,
  limit: number,
  signal?: AbortSignal,
  bound = `the size its manifest lists`,
): Promise<void> {
  const what = `${reader.describe.replace(/\/$/, '')}/${id === undefined ? name : `${id}/${name}`}`;
  const body = await reader.read(id, name, signal);
  try {
    await pipeline(body, capped(limit, what, bound), createWriteStream(file, { flags: 'wx', mode: 0o600 }), { signal });
  } catch (err) {
    if (err instanceof PermafrostError) throw err;
    if (signal?.aborted) throw new PermafrostError('stopped', `Stopped while downloading ${what}; nothing was restored.`, { cause: err });
    throw new PermafrostError('remote', `${what} could not be downloaded (${errorMessage(err)}); run again.`, { cause: err });
  }
}

/**
 * Brings snapshots (a snapshot and its chain) and the bucket's runbook files into `vault` as
 * a vault folder holds them: for each, the manifest exactly as read, its signature, and the parts
 * its manifest names, each cut at its listed size. The local verify and restore then check all of it.
 */
export async function fetchSnapshots(
  reader: SnapshotReader,
  chain: readonly BucketEntry[],
  listing: StorageListing,
  vault: Vault,
  signal?: AbortSignal,
): Promise<void> {
  for (const f of listing.rootFiles) {
    const name = VAULT_NAMES.runbook.find((n) => n === f.name);
    if (name) await download(reader, undefined, name, vault.runbookFile(name), MAX_RUNBOOK_BYTES, signal, `any ${name} permafrost writes`);
  }
  for (const entry of chain) {
    if (!entry.manifest || !entry.manifestBytes) continue;
    await mkdir(vault.snapshotDir(entry.id), { mode: 0o700 });
    const stored = new Set((listing.snapshots.find((s) => s.id === entry.id)?.files ?? []).map((f) => f.name));
    await writeFile(vault.snapshotFile(entry.id, MANIFEST_NAME), entry.manifestBytes, { flag: 'wx', mode: 0o600 });
    if (stored.has(SIGNATURE_NAME))
      await download(
        reader,
        entry.id,
        SIGNATURE_NAME,
        vault.snapshotFile(entry.id, SIGNATURE_NAME),
        MAX_SIGNATURE_BYTES,
        signal,
        'any signature',
      );
    for (const f of entry.manifest.files) {
      if (stored.has(f.name)) await download(reader, entry.id, f.name, vault.snapshotFile(entry.id, f.name), f.bytes, signal);
    }
  }
}

/** SHA-256 and length of one object, streamed (check --read-data). */
export async function hashObject(
  reader: SnapshotReader,
  id: string,
  name: string,
  signal?: AbortSignal,
): Promise<{ sha256: string; bytes: number }> {
  const body = await reader.read(id, name, signal);
  const h = createHash('sha256');
  let bytes = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      h.update(chunk);
      bytes += chunk.length;
    }
  } catch (err) {
    if (signal?.aborted) throw new PermafrostError('stopped', `Stopped while reading ${reader.describe} ${id}/${name}.`, { cause: err });
    throw new PermafrostError('remote', `${reader.describe}: ${id}/${name} could not be read whole (${errorMessage(err)}); run again.`, {
      cause: err,
    });
  }
  return { sha256: h.digest('hex'), bytes };
}
