import { z } from 'zod';
import { readJsonState, writeJsonState } from './state-file.js';
import { VAULT_NAMES, type Vault } from './layout.js';

/**
 * The outcome of the last backup run, beside the snapshots (not replicated: it describes this
 * host). A run that failed leaves no snapshot behind, so without this record nothing but the alert
 * channels (when configured) would remember it; the overview (src/ops/overview.ts) judges it.
 */
export const RUNS_STATE_NAME = VAULT_NAMES.state.runs;

const backupRunSchema = z.object({
  /**
   * `ok`: a whole snapshot; `partial`: a snapshot without a part the config requires (the
   * snapshot's manifest says which, and that is judged there); `failed`: no snapshot.
   */
  outcome: z.enum(['ok', 'partial', 'failed']),
  finishedAt: z.string(),
  /** The snapshot written (ok, partial). */
  snapshot: z.string().nullable(),
  /** The run's error sentence (failed, partial). */
  error: z.string().nullable(),
});
export type BackupRun = z.infer<typeof backupRunSchema>;

const runsStateSchema = z.object({
  formatVersion: z.literal(1),
  backup: backupRunSchema.optional(),
});
type RunsState = z.infer<typeof runsStateSchema>;

/** The last backup run recorded in `vault`, or null when none was. */
export async function readLastBackupRun(vault: Vault): Promise<BackupRun | null> {
  return (await readJsonState(vault.stateFile('runs'), runsStateSchema, { formatVersion: 1 })).backup ?? null;
}

/** Records the outcome of a backup run (replacing the previous one). */
export async function recordBackupRun(vault: Vault, run: BackupRun): Promise<void> {
  const state = await readJsonState(vault.stateFile('runs'), runsStateSchema, { formatVersion: 1 });
  await writeJsonState(vault.stateFile('runs'), { ...state, backup: run } satisfies RunsState);
}
