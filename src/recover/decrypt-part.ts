import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { IntegrityError, UserError } from '../errors.js';
import { decryptFile, DecryptError } from '../vault/crypto.js';
import type { ManifestFile } from '../vault/manifest.js';
import type { SnapshotEntry } from '../vault/store.js';

/** A private folder (0700) for decrypted plaintext, removed by `dispose` on every path. */
export interface PrivateTemp {
  dir: string;
  dispose(): Promise<void>;
}

export async function privateTemp(base: string | undefined): Promise<PrivateTemp> {
  // mkdtemp creates the folder with mode 0700.
  const dir = await mkdtemp(path.join(base ?? tmpdir(), 'permafrost-'));
  return { dir, dispose: () => rm(dir, { recursive: true, force: true }) };
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
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

/**
 * Decrypts one part of a snapshot into the private temp folder and checks both its OpenPGP
 * integrity (MDC) and its SHA-256 against the manifest. Only a file that passed both is returned;
 * on failure nothing decrypted is left behind.
 */
export async function decryptVerifiedPart(
  snapshot: SnapshotEntry,
  file: ManifestFile,
  passphrase: string,
  temp: PrivateTemp,
): Promise<string> {
  const encPath = path.join(snapshot.dir, file.name);
  const outPath = path.join(temp.dir, file.name.replace(/\.gpg$/, ''));
  const integrity = (why: string, cause?: unknown): IntegrityError =>
    new IntegrityError(`Snapshot ${snapshot.id} failed its integrity check: ${file.name} ${why}; use another snapshot.`, { cause });
  try {
    let result: { sha256: string; bytes: number };
    try {
      result = await decryptFile(encPath, passphrase, outPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw integrity('is missing', err);
      if (!(err instanceof DecryptError)) throw err;
      // A damaged header can look like a wrong passphrase: the checksum decides which it is.
      const actual = await sha256File(encPath).catch(() => '');
      if (actual !== file.sha256) throw integrity('does not match the SHA-256 in the manifest (tampered or truncated)', err);
      if (err.reason === 'wrong-passphrase') {
        throw new UserError(
          `Cannot decrypt snapshot ${snapshot.id}: the passphrase in vault.passphraseFile is not the one it was encrypted with.`,
          { cause: err },
        );
      }
      throw integrity('fails its OpenPGP integrity check', err);
    }
    if (result.sha256 !== file.sha256 || result.bytes !== file.bytes) {
      throw integrity('does not match the SHA-256 in the manifest (tampered or truncated)');
    }
    return outPath;
  } catch (err) {
    await rm(outPath, { force: true });
    throw err;
  }
}
