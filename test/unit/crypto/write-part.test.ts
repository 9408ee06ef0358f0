import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { loadEncryptionKeys } from '../../../src/crypto/keys.js';
import { writeEncryptedPart } from '../../../src/crypto/write-part.js';
import { Secret } from '../../../src/config/secret-values.js';
import { gpgDecryptIn } from '../../harness/gpg-keys.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-writepart-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const keys = () => loadEncryptionKeys({}, Secret.of('part passphrase'));
const data = Buffer.concat([Buffer.from('REDIS0011'), Buffer.alloc(300_000, 3), Buffer.from('tail')]);

describe('writeEncryptedPart', () => {
  it('writes the part under its manifest name (0640), and its entry: ciphertext size and SHA-256, plaintext size, keys', async () => {
    const into = mkdtempSync(path.join(dir, 'snap-'));
    const seen: number[] = [];
    const f = await writeEncryptedPart(
      { dir: into, part: 'redis', keys: await keys(), progress: (n) => seen.push(n) },
      Readable.from([data.subarray(0, 1000), data.subarray(1000)]),
    );
    expect(f.name).toBe('redis.rdb.gpg');
    expect(f.part).toBe('redis');
    expect(readdirSync(into)).toEqual([f.name]);
    const file = path.join(into, f.name);
    const cipher = readFileSync(file);
    expect(f.bytes).toBe(cipher.length);
    expect(f.sha256).toBe(createHash('sha256').update(cipher).digest('hex'));
    expect(f.plainBytes).toBe(data.length);
    expect(f.keys).toEqual({ recipients: [], passphrase: true });
    expect(f.durationMs).toBeGreaterThanOrEqual(0);
    expect(statSync(file).mode & 0o777).toBe(0o640);
    // Progress counts plaintext, growing to the whole.
    expect(seen.at(-1)).toBe(data.length);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    // No plaintext on disk: the file is an OpenPGP message stock gpg opens with the passphrase.
    expect(cipher.includes(Buffer.from('REDIS0011'))).toBe(false);
    const out = path.join(dir, 'plain-out');
    expect(gpgDecryptIn(mkdtempSync(path.join(dir, 'gnupg-')), file, out, 'part passphrase').status).toBe(0);
    expect(readFileSync(out).equals(data)).toBe(true);
    rmSync(out);
  });

  it('never overwrites a part already in the folder', async () => {
    const into = mkdtempSync(path.join(dir, 'snap-'));
    writeFileSync(path.join(into, 'env.production.gpg'), 'earlier');
    await expect(writeEncryptedPart({ dir: into, part: 'secrets', keys: await keys() }, Readable.from([data]))).rejects.toMatchObject({
      code: 'EEXIST',
    });
    expect(readFileSync(path.join(into, 'env.production.gpg'), 'utf8')).toBe('earlier');
  });

  it('a source that fails midway fails the write with its own error (no entry for a cut part)', async () => {
    const into = mkdtempSync(path.join(dir, 'snap-'));
    const broken = new Readable({
      read() {
        this.push(Buffer.alloc(1000));
        this.destroy(new Error('redis-cli died'));
      },
    });
    await expect(writeEncryptedPart({ dir: into, part: 'redis', keys: await keys() }, broken)).rejects.toThrow('redis-cli died');
  }, 15_000);
});
