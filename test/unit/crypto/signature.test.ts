import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeys, type GeneratedKeys } from '../../../src/crypto/keys-generate.js';
import {
  parseFingerprint,
  pinnedSignerFrom,
  readSignerKey,
  readSigningKey,
  requireSignedManifest,
  signatureBytesProblem,
  signDetached,
  signedVaultEvidence,
  trustedSigner,
  type SignerKey,
  type SigningKey,
} from '../../../src/crypto/signature.js';
import { IntegrityError, UserError } from '../../../src/errors.js';
import type { Manifest } from '../../../src/vault/manifest.js';
import type { SnapshotEntry } from '../../../src/vault/store.js';
import { openVault } from '../../../src/vault/layout.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-signature-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const ID = '2026-12-01T10-00-00Z';
const MANIFEST = Buffer.from('{"formatVersion":1,"id":"2026-12-01T10-00-00Z"}\n');

const fail = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => null,
    (e: unknown) => e,
  );

let keys: GeneratedKeys;
let other: GeneratedKeys;
let signing: SigningKey;
let signer: SignerKey;
beforeAll(async () => {
  keys = await generateKeys(mkdtempSync(path.join(dir, 'home-')), mkdtempSync(path.join(dir, 'away-')));
  other = await generateKeys(mkdtempSync(path.join(dir, 'home-')), mkdtempSync(path.join(dir, 'away-')));
  signing = await readSigningKey(keys.signingSecret);
  signer = (await readSignerKey(keys.signerPublic))!;
});

/** A vault with one snapshot folder holding MANIFEST (and `sig` as manifest.json.sig when given). */
function vaultWith(sig?: string | Buffer, manifest: Partial<Manifest> = {}): { vault: string; snap: SnapshotEntry } {
  const vault = mkdtempSync(path.join(dir, 'vault-'));
  const snapDir = path.join(vault, ID);
  mkdirSync(snapDir);
  writeFileSync(path.join(snapDir, 'manifest.json'), MANIFEST);
  if (sig !== undefined) writeFileSync(path.join(snapDir, 'manifest.json.sig'), sig);
  return {
    vault,
    snap: { id: ID, dir: snapDir, time: new Date(), manifest: { id: ID, files: [], ...manifest } as Manifest, future: false },
  };
}

describe('readSigningKey (vault.signingKeyFile)', () => {
  it('takes an unprotected secret key that can sign, 0600, and says its fingerprint', () => {
    expect(signing.fingerprint).toBe(keys.signingFingerprint);
    expect(signing.key.isPrivate()).toBe(true);
  });

  it('refuses, each in one sentence (exit 2): a missing file, group/other access, a public key, a protected key', async () => {
    const missing = path.join(dir, 'none.asc');
    const loose = path.join(dir, 'loose.secret.asc');
    writeFileSync(loose, readFileSync(keys.signingSecret));
    chmodSync(loose, 0o640);
    const pub = path.join(dir, 'pub-as-secret.asc');
    writeFileSync(pub, readFileSync(keys.signerPublic), { mode: 0o600 });
    const locked = await openpgp.generateKey({
      type: 'ecc',
      curve: 'curve25519Legacy',
      userIDs: [{ name: 'locked' }],
      passphrase: 'secret',
      format: 'armored',
    });
    const protectedFile = path.join(dir, 'protected.asc');
    writeFileSync(protectedFile, locked.privateKey, { mode: 0o600 });
    const cases: [string, string | RegExp][] = [
      [missing, `vault.signingKeyFile: cannot read ${missing}; create it (\`permafrost init --generate-keys DIR\`) or fix the path.`],
      [loose, `vault.signingKeyFile: ${loose} is accessible by group or others (mode 0640); run \`chmod 600 ${loose}\` and try again.`],
      [
        pub,
        `vault.signingKeyFile: ${pub} holds the public key ${keys.signingFingerprint}; point vault.signingKeyFile at its secret key (vault.signerKeyFile takes the public one).`,
      ],
      [
        protectedFile,
        /^vault\.signingKeyFile: the key [0-9A-F]{40} in .*protected\.asc is passphrase-protected; the server signs unattended/,
      ],
    ];
    for (const [file, message] of cases) {
      const err = await fail(readSigningKey(file));
      expect(err, file).toBeInstanceOf(UserError);
      if (typeof message === 'string') expect((err as Error).message).toBe(message);
      else expect((err as Error).message).toMatch(message);
    }
  });
});

describe('readSignerKey (vault.signerKeyFile)', () => {
  it('null when not configured; the public key with its fingerprint; a secret key refused (a device needs only the public half)', async () => {
    expect(await readSignerKey(undefined)).toBeNull();
    expect(signer).toMatchObject({ fingerprint: keys.signingFingerprint, file: keys.signerPublic });
    const err = await fail(readSignerKey(keys.signingSecret));
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/^vault\.signerKeyFile: .* is a secret key; a device needs only the public one/);
  });
});

describe('signDetached and signatureBytesProblem', () => {
  it('a signature over exactly these bytes by that key: no problem, armored or binary (gpg --detach-sign)', async () => {
    const armored = await signDetached(MANIFEST, signing);
    expect(armored).toMatch(/^-----BEGIN PGP SIGNATURE-----/);
    expect(await signatureBytesProblem(MANIFEST, Buffer.from(armored), signer)).toBeNull();
    const binary = Buffer.from((await openpgp.readSignature({ armoredSignature: armored })).write() as Uint8Array);
    expect(await signatureBytesProblem(MANIFEST, binary, signer)).toBeNull();
  });

  it('names each problem: missing (with the pinned label when pinned), not a signature, another key, an edited manifest', async () => {
    const sig = Buffer.from(await signDetached(MANIFEST, signing));
    expect(await signatureBytesProblem(MANIFEST, null, signer)).toBe(
      'manifest.json.sig is missing (the manifest is unsigned, and vault.signerKeyFile requires a signature)',
    );
    expect(await signatureBytesProblem(MANIFEST, null, { ...signer, label: 'the signer you pinned (--signer)' })).toBe(
      `manifest.json.sig is missing (the manifest is unsigned, and the signer you pinned (--signer) ${keys.signingFingerprint} requires a signature)`,
    );
    expect(await signatureBytesProblem(MANIFEST, Buffer.from('not a signature'), signer)).toBe(
      'manifest.json.sig is no OpenPGP signature (neither armored nor binary)',
    );
    const byOther = Buffer.from(await signDetached(MANIFEST, await readSigningKey(other.signingSecret)));
    expect(await signatureBytesProblem(MANIFEST, byOther, signer)).toBe(
      `manifest.json.sig is signed by key ${other.signingFingerprint.slice(-16)}, not by the vault.signerKeyFile key ${keys.signingFingerprint}`,
    );
    const edited = Buffer.from(MANIFEST.toString().replace('10-00-00Z', '11-00-00Z'));
    expect(await signatureBytesProblem(edited, sig, signer)).toBe(
      'manifest.json.sig does not match manifest.json (edited after it was signed)',
    );
  });
});

describe('requireSignedManifest', () => {
  it('refuses an unsigned or edited snapshot with exit 3 and the snapshot named; passes a signed one; no signer: no check', async () => {
    const signed = vaultWith(await signDetached(MANIFEST, signing));
    await requireSignedManifest(signed.snap, signer);
    const unsigned = vaultWith();
    const err = await fail(requireSignedManifest(unsigned.snap, signer));
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toBe(
      `Snapshot ${ID} failed its signature check: manifest.json.sig is missing (the manifest is unsigned, and vault.signerKeyFile requires a signature); use another snapshot, and find out who wrote this one.`,
    );
    await requireSignedManifest(unsigned.snap, null);
    // A damaged entry (no manifest) is refused elsewhere, with its own reason.
    await requireSignedManifest({ ...unsigned.snap, manifest: null }, signer);
  });
});

describe('parseFingerprint (--signer)', () => {
  it('takes 40 hex digits in any case, with gpg\u2019s spaces; refuses a key id or junk (exit 2)', () => {
    const fp = keys.signingFingerprint;
    expect(parseFingerprint(fp.toLowerCase().replace(/(.{4})/g, '$1 '))).toBe(fp);
    for (const bad of [fp.slice(-16), `${fp}0`, 'G'.repeat(40)]) {
      expect(() => parseFingerprint(bad)).toThrow(UserError);
    }
    expect(() => parseFingerprint('ABCD', '--expect')).toThrow(/^--expect takes the signing key's full fingerprint \(40 hex digits/);
  });
});

describe('pinnedSignerFrom (the fingerprint is the trust anchor, signer.pub.asc only key material)', () => {
  const source = (bytes: Buffer | null) => ({
    where: '/vault',
    file: '/vault/signer.pub.asc',
    read: () => (bytes ? Promise.resolve(bytes) : Promise.reject(new Error('ENOENT'))),
  });

  it('the configured key when it has the pinned fingerprint, else the key of that fingerprint in signer.pub.asc', async () => {
    const fromConfig = await pinnedSignerFrom(source(null), keys.signingFingerprint, signer);
    expect(fromConfig).toMatchObject({
      fingerprint: keys.signingFingerprint,
      file: keys.signerPublic,
      label: 'the signer you pinned (--signer)',
    });
    const fromVault = await pinnedSignerFrom(source(readFileSync(keys.signerPublic)), keys.signingFingerprint, null);
    expect(fromVault).toMatchObject({ fingerprint: keys.signingFingerprint, file: '/vault/signer.pub.asc' });
    expect(fromVault.keyIds).toBeUndefined();
  });

  it('pinning a subkey counts only signatures by that subkey', async () => {
    const key = await openpgp.readKey({ armoredKey: readFileSync(keys.signerPublic, 'utf8') });
    const sub = key.getSubkeys()[0]!.getFingerprint().toUpperCase();
    const pinned = await pinnedSignerFrom(source(readFileSync(keys.signerPublic)), sub, null);
    expect(pinned.keyIds).toEqual([sub.slice(-16)]);
    const sig = Buffer.from(await signDetached(MANIFEST, signing));
    expect(await signatureBytesProblem(MANIFEST, sig, pinned)).toMatch(/is signed by key [0-9A-F]{16}, not by the signer you pinned/);
  });

  it('refuses with exit 3: no key file, a file that is no key, a file without the pinned key', async () => {
    const cases: [Buffer | null, RegExp][] = [
      [null, /^\/vault holds no signer\.pub\.asc .* cannot be checked against [0-9A-F]{40}; copy that public key there/],
      [Buffer.from('junk'), /^\/vault\/signer\.pub\.asc holds no OpenPGP public key; copy the signer's public key there again\.$/],
      [
        readFileSync(other.signerPublic),
        /^\/vault\/signer\.pub\.asc holds no key with the fingerprint [0-9A-F]{40} you pinned: this vault is signed by another key/,
      ],
    ];
    for (const [bytes, message] of cases) {
      const err = await fail(pinnedSignerFrom(source(bytes), keys.signingFingerprint, null));
      expect(err).toBeInstanceOf(IntegrityError);
      expect((err as Error).message).toMatch(message);
    }
  });
});

describe('signedVaultEvidence', () => {
  it('null for an unsigned vault; else the first sign: the signer key at the root, signedBy, a signature file', async () => {
    const plain = vaultWith();
    expect(await signedVaultEvidence(openVault(plain.vault), plain.snap)).toBeNull();
    expect(
      await signedVaultEvidence(openVault(plain.vault), { ...plain.snap, manifest: { ...plain.snap.manifest!, signedBy: 'ABCD' } }),
    ).toBe(`snapshot ${ID}'s manifest says it was signed by ABCD`);
    const withSig = vaultWith('x');
    expect(await signedVaultEvidence(openVault(withSig.vault), withSig.snap)).toBe(`snapshot ${ID} has a manifest.json.sig`);
    writeFileSync(path.join(withSig.vault, 'signer.pub.asc'), 'k');
    expect(await signedVaultEvidence(openVault(withSig.vault), withSig.snap)).toBe("it holds the signer's public key signer.pub.asc");
  });
});

describe('trustedSigner (whose signature restore and verify require)', () => {
  it('--signer and --insecure-no-signature-check together are refused (exit 2)', async () => {
    const { vault, snap } = vaultWith();
    const err = await fail(
      trustedSigner({ dir: vault }, snap, { signer: keys.signingFingerprint, insecureNoSignatureCheck: true }, 'restore'),
    );
    expect(err).toBeInstanceOf(UserError);
  });

  it('the pinned fingerprint first, then vault.signerKeyFile, then the public half of vault.signingKeyFile', async () => {
    const { vault, snap } = vaultWith();
    writeFileSync(path.join(vault, 'signer.pub.asc'), readFileSync(keys.signerPublic));
    const pinned = await trustedSigner(
      { dir: vault, signerKeyFile: other.signerPublic },
      snap,
      { signer: keys.signingFingerprint },
      'verify',
    );
    expect(pinned).toMatchObject({
      signer: { fingerprint: keys.signingFingerprint, file: path.join(vault, 'signer.pub.asc') },
      warning: null,
    });
    const configured = await trustedSigner(
      { dir: vault, signerKeyFile: other.signerPublic, signingKeyFile: keys.signingSecret },
      snap,
      {},
      'verify',
    );
    expect(configured.signer?.fingerprint).toBe(other.signingFingerprint);
    const own = await trustedSigner({ dir: vault, signingKeyFile: keys.signingSecret }, snap, {}, 'verify');
    expect(own.signer?.fingerprint).toBe(keys.signingFingerprint);
    expect(own.signer?.key.isPrivate()).toBe(false);
  });

  it('no key at all: an unsigned vault goes on with a warning; a signed one is refused (exit 2) unless --insecure-no-signature-check', async () => {
    const plain = vaultWith();
    const unsigned = await trustedSigner({ dir: plain.vault }, plain.snap, {}, 'restore');
    expect(unsigned.signer).toBeNull();
    expect(unsigned.warning).toMatch(
      /^this vault's manifests are not signed, so nothing proves who wrote snapshot .*restore with --signer FINGERPRINT\.$/,
    );
    const signed = vaultWith('sig');
    const err = await fail(trustedSigner({ dir: signed.vault }, signed.snap, {}, 'verify'));
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(
      new RegExp(
        `^This vault's manifests are signed \\(snapshot ${ID} has a manifest\\.json\\.sig\\), so verify checks who wrote them before it decrypts anything: pass --signer FINGERPRINT`,
      ),
    );
    const insecure = await trustedSigner({ dir: signed.vault }, signed.snap, { insecureNoSignatureCheck: true }, 'restore');
    expect(insecure).toEqual({
      signer: null,
      warning: `--insecure-no-signature-check: no manifest's signature was checked, so whoever can write to ${signed.vault} could have written what was restored.`,
    });
  });
});
