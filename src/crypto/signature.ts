/**
 * Signed manifests. With vault.signingKeyFile the server writes a detached OpenPGP signature of
 * `manifest.json` as `manifest.json.sig` (stock `gpg --verify manifest.json.sig manifest.json`
 * accepts it); with vault.signerKeyFile (the public half) check, verify and restore refuse a
 * snapshot whose manifest is unsigned, signed by another key, or edited. Without this, whoever
 * can write to the vault can edit a manifest, fix its SHA-256 sums to match a swapped-in part,
 * and have restore accept it. The SHA-256 sums in the signed manifest then bind every part.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type * as openpgp from 'openpgp';
import { loadOpenpgp } from './openpgp-load.js';
import { IntegrityError, UserError } from '../errors.js';
import { GPG22_CONFIG, readKeyFile } from './keys.js';
import { MANIFEST_NAME, SIGNATURE_NAME } from '../vault/manifest.js';
import { SNAPSHOT_ID_RE, type SnapshotEntry } from '../vault/store.js';
import { openVault, VAULT_NAMES, type Vault } from '../vault/layout.js';

/**
 * The signer's public key at the vault root, written by every signing backup beside restore.sh, so
 * that a copy of the vault alone can check its signatures. It is no trust anchor: a restore trusts
 * only the fingerprint the admin pins (--signer), and this file merely supplies the key material.
 */
export const SIGNER_KEY_NAME = VAULT_NAMES.runbook[2];

/** The server's signing key: an unprotected secret key, mode 0600 (the daemon signs unattended). */
export interface SigningKey {
  key: openpgp.PrivateKey;
  fingerprint: string;
}

/** The public key manifests must be signed by (vault.signerKeyFile, or the key --signer pins). */
export interface SignerKey {
  key: openpgp.PublicKey;
  fingerprint: string;
  file: string;
  /** Set when --signer pinned a subkey: only signatures by that (sub)key count. Key ids, upper-case hex. */
  keyIds?: string[];
  /** How errors name it: `the vault.signerKeyFile key` (default) or `the signer you pinned (--signer)`. */
  label?: string;
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
    await key.getSigningKey(undefined, new Date(), undefined, { ...(await loadOpenpgp()).config, ...GPG22_CONFIG });
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
  return (await loadOpenpgp()).sign({
    message: await (await loadOpenpgp()).createMessage({ binary: bytes }),
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
  const bytes = await readFile(path.join(dir, SIGNATURE_NAME)).catch(() => null);
  return signatureBytesProblem(manifestBytes, bytes, signer);
}

/**
 * What is wrong with `signatureBytes` (null: there is none) as the signature of `manifestBytes`
 * by `signer`, one phrase (null: signed by that key over exactly these bytes). The same judgement
 * for a vault folder and for a bucket, whose files are read as bytes.
 */
export async function signatureBytesProblem(
  manifestBytes: Buffer,
  signatureBytes: Buffer | null,
  signer: SignerKey,
): Promise<string | null> {
  if (signatureBytes === null) {
    return signer.label
      ? `${SIGNATURE_NAME} is missing (the manifest is unsigned, and ${signer.label} ${signer.fingerprint} requires a signature)`
      : `${SIGNATURE_NAME} is missing (the manifest is unsigned, and vault.signerKeyFile requires a signature)`;
  }
  const bytes = signatureBytes;
  let signature: openpgp.Signature;
  try {
    // gpg --detach-sign writes binary, gpg --armor and permafrost armored: both are signatures.
    const text = bytes.toString('latin1');
    signature = text.trimStart().startsWith('-----BEGIN PGP')
      ? await (await loadOpenpgp()).readSignature({ armoredSignature: text })
      : await (await loadOpenpgp()).readSignature({ binarySignature: bytes });
  } catch {
    return `${SIGNATURE_NAME} is no OpenPGP signature (neither armored nor binary)`;
  }
  const ids = signature.getSigningKeyIDs().map((id) => id.toHex().toUpperCase());
  const ours = signer.keyIds ?? [signer.key, ...signer.key.getSubkeys()].map((k) => k.getKeyID().toHex().toUpperCase());
  if (!ids.some((id) => ours.includes(id))) {
    return `${SIGNATURE_NAME} is signed by key ${ids.join(', ') || 'unknown'}, not by ${signer.label ?? 'the vault.signerKeyFile key'} ${signer.fingerprint}`;
  }
  const result = await (await loadOpenpgp()).verify({
    message: await (await loadOpenpgp()).createMessage({ binary: manifestBytes }),
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

/** A fingerprint given on the command line: 40 hex digits, any case, spaces allowed (gpg prints groups of four). */
export function parseFingerprint(text: string, flag = '--signer'): string {
  const fpr = text.replace(/\s+/g, '').toUpperCase();
  if (!/^[0-9A-F]{40}$/.test(fpr)) {
    throw new UserError(
      `${flag} takes the signing key's full fingerprint (40 hex digits, as \`permafrost init\` and \`permafrost doctor\` print it), not "${text}".`,
    );
  }
  return fpr;
}

/** The key among `keys` whose primary key or a subkey has fingerprint `pin`, as the signer to check against. */
function keyWithFingerprint(keys: openpgp.Key[], pin: string, file: string): SignerKey | null {
  for (const key of keys) {
    const label = 'the signer you pinned (--signer)';
    if (key.getFingerprint().toUpperCase() === pin) return { key: key.toPublic(), fingerprint: pin, file, label };
    const sub = key.getSubkeys().find((k) => k.getFingerprint().toUpperCase() === pin);
    if (sub) return { key: key.toPublic(), fingerprint: pin, file, label, keyIds: [sub.getKeyID().toHex().toUpperCase()] };
  }
  return null;
}

/**
 * The signer --signer pins: the key with that fingerprint, from vault.signerKeyFile when it is that
 * key, else from the vault's signer.pub.asc. The fingerprint is the trust anchor; a key file that
 * holds no key with it is refused (exit 3), whoever put it there.
 */
export async function pinnedSigner(vault: Vault, pin: string, configured: SignerKey | null): Promise<SignerKey> {
  const file = vault.runbookFile(SIGNER_KEY_NAME);
  return pinnedSignerFrom({ where: vault.dir, file, read: () => readFile(file) }, pin, configured);
}

/** Where --signer's key material is read from: a vault folder's signer.pub.asc, or a bucket's. */
export interface SignerKeySource {
  /** The vault or bucket, as messages name it. */
  where: string;
  /** The key file, as messages name it. */
  file: string;
  /** Its bytes; rejects when there is none. */
  read: () => Promise<Buffer>;
}

/** pinnedSigner for any place that holds signer.pub.asc (a vault folder, a bucket). */
export async function pinnedSignerFrom(source: SignerKeySource, pin: string, configured: SignerKey | null): Promise<SignerKey> {
  if (configured) {
    const fromConfig = keyWithFingerprint([configured.key], pin, configured.file);
    if (fromConfig) return fromConfig;
  }
  const { where, file } = source;
  let bytes: Buffer;
  try {
    bytes = await source.read();
  } catch {
    throw new IntegrityError(
      `${where} holds no ${SIGNER_KEY_NAME} (the signer's public key a backup writes beside restore.sh), so its manifests cannot be checked against ${pin}; copy that public key there (signing.pub.asc in the server's config folder, or your own copy) and run again.`,
    );
  }
  let keys: openpgp.Key[];
  try {
    const text = bytes.toString('latin1');
    keys = text.includes('-----BEGIN PGP')
      ? await (await loadOpenpgp()).readKeys({ armoredKeys: text, config: GPG22_CONFIG })
      : await (await loadOpenpgp()).readKeys({ binaryKeys: bytes, config: GPG22_CONFIG });
  } catch {
    throw new IntegrityError(`${file} holds no OpenPGP public key; copy the signer's public key there again.`);
  }
  const found = keyWithFingerprint(keys, pin, file);
  if (!found) {
    throw new IntegrityError(
      `${file} holds no key with the fingerprint ${pin} you pinned: this vault is signed by another key, or the file was replaced; check the fingerprint, and restore from a copy of the vault you trust.`,
    );
  }
  return found;
}

/**
 * Why the vault says its manifests are signed, one phrase (null: nothing in it says so): the
 * signer's key at its root, a manifest that names its signer, or any snapshot with a signature.
 * Whoever can write to the vault can remove all of it; the pinned fingerprint is the real check.
 */
export async function signedVaultEvidence(vault: Vault, snapshot: SnapshotEntry): Promise<string | null> {
  const names = await readdir(vault.dir).catch(() => [] as string[]);
  if (names.includes(SIGNER_KEY_NAME)) return `it holds the signer's public key ${SIGNER_KEY_NAME}`;
  if (snapshot.manifest?.signedBy) return `snapshot ${snapshot.id}'s manifest says it was signed by ${snapshot.manifest.signedBy}`;
  for (const name of names.filter((n) => SNAPSHOT_ID_RE.test(n)).sort()) {
    if (await stat(vault.snapshotFile(name, SIGNATURE_NAME)).catch(() => null)) return `snapshot ${name} has a ${SIGNATURE_NAME}`;
  }
  return null;
}

/** What a run that reads a vault's snapshots is told about their signatures: --signer or the override. */
export interface SignerFlags {
  /** --signer: the fingerprint every manifest read must be signed by. */
  signer?: string;
  /** --insecure-no-signature-check: read a signed vault without checking who signed it. */
  insecureNoSignatureCheck?: boolean;
}

/** The refusal of a signed vault without a trust anchor (exit 2: a flag is missing; nothing is known to be wrong with the vault yet). */
export function unpinnedRefusal(verb: 'restore' | 'verify', evidence: string): UserError {
  return new UserError(
    `This vault's manifests are signed (${evidence}), so ${verb} checks who wrote them before it decrypts anything: pass --signer FINGERPRINT, ` +
      "the signing key's fingerprint that `permafrost init` and `permafrost doctor` printed and you kept with your key (not one read from the vault, " +
      `which anyone who can write there can change), or set vault.signerKeyFile; or, knowingly, --insecure-no-signature-check to ${verb} without that check.`,
  );
}

/**
 * The key every manifest a restore or verify reads must be signed by: the fingerprint --signer
 * pins, else vault.signerKeyFile, else (on the server) the public half of vault.signingKeyFile.
 * Without any, a vault that says it is signed is refused unless --insecure-no-signature-check
 * (then a warning); one that does not goes on with a warning that nothing proves who wrote it.
 */
export async function trustedSigner(
  vault: { dir: string; signerKeyFile?: string; signingKeyFile?: string },
  snapshot: SnapshotEntry,
  flags: SignerFlags,
  verb: 'restore' | 'verify',
): Promise<{ signer: SignerKey | null; warning: string | null }> {
  if (flags.signer !== undefined && flags.insecureNoSignatureCheck) {
    throw new UserError('--signer checks every signature and --insecure-no-signature-check skips them; pass one of them.');
  }
  const configured = await readSignerKey(vault.signerKeyFile);
  if (flags.signer !== undefined) {
    return { signer: await pinnedSigner(openVault(vault.dir), parseFingerprint(flags.signer), configured), warning: null };
  }
  if (configured) return { signer: configured, warning: null };
  if (vault.signingKeyFile !== undefined) {
    const own = await readSigningKey(vault.signingKeyFile);
    return { signer: { key: own.key.toPublic(), fingerprint: own.fingerprint, file: vault.signingKeyFile }, warning: null };
  }
  const done = verb === 'restore' ? 'restored' : 'verified';
  if (flags.insecureNoSignatureCheck) {
    return {
      signer: null,
      warning: `--insecure-no-signature-check: no manifest's signature was checked, so whoever can write to ${vault.dir} could have written what was ${done}.`,
    };
  }
  const evidence = await signedVaultEvidence(openVault(vault.dir), snapshot);
  if (evidence) throw unpinnedRefusal(verb, evidence);
  return {
    signer: null,
    warning: `this vault's manifests are not signed, so nothing proves who wrote snapshot ${snapshot.id} (its SHA-256 sums are checked, but whoever can write to ${vault.dir} can change them too); sign manifests (vault.signingKeyFile) and ${verb} with --signer FINGERPRINT.`,
  };
}
