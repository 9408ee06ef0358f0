import { z } from 'zod';
import { readJsonState, writeJsonState } from '../vault/state-file.js';
import type { Vault } from '../vault/layout.js';

/**
 * What this host knows of each offsite target (`.permafrost-offsite.json` in the vault): written by
 * every push (ops/offsite.ts), read by status, the page, /metrics and the alert judgement
 * (ops/overview.ts). A cache of outcomes: the bucket itself is the truth (`permafrost offsite list`).
 */
const targetStateSchema = z.strictObject({
  /** The newest snapshot whose every file, manifest last, is in the bucket. */
  newestComplete: z.strictObject({ id: z.string(), pushedAt: z.iso.datetime() }).nullable(),
  /** When the last push started and ended, and whether it failed (its one sentence). */
  lastAttemptAt: z.iso.datetime().nullable(),
  lastSuccessAt: z.iso.datetime().nullable(),
  lastError: z.string().nullable(),
  /** The first failure of the current run of failures (alert offsite.failed), null once a push succeeds. */
  failingSince: z.iso.datetime().nullable(),
  /** What permafrost's own objects in the bucket add up to after the last push (foreign keys not counted). */
  bytes: z.number().int().nonnegative(),
  objects: z.number().int().nonnegative(),
  /** Deletes the bucket refused (an Object Lock still in force) at the last retention pass. */
  lockedDeletes: z.number().int().nonnegative().default(0),
});

const offsiteStateSchema = z.strictObject({ targets: z.record(z.string(), targetStateSchema) });

export type OffsiteTargetState = z.output<typeof targetStateSchema>;
export type OffsiteState = z.output<typeof offsiteStateSchema>;

export const EMPTY_TARGET_STATE: OffsiteTargetState = {
  newestComplete: null,
  lastAttemptAt: null,
  lastSuccessAt: null,
  lastError: null,
  failingSince: null,
  bytes: 0,
  objects: 0,
  lockedDeletes: 0,
};

export function readOffsiteState(vault: Vault): Promise<OffsiteState> {
  return readJsonState(vault.stateFile('offsite'), offsiteStateSchema, { targets: {} });
}

/** Records one target's outcome (read, merge, atomic replace; callers hold the run lock). */
export async function recordOffsiteTarget(
  vault: Vault,
  name: string,
  update: (prev: OffsiteTargetState) => OffsiteTargetState,
): Promise<void> {
  const state = await readOffsiteState(vault);
  state.targets[name] = update(state.targets[name] ?? EMPTY_TARGET_STATE);
  await writeJsonState(vault.stateFile('offsite'), state);
}
