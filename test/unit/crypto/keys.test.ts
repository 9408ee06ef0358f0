import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { UserError } from '../../../src/errors.js';
import { loadEncryptionKeys, readRecipient } from '../../../src/crypto/keys.js';
import { readVaultPassphrase } from '../../../src/ops/secrets.js';
import { writeEncryptedPart } from '../../../src/crypto/write-part.js';
import { writeEncryptedCapture } from '../../../src/crypto/write-capture.js';
import { gpgDecryptIn, makeGpgKey } from '../../harness/gpg-keys.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-keys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const curve = makeGpgKey(dir, 'curve');
const rsa = makeGpgKey(dir, 'rsa', { algo: 'rsa3072' });
const passFile = path.join(dir, 'passphrase');
writeFileSync(passFile, 'vault passphrase\n', { mode: 0o600 });
const data = Buffer.concat([Buffer.from('PGDMP'.repeat(100_000)), Buffer.alloc(1_500_000, 7)]);
let n = 0;

async function encryptTo(vault: { passphraseFile?: string; recipients?: string[] }, compressLevel = 1): Promise<string> {
  const into = mkdtempSync(path.join(dir, 'snap-'));
  const keys = await loadEncryptionKeys(vault, readVaultPassphrase(vault));
  const f = await writeEncryptedPart({ dir: into, part: 'redis', keys, encrypt: { compressLevel } }, Readable.from([data]));
  return path.join(into, f.name);
}

function decryptsIn(home: string, file: string, passphrase = ''): boolean {
  const out = path.join(dir, `out${++n}`);
  const r = gpgDecryptIn(home, file, out, passphrase);
  const ok = r.status === 0 && readFileSync(out).equals(data);
  if (!ok && existsSync(out)) rmSync(out);
  return ok;
}

describe('vault.recipients: public-key encryption that stock gpg decrypts', () => {
  it('Curve25519 and RSA 3072 recipients: each secret key decrypts with stock gpg -d, an empty keyring does not', async () => {
    const file = await encryptTo({ recipients: [curve.publicFile, rsa.publicFile] });
    expect(decryptsIn(curve.home, file)).toBe(true);
    expect(decryptsIn(rsa.home, file)).toBe(true);
    const empty = mkdtempSync(path.join(dir, 'empty-'));
    const r = gpgDecryptIn(empty, file, path.join(dir, `out${++n}`));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/no secret key/i);
  });

  it('recipients and a passphrase: either decrypts, and the manifest entry names both', async () => {
    const into = mkdtempSync(path.join(dir, 'snap-'));
    const keys = await loadEncryptionKeys({ recipients: [curve.publicFile] }, readVaultPassphrase({ passphraseFile: passFile }));
    const f = await writeEncryptedPart({ dir: into, part: 'redis', keys }, Readable.from([data]));
    const file = path.join(into, f.name);
    expect(decryptsIn(curve.home, file)).toBe(true);
    expect(decryptsIn(mkdtempSync(path.join(dir, 'empty-')), file, 'vault passphrase')).toBe(true);
    expect(decryptsIn(mkdtempSync(path.join(dir, 'empty-')), file, 'wrong')).toBe(false);
    expect(f.keys).toEqual({
      recipients: [{ fingerprint: curve.fingerprint, keyId: expect.stringMatching(/^[0-9A-F]{16}$/) }],
      passphrase: true,
    });
    // The PKESK names the encryption subkey, not the primary (signing) key.
    expect(curve.fingerprint.endsWith(f.keys!.recipients[0]!.keyId)).toBe(false);
  });

  it('the igzip capture path (pre-deflated data) encrypts to recipients too', async () => {
    const src = path.join(dir, 'capture-src');
    writeFileSync(src, data);
    const into = mkdtempSync(path.join(dir, 'cap-'));
    const keys = await loadEncryptionKeys({ recipients: [rsa.publicFile] }, undefined);
    const f = await writeEncryptedCapture(
      { dir: into, part: 'database', keys, encrypt: { compressLevel: 1 } },
      { argv: ['cat', src], what: 'a test file' },
    );
    expect(decryptsIn(rsa.home, path.join(into, f.name))).toBe(true);
  });

  it('a passphrase alone still writes what gpg -c writes: no PKESK, and the manifest says so', async () => {
    const file = await encryptTo({ passphraseFile: passFile }, 0);
    expect(readFileSync(file)[0]).toBe(0xc0 | 3);
    expect(decryptsIn(mkdtempSync(path.join(dir, 'empty-')), file, 'vault passphrase')).toBe(true);
  });

  it('refuses a secret key, an RSA key under 3072 bits, an expired key, a non-key file, and neither setting (UserError)', async () => {
    const small = makeGpgKey(dir, 'small', { algo: 'rsa2048' });
    const expired = makeGpgKey(dir, 'old', { expire: 'seconds=1' });
    await new Promise((r) => setTimeout(r, 1500));
    const junk = path.join(dir, 'junk.asc');
    writeFileSync(junk, 'not a key\n');
    const cases: [string, RegExp][] = [
      [curve.secretFile, /is a secret key, which must not be on the server/],
      [small.publicFile, /is RSA with 2048 bits; use RSA of at least 3072 bits or Curve25519/],
      [expired.publicFile, /cannot encrypt now .*; extend or replace it/],
      [junk, /holds no OpenPGP key/],
      [path.join(dir, 'missing.asc'), /cannot read .*missing\.asc; create it or fix the path/],
    ];
    for (const [file, message] of cases) {
      const err = await readRecipient(file).catch((e: unknown) => e);
      expect(err, file).toBeInstanceOf(UserError);
      expect((err as Error).message).toMatch(message);
      // The advice never redirects a command's output into the file it names: the shell would empty a key first.
      expect((err as Error).message).not.toContain(`> ${file}`);
    }
    await expect(loadEncryptionKeys({}, undefined)).rejects.toThrow(/sets neither vault.passphraseFile nor vault.recipients/);
  });
});
