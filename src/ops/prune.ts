import { lstat, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { effectiveTimeZone } from '../config/schema-schedule.js';
import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { readVerifyState } from '../recover/verify-state.js';
import { acquireLock } from '../vault/lock.js';
import { fsyncDir } from '../vault/fs-durable.js';
import { applyRetention, type Dated, type KeepPolicy, type KeepReason } from '../vault/retention.js';
import { SNAPSHOT_ID_RE, listSnapshots, type SnapshotEntry } from '../vault/store.js';
import { openVault, VAULT_NAMES } from '../vault/layout.js';

/** Deleted snapshots are first renamed to this hidden prefix, so a crash mid-delete never leaves a half snapshot under a snapshot name; leftovers are removed with the partials of dead runs. */
export const PRUNING_PREFIX = VAULT_NAMES.pruningPrefix;

export interface PruneResult {
  dryRun: boolean;
  timezone: string;
  /** null without vault.keep: nothing is pruned, everything is kept. */
  policy: KeepPolicy | null;
  /** Newest first, each with why it is kept. */
  kept: Array<{ id: string; reasons: KeepReason[] }>;
  /** Newest first: deleted, or with dryRun, what would be deleted. */
  removed: string[];
  /** Snapshot folders left alone because their manifest cannot be read (never deleted, never counted). */
  ignored: Array<{ id: string; problem: string }>;
}

/**
 * A backup device's prune: vault.keep applied to everything it holds (the receive-only folder and
 * Syncthing's `.stversions`), deleting only in `.stversions`, which Syncthing never syncs: deleting
 * in the folder itself would make "locally changed" items, and the server prunes those anyway
 * (Syncthing then moves them into `.stversions`, where the next prune finds them). A kept delta
 * keeps its chain wherever its links are, so a `.stversions` copy a kept snapshot needs stays.
 * Version folders without a usable manifest older than every kept snapshot (the oldest kept is
 * the base of the oldest kept chain) cannot be restored and go too.
 */
async function pruneDevice(config: Config, policy: KeepPolicy | null, timezone: string, dryRun: boolean): Promise<PruneResult> {
  const vaultDir = path.resolve(config.vault.dir);
  const verified = await readVerifyState(vaultDir);
  const all = await listSnapshots(vaultDir, { versions: true });
  const usable = all
    .filter((s) => s.manifest !== null)
    .map((s) => ({ ...s, verified: verified[s.id]?.ok === true, chain: s.manifest?.chain ?? null }));
  const plan = policy
    ? applyRetention(usable, policy, timezone)
    : { keep: usable.map((c) => ({ ...c, reasons: [] as KeepReason[] })), remove: [] };
  const oldestKept = plan.keep.at(-1)?.id ?? '';
  const doomed = [
    ...plan.remove.filter((s) => s.versionsOnly),
    ...(policy ? all.filter((s) => s.versionsOnly && s.manifest === null && s.id < oldestKept) : []),
  ];
  const removed: string[] = [];
  for (const snap of doomed.sort((a, b) => b.id.localeCompare(a.id))) {
    if (!dryRun) await rm(openVault(vaultDir).versionsDir(snap.id), { recursive: true, force: true });
    removed.push(snap.id);
  }
  const gone = new Set(removed);
  return {
    dryRun,
    timezone,
    policy,
    // What the server will prune is kept here until Syncthing moves it into .stversions.
    kept: [...plan.keep, ...plan.remove.filter((s) => !s.versionsOnly).map((s) => ({ ...s, reasons: [] as KeepReason[] }))]
      .sort((a, b) => b.id.localeCompare(a.id))
      .map((s) => ({ id: s.id, reasons: s.reasons })),
    removed,
    ignored: all
      .filter((s) => s.manifest === null && !gone.has(s.id))
      .map((s) => ({ id: s.id, problem: s.problem ?? 'unreadable manifest' })),
  };
}

/**
 * Applies vault.keep to the vault (on a backup device: to its `.stversions`, see pruneDevice). The
 * caller must hold the vault's run lock (runPrune takes it; backup calls this while it still holds its own).
 */
export async function pruneHoldingLock(config: Config, opts: { dryRun?: boolean } = {}): Promise<PruneResult> {
  const policy = config.vault.keep ?? null;
  if (config.role === 'receiver') return pruneDevice(config, policy, effectiveTimeZone(config.schedule), Boolean(opts.dryRun));
  const timezone = effectiveTimeZone(config.schedule);
  const vaultDir = path.resolve(config.vault.dir);
  const verified = await readVerifyState(vaultDir);
  const candidates: Array<SnapshotEntry & Dated> = [];
  const ignored: PruneResult['ignored'] = [];
  for (const snap of await listSnapshots(vaultDir)) {
    // Only real folders (not symlinks) named exactly like a snapshot, right in the vault, are ever counted or deleted.
    const st = await lstat(snap.dir).catch(() => null);
    if (!SNAPSHOT_ID_RE.test(snap.id) || path.dirname(snap.dir) !== vaultDir || !st?.isDirectory()) {
      ignored.push({ id: snap.id, problem: 'not a real folder (a symlink?); left alone' });
    } else if (snap.manifest === null) {
      ignored.push({ id: snap.id, problem: snap.problem ?? 'unreadable manifest' });
    } else {
      candidates.push({ ...snap, verified: verified[snap.id]?.ok === true, chain: snap.manifest.chain ?? null });
    }
  }
  // Without a policy everything is kept (and said so), as before a policy existed.
  const plan = policy
    ? applyRetention(candidates, policy, timezone)
    : { keep: candidates.map((c) => ({ ...c, reasons: [] as KeepReason[] })), remove: [] };
  const removed: string[] = [];
  for (const snap of plan.remove) {
    if (!opts.dryRun) {
      const trash = openVault(vaultDir).pruningDir(snap.id);
      await rename(snap.dir, trash);
      await fsyncDir(vaultDir);
      await rm(trash, { recursive: true, force: true });
    }
    removed.push(snap.id);
  }
  return {
    dryRun: Boolean(opts.dryRun),
    timezone,
    policy,
    kept: plan.keep.map((s) => ({ id: s.id, reasons: s.reasons })),
    removed,
    ignored,
  };
}

/** `permafrost prune`: takes the vault's run lock (so it never races a backup), then applies vault.keep. */
export async function runPrune(config: Config, opts: { dryRun?: boolean } = {}): Promise<PruneResult> {
  const lock = acquireLock(config.vault.dir, 'prune');
  try {
    return await pruneHoldingLock(config, opts);
  } finally {
    lock.release();
  }
}

/**
 * Prune step of a backup run, after the snapshot is committed and while the backup holds the lock.
 * Does nothing without vault.keep; a failure becomes a warning, never a failed backup.
 */
export async function pruneAfterBackup(config: Config): Promise<{ result: PruneResult | null; warnings: string[] }> {
  if (!config.vault.keep) return { result: null, warnings: [] };
  try {
    return { result: await pruneHoldingLock(config), warnings: [] };
  } catch (err) {
    return {
      result: null,
      warnings: [`the snapshot was written, but pruning old snapshots failed: ${errorMessage(err)} Run \`permafrost prune\` to retry.`],
    };
  }
}
