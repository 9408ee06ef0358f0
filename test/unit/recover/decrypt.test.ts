import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { IntegrityError, UserError } from '../../../src/errors.js';
import { decryptVerifiedPart, privateTemp, vaultTempBase } from '../../../src/recover/decrypt.js';
import type { ManifestFile } from '../../../src/vault/manifest.js';
import { encryptOpenPgpStream, skeskPacket } from '../../../src/vault/openpgp-stream.js';
import type { SnapshotEntry } from '../../../src/vault/store.js';

const root = mkdtempSync(path.join(tmpdir(), 'permafrost-decrypt-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const PASS = 'correct horse battery staple';
let n = 0;

/** A snapshot folder with one encrypted part and the manifest entry a backup would have written. */
async function snapshotWith(plain: Buffer): Promise<{ snapshot: SnapshotEntry; file: ManifestFile; enc: string }> {
  const dir = mkdtempSync(path.join(root, 'snap-'));
  const enc = path.join(dir, 'redis.rdb.gpg');
  await pipeline(encryptOpenPgpStream(Readable.from([plain]), skeskPacket(PASS), { compressLevel: 1 }), createWriteStream(enc));
  const bytes = readFileSync(enc);
  const file: ManifestFile = {
    name: 'redis.rdb.gpg',
    part: 'redis',
    bytes: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    plainBytes: plain.length,
    durationMs: 1,
  };
  const snapshot = { id: `S${++n}`, dir, time: new Date(), manifest: null } as SnapshotEntry;
  return { snapshot, file, enc };
}

async function attempt(snapshot: SnapshotEntry, file: ManifestFile, passphrase = PASS) {
  const temp = await privateTemp(vaultTempBase(root));
  try {
    const out = await decryptVerifiedPart({ snapshot, secret: { kind: 'passphrase', passphrase }, temp }, file).catch((e: unknown) => e);
    return { out, left: readdirSync(temp.dir) };
  } finally {
    await temp.dispose();
  }
}

describe('decryptVerifiedPart', () => {
  const data = randomBytes(200_000);

  it('returns the plaintext in a 0600 file inside the 0700 temp folder when everything matches', async () => {
    const { snapshot, file } = await snapshotWith(data);
    const temp = await privateTemp(vaultTempBase(root));
    try {
      expect(statSync(temp.dir).mode & 0o777).toBe(0o700);
      let seen = 0;
      const out = await decryptVerifiedPart({ snapshot, secret: { kind: 'passphrase', passphrase: PASS }, temp }, file, {
        progress: (b) => (seen = b),
      });
      expect(path.dirname(out)).toBe(temp.dir);
      expect(readFileSync(out).equals(data)).toBe(true);
      expect(statSync(out).mode & 0o777).toBe(0o600);
      expect(seen).toBe(data.length);
    } finally {
      await temp.dispose();
    }
    expect(existsSync(temp.dir)).toBe(false);
  });

  it('a flipped byte or a truncated part is an IntegrityError and leaves no plaintext', async () => {
    for (const damage of [(b: Buffer) => ((b[b.length >> 1]! ^= 1), b), (b: Buffer) => b.subarray(0, b.length - 100)]) {
      const { snapshot, file, enc } = await snapshotWith(data);
      writeFileSync(enc, damage(Buffer.from(readFileSync(enc))));
      const { out, left } = await attempt(snapshot, file);
      expect(out).toBeInstanceOf(IntegrityError);
      expect((out as Error).message).toMatch(/redis\.rdb\.gpg does not match the SHA-256 in the manifest/);
      expect(left).toEqual([]);
    }
  });

  it('a wrong passphrase is a UserError naming vault.passphraseFile, and leaves no plaintext', async () => {
    const { snapshot, file } = await snapshotWith(data);
    const { out, left } = await attempt(snapshot, file, 'not the passphrase');
    expect(out).toBeInstanceOf(UserError);
    expect((out as Error).message).toMatch(/passphrase in vault\.passphraseFile is not the one/);
    expect(left).toEqual([]);
  });

  it('a plaintext size other than the manifest says is an IntegrityError', async () => {
    const { snapshot, file } = await snapshotWith(data);
    const { out, left } = await attempt(snapshot, { ...file, plainBytes: file.plainBytes + 1 });
    expect(out).toBeInstanceOf(IntegrityError);
    expect((out as Error).message).toMatch(/decrypts to 200000 bytes where the manifest says 200001/);
    expect(left).toEqual([]);
  });

  it('a missing part is an IntegrityError saying so', async () => {
    const { snapshot, file, enc } = await snapshotWith(data);
    rmSync(enc);
    const { out, left } = await attempt(snapshot, file);
    expect(out).toBeInstanceOf(IntegrityError);
    expect((out as Error).message).toMatch(/redis\.rdb\.gpg is missing/);
    expect(left).toEqual([]);
  });
});
