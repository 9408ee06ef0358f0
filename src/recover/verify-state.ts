import path from 'node:path';
import { z } from 'zod';
import { readJsonState, writeJsonState } from '../vault/state-file.js';

/**
 * Verify results live in one state file beside the snapshots, not inside snapshot folders:
 * a snapshot folder stays byte-for-byte what the backup wrote (and what Syncthing sent), and a
 * backup device that verifies its own copy records its result without touching replicated data.
 */
export const VERIFY_STATE_NAME = '.permafrost-verify.json';

const verifyRecordSchema = z.object({
  ok: z.boolean(),
  checkedAt: z.string(),
  durationMs: z.number(),
  /** The first failing check, in one sentence, when not ok. */
  reason: z.string().optional(),
});
export type VerifyRecord = z.infer<typeof verifyRecordSchema>;

const verifyStateSchema = z.object({
  formatVersion: z.literal(1),
  snapshots: z.record(z.string(), verifyRecordSchema),
});
type VerifyStateFile = z.infer<typeof verifyStateSchema>;

export type VerifyStatus = 'verified' | 'failed' | 'never';

export function verifyStatePath(vaultDir: string): string {
  return path.join(vaultDir, VERIFY_STATE_NAME);
}

/** Every recorded verify result by snapshot id. */
export async function readVerifyState(vaultDir: string): Promise<Record<string, VerifyRecord>> {
  const state = await readJsonState(verifyStatePath(vaultDir), verifyStateSchema, { formatVersion: 1, snapshots: {} });
  return state.snapshots;
}

/**
 * Records one result; entries of snapshots no longer in the vault are dropped so the file stays small.
 * `present` lists the snapshot ids that exist now.
 */
export async function recordVerify(vaultDir: string, id: string, record: VerifyRecord, present: readonly string[]): Promise<void> {
  const snapshots = await readVerifyState(vaultDir);
  snapshots[id] = record;
  const keep = new Set([...present, id]);
  for (const key of Object.keys(snapshots)) if (!keep.has(key)) delete snapshots[key];
  await writeJsonState(verifyStatePath(vaultDir), { formatVersion: 1, snapshots } satisfies VerifyStateFile);
}

export function verifyStatus(record: VerifyRecord | undefined): VerifyStatus {
  if (!record) return 'never';
  return record.ok ? 'verified' : 'failed';
}
