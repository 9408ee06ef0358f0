import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Secret } from '../../../src/config/secret-values.js';
import { loadEncryptionKeys } from '../../../src/crypto/keys.js';
import { describeSnapshotKeys, passphraseOpens, snapshotKeys } from '../../../src/crypto/keys-reuse.js';
import { writeEncryptedPart } from '../../../src/crypto/write-part.js';
import type { Manifest, ManifestFile } from '../../../src/vault/manifest.js';
import type { SnapshotEntry } from '../../../src/vault/store.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-keysreuse-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const ID = '2026-12-01T10-00-00Z';
const FP_A = 'A'.repeat(40);
const FP_B = 'B'.repeat(40);
const rec = (fingerprint: string) => ({ fingerprint, keyId: fingerprint.slice(-16) });

function manifestOf(files: ManifestFile[]): Manifest {
  return {
    formatVersion: 1,
    id: ID,
    startedAt: '2026-12-01T10:00:00.000Z',
    finishedAt: '2026-12-01T10:00:01.000Z',
    tool: { name: 'permafrost', version: '0.0.0-test' },
    host: 'test',
    database: { name: 'source', serverVersion: '16', pgDumpVersion: '16', compression: '1' },
    mastodon: null,
    files,
  };
}

const entry = (snapDir: string, files: ManifestFile[]): SnapshotEntry => ({
  id: ID,
  dir: snapDir,
  time: new Date('2026-12-01T10:00:00Z'),
  manifest: manifestOf(files),
  future: false,
});

describe('snapshotKeys and describeSnapshotKeys (which key a snapshot needs)', () => {
  const part = (keys: ManifestFile['keys']): ManifestFile => ({
    name: 'redis.rdb.gpg',
    part: 'redis',
    bytes: 1,
    sha256: '0'.repeat(64),
    plainBytes: 1,
    durationMs: 1,
    ...(keys ? { keys } : {}),
  });

  it('only what opens every part counts; parts from before recipients existed are passphrase-only', () => {
    expect(snapshotKeys(manifestOf([part(undefined)]))).toEqual({ passphrase: true, recipients: [] });
    expect(
      snapshotKeys(
        manifestOf([part({ recipients: [rec(FP_B), rec(FP_A)], passphrase: true }), part({ recipients: [rec(FP_A)], passphrase: false })]),
      ),
    ).toEqual({ passphrase: false, recipients: [FP_A] });
    expect(snapshotKeys(manifestOf([part({ recipients: [rec(FP_A)], passphrase: true }), part(undefined)]))).toEqual({
      passphrase: true,
      recipients: [],
    });
  });

  it('says it in one phrase: passphrase, key …, both joined by "or", or nothing known', () => {
    expect(describeSnapshotKeys({ passphrase: true, recipients: [] })).toBe('passphrase');
    expect(describeSnapshotKeys({ passphrase: false, recipients: [FP_A] })).toBe(`key ${FP_A}`);
    expect(describeSnapshotKeys({ passphrase: true, recipients: [FP_A, FP_B] })).toBe(`passphrase or key ${FP_A} or key ${FP_B}`);
    expect(describeSnapshotKeys({ passphrase: false, recipients: [] })).toBe('nothing known');
  });
});

describe('passphraseOpens (is this the passphrase the vault\u2019s snapshots use?)', () => {
  let snap: SnapshotEntry;
  beforeAll(async () => {
    const snapDir = path.join(dir, ID);
    mkdirSync(snapDir);
    const keys = await loadEncryptionKeys({}, Secret.of('the right one'));
    const redis = await writeEncryptedPart({ dir: snapDir, part: 'redis', keys }, Readable.from([Buffer.alloc(5000, 9)]));
    // Listed first and bigger: a part nobody could open (damaged), never the one tested while a smaller one exists.
    writeFileSync(path.join(snapDir, 'database.pgdump.gpg'), Buffer.alloc(redis.bytes + 100, 1));
    // Smaller, but to a key only: a passphrase cannot open it, so it is not the one tested.
    writeFileSync(path.join(snapDir, 'roles.sql.gpg'), Buffer.alloc(10, 2));
    snap = entry(snapDir, [
      { ...redis, name: 'database.pgdump.gpg', part: 'database', bytes: redis.bytes + 100 },
      { ...redis, name: 'roles.sql.gpg', part: 'roles', bytes: 10, keys: { recipients: [rec(FP_A)], passphrase: false } },
      redis,
    ]);
  });

  it('true for the passphrase that decrypts the smallest passphrase part, false for another', async () => {
    expect(await passphraseOpens(snap, 'the right one')).toBe(true);
    expect(await passphraseOpens(snap, 'the wrong one')).toBe(false);
  });

  it('null when nothing can be tested: no passphrase part, or the smallest one is over 16 MiB', async () => {
    expect(await passphraseOpens({ ...snap, manifest: manifestOf([]) }, 'x')).toBeNull();
    expect(await passphraseOpens({ ...snap, manifest: null }, 'x')).toBeNull();
    const keyOnly = snap.manifest!.files[1]!;
    expect(await passphraseOpens({ ...snap, manifest: manifestOf([keyOnly]) }, 'x')).toBeNull();
    const huge = { ...snap.manifest!.files[2]!, bytes: 16 * 2 ** 20 + 1 };
    expect(await passphraseOpens({ ...snap, manifest: manifestOf([huge]) }, 'the right one')).toBeNull();
  });
});
