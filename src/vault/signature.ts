/**
 * Signed manifests. With vault.signingKeyFile the server writes a detached OpenPGP signature of
 * `manifest.json` as `manifest.json.sig` (stock `gpg --verify manifest.json.sig manifest.json`
 * accepts it); with vault.signerKeyFile (the public half) check, verify and restore refuse a
 * snapshot whose manifest is unsigned, signed by another key, or edited. Without this, whoever
 * can write to the vault can edit a manifest, fix its SHA-256 sums to match a swapped-in part,
 * and have restore accept it. The SHA-256 sums in the signed manifest then bind every part.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { IntegrityError, UserError } from '../errors.js';
import { GPG22_CONFIG, readKeyFile } from './keys.js';
import { MANIFEST_NAME, SIGNATURE_NAME } from './manifest.js';
import type { SnapshotEntry } from './store.js';

/** The server's signing key: an unprotected secret key, mode 0600 (the daemon signs unattended). */
export interface SigningKey {
  key: openpgp.PrivateKey;
  fingerprint: string;
}

/** The public key manifests must be signed by (vault.signerKeyFile). */
export interface SignerKey {
  key: openpgp.PublicKey;
  fingerprint: string;
  file: string;
}

/** Reads vault.signingKeyFile: a secret key that can sign, unprotected, in a file only its owner can read. */
export async function readSigningKey(file: string, setting = 'vault.signingKeyFile'): Promise<SigningKey> {
  const mode =
    (
      await stat(file).catch((err: unknown) => {
        throw new UserError(`${setting}: cannot read ${file}; create it (\`permafrost init --generate-keys DIR\`) or fix the path.`, {
          cause: err,
        });
      })
    ).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new UserError(
      `${setting}: ${file} is accessible by group or others (mode 0${mode.toString(8)}); run \`chmod 600 ${file}\` and try again.`,
    );
  }
  const key = await readKeyFile(file, setting);
  const fingerprint = key.getFingerprint().toUpperCase();
  if (!key.isPrivate())
    throw new UserError(
      `${setting}: ${file} holds the public key ${fingerprint}; point ${setting} at its secret key (vault.signerKeyFile takes the public one).`,
    );
  if (!key.isDecrypted()) {
    throw new UserError(
      `${setting}: the key ${fingerprint} in ${file} is passphrase-protected; the server signs unattended, so use a signing key without a passphrase (\`permafrost init --generate-keys DIR\` makes one).`,
    );
  }
  try {
    await key.getSigningKey(undefined, new Date(), undefined, { ...openpgp.config, ...GPG22_CONFIG });
  } catch (err) {
    throw new UserError(
      `${setting}: the key ${fingerprint} in ${file} cannot sign now (${(err as Error).message}); extend or replace it.`,
      { cause: err },
    );
  }
  return { key: key, fingerprint };
}

/** Reads vault.signerKeyFile (a public key); null when it is not configured. */
export async function readSignerKey(file: string | undefined): Promise<SignerKey | null> {
  if (file === undefined) return null;
  const key = await readKeyFile(file, 'vault.signerKeyFile');
  if (key.isPrivate()) {
    throw new UserError(
      `vault.signerKeyFile: ${file} is a secret key; a device needs only the public one: export it to a new file (\`gpg --import ${file}; gpg --export --armor KEYID > KEYID.pub.asc\`) and point vault.signerKeyFile there.`,
    );
  }
  return { key: key, fingerprint: key.getFingerprint().toUpperCase(), file };
}

/** A detached, armored signature of `bytes` that gpg 2.2 verifies. */
export async function signDetached(bytes: Buffer, signing: SigningKey): Promise<string> {
  return openpgp.sign({
    message: await openpgp.createMessage({ binary: bytes }),
    signingKeys: signing.key,
    detached: true,
    format: 'armored',
    config: GPG22_CONFIG,
  });
}

/**
 * What is wrong with the signature of the manifest in `dir` against `signer`, one phrase (null:
 * signed by that key over exactly these bytes).
 */
export async function signatureProblem(dir: string, signer: SignerKey): Promise<string | null> {
  const manifestBytes = await readFile(path.join(dir, MANIFEST_NAME));
  let armored: string;
  try {
    armored = await readFile(path.join(dir, SIGNATURE_NAME), 'utf8');
  } catch {
    return `${SIGNATURE_NAME} is missing (the manifest is unsigned, and vault.signerKeyFile requires a signature)`;
  }
  let signature: openpgp.Signature;
  try {
    signature = await openpgp.readSignature({ armoredSignature: armored });
  } catch {
    return `${SIGNATURE_NAME} is no OpenPGP signature`;
  }
  const ids = signature.getSigningKeyIDs().map((id) => id.toHex().toUpperCase());
  const ours = [signer.key, ...signer.key.getSubkeys()].map((k) => k.getKeyID().toHex().toUpperCase());
  if (!ids.some((id) => ours.includes(id))) {
    return `${SIGNATURE_NAME} is signed by key ${ids.join(', ') || 'unknown'}, not by the vault.signerKeyFile key ${signer.fingerprint}`;
  }
  const result = await openpgp.verify({
    message: await openpgp.createMessage({ binary: manifestBytes }),
    signature,
    verificationKeys: signer.key,
    expectSigned: false,
    format: 'binary',
  });
  try {
    await result.signatures[0]!.verified;
    return null;
  } catch {
    return `${SIGNATURE_NAME} does not match ${MANIFEST_NAME} (edited after it was signed)`;
  }
}

/** Refuses (exit 3) a snapshot whose manifest is not signed by `signer`, before anything of it is used; no-op without a signer. */
export async function requireSignedManifest(snapshot: SnapshotEntry, signer: SignerKey | null): Promise<void> {
  if (!signer || !snapshot.manifest) return;
  const problem = await signatureProblem(snapshot.dir, signer);
  if (problem) {
    throw new IntegrityError(
      `Snapshot ${snapshot.id} failed its signature check: ${problem}; use another snapshot, and find out who wrote this one.`,
    );
  }
}
