import path from 'node:path';

/**
 * Every name permafrost gives a file or folder inside a vault, in one place. Snapshot folders
 * (`2026-11-26T07-40-00Z/`) are what the backup wrote and what replication carries; everything
 * permafrost keeps for itself starts with `.permafrost` (or is an in-progress `.partial-` folder),
 * so that one ignore pattern keeps it on this host.
 */
export const VAULT_NAMES = {
  /** The run lock (schedule/lock.ts). */
  lock: '.permafrost.lock',
  /** In-progress snapshots: `.partial-<id>-<pid>/`, renamed to `<id>/` when complete (store.ts). */
  partialPrefix: '.partial-',
  /** Atomic writes' temp names (fs-durable.ts). */
  atomicTempPrefix: '.permafrost-tmp-',
  /** Syncthing's versioning folder on a backup device: replaced and deleted files, by snapshot id. */
  versions: '.stversions',
  /** The runbook beside the snapshots (runbook.ts), rewritten after every backup; the signer's public key with it in a signed vault. */
  runbook: ['RESTORE.md', 'restore.sh', 'signer.pub.asc'] as const,
  /** Small JSON state files, each with its schema in the module that owns it. */
  state: {
    /** notify/alerts.ts: which alerts are failing, delivery failures. */
    alerts: '.permafrost-alerts.json',
    /** vault/check.ts: the last check of each snapshot. */
    check: '.permafrost-check.json',
    /** recover/verify-state.ts: the last verify of each snapshot. */
    verify: '.permafrost-verify.json',
    /** replicate/status.ts: when each device was first seen holding each snapshot. */
    replication: '.permafrost-replication.json',
    /** offsite/state.ts: per offsite target, the last push, what the bucket holds, the last error. */
    offsite: '.permafrost-offsite.json',
  },
  /** capture/delta-state.ts: the private delta state folder, its next copy while a backup runs, and the old one while it is swapped. */
  delta: { dir: '.permafrost-delta', nextPrefix: '.permafrost-delta.next-', oldPrefix: '.permafrost-delta.old-' },
} as const;

export type StateFileName = keyof typeof VAULT_NAMES.state;

/**
 * Patterns (Syncthing's .stignore syntax, anchored at the folder root) that keep what is this
 * host's own out of replication: in-progress snapshots and every `.permafrost*` file.
 */
export const VAULT_IGNORES: readonly string[] = [`/${VAULT_NAMES.partialPrefix}*`, '/.permafrost*'];

/** A vault folder: the paths inside it, by what they hold. Nothing else joins paths inside a vault. */
export interface Vault {
  readonly dir: string;
  /** A committed snapshot's folder. */
  snapshotDir(id: string): string;
  /** A file of a committed snapshot. */
  snapshotFile(id: string, name: string): string;
  /** An in-progress snapshot's folder for this process. */
  partialDir(id: string, pid?: number): string;
  /** Syncthing's versioning folder, or a snapshot's copies in it. */
  versionsDir(id?: string): string;
  /** A state file, by what it records. */
  stateFile(name: StateFileName): string;
  readonly lockFile: string;
  /** The delta state folder, and the next one this process writes. */
  deltaStateDir(): string;
  deltaNextDir(pid?: number): string;
  /** A runbook file at the vault root. */
  runbookFile(name: (typeof VAULT_NAMES.runbook)[number]): string;
}

/** The vault at `dir` (nothing is read or created: the layout only). */
export function openVault(dir: string): Vault {
  const at = (...names: string[]): string => path.join(dir, ...names);
  return {
    dir,
    snapshotDir: (id) => at(id),
    snapshotFile: (id, name) => at(id, name),
    partialDir: (id, pid = process.pid) => at(`${VAULT_NAMES.partialPrefix}${id}-${pid}`),
    versionsDir: (id) => (id === undefined ? at(VAULT_NAMES.versions) : at(VAULT_NAMES.versions, id)),
    stateFile: (name) => at(VAULT_NAMES.state[name]),
    lockFile: at(VAULT_NAMES.lock),
    deltaStateDir: () => at(VAULT_NAMES.delta.dir),
    deltaNextDir: (pid = process.pid) => at(`${VAULT_NAMES.delta.nextPrefix}${pid}`),
    runbookFile: (name) => at(name),
  };
}
