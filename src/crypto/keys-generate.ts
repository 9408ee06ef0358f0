/**
 * `permafrost init --generate-keys DIR`: a recipient key pair (whose secret half is written once,
 * into DIR, for the admin to move off the server) and a signing key pair (whose secret half stays
 * on the server to sign manifests). Curve25519 v4 keys, as gpg 2.2 reads them.
 */
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { UserError } from '../errors.js';
import { createExclusive } from '../vault/fs-durable.js';
import { GPG22_CONFIG } from './keys.js';

export interface GeneratedKeys {
  /** vault.recipients: the public half, on the server. */
  recipientPublic: string;
  /** The recipient's secret half, in DIR: to be moved off the server. */
  recipientSecret: string;
  recipientFingerprint: string;
  /** vault.signingKeyFile (0600, stays on the server) and vault.signerKeyFile (for devices too). */
  signingSecret: string;
  signerPublic: string;
  signingFingerprint: string;
}

/** Writes `text` to a new file (never replacing one) with `mode`, synced; one sentence when it cannot. */
async function writeOnce(file: string, text: string, mode: number): Promise<void> {
  try {
    await createExclusive(file, text, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new UserError(`${file} already exists; keys are never replaced: move it away or choose another folder.`, { cause: err });
    }
    throw new UserError(`Cannot write ${file}; check that the folder exists and is writable.`, { cause: err });
  }
}

/** A Curve25519 (EdDSA + ECDH, v4) key pair gpg 2.2 reads, unprotected. */
async function newKeyPair(name: string): Promise<{ publicKey: string; privateKey: string; fingerprint: string }> {
  const { publicKey, privateKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: [{ name, email: `permafrost@${hostname()}` }],
    format: 'armored',
    config: GPG22_CONFIG,
  });
  const fingerprint = (await openpgp.readKey({ armoredKey: publicKey })).getFingerprint().toUpperCase();
  return { publicKey, privateKey, fingerprint };
}

/**
 * Generates both key pairs: public halves and the signing secret into `home` (the config's
 * folder), the recipient's secret into `secretDir`. Nothing is replaced.
 */
export async function generateKeys(home: string, secretDir: string): Promise<GeneratedKeys> {
  const recipient = await newKeyPair(`permafrost backups of ${hostname()}`);
  const signing = await newKeyPair(`permafrost manifests of ${hostname()}`);
  const keys: GeneratedKeys = {
    recipientPublic: path.join(home, 'recipient.pub.asc'),
    recipientSecret: path.join(path.resolve(secretDir), `permafrost-${recipient.fingerprint.slice(-16)}.secret.asc`),
    recipientFingerprint: recipient.fingerprint,
    signingSecret: path.join(home, 'signing.secret.asc'),
    signerPublic: path.join(home, 'signing.pub.asc'),
    signingFingerprint: signing.fingerprint,
  };
  // All or nothing: a second run must not leave a new secret key beside config that names the old one.
  for (const file of [keys.recipientPublic, keys.signingSecret, keys.signerPublic]) {
    if (existsSync(file)) throw new UserError(`${file} already exists; keys are never replaced: move it away or choose another folder.`);
  }
  await writeOnce(keys.recipientSecret, recipient.privateKey, 0o600);
  await writeOnce(keys.recipientPublic, recipient.publicKey, 0o644);
  await writeOnce(keys.signingSecret, signing.privateKey, 0o600);
  await writeOnce(keys.signerPublic, signing.publicKey, 0o644);
  return keys;
}
