import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IntegrityError, PermafrostError } from '../../../src/errors.js';
import { decryptVerifiedPart, privateTemp, vaultTempBase } from '../../../src/recover/decrypt.js';
import type { ManifestFile } from '../../../src/vault/manifest.js';
import type { SnapshotEntry } from '../../../src/vault/store.js';
import { runContext } from '../../../src/run-context.js';

const root = mkdtempSync(path.join(tmpdir(), 'permafrost-vanished-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const file: ManifestFile = { name: 'redis.rdb.gpg', part: 'redis', bytes: 10, sha256: '0'.repeat(64), plainBytes: 10, durationMs: 1 };

async function decryptFrom(snapshot: SnapshotEntry): Promise<unknown> {
  const temp = await privateTemp(vaultTempBase(root));
  try {
    return await decryptVerifiedPart({ snapshot, secret: { kind: 'passphrase', passphrase: 'x' }, temp }, file, runContext()).catch(
      (e: unknown) => e,
    );
  } finally {
    await temp.dispose();
  }
}

// verify/restore choose the snapshot first and open its parts later; a prune in between removes the folder.
describe('decryptVerifiedPart after the chosen snapshot was pruned', () => {
  it('says the snapshot was removed meanwhile (exit 1, run again), not that it is damaged', async () => {
    const dir = path.join(root, '2026-01-02T00-00-00Z');
    mkdirSync(dir);
    writeFileSync(path.join(dir, file.name), 'x'.repeat(10));
    const snapshot = { id: '2026-01-02T00-00-00Z', dir, time: new Date(), manifest: null, future: false } satisfies SnapshotEntry;
    rmSync(dir, { recursive: true }); // the prune
    const err = await decryptFrom(snapshot);
    expect(err).toBeInstanceOf(PermafrostError);
    expect(err).not.toBeInstanceOf(IntegrityError);
    expect((err as PermafrostError).exitCode).toBe(1);
    expect((err as Error).message).toBe(
      'Snapshot 2026-01-02T00-00-00Z was removed while it was being decrypted (a prune ran meanwhile?); run again.',
    );
  });

  it('a part missing from a folder that is still there stays an integrity failure', async () => {
    const dir = path.join(root, '2026-01-03T00-00-00Z');
    mkdirSync(dir);
    const err = await decryptFrom({ id: '2026-01-03T00-00-00Z', dir, time: new Date(), manifest: null, future: false });
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toMatch(/redis\.rdb\.gpg is missing/);
  });
});
