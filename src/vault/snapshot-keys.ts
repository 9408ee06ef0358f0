/** What opens a snapshot, from its manifest's part records alone (no crypto, no schema: cheap enough for `list`). */
import type { ManifestFile } from './manifest.js';

/** What opens every part of a snapshot: the passphrase (an SKESK in each part) and/or these keys (a PKESK in each part). */
export interface SnapshotKeys {
  passphrase: boolean;
  /** Primary fingerprints of the recipient keys every part is encrypted to. */
  recipients: string[];
}

/** The keys every one of these parts opens with (parts written before recipients existed have no `keys`: passphrase-only). */
export function keysOpeningEvery(parts: ReadonlyArray<ManifestFile['keys']>): SnapshotKeys {
  const known = parts.map((k) => k ?? { recipients: [], passphrase: true });
  if (known.length === 0) return { passphrase: false, recipients: [] };
  const sets = known.map((p) => new Set(p.recipients.map((r) => r.fingerprint)));
  return {
    passphrase: known.every((p) => p.passphrase),
    recipients: [...sets[0]!].filter((fp) => sets.every((s) => s.has(fp))).sort(),
  };
}
