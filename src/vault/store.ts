import { constants, type Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { describeIssues } from '../schema-issues.js';
import { errorMessage, PermafrostError, UserError } from '../errors.js';
import { sha256File } from '../crypto/hash.js';
import { fsyncDir, writeFileAtomic } from './fs-durable.js';
import { MANIFEST_NAME, manifestSchema, SIGNATURE_NAME, type Manifest } from './manifest.js';
import { openVault, VAULT_NAMES, type Vault } from './layout.js';

/** Snapshot folder names: UTC time without ':' (backup devices may be Windows). */
export const SNAPSHOT_ID_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2})-(\d{2})-(\d{2})Z$/;
/** In-progress snapshots; never listed, never replicated, removed by the next run. */
export const PARTIAL_PREFIX = VAULT_NAMES.partialPrefix;

export function snapshotIdFor(date: Date): string {
  return date
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/:/g, '-');
}

export function snapshotIdTime(id: string): Date | null {
  const m = SNAPSHOT_ID_RE.exec(id);
  if (!m) return null;
  return new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`);
}

export interface SnapshotEntry {
  id: string;
  dir: string;
  time: Date;
  manifest: Manifest | null;
  /** Why this entry is damaged (no usable manifest, a symlink, …), naming the file; set exactly when manifest is null. */
  problem?: string;
  /** Dated later than now (a clock that ran ahead when it was taken): listed, kept, but never taken as the newest. */
  future: boolean;
  /**
   * Held only in Syncthing's `.stversions` (a backup device keeps what the server pruned): `dir` is
   * `.stversions/<id>` and its files carry version stamps, so read them through partPath.
   */
  versionsOnly?: true;
}

/** Syncthing's versioning folder inside a receive-only folder (Syncthing never syncs it, so the device may prune it). */
export const VERSIONS_DIR = VAULT_NAMES.versions;
/** Syncthing's simple/staggered/trashcan name of a replaced file: `database.pgdump~20261201-130000.gpg`. */
const VERSION_NAME_RE = /^(.+)~(\d{8}-\d{6})(\.[^.~/]+)?$/;

/** One copy Syncthing's versioning kept of a snapshot file. */
export interface VersionCopy {
  /** The file's name in the snapshot (`database.pgdump.gpg`). */
  name: string;
  path: string;
  /** When Syncthing replaced or deleted it (`20261201-130000`, local time of the device). */
  stamp: string;
  bytes: number;
}

/** The copies `.stversions/<id>/` holds, newest stamp first; none when there is no such folder. */
export async function versionCopies(vault: Vault, id: string): Promise<VersionCopy[]> {
  const dir = vault.versionsDir(id);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const copies: VersionCopy[] = [];
  for (const n of names) {
    const m = VERSION_NAME_RE.exec(n);
    if (!m) continue;
    const st = await lstat(path.join(dir, n)).catch(() => null);
    if (!st?.isFile()) continue;
    copies.push({ name: `${m[1]}${m[3] ?? ''}`, path: path.join(dir, n), stamp: m[2]!, bytes: st.size });
  }
  return copies.sort((a, b) => b.stamp.localeCompare(a.stamp));
}

/** Snapshots that live only in `.stversions` (pruned on the server, kept by the device), each from its newest valid manifest copy. */
async function versionOnlySnapshots(vault: Vault, skip: ReadonlySet<string>, now: Date): Promise<SnapshotEntry[]> {
  let ids: string[];
  try {
    ids = await readdir(vault.versionsDir());
  } catch {
    return [];
  }
  const entries: SnapshotEntry[] = [];
  for (const id of ids) {
    const time = snapshotIdTime(id);
    if (!time || skip.has(id)) continue;
    const dir = vault.versionsDir(id);
    let problem = `${dir} holds no copy of ${MANIFEST_NAME}`;
    let manifest: Manifest | null = null;
    for (const c of (await versionCopies(vault, id)).filter((v) => v.name === MANIFEST_NAME)) {
      const text = await readManifestText(c.path).catch((err: unknown) => ({ problem: `${c.path} cannot be read (${errorMessage(err)})` }));
      const read = typeof text === 'string' ? parseManifest(text, c.path, id) : text;
      if ('manifest' in read) {
        manifest = read.manifest;
        break;
      }
      problem = read.problem;
    }
    const base = { id, dir, time, future: isFuture(time, now), versionsOnly: true as const };
    entries.push(manifest ? { ...base, manifest } : { ...base, manifest: null, problem });
  }
  return entries;
}

/** Where a snapshot file's bytes are to be read, and whether that is a copy Syncthing's versioning kept. */
export interface PartLocation {
  path: string;
  /** Set when the good copy is in `.stversions` (the current file was changed after commit, or the snapshot was pruned on the server). */
  version?: VersionCopy;
}

/**
 * The copy of `name` that matches the manifest: the file in the snapshot folder, unless Syncthing's
 * versioning kept other copies and the current one differs from the manifest (changed on the server
 * after commit), then the kept copy whose size and SHA-256 match. Hashes only when there is a choice;
 * with no good copy, the current path (whoever reads it reports the damage).
 */
export async function partPath(s: SnapshotEntry, name: string): Promise<PartLocation> {
  const current = path.join(s.dir, name);
  const vaultDir = s.versionsOnly ? path.dirname(path.dirname(s.dir)) : path.dirname(s.dir);
  const want = s.manifest?.files.find((f) => f.name === name);
  const copies = (await versionCopies(openVault(vaultDir), s.id)).filter((c) => c.name === name);
  if (!want || copies.length === 0) return { path: current };
  if (!s.versionsOnly) {
    const st = await lstat(current).catch(() => null);
    if (st?.isFile() && st.size === want.bytes && (await sha256File(current)).sha256 === want.sha256) return { path: current };
  }
  for (const c of copies) {
    if (c.bytes === want.bytes && (await sha256File(c.path)).sha256 === want.sha256) return { path: c.path, version: c };
  }
  return { path: s.versionsOnly ? copies[0]!.path : current };
}

/** How far ahead of this machine's clock a snapshot may be dated before it counts as from the future (clock skew between hosts). */
const FUTURE_TOLERANCE_MS = 5 * 60_000;

/** Whether a snapshot taken at `time` lies in the future as seen at `now`. */
export function isFuture(time: Date, now: Date): boolean {
  return time.getTime() > now.getTime() + FUTURE_TOLERANCE_MS;
}

/** A snapshot folder's manifest, or why it cannot be used (a phrase naming the file). */
type ManifestRead = { manifest: Manifest } | { problem: string } | { vanished: true };

/**
 * Reads and checks the manifest of the snapshot folder `id`: valid JSON, the schema (known part
 * file names only), and an `id` equal to the folder name.
 */
/** Far above any real manifest (a few KiB, a row count per table), far below what hurts a small NAS. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/**
 * A manifest file's text, or the problem that keeps it from being one. Whoever writes the vault
 * may leave a FIFO (a plain read would wait forever), a device file, a symlink or a huge file
 * there: opened without following links and without blocking, and read only when it is a regular
 * file of bounded size.
 */
async function readManifestText(file: string): Promise<string | { problem: string }> {
  const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = await handle.stat();
    if (!st.isFile()) return { problem: `${file} is not a regular file` };
    if (st.size > MAX_MANIFEST_BYTES)
      return { problem: `${file} is ${st.size} bytes, more than any manifest (at most ${MAX_MANIFEST_BYTES})` };
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

async function readManifest(dir: string, id: string): Promise<ManifestRead> {
  const file = path.join(dir, MANIFEST_NAME);
  let text: string;
  try {
    const read = await readManifestText(file);
    if (typeof read !== 'string') return read;
    text = read;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // The whole folder went away between readdir and here: a prune renamed it.
    if (code === 'ENOENT' && !(await exists(dir))) return { vanished: true };
    return { problem: code === 'ENOENT' ? `${file} is missing` : `${file} cannot be read (${code ?? errorMessage(err)})` };
  }
  return parseManifest(text, file, id);
}

/** A manifest's text checked: JSON, the schema, and an `id` equal to the snapshot folder's name. */
export function parseManifest(text: string, file: string, id: string): { manifest: Manifest } | { problem: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { problem: `${file} is not valid JSON` };
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success)
    return { problem: `${file} is not a valid manifest (${describeIssues(parsed.error.issues).slice(0, 3).join('; ')})` };
  if (parsed.data.id !== id) return { problem: `${file} belongs to snapshot ${parsed.data.id}, not to its folder ${id}` };
  return { manifest: parsed.data };
}

/**
 * All snapshots in the vault, newest first. Partial folders and other files are ignored. One bad
 * entry never hides the others: a folder without a usable manifest, or a symlink named like a
 * snapshot (never followed: what it points at is outside the vault's control), is listed with a
 * `problem`; an entry that vanishes while listing (a racing prune) is skipped. With `versions`, the
 * snapshots a backup device holds only in Syncthing's `.stversions` are listed too (`versionsOnly`).
 */
export async function listSnapshots(vaultDir: string, opts: { versions?: boolean } = {}): Promise<SnapshotEntry[]> {
  let names: string[];
  try {
    names = await readdir(vaultDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new UserError(`vault.dir: cannot read ${vaultDir}; check it exists and is readable.`, { cause: err });
  }
  const entries: SnapshotEntry[] = [];
  const now = new Date();
  for (const id of names) {
    const time = snapshotIdTime(id);
    if (!time) continue;
    const dir = openVault(vaultDir).snapshotDir(id);
    const future = isFuture(time, now);
    const damaged = (problem: string): number => entries.push({ id, dir, time, manifest: null, problem, future });
    let st: Stats;
    try {
      st = await lstat(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      damaged(`${dir} cannot be examined (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`);
      continue;
    }
    if (st.isSymbolicLink()) {
      damaged(`${dir} is a symbolic link, which permafrost never follows (put the snapshot folder itself there, or remove the link)`);
      continue;
    }
    if (!st.isDirectory()) continue;
    const read = await readManifest(dir, id);
    if ('vanished' in read) continue;
    if ('problem' in read) damaged(read.problem);
    else entries.push({ id, dir, time, manifest: read.manifest, future });
  }
  if (opts.versions) entries.push(...(await versionOnlySnapshots(openVault(vaultDir), new Set(entries.map((e) => e.id)), now)));
  return entries.sort((a, b) => b.id.localeCompare(a.id));
}

/**
 * The newest complete snapshot from the past and its size (sum of its files): what the next one will
 * be like. `whole`: the newest full snapshot or base (in delta mode the next one may be a base).
 */
export async function newestSnapshotSize(vaultDir: string, opts: { whole?: boolean } = {}): Promise<{ id: string; bytes: number } | null> {
  const newest = (await listSnapshots(vaultDir)).find(
    (s) => s.manifest && !s.future && (!opts.whole || s.manifest.chain?.kind !== 'delta'),
  );
  return newest?.manifest ? { id: newest.id, bytes: newest.manifest.files.reduce((n, f) => n + f.bytes, 0) } : null;
}

/**
 * Finds a snapshot by id, or the newest for 'latest'/undefined. 'latest' is refused while a
 * snapshot dated in the future sits in the vault: it is newest by name but may hold older data
 * than the snapshots after it, and guessing which one the user means could restore stale data.
 */
export async function findSnapshot(vaultDir: string, ref: string | undefined): Promise<SnapshotEntry> {
  // A device's `.stversions` copies are restorable too; "latest" still means the newest in the folder itself.
  const all = await listSnapshots(vaultDir, { versions: ref !== undefined && ref !== 'latest' });
  if (ref === undefined || ref === 'latest') {
    const newest = all[0];
    if (!newest) throw new UserError(`No snapshot in ${vaultDir} yet: run \`permafrost backup\` first.`);
    const future = all.filter((s) => s.future);
    if (future.length > 0) {
      const real = all.find((s) => !s.future);
      throw new UserError(
        `Snapshot ${future.map((s) => s.id).join(', ')} in ${vaultDir} is dated in the future (the clock ran ahead when it was taken?), so "latest" is not clear: ` +
          `name the snapshot to use${real ? ` (the newest from the past is ${real.id})` : ''}, and move the future-dated one out of vault.dir once it is not needed.`,
      );
    }
    return newest;
  }
  const found = all.find((s) => s.id === ref || s.dir === path.resolve(ref));
  if (!found) {
    throw new UserError(`No snapshot named ${ref} in ${vaultDir}: run \`permafrost list\` to see the snapshots.`);
  }
  return found;
}

/**
 * When `snapshot`'s folder is gone (a prune removed it after it was chosen), the one sentence
 * saying so (exit 1: nothing is wrong with the snapshot that was, run again); else null.
 */
export async function vanishedSnapshotError(snapshot: SnapshotEntry, doing: string, cause: unknown): Promise<PermafrostError | null> {
  if (await exists(snapshot.dir)) return null;
  return new PermafrostError('io', `Snapshot ${snapshot.id} was removed while ${doing} (a prune ran meanwhile?); run again.`, { cause });
}

/** A snapshot folder being written under a hidden temporary name. */
export interface PartialSnapshot {
  dir: string;
  vaultDir: string;
}

export async function createPartial(vaultDir: string, id: string): Promise<PartialSnapshot> {
  await mkdir(vaultDir, { recursive: true, mode: 0o750 });
  const dir = openVault(vaultDir).partialDir(id);
  await mkdir(dir, { mode: 0o750 });
  return { dir, vaultDir };
}

/**
 * The newest snapshot id in the vault folder that is not dated in the future, or null. A new
 * snapshot's id must sort after it: retention and every chain read newest-first by id.
 */
async function newestPastId(vaultDir: string, now: Date): Promise<string | null> {
  const names = await readdir(vaultDir).catch(() => [] as string[]);
  let newest: string | null = null;
  for (const name of names) {
    const time = snapshotIdTime(name);
    if (time && !isFuture(time, now) && (newest === null || name > newest)) newest = name;
  }
  return newest;
}

/**
 * Writes the manifest (and its detached signature when `sign` is given), fsyncs the folder and
 * renames it to its final name. If that name is taken, or an existing snapshot sorts after it (two
 * runs within one second, whose earlier one was moved to a later second), the second after the
 * newest is used, so ids only ever grow: a delta is never named before the snapshot it is built
 * on. The manifest keeps the true times.
 */
export async function commitPartial(
  partial: PartialSnapshot,
  manifest: Manifest,
  sign?: (manifest: Buffer) => Promise<string>,
): Promise<string> {
  let time = snapshotIdTime(manifest.id) ?? new Date();
  let id = manifest.id;
  const newest = await newestPastId(partial.vaultDir, new Date());
  if (newest !== null && id <= newest) {
    time = new Date(snapshotIdTime(newest)!.getTime() + 1000);
    id = snapshotIdFor(time);
  }
  const vault = openVault(partial.vaultDir);
  while (await exists(vault.snapshotDir(id))) {
    time = new Date(time.getTime() + 1000);
    id = snapshotIdFor(time);
  }
  // A base is its own chain's base, under the id it is finally committed as.
  const final = manifest.chain?.kind === 'base' ? { ...manifest, id, chain: { ...manifest.chain, base: id } } : { ...manifest, id };
  const text = `${JSON.stringify(final, null, 2)}\n`;
  await writeFileAtomic(path.join(partial.dir, MANIFEST_NAME), text);
  if (sign) await writeFileAtomic(path.join(partial.dir, SIGNATURE_NAME), await sign(Buffer.from(text)));
  await fsyncDir(partial.dir);
  const target = vault.snapshotDir(id);
  await rename(partial.dir, target);
  await fsyncDir(partial.vaultDir);
  return id;
}

export async function discardPartial(partial: PartialSnapshot): Promise<void> {
  await rm(partial.dir, { recursive: true, force: true });
}

/** Removes partial folders left by runs that died; call only while holding the run lock. */
export async function cleanStalePartials(vaultDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(vaultDir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(PARTIAL_PREFIX)) continue;
    await rm(openVault(vaultDir).leftover(name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

const VAULT_WRITE_CODES: Record<string, string> = {
  ENOSPC: 'is full (ENOSPC)',
  EDQUOT: 'is over its disk quota (EDQUOT)',
  EROFS: 'is on a read-only file system (EROFS)',
};

/** The errno code of a write error that is the vault's disk's fault, found anywhere in `err`'s cause chain. */
export function vaultWriteCode(err: unknown): string | null {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code && code in VAULT_WRITE_CODES) return code;
  }
  return null;
}

/**
 * One sentence for a backup stopped by its vault's disk (full, over quota, read-only), or null for
 * any other error. Exit 1: nothing is wrong with permafrost or the database, the disk needs room.
 */
export function vaultWriteError(vaultDir: string, err: unknown): PermafrostError | null {
  const code = vaultWriteCode(err);
  if (!code) return null;
  return new PermafrostError(
    'space',
    `vault.dir ${vaultDir} ${VAULT_WRITE_CODES[code]}, so no snapshot was written (a dump cut short by the disk cannot be trusted, so the database part is not kept either); ` +
      `${code === 'EROFS' ? 'remount it read-write' : 'free some space (`permafrost prune`, or a bigger disk)'} and run the backup again.`,
    { cause: err },
  );
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}
