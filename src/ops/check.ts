/**
 * `permafrost check`: every snapshot folder against its manifest, without the passphrase, so a
 * backup device that keeps none can still prove what it holds is what the server wrote.
 */
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import { errorMessage, IntegrityError } from '../errors.js';
import { sha256File } from '../crypto/hash.js';
import {
  chainProblem,
  compareFolder,
  isSyncthingTemp,
  recordCheck,
  type CheckRecord,
  type FolderEntry,
  type LinkState,
} from '../vault/check.js';
import { MAX_CHAIN_DEPTH, type Manifest } from '../vault/manifest.js';
import { readSignerKey, signatureProblem, type SignerKey } from '../crypto/signature.js';
import { findSnapshot, listSnapshots, partPath, versionCopies, type SnapshotEntry } from '../vault/store.js';

export interface SnapshotCheck {
  id: string;
  ok: boolean;
  problems: string[];
  /** Syncthing is still writing into the folder (or into `waitsFor`): neither passed nor failed, and not recorded. */
  arriving: boolean;
  /** A delta whose own files are fine but whose chain has a link still arriving: that link's id. */
  waitsFor?: string;
  /** Files whose good copy is one Syncthing's versioning kept (`.stversions/…`), one phrase each. */
  goodCopies: string[];
}

export interface CheckResult {
  ok: boolean;
  checkedAt: string;
  durationMs: number;
  snapshots: SnapshotCheck[];
}

/** Each entry of a snapshot folder; parts whose size matches the manifest are hashed. */
async function readFolder(dir: string, manifest: Manifest): Promise<FolderEntry[]> {
  const sizes = new Map(manifest.files.map((f) => [f.name as string, f.bytes]));
  const entries: FolderEntry[] = [];
  for (const name of await readdir(dir)) {
    const st = await lstat(path.join(dir, name));
    const entry: FolderEntry = { name, regular: st.isFile(), bytes: st.size };
    if (entry.regular && sizes.get(name) === st.size) entry.sha256 = (await sha256File(path.join(dir, name))).sha256;
    entries.push(entry);
  }
  return entries;
}

/**
 * The files of `s` whose good copy Syncthing's versioning kept, and the problems left once those
 * copies are counted: a part changed on the server after commit replaces the device's file, but
 * the replaced one (the good one) waits in `.stversions`.
 */
async function withKeptCopies(
  s: SnapshotEntry & { manifest: Manifest },
  problems: string[],
): Promise<{ problems: string[]; goodCopies: string[] }> {
  const goodCopies: string[] = [];
  let left = problems;
  for (const f of s.manifest.files) {
    const loc = await partPath(s, f.name);
    if (!loc.version) {
      if (s.versionsOnly) left = [...left, `${f.name} has no copy matching the manifest in ${s.dir}`];
      continue;
    }
    goodCopies.push(`${f.name}: the good copy is ${loc.version.path} (kept by Syncthing's versioning on ${loc.version.stamp})`);
    left = left.filter((p) => !p.startsWith(`${f.name} `));
  }
  return { problems: left, goodCopies };
}

async function checkOne(s: SnapshotEntry, signer: SignerKey | null): Promise<SnapshotCheck | null> {
  if (!s.manifest) return { id: s.id, ok: false, problems: [s.problem ?? 'its manifest cannot be used'], arriving: false, goodCopies: [] };
  if (s.versionsOnly) {
    const r = await withKeptCopies({ ...s, manifest: s.manifest }, []);
    return { id: s.id, ok: r.problems.length === 0, arriving: false, ...r };
  }
  let found: FolderEntry[];
  try {
    found = await readFolder(s.dir, s.manifest);
  } catch (err) {
    // Pruned while we looked: nothing to judge.
    if (
      (err as NodeJS.ErrnoException).code === 'ENOENT' &&
      !(await lstat(s.dir).then(
        () => true,
        () => false,
      ))
    )
      return null;
    return {
      id: s.id,
      ok: false,
      problems: [`${s.dir} cannot be read (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`],
      arriving: false,
      goodCopies: [],
    };
  }
  if (found.some((e) => isSyncthingTemp(e.name))) return { id: s.id, ok: true, problems: [], arriving: true, goodCopies: [] };
  const compared = compareFolder(s.manifest, found);
  const r =
    compared.length > 0 && (await versionCopies(path.dirname(s.dir), s.id)).length > 0
      ? await withKeptCopies({ ...s, manifest: s.manifest }, compared)
      : { problems: compared, goodCopies: [] };
  const unsigned = signer ? await signatureProblem(s.dir, signer) : null;
  if (unsigned) r.problems.push(unsigned);
  return { id: s.id, ok: r.problems.length === 0, arriving: false, ...r };
}

/**
 * A delta is only as good as its chain: each chosen delta's links (checked here too when they were
 * not chosen) must be whole (vault/check.ts chainProblem), else the delta is damaged, naming the
 * link it needs. A link Syncthing still writes makes the delta arriving, not damaged.
 */
export async function judgeChains(
  chosen: readonly SnapshotEntry[],
  all: readonly SnapshotEntry[],
  results: readonly SnapshotCheck[],
  verdicts: Map<string, SnapshotCheck | null>,
  check: (s: SnapshotEntry) => Promise<SnapshotCheck | null>,
): Promise<void> {
  const byId = new Map(all.map((s) => [s.id, s]));
  for (const s of chosen) {
    // Depth is at most MAX_CHAIN_DEPTH, so a walk longer than that is a loop of hostile manifests.
    let c = s.manifest?.chain;
    for (let n = 0; c?.reference && n <= MAX_CHAIN_DEPTH; n++) {
      const link = byId.get(c.reference);
      if (link && !verdicts.has(link.id)) verdicts.set(link.id, await check(link));
      c = link?.manifest?.chain;
    }
  }
  const linkState = (id: string): LinkState | undefined => {
    const v = verdicts.get(id);
    const entry = byId.get(id);
    if (!v || !entry) return undefined;
    return { manifest: entry.manifest, state: v.arriving ? 'arriving' : v.ok ? 'ok' : 'damaged' };
  };
  for (const r of results) {
    const manifest = byId.get(r.id)?.manifest;
    if (!manifest || r.arriving) continue;
    const verdict = chainProblem(manifest, linkState);
    if (verdict && 'problem' in verdict) {
      r.problems.push(verdict.problem);
      r.ok = false;
    } else if (verdict && r.ok) {
      r.arriving = true;
      r.waitsFor = verdict.arriving;
    }
  }
}

/**
 * Checks `ref` (a snapshot id, "latest", or "all"/undefined: every snapshot) and records each
 * verdict in .permafrost-check.json. A damaged snapshot is `ok: false` in the result, not a throw.
 */
export async function runCheck(config: Config, ref: string | undefined): Promise<CheckResult> {
  const t0 = Date.now();
  const checkedAt = new Date().toISOString();
  const all = await listSnapshots(config.vault.dir, { versions: true });
  const chosen = ref === undefined || ref === 'all' ? all : [await findSnapshot(config.vault.dir, ref)];
  const signer = await readSignerKey(config.vault.signerKeyFile);
  const snapshots: SnapshotCheck[] = [];
  const verdicts = new Map<string, SnapshotCheck | null>();
  for (const s of chosen) {
    const r = await checkOne(s, signer);
    verdicts.set(s.id, r);
    if (r) snapshots.push(r);
  }
  await judgeChains(chosen, all, snapshots, verdicts, (s) => checkOne(s, signer));
  const records: Record<string, CheckRecord> = {};
  for (const s of snapshots) if (!s.arriving) records[s.id] = { ok: s.ok, checkedAt, problems: s.problems };
  const failed = snapshots.filter((s) => !s.ok).map((s) => s.id);
  const durationMs = Date.now() - t0;
  await recordCheck(
    config.vault.dir,
    records,
    { checkedAt, durationMs, checked: Object.keys(records).length, failed },
    all.map((s) => s.id),
  );
  return { ok: failed.length === 0, checkedAt, durationMs, snapshots };
}

/** One sentence naming each damaged snapshot and what is wrong with the first; details: one line per snapshot (exit 3). */
export function checkFailed(r: CheckResult): IntegrityError {
  const bad = r.snapshots.filter((s) => !s.ok);
  const first = bad[0]!;
  const others =
    bad.length > 1
      ? `; also damaged: ${bad
          .slice(1)
          .map((s) => s.id)
          .join(', ')}`
      : '';
  return new IntegrityError(
    `Snapshot ${first.id} failed its check: ${first.problems.join('; ')}${others}; restore from another snapshot, and replace the damaged ones from another copy (a backup device, or the server).`,
    { details: bad.map((s) => `${s.id}: ${s.problems.join('; ')}`) },
  );
}
