import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { IntegrityError, UserError } from '../errors.js';
import { fsyncDir, writeFileAtomic } from './fs-durable.js';
import { MANIFEST_NAME, type Manifest } from './manifest.js';

/** Snapshot folder names: UTC time without ':' (backup devices may be Windows). */
export const SNAPSHOT_ID_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2})-(\d{2})-(\d{2})Z$/;
/** In-progress snapshots; never listed, never replicated, removed by the next run. */
export const PARTIAL_PREFIX = '.partial-';

export function snapshotIdFor(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/:/g, '-');
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
  /** Why the manifest could not be read, when it could not. */
  problem?: string;
}

/** Reads the manifest of one snapshot folder. */
export async function readManifest(dir: string): Promise<Manifest> {
  const file = path.join(dir, MANIFEST_NAME);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new IntegrityError(`Snapshot ${path.basename(dir)} has no readable ${MANIFEST_NAME}; it failed its integrity check.`, {
      cause: err,
    });
  }
  try {
    return JSON.parse(text) as Manifest;
  } catch (err) {
    throw new IntegrityError(`Snapshot ${path.basename(dir)} has a corrupt ${MANIFEST_NAME}; it failed its integrity check.`, {
      cause: err,
    });
  }
}

/** All complete snapshots in the vault, newest first. Partial folders and other files are ignored. */
export async function listSnapshots(vaultDir: string): Promise<SnapshotEntry[]> {
  let names: string[];
  try {
    names = await readdir(vaultDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new UserError(`vault.dir: cannot read ${vaultDir}; check it exists and is readable.`, { cause: err });
  }
  const entries: SnapshotEntry[] = [];
  for (const id of names) {
    const time = snapshotIdTime(id);
    if (!time) continue;
    const dir = path.join(vaultDir, id);
    if (!(await stat(dir)).isDirectory()) continue;
    try {
      entries.push({ id, dir, time, manifest: await readManifest(dir) });
    } catch (err) {
      entries.push({ id, dir, time, manifest: null, problem: (err as Error).message });
    }
  }
  return entries.sort((a, b) => b.id.localeCompare(a.id));
}

/** Finds a snapshot by id, or the newest for 'latest'/undefined. */
export async function findSnapshot(vaultDir: string, ref: string | undefined): Promise<SnapshotEntry> {
  const all = await listSnapshots(vaultDir);
  if (ref === undefined || ref === 'latest') {
    const newest = all[0];
    if (!newest) throw new UserError(`No snapshot in ${vaultDir} yet: run \`permafrost backup\` first.`);
    return newest;
  }
  const found = all.find((s) => s.id === ref || s.dir === path.resolve(ref));
  if (!found) {
    throw new UserError(`No snapshot named ${ref} in ${vaultDir}: run \`permafrost list\` to see the snapshots.`);
  }
  return found;
}

/** A snapshot folder being written under a hidden temporary name. */
export interface PartialSnapshot {
  dir: string;
  vaultDir: string;
}

export async function createPartial(vaultDir: string, id: string): Promise<PartialSnapshot> {
  await mkdir(vaultDir, { recursive: true, mode: 0o750 });
  const dir = path.join(vaultDir, `${PARTIAL_PREFIX}${id}-${process.pid}`);
  await mkdir(dir, { mode: 0o750 });
  return { dir, vaultDir };
}

/**
 * Writes the manifest, fsyncs the folder and renames it to its final name. If that name is
 * taken (two runs within one second), the next free second is used; the manifest keeps the true times.
 */
export async function commitPartial(partial: PartialSnapshot, manifest: Manifest): Promise<string> {
  let time = snapshotIdTime(manifest.id) ?? new Date();
  let id = manifest.id;
  while (await exists(path.join(partial.vaultDir, id))) {
    time = new Date(time.getTime() + 1000);
    id = snapshotIdFor(time);
  }
  const final = { ...manifest, id };
  await writeFileAtomic(path.join(partial.dir, MANIFEST_NAME), `${JSON.stringify(final, null, 2)}\n`);
  await fsyncDir(partial.dir);
  const target = path.join(partial.vaultDir, id);
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
    await rm(path.join(vaultDir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}
