/**
 * The one way a snapshot part is decrypted: stock gpg into a private temp folder, then the one
 * mapping from what went wrong to the error the user sees. Only a file whose OpenPGP integrity
 * (MDC), SHA-256, size and plaintext size all match the manifest is handed to the caller.
 */
import { fstatSync } from 'node:fs';
import { mkdir, mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { IntegrityError, PermafrostError, ToolError, UserError } from '../errors.js';
import { formatBytes } from '../format.js';
import { classifyGpgError, gpgDecryptArgv, gpgDecryptFile, gpgImportSecretKey, killAgent, type GpgDecryptResult } from '../tools/gpg.js';
import { startTool, type ToolRun } from '../tools/run.js';
import { feedFile, sha256File } from '../crypto/hash.js';
import type { DecryptSecret } from '../crypto/keys-identity.js';
import type { ManifestFile } from '../vault/manifest.js';
import { partPath, type SnapshotEntry, vanishedSnapshotError } from '../vault/store.js';
import { watchGrowth } from './file-progress.js';
import { followArchive } from './archive-toc.js';
import { selfIdentity } from '../vault/lock.js';
import { diskSpace } from '../vault/fs-durable.js';
import type { RunContext } from '../run-context.js';

/** How every private temp folder's name starts. */
export const TEMP_PREFIX = 'permafrost-';

/** Where a private temp folder is made, and how a message names that place and the setting that moves it. */
export interface TempBase {
  dir: string;
  /** The place in a sentence, e.g. "vault.tempDir (/var/tmp)". */
  name: string;
  /** What the user changes to use another place, e.g. "vault.tempDir". */
  setting: string;
}

/** vault.tempDir, or $TMPDIR when it is not set. */
export function vaultTempBase(tempDir: string | undefined): TempBase {
  const dir = tempDir ?? tmpdir();
  return {
    dir,
    name: tempDir ? `vault.tempDir (${dir})` : `the temp folder ${dir} ($TMPDIR; vault.tempDir is not set)`,
    setting: 'vault.tempDir',
  };
}

/** A private folder (0700) for decrypted plaintext, removed by `dispose` on every path. */
export interface PrivateTemp {
  dir: string;
  base: TempBase;
  dispose(): Promise<void>;
}

/**
 * The one sentence for a temp folder this host cannot use: a problem of the machine (exit 1),
 * never of the snapshot, so verify records nothing about it.
 */
function tempFolderError(base: TempBase, err: NodeJS.ErrnoException): PermafrostError | null {
  const why: Record<string, string> = {
    ENOENT: 'does not exist; create it',
    ENOTDIR: 'is not a folder; point it at one',
    EACCES: 'is not writable by this user; fix its permissions',
    EPERM: 'is not writable by this user; fix its permissions',
    EROFS: 'is on a read-only filesystem; use a writable one',
    ENOSPC: 'is full; free space there',
    EDQUOT: 'is over its disk quota; free space there',
  };
  const text = err.code ? why[err.code] : undefined;
  return text
    ? new PermafrostError('io', `Cannot decrypt into ${base.name}: it ${text}, or set ${base.setting} to another folder.`, { cause: err })
    : null;
}

/**
 * Creates a private temp folder (mkdtemp makes it 0700) in `base`, named after this process
 * (`permafrost-<pid>-<start time>-XXXXXX`), so a later run can tell one left by a dead run (SIGKILL,
 * OOM) from one in use and remove it (recover/sweep.ts); a folder this host cannot use is exit 1 naming it.
 */
export async function privateTemp(base: TempBase): Promise<PrivateTemp> {
  const me = selfIdentity();
  let dir: string;
  try {
    dir = await mkdtemp(path.join(base.dir, `${TEMP_PREFIX}${me.pid}-${me.start ?? 0}-`));
  } catch (err) {
    throw tempFolderError(base, err as NodeJS.ErrnoException) ?? err;
  }
  return { dir, base, dispose: () => rm(dir, { recursive: true, force: true }) };
}

/** The sentence for a part that does not fit into the temp folder: the space it needs (from the manifest) and the space free. */
function noSpace(source: DecryptSource, file: ManifestFile, free: number, cause?: unknown): PermafrostError {
  const { snapshot, temp } = source;
  const target = source.restoring ?? snapshot;
  const part = target.id === snapshot.id ? file.name : `${file.name} of its base ${snapshot.id}`;
  return new PermafrostError(
    'space',
    `Not enough space in ${temp.base.name} to decrypt snapshot ${target.id}: ${part} needs ${formatBytes(file.plainBytes)} (${file.plainBytes} bytes), ` +
      `${formatBytes(free)} (${free} bytes) is free; free space there, or set ${temp.base.setting} to a folder on a bigger disk.`,
    { cause },
  );
}

/** gpg's words when writing the plaintext failed for lack of space (ENOSPC, EDQUOT). */
const DISK_FULL = /no space left on device|disk quota exceeded/i;

/** gpg failed writing the plaintext for lack of space: the host's disk is the problem, not the part (the sentence of a full temp folder). */
async function throwIfDiskFull(source: DecryptSource, file: ManifestFile, ok: boolean, stderr: string): Promise<void> {
  if (!ok && DISK_FULL.test(stderr)) throw noSpace(source, file, (await diskSpace(source.temp.dir)).free, new Error(stderr));
}

/** The manifest entry of one part, or a sentence saying the snapshot lacks it. */
export function partFile(snapshot: SnapshotEntry, part: ManifestFile['part']): ManifestFile {
  if (!snapshot.manifest) {
    throw new IntegrityError(`Snapshot ${snapshot.id} failed its integrity check: ${snapshot.problem ?? 'no manifest'}.`);
  }
  const file = snapshot.manifest.files.find((f) => f.part === part);
  if (!file) throw new UserError(`Snapshot ${snapshot.id} holds no ${part} part.`);
  return file;
}

/** Where a part's plaintext goes inside the temp folder (its name without `.gpg`). */
function plainPath(temp: PrivateTemp, file: ManifestFile): string {
  return path.join(temp.dir, file.name.replace(/\.gpg$/, ''));
}

/** What is wrong with a decryption attempt, judged against the manifest; null when nothing is. */
function judgeDecryption(r: GpgDecryptResult, file: ManifestFile): string | null {
  const cipherMatches = r.sha256 === file.sha256 && r.bytes === file.bytes;
  // A damaged header can look like a wrong passphrase: the checksum of the ciphertext decides.
  if (!cipherMatches) return 'does not match the SHA-256 in the manifest (tampered or truncated)';
  if (!r.ok) return r.failure === 'wrong-key' ? null : 'fails its OpenPGP integrity check';
  if (r.plainBytes !== file.plainBytes) {
    return `decrypts to ${r.plainBytes} bytes where the manifest says ${file.plainBytes} (damaged before encryption)`;
  }
  return null;
}

/** The sentence for a part that is damaged (exit 3). */
function integrityError(snapshot: SnapshotEntry, file: ManifestFile, why: string, cause?: unknown): IntegrityError {
  return new IntegrityError(`Snapshot ${snapshot.id} failed its integrity check: ${file.name} ${why}; use another snapshot.`, { cause });
}

/** Stopped on purpose (SIGTERM): gpg's failure then says nothing about the snapshot. */
function throwIfStopped(snapshot: SnapshotEntry, signal: AbortSignal): void {
  if (signal.aborted)
    throw new PermafrostError('stopped', `Decrypting snapshot ${snapshot.id} was stopped before it finished.`, { cause: signal.reason });
}

/** The one mapping from a decryption's outcome to the error the user sees: missing gpg, damage (exit 3), or the wrong secret (exit 2). */
function throwIfBad({ snapshot, secret }: DecryptSource, file: ManifestFile, r: GpgDecryptResult, encPath: string): void {
  if (r.failure === 'missing-tool') {
    throw new ToolError('Cannot run gpg to decrypt the snapshot: install gnupg (apt-get install gnupg).', {
      argv: gpgDecryptArgv('GNUPGHOME', encPath),
      exitStatus: null,
      stderr: r.stderr,
    });
  }
  const cause = r.ok ? undefined : new Error(r.stderr);
  const wrong = judgeDecryption(r, file);
  if (wrong) throw integrityError(snapshot, file, wrong, cause);
  if (!r.ok) throw new UserError(wrongKey(snapshot, file, secret), { cause });
}

/** What decrypting the parts of one snapshot needs: looked up once, read once, passed down. */
export interface DecryptSource {
  snapshot: SnapshotEntry;
  /** The snapshot the part is read for, when that is a later one of `snapshot`'s chain (a base's schema part): messages name it. */
  restoring?: SnapshotEntry;
  secret: DecryptSecret;
  temp: PrivateTemp;
}

/** Per identity home: its one import, and how many gpg runs use it now (the last one stops its agent). */
const identityHomes = new Map<string, { imported: Promise<void>; users: number }>();

/**
 * The GNUPGHOME (inside the private temp folder, so it goes with it) holding the identity, imported
 * once however many decryptions ask at the same time; `release` stops its agent when no gpg run
 * uses it any more.
 */
async function identityHome(
  temp: PrivateTemp,
  secret: DecryptSecret & { kind: 'identity' },
): Promise<{ home: string; release: () => Promise<void> }> {
  const home = path.join(temp.dir, '.gnupg');
  let entry = identityHomes.get(home);
  if (!entry) {
    const imported = mkdir(home, { mode: 0o700 }).then(() => gpgImportSecretKey(home, secret.file, secret.keyPassphrase));
    entry = { imported, users: 0 };
    identityHomes.set(home, entry);
  }
  const held = entry;
  held.users += 1;
  const release = async (): Promise<void> => {
    held.users -= 1;
    if (held.users === 0) await killAgent(home);
  };
  try {
    await held.imported;
  } catch (err) {
    identityHomes.delete(home);
    held.users -= 1;
    throw err;
  }
  return { home, release };
}

/** gpgDecryptFile in the identity's home, which other decryptions may share meanwhile. */
async function decryptWithIdentity(
  encPath: string,
  outPath: string,
  temp: PrivateTemp,
  secret: DecryptSecret & { kind: 'identity' },
  signal: AbortSignal,
): Promise<GpgDecryptResult> {
  const { home, release } = await identityHome(temp, secret);
  try {
    return await gpgDecryptFile(encPath, secret.keyPassphrase, outPath, { home, signal });
  } finally {
    await release();
  }
}

/** The sentence for a secret that opens none of the part's key packets. */
function wrongKey(snapshot: SnapshotEntry, file: ManifestFile, secret: DecryptSecret): string {
  if (secret.kind === 'passphrase')
    return `Cannot decrypt snapshot ${snapshot.id}: the passphrase in ${secret.from ?? 'vault.passphraseFile'} is not the one it was encrypted with.`;
  const to = file.keys?.recipients.map((r) => r.fingerprint).join(', ');
  if (secret.kind === 'agent')
    return `Cannot decrypt snapshot ${snapshot.id}: no secret key in the gpg keyring ${secret.home} is one it was encrypted to${to ? ` (${to})` : ' (the passphrase only)'}, or its agent holds it locked; import the key there (or unlock it with one \`gpg -d\`), or pass --identity FILE.`;
  return `Cannot decrypt snapshot ${snapshot.id}: the key ${secret.fingerprint} in ${secret.file} is not one it was encrypted to${to ? ` (${to})` : ' (the passphrase only)'}; pass a recipient's secret key with --identity.`;
}

/**
 * Decrypts one part of the snapshot into the private temp folder and checks it against the
 * manifest; returns the plaintext's path. On any failure nothing decrypted is left behind: a
 * damaged part is an IntegrityError, a wrong passphrase a UserError, a missing gpg a ToolError.
 * With `phase`, the plaintext's growth is reported to the run as that phase's bytes. With
 * `indexArchive` (a pg_dump custom archive), the plaintext is read as gpg writes it and, once it is
 * verified, the data offsets pg_dump could not write to its pipe are written into its table of
 * contents (recover/archive-toc.ts), so `pg_restore -j` seeks to each table's block instead of
 * scanning for it; an archive not fully understood there is left exactly as decrypted.
 */
export async function decryptVerifiedPart(
  source: DecryptSource,
  file: ManifestFile,
  ctx: Pick<RunContext, 'signal' | 'events'>,
  phase?: string,
  opts: { indexArchive?: boolean } = {},
): Promise<string> {
  const { signal } = ctx;
  const progress = phase === undefined ? undefined : (n: number): void => ctx.events.bytes?.(phase, n);
  const { snapshot, secret, temp } = source;
  // On a backup device the good copy may be one Syncthing's versioning kept (.stversions).
  const encPath = (await partPath(snapshot, file.name)).path;
  const outPath = plainPath(temp, file);
  // gpg writes the plaintext itself: the file's growth is the progress.
  // Checked before gpg starts: a full disk is the host's problem, not a damaged snapshot.
  const free = (await diskSpace(temp.dir)).free;
  if (free < file.plainBytes) throw noSpace(source, file, free);
  const stop = progress ? watchGrowth(outPath, progress) : () => undefined;
  const indexer = opts.indexArchive ? followArchive(outPath) : null;
  try {
    let r: GpgDecryptResult;
    try {
      r =
        secret.kind === 'identity'
          ? await decryptWithIdentity(encPath, outPath, temp, secret, signal)
          : secret.kind === 'agent'
            ? await gpgDecryptFile(encPath, '', outPath, { home: secret.home, agent: true, signal })
            : // The throwaway GNUPGHOME inside the private temp folder: a killed run's sweep removes it too.
              await gpgDecryptFile(encPath, secret.passphrase, outPath, { homeBase: temp.dir, signal });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw integrityError(snapshot, file, 'is missing', err);
      throw err;
    }
    throwIfStopped(snapshot, signal);
    // Space taken meanwhile (or a manifest that understates the size): gpg could not write, nothing is wrong with the part.
    await throwIfDiskFull(source, file, r.ok, r.stderr);
    throwIfBad({ snapshot, secret, temp }, file, r, encPath);
    // Only now, on the verified plaintext: the offsets of the blocks found while gpg wrote it.
    if (indexer) await indexer.finish(r.plainBytes);
    progress?.(r.plainBytes);
    return outPath;
  } catch (err) {
    await indexer?.abandon();
    await rm(outPath, { force: true });
    // A part that went missing with its whole folder was pruned, not damaged: no verdict on it.
    throw (await vanishedSnapshotError(snapshot, 'it was being decrypted', err)) ?? err;
  } finally {
    stop();
  }
}

/** The GNUPGHOME gpg decrypts in and the secret it reads on fd 3 (none with the caller's agent); `dispose` removes a throwaway one. */
async function gpgHome(temp: PrivateTemp, secret: DecryptSecret): Promise<{ home: string; fd3?: string; dispose(): Promise<void> }> {
  if (secret.kind === 'agent') return { home: secret.home, dispose: async () => {} };
  if (secret.kind === 'identity') {
    // Kept for the next part (it goes with the temp folder); its agent stops with its last user.
    const { home, release } = await identityHome(temp, secret);
    return { home, fd3: `${secret.keyPassphrase}\n`, dispose: release };
  }
  const home = await mkdtemp(path.join(temp.dir, 'gnupg-'));
  return {
    home,
    fd3: `${secret.passphrase}\n`,
    dispose: async () => {
      await killAgent(home);
      await rm(home, { recursive: true, force: true });
    },
  };
}

/** Counts the plaintext on its way to the consumer, for the size check and the progress. */
class ByteCounter extends Transform {
  bytes = 0;
  constructor(private readonly progress?: (n: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err: null, chunk: Buffer) => void): void {
    this.bytes += chunk.length;
    this.progress?.(this.bytes);
    cb(null, chunk);
  }
}

/**
 * Where decryptPartInto writes the plaintext: a program's stdin (programSink: psql applying a part),
 * or a file gpg writes itself (fileSink: a delta read afterwards; recover/parallel-rows.ts: followed
 * as it grows), so the plaintext never passes through this process in a buffer per chunk.
 */
export type PlainSink = (
  | { stdin: Writable; file?: undefined }
  | {
      stdin?: undefined;
      file: {
        /** Creates the file (0600, it must not exist) and returns the descriptor gpg writes into; `progress` gets the bytes read back. */
        open(progress?: (bytes: number) => void): Promise<number>;
        /** gpg has exited (whatever its verdict, judged after): the file is complete at `bytes`; null when it was never opened. */
        end(bytes: number | null): void;
      };
    }
) & {
  /** Resolves once the consumer has taken everything and succeeded; rejects with its ToolError. */
  done: Promise<void>;
};

/** A promise's error, or null once it resolves. */
const settled = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => null,
    (err: unknown) => err ?? new Error('failed'),
  );

/** A sink that is only a file: gpg writes the plaintext into `file` (0600, it must not exist); done once gpg has exited. */
export function fileSink(file: string): PlainSink {
  let fh: FileHandle | null = null;
  let ended!: () => void;
  const done = new Promise<void>((resolve) => (ended = resolve));
  return {
    file: {
      open: async () => {
        fh = await open(file, 'wx', 0o600);
        return fh.fd;
      },
      end: () => {
        void (fh ? fh.close() : Promise.resolve()).catch(() => undefined).then(ended);
      },
    },
    done,
  };
}

/** A program's stdin as a sink. */
function programSink(consumer: ToolRun, signal: AbortSignal | undefined): PlainSink {
  const tool = startTool({ ...consumer, signal }, { stdin: 'pipe', stdout: 'ignore' });
  return { stdin: tool.stdin!, done: tool.done };
}

/** What one gpg run into a sink gave: its errors, stderr, the ciphertext it read (null: it stopped reading early) and the plaintext's size. */
interface GpgIntoResult {
  feedErr: unknown;
  drainErr: unknown;
  gpgErr: ToolError | null;
  stderr: string;
  cipher: { sha256: string; bytes: number } | null;
  plainBytes: number;
}

/**
 * Runs gpg on the ciphertext we feed it (so what is hashed is what it decrypted), its plaintext
 * into the sink: a stream through a byte counter, or the sink's file, which gpg writes itself. A
 * file sink is told where the plaintext ends once gpg has exited, on every path.
 */
async function gpgInto(
  sink: PlainSink,
  run: { home: string; fd3: string | undefined; agent: boolean; encPath: string; signal: AbortSignal | undefined },
  progress?: (n: number) => void,
): Promise<GpgIntoResult> {
  let out: number | null = null;
  let plainBytes = 0;
  try {
    if (sink.file) out = await sink.file.open(progress);
    const dec = startTool(
      {
        argv: gpgDecryptArgv(run.home, '-', 'gpg', run.agent),
        env: { ...process.env, GNUPGHOME: run.home },
        doing: `decrypting ${run.encPath}`,
        signal: run.signal,
      },
      { stdin: 'pipe', stdout: out ?? 'pipe', ...(run.fd3 === undefined ? {} : { fd3: run.fd3 }) },
    );
    const plain = new ByteCounter(progress);
    let cipher: { sha256: string; bytes: number } | null = null;
    const [feedErr, drainErr] = await Promise.all([
      settled(feedFile(run.encPath, dec.stdin!).then((fed) => (cipher = fed))),
      sink.stdin ? settled(pipeline(dec.stdout!, plain, sink.stdin)) : null,
    ]);
    const gpgErr = (await settled(dec.done)) as ToolError | null;
    plainBytes = out === null ? plain.bytes : fstatSync(out).size;
    return { feedErr, drainErr, gpgErr, stderr: dec.stderr().trim(), cipher, plainBytes };
  } finally {
    sink.file?.end(out === null ? null : plainBytes);
  }
}

/**
 * Decrypts one part straight into the stdin of another program (psql applying a delta-mode rows or
 * delta part): no plaintext touches a disk. gpg reads the ciphertext from us, so what is hashed is
 * exactly what it decrypted; the outcome is judged as decryptVerifiedPart's is (MDC, SHA-256, size,
 * plaintext size). The consumer has seen the plaintext before that verdict, so it must write only
 * into a copy the caller throws away on failure (`<target>_incoming`, the scratch database); the
 * caller also checks size and SHA-256 of every file before the first is decrypted. A consumer that
 * fails on its own rejects with its ToolError. `consumer` may also be a sink made here (recover/parallel-rows.ts).
 */
export async function decryptPartInto(
  source: DecryptSource,
  file: ManifestFile,
  consumer: ToolRun | ((signal?: AbortSignal) => PlainSink),
  ctx: Pick<RunContext, 'signal' | 'events'>,
  phase?: string,
): Promise<void> {
  const { snapshot, secret, temp } = source;
  const { signal } = ctx;
  const encPath = (await partPath(snapshot, file.name)).path;
  const gpg = await gpgHome(temp, secret);
  try {
    const sink: PlainSink = typeof consumer === 'function' ? consumer(signal) : programSink(consumer, signal);
    const progress = phase === undefined ? undefined : (n: number): void => ctx.events.bytes?.(phase, n);
    const r = await gpgInto(sink, { home: gpg.home, fd3: gpg.fd3, agent: secret.kind === 'agent', encPath, signal }, progress);
    const sinkErr = (await settled(sink.done)) as ToolError | null;
    throwIfStopped(snapshot, signal);
    if ((r.feedErr as NodeJS.ErrnoException | null)?.code === 'ENOENT') throw integrityError(snapshot, file, 'is missing', r.feedErr);
    // The consumer stopped reading (or read everything and still failed): its own error explains the run.
    if (sinkErr && (r.drainErr || !r.gpgErr)) throw sinkErr;
    await throwIfDiskFull(source, file, r.gpgErr === null, r.stderr);
    const notStarted = r.gpgErr !== null && r.gpgErr.exitStatus === null && r.gpgErr.signal === null;
    throwIfBad(
      source,
      file,
      {
        ok: r.gpgErr === null,
        ...(r.gpgErr ? { failure: notStarted ? 'missing-tool' : classifyGpgError(r.stderr) } : {}),
        stderr: r.stderr,
        // gpg stopped reading early (a wrong key, a broken header): the whole file decides whether it is damaged.
        ...(r.cipher ?? (await sha256File(encPath))),
        plainBytes: r.plainBytes,
      },
      encPath,
    );
    if (sinkErr) throw sinkErr;
  } catch (err) {
    throw (await vanishedSnapshotError(snapshot, 'it was being decrypted', err)) ?? err;
  } finally {
    await gpg.dispose();
  }
}
