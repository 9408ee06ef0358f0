import { effectiveTimeZone } from '../config/schema-schedule.js';
import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { readAlertState, type AlertState } from '../notify/alerts.js';
import { readLastVerifyRun, readVerifyState, verifyStatus, type VerifyStatus } from '../recover/verify-state.js';
import type { DeviceStatus, FolderCompletion, ReplicationStatus } from '../replicate/status.js';
import type { FailedPart, ManifestFile } from '../vault/manifest.js';
import type { KeepPolicy } from '../vault/retention.js';
import { checkStatus, readCheckState, type CheckStatus } from '../vault/check.js';
import { listSnapshots } from '../vault/store.js';
import { diskSpace } from '../vault/fs-durable.js';

export interface SnapshotRow {
  id: string;
  /** Start of the backup (from the manifest; the folder name when the manifest is unreadable). */
  startedAt: string;
  finishedAt: string | null;
  durationMs: number | null;
  /** Encrypted bytes on disk, all parts. */
  bytes: number | null;
  plainBytes: number | null;
  parts: Array<Pick<ManifestFile, 'part' | 'bytes' | 'plainBytes' | 'durationMs'>>;
  verified: VerifyStatus;
  verifiedAt: string | null;
  verifyReason: string | null;
  problem: string | null;
  /** `permafrost check`'s verdict (sizes and SHA-256 against the manifest) and what it found wrong. */
  checked: CheckStatus;
  checkProblems: string[];
  /** Parts that failed in this backup (the snapshot holds the rest). */
  failed: FailedPart[];
  /** Dated in the future (a clock that ran ahead): never counted as the newest. */
  future: boolean;
}

/** Everything the status page and /metrics show, read from the vault and its state files. */
export interface Overview {
  generatedAt: string;
  host: string | null;
  snapshots: SnapshotRow[];
  /** The most recent verify run, also one that failed before reaching a verdict (snapshot null: none was chosen). */
  lastVerify: { snapshot: string | null; ok: boolean; checkedAt: string; durationMs: number; reason: string | null } | null;
  alerts: AlertState;
  /** When `permafrost check` last ran; null when never. */
  lastCheck: { checkedAt: string; durationMs: number; failed: string[] } | null;
  /** vault.keep; null when none is set (then snapshots pile up until the disk is full). */
  retention: KeepPolicy | null;
  /** null when no syncthing section is configured. */
  replication: ReplicationView | null;
  replicationError: string | null;
  /** schedule.timezone (else the system's): the page shows times in it. */
  timeZone: string;
  /** Free and total bytes of the file system holding vault.dir; null when it cannot be read. */
  disk: { free: number; total: number } | null;
  /** Whether this host is expected to have an off-site copy: a source (a receiver is the copy). */
  needsOffsite: boolean;
  /** Whether a syncthing section is configured (replication is null also when no reader was passed). */
  syncthingConfigured: boolean;
}

/**
 * The part of replication status (src/replicate/status.ts) shown here. Derived by a type-only
 * import, so the two cannot drift apart while this module still loads no Syncthing code.
 */
export type ReplicationView = Pick<ReplicationStatus, 'reachable' | 'error' | 'problems' | 'staleAfterSeconds' | 'device'> & {
  devices: Array<
    Pick<
      DeviceStatus,
      'name' | 'connected' | 'lastSeen' | 'newestSnapshotComplete' | 'newestOnDevice' | 'lagSeconds' | 'lagPending' | 'stale' | 'problem'
    > & {
      folders: Array<Pick<FolderCompletion, 'folder' | 'completion'>>;
    }
  >;
};

/** Asks for replication status; the CLI and daemon pass src/replicate/status.ts's replicationStatus. */
export type ReplicationReader = (config: Config) => Promise<ReplicationView>;

/** Reads the vault (manifests, verify results, alert state) and, when configured, replication status. */
export async function readOverview(config: Config, opts: { replication?: ReplicationReader; now?: Date } = {}): Promise<Overview> {
  const snaps = await listSnapshots(config.vault.dir);
  const verified = await readVerifyState(config.vault.dir);
  const checks = await readCheckState(config.vault.dir);
  const rows: SnapshotRow[] = snaps.map((s) => {
    const m = s.manifest;
    const v = verified[s.id];
    const files = m?.files ?? [];
    return {
      id: s.id,
      startedAt: m?.startedAt ?? s.time.toISOString(),
      finishedAt: m?.finishedAt ?? null,
      durationMs: m ? Date.parse(m.finishedAt) - Date.parse(m.startedAt) : null,
      bytes: m ? files.reduce((n, f) => n + f.bytes, 0) : null,
      plainBytes: m ? files.reduce((n, f) => n + f.plainBytes, 0) : null,
      parts: files.map(({ part, bytes, plainBytes, durationMs }) => ({ part, bytes, plainBytes, durationMs })),
      verified: verifyStatus(v),
      verifiedAt: v?.checkedAt ?? null,
      verifyReason: v?.reason ?? null,
      problem: s.problem ?? null,
      checked: checkStatus(checks.snapshots[s.id]),
      checkProblems: checks.snapshots[s.id]?.problems ?? [],
      failed: m?.failed ?? [],
      future: s.future,
    };
  });
  // The last run, not the newest verdict: a verify that could not check its snapshot (or whose snapshot was pruned since) counts.
  const lastRun = await readLastVerifyRun(config.vault.dir);
  const lastVerify: Overview['lastVerify'] = lastRun && { ...lastRun, reason: lastRun.reason ?? null };
  let replication: ReplicationView | null = null;
  let replicationError: string | null = null;
  if (opts.replication) {
    try {
      replication = await opts.replication(config);
    } catch (err) {
      replicationError = errorMessage(err);
    }
  }
  let disk: Overview['disk'] = null;
  try {
    disk = await diskSpace(config.vault.dir);
  } catch {
    disk = null; // a vault not created yet: the snapshot list already says so
  }
  return {
    generatedAt: (opts.now ?? new Date()).toISOString(),
    host: snaps.find((s) => s.manifest)?.manifest?.host ?? null,
    snapshots: rows,
    lastVerify,
    alerts: await readAlertState(config.vault.dir),
    lastCheck: checks.lastRun ?? null,
    retention: config.vault.keep ?? null,
    replication,
    replicationError,
    timeZone: effectiveTimeZone(config.schedule),
    disk,
    needsOffsite: config.role === 'source',
    syncthingConfigured: config.syncthing !== undefined,
  };
}
