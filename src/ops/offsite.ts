import type { RunContext } from '../run-context.js';
import { createHash } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { effectiveTimeZone } from '../config/schema-schedule.js';
import type { Config } from '../config/schema.js';
import type { OffsiteTarget } from '../config/schema-offsite.js';
import { errorMessage, IntegrityError, PermafrostError, UserError, type ErrorKind } from '../errors.js';
import { lockedUntil, lockMissingError, objectLockEnabled } from '../offsite/lock-config.js';
import { recordOffsiteTarget, type OffsiteTargetState } from '../offsite/state.js';
import { keyOf } from '../offsite/target.js';
import { readVerifyState } from '../recover/verify-state.js';
import { openVault } from '../vault/layout.js';
import { acquireLock } from '../vault/lock.js';
import { MANIFEST_NAME, SIGNATURE_NAME, type Manifest } from '../vault/manifest.js';
import { applyRetention, chainNeeds, type Dated } from '../vault/retention.js';
import type { SnapshotReader, StorageListing, StoredSnapshot } from '../vault/storage.js';
import { folderStorage } from '../vault/storage-fs.js';
import { isFuture, listSnapshots, MAX_MANIFEST_BYTES, parseManifest, snapshotIdTime, type SnapshotEntry } from '../vault/store.js';
import { openTarget, selectTargets, type OpenTarget } from './offsite-open.js';

/** Far above any runbook file permafrost writes (RESTORE.md, restore.sh, signer.pub.asc are a few KiB). */
const MAX_RUNBOOK_BYTES = 1024 * 1024;
/** A detached signature is a few hundred bytes. */
const MAX_SIGNATURE_BYTES = 64 * 1024;

/** What to push: the snapshots newer than the target's newest complete one (default, and after each backup), every one, or one by id; each with its delta chain. */
export type PushSelection = 'new' | 'all' | { id: string };

/** What retention on a target did. */
export interface TargetRetention {
  kept: number;
  /** Deleted (newest first). */
  removed: string[];
  /** Due for deletion but still locked until the date: left for a later push. */
  waiting: Array<{ id: string; until: string }>;
  /** Deletes the bucket refused (an Object Lock in force): reported, retried at the next push, never a failure. */
  refused: Array<{ id: string; why: string }>;
  /** Complete snapshots whose manifest in the bucket cannot be read: never counted, never deleted. */
  ignored: Array<{ id: string; problem: string }>;
}

/** One target's push. */
export interface TargetPush {
  target: string;
  describe: string;
  /** Snapshots made complete in the bucket by this push, oldest first. */
  pushed: string[];
  /** Files uploaded (and their bytes); files already there with the right size were skipped. */
  uploaded: { files: number; bytes: number };
  skippedFiles: number;
  /** Local snapshots that could not be pushed (a damaged folder), each with why; the others still go. */
  problems: Array<{ id: string; problem: string }>;
  /** Keys in the bucket that are not permafrost's: never read, never deleted. */
  foreign: number;
  newestComplete: string | null;
  retention: TargetRetention | null;
  /** The failure that stopped this target (its kind, one sentence and exit code); null when it succeeded. */
  error: { kind: ErrorKind; message: string; exitCode: number } | null;
}

export interface PushResult {
  targets: TargetPush[];
}

/** Passes a file through while hashing it; fails the stream at its end when size or SHA-256 differ from the manifest, so the upload is never completed. */
class Verifying extends Transform {
  private readonly hash = createHash('sha256');
  private bytes = 0;

  constructor(
    private readonly want: { bytes: number; sha256: string },
    private readonly what: string,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    if (this.bytes > this.want.bytes) return cb(this.mismatch());
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    cb(this.bytes === this.want.bytes && this.hash.digest('hex') === this.want.sha256 ? null : this.mismatch());
  }

  private mismatch(): IntegrityError {
    return new IntegrityError(
      `${this.what} differs from its manifest (size or SHA-256) while it was read for upload, so it was not uploaded; run \`permafrost check\` on the vault.`,
    );
  }
}

/** One file to upload, in order: the parts, then manifest.json.sig, then manifest.json. */
interface Upload {
  name: string;
  bytes: number;
  sha256: string;
  /** Small files (manifest, signature) are read whole first, so their hash is known before the request. */
  body?: Buffer;
}

async function snapshotUploads(
  local: SnapshotReader,
  snap: SnapshotEntry & { manifest: Manifest },
  onDisk: StoredSnapshot | undefined,
): Promise<Upload[]> {
  const has = (name: string, bytes?: number): boolean =>
    onDisk?.files.some((f) => f.name === name && (bytes === undefined || f.bytes === bytes)) ?? false;
  for (const f of snap.manifest.files) {
    if (!has(f.name))
      throw new IntegrityError(
        `${snap.dir}/${f.name} is missing, so snapshot ${snap.id} cannot be pushed whole; run \`permafrost check\`.`,
      );
    if (!has(f.name, f.bytes))
      throw new IntegrityError(
        `${snap.dir}/${f.name} does not have the size its manifest says, so snapshot ${snap.id} is not pushed; run \`permafrost check\`.`,
      );
  }
  const small = async (name: string, max: number): Promise<Upload> => {
    const body = await local.readSmall(snap.id, name, max);
    return { name, bytes: body.length, sha256: createHash('sha256').update(body).digest('hex'), body };
  };
  return [
    ...snap.manifest.files.map((f) => ({ name: f.name, bytes: f.bytes, sha256: f.sha256 })),
    ...(has(SIGNATURE_NAME) ? [await small(SIGNATURE_NAME, MAX_SIGNATURE_BYTES)] : []),
    await small(MANIFEST_NAME, MAX_MANIFEST_BYTES),
  ];
}

/** One file up: small ones from memory, big ones streamed from disk through a second hash against the manifest. */
async function uploadOne(t: OpenTarget, reader: SnapshotReader, snap: SnapshotEntry, u: Upload, signal?: AbortSignal): Promise<void> {
  if (u.body) return t.storage.write(snap.id, u.name, Readable.from([u.body]), { bytes: u.bytes, sha256: u.sha256, signal });
  const verifying = new Verifying(u, `${snap.dir}/${u.name}`);
  // A read error reaches the upload through the verifying stream (pipeline destroys it with the error).
  pipeline(await reader.read(snap.id, u.name), verifying).catch(() => undefined);
  try {
    await t.storage.write(snap.id, u.name, verifying, { bytes: u.bytes, sha256: u.sha256, signal });
  } finally {
    verifying.destroy();
  }
}

/** Which local snapshots to push to a target whose listing is `remote`: oldest first, each with what its chain needs, none already complete there. */
export function choosePushes(
  usable: readonly (SnapshotEntry & { manifest: Manifest })[],
  remote: StorageListing,
  sel: PushSelection,
  now: Date,
): Array<SnapshotEntry & { manifest: Manifest }> {
  const complete = new Set(remote.snapshots.filter((s) => s.complete).map((s) => s.id));
  const dated = usable.map((s) => ({ ...s, chain: s.manifest.chain ?? null }));
  let wanted: typeof dated;
  if (sel === 'all') wanted = dated;
  else if (sel === 'new') {
    // A snapshot the bucket holds dated in the future must not stop every real one from going.
    const newest =
      [...complete]
        .filter((id) => !isFuture(snapshotIdTime(id) ?? now, now))
        .sort()
        .at(-1) ?? '';
    wanted = dated.filter((s) => s.id > newest);
  } else {
    const one = dated.find((s) => s.id === sel.id);
    if (!one)
      throw new UserError(
        `snapshot ${sel.id} is not in the vault (or its manifest cannot be read); \`permafrost list\` shows the snapshots.`,
      );
    wanted = [one];
  }
  const ids = new Set(wanted.flatMap((s) => [s.id, ...chainNeeds(s, dated).map((n) => n.id)]));
  return usable.filter((s) => ids.has(s.id) && !complete.has(s.id)).sort((a, b) => a.id.localeCompare(b.id));
}

/** Retention on the target (its `keep`): the GFS plan of vault/retention.ts over what the bucket holds; deletes only what is past its lock and not needed by a kept snapshot's chain. */
async function targetRetention(
  t: OpenTarget,
  listing: StorageListing,
  opts: { timezone: string; verified: Record<string, { ok: boolean } | undefined>; now: Date; signal?: AbortSignal },
): Promise<TargetRetention> {
  const keep = t.target.keep!;
  const out: TargetRetention = { kept: 0, removed: [], waiting: [], refused: [], ignored: [] };
  const candidates: Array<Dated & { manifest: Manifest }> = [];
  for (const s of listing.snapshots.filter((x) => x.complete)) {
    const time = snapshotIdTime(s.id)!;
    try {
      const text = (await t.storage.readSmall(s.id, MANIFEST_NAME, MAX_MANIFEST_BYTES, opts.signal)).toString('utf8');
      const read = parseManifest(text, keyOf(t.location, `${s.id}/${MANIFEST_NAME}`), s.id);
      if ('problem' in read) out.ignored.push({ id: s.id, problem: read.problem });
      else
        candidates.push({
          id: s.id,
          time,
          manifest: read.manifest,
          chain: read.manifest.chain ?? null,
          verified: opts.verified[s.id]?.ok === true,
          future: isFuture(time, opts.now),
        });
    } catch (err) {
      if (err instanceof PermafrostError && err.kind === 'connection') throw err;
      out.ignored.push({ id: s.id, problem: errorMessage(err) });
    }
  }
  const plan = applyRetention(candidates, keep, opts.timezone);
  out.kept = plan.keep.length;
  for (const snap of plan.remove) {
    const until = await lockedUntil(
      t.client,
      t.location,
      keyOf(t.location, `${snap.id}/${MANIFEST_NAME}`),
      t.target.lock?.days,
      t.describe,
      opts.signal,
    );
    if (until && until > opts.now) {
      out.waiting.push({ id: snap.id, until: until.toISOString() });
      continue;
    }
    // Only the names the snapshot's own manifest gives (and the manifest and its signature): nothing else under its id is touched.
    const own = new Set<string>([...snap.manifest.files.map((f) => f.name), SIGNATURE_NAME, MANIFEST_NAME]);
    const listed = listing.snapshots
      .find((x) => x.id === snap.id)!
      .files.map((f) => f.name)
      .filter((n) => own.has(n));
    const r = await t.storage.remove(snap.id, listed, opts.signal);
    if (r.refused.length > 0) out.refused.push({ id: snap.id, why: r.refused[0]!.why });
    else out.removed.push(snap.id);
  }
  return out;
}

/** Uploads the runbook files the vault holds when the bucket's copy is missing or different. */
async function pushRunbook(
  t: OpenTarget,
  local: SnapshotReader,
  localListing: StorageListing,
  remote: StorageListing,
  signal?: AbortSignal,
): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const f of localListing.rootFiles) {
    const body = await local.readSmall(undefined, f.name, MAX_RUNBOOK_BYTES);
    if (remote.rootFiles.some((r) => r.name === f.name && r.bytes === body.length)) {
      const there = await t.storage.readSmall(undefined, f.name, MAX_RUNBOOK_BYTES, signal).catch(() => null);
      if (there?.equals(body)) continue;
    }
    await t.storage.write(undefined, f.name, Readable.from([body]), {
      bytes: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
      signal,
    });
    files++;
    bytes += body.length;
  }
  return { files, bytes };
}

/** One target: lock check, listing, the snapshots in order (parts, signature, manifest last), the runbook, retention. Throws its failure. */
async function pushTarget(
  config: Config,
  t: OpenTarget,
  local: { reader: SnapshotReader; listing: StorageListing; usable: Array<SnapshotEntry & { manifest: Manifest }> },
  sel: PushSelection,
  result: TargetPush,
  signal?: AbortSignal,
): Promise<{ bytes: number; objects: number }> {
  const now = new Date();
  if (t.target.lock && !(await objectLockEnabled(t.client, t.location, t.describe, signal)))
    throw lockMissingError(t.describe, t.location.bucket);
  const remote = await t.storage.list(signal);
  result.foreign = remote.foreign.length;
  for (const snap of choosePushes(local.usable, remote, sel, now)) {
    const there = remote.snapshots.find((s) => s.id === snap.id);
    let uploads: Upload[];
    try {
      uploads = await snapshotUploads(
        local.reader,
        snap,
        local.listing.snapshots.find((s) => s.id === snap.id),
      );
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err;
      result.problems.push({ id: snap.id, problem: err.message });
      continue;
    }
    try {
      for (const u of uploads) {
        // Resume: a file already there at its full size was uploaded whole (an upload is atomic), so it is skipped.
        if (u.name !== MANIFEST_NAME && there?.files.some((f) => f.name === u.name && f.bytes === u.bytes)) {
          result.skippedFiles++;
          continue;
        }
        await uploadOne(t, local.reader, snap, u, signal);
        result.uploaded.files++;
        result.uploaded.bytes += u.bytes;
      }
    } catch (err) {
      // A part that no longer matches its manifest stops this snapshot (its manifest never goes up), not the others.
      if (!(err instanceof IntegrityError)) throw err;
      result.problems.push({ id: snap.id, problem: err.message });
      continue;
    }
    result.pushed.push(snap.id);
  }
  const runbook = await pushRunbook(t, local.reader, local.listing, remote, signal);
  result.uploaded.files += runbook.files;
  result.uploaded.bytes += runbook.bytes;
  const after = await t.storage.list(signal);
  if (t.target.keep) {
    result.retention = await targetRetention(t, after, {
      timezone: effectiveTimeZone(config.schedule),
      verified: await readVerifyState(config.vault.dir),
      now,
      signal,
    });
  }
  const final =
    result.retention && (result.retention.removed.length > 0 || result.retention.refused.length > 0) ? await t.storage.list(signal) : after;
  result.newestComplete =
    final.snapshots
      .filter((s) => s.complete && !isFuture(snapshotIdTime(s.id) ?? now, now))
      .map((s) => s.id)
      .sort()
      .at(-1) ?? null;
  const own = [...final.snapshots.flatMap((s) => s.files), ...final.rootFiles];
  return { bytes: own.reduce((n, f) => n + f.bytes, 0), objects: own.length };
}

function recordOutcome(
  prev: OffsiteTargetState,
  r: TargetPush,
  totals: { bytes: number; objects: number } | undefined,
  at: string,
): OffsiteTargetState {
  const newest =
    r.newestComplete === null
      ? prev.newestComplete
      : { id: r.newestComplete, pushedAt: prev.newestComplete?.id === r.newestComplete ? prev.newestComplete.pushedAt : at };
  return {
    newestComplete: newest,
    lastAttemptAt: at,
    lastSuccessAt: r.error ? prev.lastSuccessAt : at,
    lastError: r.error?.message ?? null,
    failingSince: r.error ? (prev.failingSince ?? at) : null,
    bytes: totals?.bytes ?? prev.bytes,
    objects: totals?.objects ?? prev.objects,
    lockedDeletes: r.retention ? r.retention.refused.length : prev.lockedDeletes,
  };
}

/** Pushes to every selected target while the caller holds the vault's run lock; each target's outcome is recorded (offsite/state.ts), a failure never stops the others. */
export async function pushHoldingLock(
  config: Config,
  opts: { selection?: PushSelection; target?: string; signal?: AbortSignal } = {},
): Promise<PushResult> {
  const targets: OffsiteTarget[] = selectTargets(config.offsite, opts.target);
  const reader = folderStorage(openVault(config.vault.dir));
  const listing = await reader.list();
  // Folders without a usable manifest are never pushed (`permafrost check` reports them).
  const usable = (await listSnapshots(config.vault.dir)).filter((s): s is SnapshotEntry & { manifest: Manifest } => s.manifest !== null);
  const out: PushResult = { targets: [] };
  for (const target of targets) {
    const at = new Date().toISOString();
    const r: TargetPush = {
      target: target.name,
      describe: target.name,
      pushed: [],
      uploaded: { files: 0, bytes: 0 },
      skippedFiles: 0,
      problems: [],
      foreign: 0,
      newestComplete: null,
      retention: null,
      error: null,
    };
    let open: OpenTarget | undefined;
    let totals: { bytes: number; objects: number } | undefined;
    try {
      open = openTarget(target);
      r.describe = open.describe;
      totals = await pushTarget(config, open, { reader, listing, usable }, opts.selection ?? 'new', r, opts.signal);
    } catch (err) {
      const e = err instanceof PermafrostError ? err : new PermafrostError('internal', errorMessage(err), { cause: err });
      r.error = { kind: e.kind, message: e.message, exitCode: e.exitCode };
    } finally {
      open?.client.destroy();
    }
    await recordOffsiteTarget(openVault(config.vault.dir), target.name, (prev) => recordOutcome(prev, r, totals, at));
    out.targets.push(r);
  }
  return out;
}

/** The first failed target's error (for the CLI's exit code), null when every target succeeded. */
export function pushFailure(r: PushResult): PermafrostError | null {
  const failed = r.targets.find((t) => t.error !== null);
  if (!failed?.error) {
    const damaged = [...new Set(r.targets.flatMap((t) => t.problems.map((p) => p.id)))];
    return damaged.length === 0
      ? null
      : new IntegrityError(
          `${damaged.length} snapshot(s) were not pushed because the vault's copy does not match its manifest (${damaged.join(', ')}); run \`permafrost check\`.`,
        );
  }
  const others = r.targets.filter((t) => t.error !== null && t !== failed).map((t) => `${t.describe}: ${t.error!.message}`);
  return new PermafrostError(failed.error.kind, failed.error.message, { details: others });
}

/** `permafrost offsite push`: takes the run lock (never racing a backup or prune), pushes, and throws the first target's failure after every target was tried and recorded. */
export async function runOffsitePush(
  config: Config,
  ctx: RunContext,
  opts: { selection?: PushSelection; target?: string } = {},
): Promise<PushResult> {
  selectTargets(config.offsite, opts.target);
  const lock = acquireLock(config.vault.dir, 'offsite push');
  try {
    return await pushHoldingLock(config, { ...opts, signal: ctx.signal });
  } finally {
    lock.release();
  }
}

/** The push step of a backup run (after commit and prune, under the backup's lock): never fails the backup, each failed target is a warning. */
export async function pushAfterBackup(config: Config, ctx: RunContext): Promise<string[]> {
  try {
    const r = await pushHoldingLock(config, { selection: 'new', signal: ctx.signal });
    return r.targets.flatMap((t) => [
      ...(t.error
        ? [
            `the snapshot is safe in vault.dir, but pushing it to ${t.describe} failed: ${t.error.message} The next backup (or \`permafrost offsite push\`) resumes where it stopped.`,
          ]
        : []),
      ...t.problems.map((p) => `${t.describe}: snapshot ${p.id} was not pushed: ${p.problem}`),
    ]);
  } catch (err) {
    return [
      `the snapshot is safe in vault.dir, but the offsite push could not start: ${errorMessage(err)} Run \`permafrost offsite push\` to retry.`,
    ];
  }
}
