/**
 * The passphrase-free check of a snapshot folder against its manifest (`permafrost check`): the
 * pure comparison, and the state file that records each snapshot's result beside the snapshots.
 */
import { z } from 'zod';
import { MANIFEST_NAME, SIGNATURE_NAME, type Manifest } from './manifest.js';
import { readJsonState, writeJsonState } from './state-file.js';
import type { Vault } from './layout.js';

/**
 * One entry found in a snapshot folder; `sha256` only for files whose size matched the manifest
 * (hashing the others is wasted work). A folder always hashes them; a bucket's listing gives sizes
 * only, and its entries carry `sha256` only when `check --read-data` downloaded and hashed them.
 */
export interface FolderEntry {
  name: string;
  /** A regular file (the only kind a snapshot holds), or anything else (folder, symlink, FIFO). */
  regular: boolean;
  bytes: number;
  sha256?: string;
}

/**
 * What is wrong with a snapshot folder whose manifest is `manifest` and which holds `found`, one
 * phrase each (empty: it is exactly what the backup wrote): every listed part present, a regular
 * file of the listed size and SHA-256 (where it was hashed), and nothing but the manifest (and its signature) and those parts in it.
 */
export function compareFolder(manifest: Pick<Manifest, 'files'>, found: readonly FolderEntry[]): string[] {
  const problems: string[] = [];
  const byName = new Map(found.map((e) => [e.name, e]));
  for (const f of manifest.files) {
    const e = byName.get(f.name);
    if (!e) problems.push(`${f.name} is missing`);
    else if (!e.regular) problems.push(`${f.name} is not a regular file`);
    else if (e.bytes !== f.bytes)
      problems.push(`${f.name} has ${e.bytes} bytes, the manifest says ${f.bytes} (${e.bytes < f.bytes ? 'truncated' : 'grown'})`);
    else if (e.sha256 !== undefined && e.sha256 !== f.sha256) problems.push(`${f.name} does not match the SHA-256 in the manifest`);
  }
  const expected = new Set<string>([MANIFEST_NAME, SIGNATURE_NAME, ...manifest.files.map((f) => f.name)]);
  for (const e of found)
    if (!expected.has(e.name)) problems.push(`unexpected ${e.regular ? 'file' : 'entry'} ${e.name} (not in the manifest)`);
  return problems;
}

/** What this run found of a snapshot a chain reads: its manifest (null: unusable) and its own verdict. */
export interface LinkState {
  manifest: Pick<Manifest, 'chain'> | null;
  state: 'ok' | 'damaged' | 'arriving';
}

/**
 * Whether the chain a delta restores on top of is whole (a base or full snapshot: always). Follows
 * `reference` back to the base: each link must be there (`link` gives undefined when it is not),
 * pass its own check, and be of the same base, the same schema (`ddl`) and one less in depth.
 * Null when whole; `arriving` when a link is still being written by Syncthing; else the problem, as
 * one phrase naming the link the snapshot needs ("it needs <id>, which is missing").
 */
export function chainProblem(
  manifest: Pick<Manifest, 'chain'>,
  link: (id: string) => LinkState | undefined,
): { problem: string } | { arriving: string } | null {
  for (let c = manifest.chain; c?.reference; ) {
    const ref = c.reference;
    const found = link(ref);
    const needs = (what: string): { problem: string } => ({ problem: `it needs ${ref}, which is ${what}` });
    if (!found) return needs('missing');
    if (found.state === 'arriving') return { arriving: ref };
    if (found.state === 'damaged' || !found.manifest) return needs('damaged');
    const r = found.manifest.chain;
    if (!r) return needs('damaged (it is a full snapshot, not part of a chain)');
    if (r.base !== c.base) return needs(`damaged (it belongs to the chain of base ${r.base}, not ${c.base})`);
    if (r.depth !== c.depth - 1) return needs(`damaged (its depth is ${r.depth}, not ${c.depth - 1})`);
    if (r.ddl !== c.ddl) return needs('damaged (its schema is not the one of this chain)');
    c = r;
  }
  return null;
}

/** Syncthing's temporary name for a file it is still receiving: the snapshot is arriving, not damaged. */
export function isSyncthingTemp(name: string): boolean {
  return (name.startsWith('.syncthing.') || name.startsWith('~syncthing~')) && name.endsWith('.tmp');
}

/** Check results, one state file beside the snapshots (not replicated: each host checks its own copy). */
const checkRecordSchema = z.object({
  ok: z.boolean(),
  checkedAt: z.string(),
  /** What is wrong, one phrase each; empty when ok. */
  problems: z.array(z.string()),
});
export type CheckRecord = z.infer<typeof checkRecordSchema>;

const checkStateSchema = z.object({
  formatVersion: z.literal(1),
  snapshots: z.record(z.string(), checkRecordSchema),
  /** The most recent check run: when, and the snapshots it found damaged. */
  lastRun: z.object({ checkedAt: z.string(), durationMs: z.number(), checked: z.number(), failed: z.array(z.string()) }).optional(),
});
export type CheckState = z.infer<typeof checkStateSchema>;
export type CheckStatus = 'ok' | 'failed' | 'never';

/** The recorded check results (empty when none). */
export function readCheckState(vault: Vault): Promise<CheckState> {
  return readJsonState(vault.stateFile('check'), checkStateSchema, { formatVersion: 1, snapshots: {} });
}

/** Records a run's results; records of snapshots not in `present` (pruned since) are dropped. */
export async function recordCheck(
  vault: Vault,
  results: Record<string, CheckRecord>,
  run: NonNullable<CheckState['lastRun']>,
  present: readonly string[],
): Promise<void> {
  const state = await readCheckState(vault);
  const snapshots = { ...state.snapshots, ...results };
  const keep = new Set(present);
  for (const id of Object.keys(snapshots)) if (!keep.has(id)) delete snapshots[id];
  await writeJsonState(vault.stateFile('check'), { formatVersion: 1, snapshots, lastRun: run } satisfies CheckState);
}

export function checkStatus(record: CheckRecord | undefined): CheckStatus {
  if (!record) return 'never';
  return record.ok ? 'ok' : 'failed';
}
