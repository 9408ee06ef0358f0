/**
 * What a backup device knows about itself from its own disk: the newest snapshot it holds
 * complete, when it arrived (the dead-man alarm and the true lag), and how much disk its copies use.
 */
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import { DEFAULT_STALE_AFTER_S } from '../config/schema-replicate.js';
import { chainProblem, type LinkState } from '../vault/check.js';
import { MANIFEST_NAME, MAX_CHAIN_DEPTH } from '../vault/manifest.js';
import { listSnapshots, type SnapshotEntry } from '../vault/store.js';
import type { Vault } from '../vault/layout.js';

/** The snapshot's commit time: the manifest's finishedAt (the folder name when unreadable). */
export function finishedAt(s: SnapshotEntry): Date {
  const t = s.manifest?.finishedAt ? Date.parse(s.manifest.finishedAt) : Number.NaN;
  return Number.isNaN(t) ? s.time : new Date(t);
}

/**
 * When every file of the snapshot was on this disk with the manifest's size, or null while one is
 * missing or short. Syncthing writes each file under a temporary name and renames it into place
 * (then sets its mtime to the source's), so the newest ctime among the files is the moment the
 * device held the snapshot complete: recorded by the file system, however late anyone looks.
 */
export async function arrivedAt(s: SnapshotEntry): Promise<Date | null> {
  if (!s.manifest) return null;
  let last = 0;
  for (const f of [{ name: MANIFEST_NAME, bytes: -1 }, ...s.manifest.files]) {
    const st = await lstat(path.join(s.dir, f.name)).catch(() => null);
    if (!st?.isFile() || (f.bytes >= 0 && st.size !== f.bytes)) return null;
    last = Math.max(last, st.ctimeMs);
  }
  return new Date(last);
}

export interface DeviceFreshness {
  /** The newest snapshot (not from the future) held complete in the folder itself. */
  newest: { id: string; finishedAt: string; arrivedAt: string; ageSeconds: number; lagSeconds: number } | null;
  staleAfterSeconds: number;
  /** No complete snapshot, or the newest is older than staleAfter: the server (or the link) went quiet. */
  stale: boolean;
  /** One sentence when stale. */
  problem: string | null;
}

/**
 * When `s` became restorable here: its own arrival, and for a delta the latest arrival along its
 * chain (each link back to the base complete in the folder, or kept in `.stversions`, and of the
 * chain: vault/check.ts chainProblem); null while any of that is missing or incomplete.
 */
async function restorableAt(s: SnapshotEntry, byId: ReadonlyMap<string, SnapshotEntry>): Promise<Date | null> {
  let last = await arrivedAt(s);
  if (!last || !s.manifest) return null;
  for (let c = s.manifest.chain, n = 0; c?.reference && n <= MAX_CHAIN_DEPTH; n++) {
    const link = byId.get(c.reference);
    if (!link?.manifest) return null;
    if (!link.versionsOnly) {
      const at = await arrivedAt(link);
      if (!at) return null;
      if (at > last) last = at;
    }
    c = link.manifest.chain;
  }
  // Every link walked above is here and complete; what is left to judge is whether they form the chain.
  const here = (id: string): LinkState | undefined => {
    const e = byId.get(id);
    return e && { manifest: e.manifest, state: 'ok' };
  };
  return chainProblem(s.manifest, here) === null ? last : null;
}

/** The device's newest complete snapshot (a delta: with its whole chain) and whether it is older than syncthing.staleAfter (default 2h). */
export async function deviceFreshness(config: Config, now = new Date()): Promise<DeviceFreshness> {
  const staleAfterSeconds = config.syncthing?.staleAfter ?? DEFAULT_STALE_AFTER_S;
  const all = await listSnapshots(config.vault.dir, { versions: true });
  const byId = new Map(all.map((e) => [e.id, e]));
  for (const s of all) {
    if (s.future || s.versionsOnly) continue;
    const at = await restorableAt(s, byId);
    if (!at) continue;
    const done = finishedAt(s);
    const ageSeconds = Math.round((now.getTime() - done.getTime()) / 1000);
    const stale = ageSeconds > staleAfterSeconds;
    return {
      newest: {
        id: s.id,
        finishedAt: done.toISOString(),
        arrivedAt: at.toISOString(),
        ageSeconds,
        lagSeconds: Math.max(0, Math.round((at.getTime() - done.getTime()) / 1000)),
      },
      staleAfterSeconds,
      stale,
      problem: stale
        ? `the newest complete snapshot here, ${s.id}, is ${ageSeconds}s old, older than syncthing.staleAfter (${staleAfterSeconds}s): check that the server still makes backups and that Syncthing connects`
        : null,
    };
  }
  return {
    newest: null,
    staleAfterSeconds,
    stale: true,
    problem: `no complete snapshot in ${config.vault.dir}: check that the server makes backups and that Syncthing shares the folder (permafrost sync apply on both sides)`,
  };
}

async function treeBytes(p: string): Promise<number> {
  const st = await lstat(p).catch(() => null);
  if (!st) return 0;
  if (!st.isDirectory()) return st.blocks * 512;
  let n = 0;
  for (const name of await readdir(p).catch(() => [] as string[])) n += await treeBytes(path.join(p, name));
  return n;
}

/** Disk used by the snapshots a device holds: in the folder itself and in Syncthing's `.stversions` (allocated bytes). */
export async function deviceDiskUse(vault: Vault): Promise<{ snapshotBytes: number; versionsBytes: number }> {
  let snapshotBytes = 0;
  for (const s of await listSnapshots(vault.dir)) snapshotBytes += await treeBytes(s.dir);
  return { snapshotBytes, versionsBytes: await treeBytes(vault.versionsDir()) };
}
