/**
 * Keys and rebuilds: which key a snapshot needs, and whether a passphrase or public key given to
 * `init` is the one a vault's snapshots already use. A passphrase has no fingerprint on purpose:
 * any value computed from it would let whoever reads the vault test guesses against it; what
 * identifies it is that it opens the snapshots' key packets (SKESK), which only it can do.
 */
import { readFile } from 'node:fs/promises';
import * as openpgp from 'openpgp';
import { GPG22_CONFIG } from './keys.js';
import type { Manifest } from '../vault/manifest.js';
import { keysOpeningEvery, type SnapshotKeys } from '../vault/snapshot-keys.js';
import { partPath, type SnapshotEntry } from '../vault/store.js';

export type { SnapshotKeys };

/** SnapshotKeys of a manifest; parts written before recipients existed are passphrase-only. */
export function snapshotKeys(manifest: Manifest): SnapshotKeys {
  return keysOpeningEvery(manifest.files.map((f) => f.keys));
}

/** One phrase for SnapshotKeys: `passphrase`, `key 0123…CDEF`, `passphrase or key …`. */
export function describeSnapshotKeys(k: SnapshotKeys): string {
  const keys = k.recipients.map((fp) => `key ${fp}`);
  const all = [...(k.passphrase ? ['passphrase'] : []), ...keys];
  return all.length === 0 ? 'nothing known' : all.join(' or ');
}

/** Parts larger than this are not decrypted just to test a passphrase (the roles part, a few KiB, is in every recent snapshot). */
const MAX_TEST_BYTES = 16 * 1024 * 1024;

/**
 * Whether `passphrase` decrypts the snapshot's smallest passphrase-encrypted part, integrity check
 * (MDC) included: a passphrase-only SKESK carries no session key to check, so only decrypting
 * proves it. The plaintext stays in memory and is dropped. Null when no part can be tested.
 */
export async function passphraseOpens(snapshot: SnapshotEntry, passphrase: string): Promise<boolean | null> {
  const files = (snapshot.manifest?.files ?? []).filter((f) => f.keys?.passphrase !== false).sort((a, b) => a.bytes - b.bytes);
  const file = files[0];
  if (!file || file.bytes > MAX_TEST_BYTES) return null;
  const bytes = await readFile((await partPath(snapshot, file.name)).path);
  try {
    const message = await openpgp.readMessage({ binaryMessage: bytes, config: GPG22_CONFIG });
    await openpgp.decrypt({ message, passwords: [passphrase], format: 'binary', config: GPG22_CONFIG });
    return true;
  } catch {
    return false;
  }
}
