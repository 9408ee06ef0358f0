import { z } from 'zod';
import { readJsonState, writeJsonState } from '../vault/state-file.js';
import { openVault, VAULT_NAMES } from '../vault/layout.js';

/**
 * Verify results live in one state file beside the snapshots, not inside snapshot folders:
 * a snapshot folder stays byte-for-byte what the backup wrote (and what Syncthing sent), and a
 * backup device that verifies its own copy records its result without touching replicated data.
 */
export const VERIFY_STATE_NAME = VAULT_NAMES.state.verify;

const verifyRecordSchema = z.object({
  ok: z.boolean(),
  checkedAt: z.string(),
  durationMs: z.number(),
  /** The first failing check, in one sentence, when not ok. */
  reason: z.string().optional(),
});
export type VerifyRecord = z.infer<typeof verifyRecordSchema>;

const verifyRunSchema = verifyRecordSchema.extend({
  /** The snapshot it was checking; null when it failed before one was chosen (an empty vault). */
  snapshot: z.string().nullable(),
});
/** The most recent verify run, whatever ended it: also one that never reached a verdict on its snapshot. */
export type VerifyRun = z.infer<typeof verifyRunSchema>;

const verifyStateSchema = z.object({
  formatVersion: z.literal(1),
  snapshots: z.record(z.string(), verifyRecordSchema),
  /** Absent in files written before it existed. */
  lastRun: verifyRunSchema.optional(),
});
type VerifyStateFile = z.infer<typeof verifyStateSchema>;

export type VerifyStatus = 'verified' | 'failed' | 'never';

export function verifyStatePath(vaultDir: string): string {
  return openVault(vaultDir).stateFile('verify');
}

function readState(vaultDir: string): Promise<VerifyStateFile> {
  return readJsonState(verifyStatePath(vaultDir), verifyStateSchema, { formatVersion: 1, snapshots: {} });
}

/** Every recorded verify result by snapshot id. */
export async function readVerifyState(vaultDir: string): Promise<Record<string, VerifyRecord>> {
  return (await readState(vaultDir)).snapshots;
}

/** The most recent verify run (what permafrost_last_verify_success shows), null when none was recorded. */
export async function readLastVerifyRun(vaultDir: string): Promise<VerifyRun | null> {
  return (await readState(vaultDir)).lastRun ?? null;
}

/**
 * Records one snapshot's verdict, which is also the last run; entries of snapshots no longer in the
 * vault are dropped so the file stays small. `present` lists the snapshot ids that exist now.
 */
export async function recordVerify(vaultDir: string, id: string, record: VerifyRecord, present: readonly string[]): Promise<void> {
  const state = await readState(vaultDir);
  state.snapshots[id] = record;
  const keep = new Set([...present, id]);
  for (const key of Object.keys(state.snapshots)) if (!keep.has(key)) delete state.snapshots[key];
  await writeJsonState(verifyStatePath(vaultDir), { ...state, lastRun: { ...record, snapshot: id } } satisfies VerifyStateFile);
}

/** Records a run that ended without a verdict on its snapshot (server down, temp folder full): the last run failed, no snapshot is marked. */
export async function recordVerifyRun(vaultDir: string, run: VerifyRun): Promise<void> {
  const state = await readState(vaultDir);
  await writeJsonState(verifyStatePath(vaultDir), { ...state, lastRun: run } satisfies VerifyStateFile);
}

export function verifyStatus(record: VerifyRecord | undefined): VerifyStatus {
  if (!record) return 'never';
  return record.ok ? 'verified' : 'failed';
}
