import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { afterAll, describe, expect, it } from 'vitest';
import { generateKeys } from '../../../src/crypto/keys-generate.js';
import { readRecipient } from '../../../src/crypto/keys.js';
import { UserError } from '../../../src/errors.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-genkeys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const mode = (f: string): number => statSync(f).mode & 0o777;

describe('generateKeys (init --generate-keys)', () => {
  it('writes a recipient pair and a signing pair: secrets 0600, public halves 0644, names and fingerprints as told', async () => {
    const home = mkdtempSync(path.join(dir, 'home-'));
    const secretDir = mkdtempSync(path.join(dir, 'away-'));
    const k = await generateKeys(home, path.relative(process.cwd(), secretDir));
    expect(k.recipientPublic).toBe(path.join(home, 'recipient.pub.asc'));
    expect(k.signingSecret).toBe(path.join(home, 'signing.secret.asc'));
    expect(k.signerPublic).toBe(path.join(home, 'signing.pub.asc'));
    // The recipient's secret goes to the (resolved) other folder, named after its fingerprint.
    expect(k.recipientSecret).toBe(path.join(secretDir, `permafrost-${k.recipientFingerprint.slice(-16)}.secret.asc`));
    expect(readdirSync(home).sort()).toEqual(['recipient.pub.asc', 'signing.pub.asc', 'signing.secret.asc']);
    expect([mode(k.recipientSecret), mode(k.signingSecret)]).toEqual([0o600, 0o600]);
    expect([mode(k.recipientPublic), mode(k.signerPublic)]).toEqual([0o644, 0o644]);

    const pub = await openpgp.readKey({ armoredKey: readFileSync(k.recipientPublic, 'utf8') });
    expect(pub.isPrivate()).toBe(false);
    expect(pub.getFingerprint().toUpperCase()).toBe(k.recipientFingerprint);
    const signer = await openpgp.readKey({ armoredKey: readFileSync(k.signerPublic, 'utf8') });
    expect(signer.getFingerprint().toUpperCase()).toBe(k.signingFingerprint);
    expect(k.signingFingerprint).not.toBe(k.recipientFingerprint);
    const secret = await openpgp.readPrivateKey({ armoredKey: readFileSync(k.recipientSecret, 'utf8') });
    expect(secret.getFingerprint().toUpperCase()).toBe(k.recipientFingerprint);
    expect(secret.isDecrypted()).toBe(true);
    // The public half is what vault.recipients accepts (Curve25519, can encrypt now).
    expect((await readRecipient(k.recipientPublic)).fingerprint).toBe(k.recipientFingerprint);
  });

  it('never replaces a key: a second run into the same folder fails before writing any new secret', async () => {
    const home = mkdtempSync(path.join(dir, 'home-'));
    const secretDir = mkdtempSync(path.join(dir, 'away-'));
    await generateKeys(home, secretDir);
    const before = readdirSync(secretDir);
    const signing = readFileSync(path.join(home, 'signing.secret.asc'), 'utf8');
    const err = await generateKeys(home, secretDir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe(
      `${path.join(home, 'recipient.pub.asc')} already exists; keys are never replaced: move it away or choose another folder.`,
    );
    // All or nothing: no second recipient secret beside config that names the first.
    expect(readdirSync(secretDir)).toEqual(before);
    expect(readFileSync(path.join(home, 'signing.secret.asc'), 'utf8')).toBe(signing);
  });

  it('a signing key alone already there is refused too; a missing secret folder is one sentence', async () => {
    const home = mkdtempSync(path.join(dir, 'home-'));
    writeFileSync(path.join(home, 'signing.pub.asc'), 'old');
    await expect(generateKeys(home, mkdtempSync(path.join(dir, 'away-')))).rejects.toThrow(
      `${path.join(home, 'signing.pub.asc')} already exists; keys are never replaced`,
    );
    const fresh = mkdtempSync(path.join(dir, 'home-'));
    const err = await generateKeys(fresh, path.join(dir, 'no-such-folder')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(
      /^Cannot write .*no-such-folder\/permafrost-[0-9A-F]{16}\.secret\.asc; check that the folder exists and is writable\.$/,
    );
    expect(readdirSync(fresh)).toEqual([]);
  });
});
