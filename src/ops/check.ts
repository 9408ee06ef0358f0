/**
 * `permafrost check`: every snapshot folder against its manifest, without the passphrase, so a
 * backup device that keeps none can still prove what it holds is what the server wrote.
 */
import { createHash } from 'node:crypto';
import { lstat, readdir } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Config } from '../config/schema.js';
import { errorMessage, IntegrityError } from '../errors.js';
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
import { openVault, type Vault } from '../vault/layout.js';
import type { SnapshotReader, StorageListing } from '../vault/storage.js';
import { folderStorage } from '../vault/storage-fs.js';

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

/**
 * What one check reads, a vault folder and a bucket alike: the snapshots a storage holds (their
 * manifests read and parsed by the storage's own lister: vault/store.ts for a folder, offsite/read.ts
 * for a bucket) and each one's files through its SnapshotReader (vault/storage.ts).
 */
export interface CheckSource {
  readonly reader: SnapshotReader;
  readonly listing: StorageListing;
  /** Every snapshot the storage holds (a chosen delta's links are looked up here), newest first. */
  readonly all: readonly SnapshotEntry[];
  /** The snapshots asked for. */
  readonly chosen: readonly SnapshotEntry[];
  /** SHA-256 of one file, streamed; absent: sizes only (a bucket without --read-data). */
  hashFile?(id: string, name: string): Promise<{ sha256: string; bytes: number }>;
  /** The snapshot as its signature leaves it (a bucket: unsigned, foreign or edited makes its manifest unused). */
  signed?(s: SnapshotEntry): Promise<SnapshotEntry>;
  /** Why the snapshot's signature does not hold, one phrase added to its problems (a folder), or null. */
  signatureProblem?(s: SnapshotEntry): Promise<string | null>;
  /** What only a vault folder has. */
  readonly folder?: FolderExtras;
}

/** A vault folder's own: the copies Syncthing's versioning kept (`.stversions`), and snapshots a prune removes while we look. */
export interface FolderExtras {
  /** Whether `.stversions` holds copies of snapshot `id`. */
  hasKeptCopies(id: string): Promise<boolean>;
  /** The problems left once kept good copies are counted, and those copies named. */
  keptCopies(s: SnapshotEntry & { manifest: Manifest }, problems: string[]): Promise<{ problems: string[]; goodCopies: string[] }>;
  /** A read of `s` that failed: null when the snapshot went away meanwhile (pruned: nothing to judge), else the problem. */
  readFailed(s: SnapshotEntry, err: unknown): Promise<string | null>;
  /** Whether Syncthing is writing a file into the snapshot's folder now (its temporary name is there). */
  receiving(s: SnapshotEntry): Promise<boolean>;
}

/** A snapshot whose files could not be compared, with its problem. */
const damaged = (id: string, problem: string): SnapshotCheck => ({ id, ok: false, problems: [problem], arriving: false, goodCopies: [] });

/** Each entry the storage lists for snapshot `id`; files whose size matches the manifest are hashed when the source hashes. */
async function storedEntries(src: CheckSource, id: string, manifest: Manifest): Promise<FolderEntry[]> {
  const stored = src.listing.snapshots.find((x) => x.id === id);
  if (!stored) throw Object.assign(new Error(`snapshot ${id} is not in the listing`), { code: 'ENOENT' });
  if (stored.unreadable !== undefined) throw new StoredUnreadable(stored.unreadable);
  const sizes = new Map(manifest.files.map((f) => [f.name as string, f.bytes]));
  const entries: FolderEntry[] = [];
  for (const f of stored.files) {
    const entry: FolderEntry = { name: f.name, regular: true, bytes: f.bytes };
    if (src.hashFile && sizes.get(f.name) === f.bytes) {
      const read = await src.hashFile(id, f.name);
      entry.bytes = read.bytes;
      entry.sha256 = read.sha256;
    }
    entries.push(entry);
  }
  for (const o of stored.others ?? []) entries.push({ name: o.name, regular: o.regular, bytes: o.bytes });
  return entries;
}

/** A snapshot the storage could not list, with the listing's phrase. */
class StoredUnreadable extends Error {}

/**
 * One snapshot against its manifest, the same for a folder and a bucket: every file the manifest
 * lists there at its size (and SHA-256 where hashed), nothing else beside it, its signature; a
 * folder's kept copies counted. Null: a folder's snapshot went away while we looked.
 */
async function checkOne(src: CheckSource, entry: SnapshotEntry): Promise<SnapshotCheck | null> {
  const s = src.signed ? await src.signed(entry) : entry;
  if (!s.manifest) {
    // Syncthing still writing into the folder (the manifest among what it receives): arriving, not damaged.
    if (src.folder && (await src.folder.receiving(s))) return { id: s.id, ok: true, problems: [], arriving: true, goodCopies: [] };
    return damaged(s.id, s.problem ?? 'its manifest cannot be used');
  }
  const manifest = s.manifest;
  if (s.versionsOnly && src.folder) {
    const r = await src.folder.keptCopies({ ...s, manifest }, []);
    return { id: s.id, ok: r.problems.length === 0, arriving: false, ...r };
  }
  let found: FolderEntry[];
  try {
    found = await storedEntries(src, s.id, manifest);
  } catch (err) {
    if (!src.folder) throw err;
    if (err instanceof StoredUnreadable) return damaged(s.id, err.message);
    const problem = await src.folder.readFailed(s, err);
    return problem === null ? null : damaged(s.id, problem);
  }
  if (found.some((e) => isSyncthingTemp(e.name))) return { id: s.id, ok: true, problems: [], arriving: true, goodCopies: [] };
  const compared = compareFolder(manifest, found);
  const r =
    compared.length > 0 && src.folder && (await src.folder.hasKeptCopies(s.id))
      ? await src.folder.keptCopies({ ...s, manifest }, compared)
      : { problems: compared, goodCopies: [] };
  const unsigned = src.signatureProblem ? await src.signatureProblem(s) : null;
  if (unsigned) r.problems.push(unsigned);
  return { id: s.id, ok: r.problems.length === 0, arriving: false, ...r };
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

/** The SHA-256 and length of what `body` holds, streamed. */
async function hashStream(body: Readable): Promise<{ sha256: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    h.update(chunk);
    bytes += chunk.length;
  }
  return { sha256: h.digest('hex'), bytes };
}

/**
 * A vault folder as a check source: its snapshots (those only Syncthing's `.stversions` keeps too)
 * read through the folder's SnapshotReader (vault/storage-fs.ts), every part hashed, each signature
 * checked against vault.signerKeyFile.
 */
async function folderSource(vault: Vault, ref: string | undefined, signer: SignerKey | null): Promise<CheckSource> {
  const all = await listSnapshots(vault.dir, { versions: true });
  const chosen = ref === undefined || ref === 'all' ? all : [await findSnapshot(vault.dir, ref)];
  const reader = folderStorage(vault);
  // A vault folder that is not there holds no snapshot (and `list` of it would refuse it).
  const listing: StorageListing = all.length === 0 ? { snapshots: [], rootFiles: [], foreign: [] } : await reader.list();
  return {
    reader,
    listing,
    all,
    chosen,
    hashFile: async (id, name) => hashStream(await reader.read(id, name)),
    signatureProblem: (s) => (signer ? signatureProblem(s.dir, signer) : Promise.resolve(null)),
    folder: {
      hasKeptCopies: async (id) => (await versionCopies(vault, id)).length > 0,
      keptCopies: withKeptCopies,
      receiving: async (s) => (await readdir(s.dir).catch(() => [] as string[])).some(isSyncthingTemp),
      async readFailed(s, err) {
        if (!(await exists(s.dir))) return null;
        const code = (err as NodeJS.ErrnoException).code ?? ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code;
        return `${s.dir} cannot be read (${code ?? errorMessage(err)})`;
      },
    },
  };
}

async function exists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    () => false,
  );
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
 * The one check of a storage, a vault folder or a bucket: each chosen snapshot against its
 * manifest, then each delta's chain. A damaged snapshot is `ok: false` in the result, not a throw.
 */
export async function runCheck(src: CheckSource, started: { t0: number; checkedAt: string }): Promise<CheckResult> {
  const snapshots: SnapshotCheck[] = [];
  const verdicts = new Map<string, SnapshotCheck | null>();
  for (const s of src.chosen) {
    const r = await checkOne(src, s);
    verdicts.set(s.id, r);
    if (r) snapshots.push(r);
  }
  await judgeChains(src.chosen, src.all, snapshots, verdicts, (s) => checkOne(src, s));
  return { ok: snapshots.every((s) => s.ok), checkedAt: started.checkedAt, durationMs: Date.now() - started.t0, snapshots };
}

/**
 * Checks `ref` of the vault folder (a snapshot id, "latest", or "all"/undefined: every snapshot)
 * and records each verdict in .permafrost-check.json (a folder's own: a bucket is only read).
 */
export async function runVaultCheck(config: Config, ref: string | undefined): Promise<CheckResult> {
  const started = { t0: Date.now(), checkedAt: new Date().toISOString() };
  const vault = openVault(config.vault.dir);
  const signer = await readSignerKey(config.vault.signerKeyFile);
  const src = await folderSource(vault, ref, signer);
  const result = await runCheck(src, started);
  const records: Record<string, CheckRecord> = {};
  for (const s of result.snapshots) if (!s.arriving) records[s.id] = { ok: s.ok, checkedAt: result.checkedAt, problems: s.problems };
  const failed = result.snapshots.filter((s) => !s.ok).map((s) => s.id);
  await recordCheck(
    vault,
    records,
    { checkedAt: result.checkedAt, durationMs: result.durationMs, checked: Object.keys(records).length, failed },
    src.all.map((s) => s.id),
  );
  return result;
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
