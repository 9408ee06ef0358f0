import path from 'node:path';
import { PermafrostError } from '../errors.js';

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
  /** A snapshot prune is removing: renamed to `.partial-pruned-<id>` first, so it stops counting at once and a dead prune's leftover is swept as a partial (ops/prune.ts). */
  pruningPrefix: '.partial-pruned-',
  /**
   * rekey (ops/rekey.ts): its staging folders are partials of the id `rekey-<id>` (`.partial-rekey-<id>-<pid>`),
   * and the old copy is set aside as `.rekey-old-<id>` while the rekeyed one takes its name.
   */
  rekey: { stagingTag: 'rekey-', asidePrefix: '.rekey-old-' },
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
    /** vault/runs-state.ts: the outcome of the last backup run. */
    runs: '.permafrost-runs.json',
  },
  /** capture/delta-state.ts: the private delta state folder, its next copy while a backup runs, and the old one while it is swapped. */
  delta: { dir: '.permafrost-delta', nextPrefix: '.permafrost-delta.next-', oldPrefix: '.permafrost-delta.old-' },
} as const;

export type StateFileName = keyof typeof VAULT_NAMES.state;

/**
 * Patterns (Syncthing's .stignore syntax, anchored at the folder root) that keep what is this
 * host's own out of replication: in-progress snapshots, rekey's set-aside copies and every `.permafrost*` file.
 */
export const VAULT_IGNORES: readonly string[] = [
  `/${VAULT_NAMES.partialPrefix}*`,
  '/.permafrost*',
  // The old copy rekey sets aside for a moment: a scan then would start sending it to every device.
  `/${VAULT_NAMES.rekey.asidePrefix}*`,
];

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
  /** The old delta state while the next one is renamed into its place. */
  deltaOldDir(pid?: number): string;
  /** A runbook file at the vault root. */
  runbookFile(name: (typeof VAULT_NAMES.runbook)[number]): string;
  /** Where prune moves snapshot `id` before removing it. */
  pruningDir(id: string): string;
  /** Where rekey sets the old copy of snapshot `id` aside while the rekeyed one takes its name. */
  rekeyAsideDir(id: string): string;
  /** The snapshot id a root entry named `name` sets aside for rekey (`.rekey-old-<id>`), else null. */
  rekeyAsideId(name: string): string | null;
  /**
   * A root entry of the vault found by listing it, that one of permafrost's runs left (a partial
   * folder, an atomic write's temp file, a delta state's next or old copy, a snapshot set aside by
   * rekey): its path, to remove it. Anything else is refused (exit 70), so no listing can make a
   * caller remove a snapshot or a file that is not permafrost's own.
   */
  leftover(name: string): string;
}

/** Root entries permafrost's runs leave behind while they work (and a dead run leaves for the next to sweep). */
const LEFTOVER_PREFIXES: readonly string[] = [
  VAULT_NAMES.partialPrefix,
  VAULT_NAMES.atomicTempPrefix,
  VAULT_NAMES.delta.nextPrefix,
  VAULT_NAMES.delta.oldPrefix,
  VAULT_NAMES.rekey.asidePrefix,
];

/** Whether `name`, a root entry of a vault, is one a run of permafrost leaves behind while it works. */
export function isLeftoverName(name: string): boolean {
  return (
    !name.includes('/') && name !== '.' && name !== '..' && LEFTOVER_PREFIXES.some((p) => name.startsWith(p) && name.length > p.length)
  );
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
    deltaOldDir: (pid = process.pid) => at(`${VAULT_NAMES.delta.oldPrefix}${pid}`),
    runbookFile: (name) => at(name),
    pruningDir: (id) => at(`${VAULT_NAMES.pruningPrefix}${id}`),
    rekeyAsideDir: (id) => at(`${VAULT_NAMES.rekey.asidePrefix}${id}`),
    rekeyAsideId: (name) => (name.startsWith(VAULT_NAMES.rekey.asidePrefix) ? name.slice(VAULT_NAMES.rekey.asidePrefix.length) : null),
    leftover: (name) => {
      if (!isLeftoverName(name)) throw new PermafrostError('internal', `${name} is not an entry a permafrost run leaves in a vault`);
      return at(name);
    },
  };
}
