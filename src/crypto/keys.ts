/**
 * The keys a part is encrypted to: the vault passphrase (SKESK), OpenPGP public keys
 * (vault.recipients, one PKESK each), or both, sharing one fresh session key per part. The server
 * needs no secret for recipients: openpgp.js wraps the session key for each public key; the bulk
 * data still goes through the streaming writer (openpgp-stream.ts).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type * as openpgp from 'openpgp';
import { loadOpenpgp } from './openpgp-load.js';
import { errorMessage, UserError } from '../errors.js';
import type { Secret } from '../config/secret-values.js';
import { skeskPacket, type MessageKeys } from './openpgp-stream.js';

/** What gpg 2.2 reads: v4 keys and packets, SEIPD v1 (no AEAD). */
export const GPG22_CONFIG = { aeadProtect: false, v6Keys: false } as const;

/** RSA keys smaller than this are refused (NIST: 3072 bits for use beyond 2030). */
const MIN_RSA_BITS = 3072;

/** One recipient of vault.recipients, read and checked. */
export interface RecipientKey {
  file: string;
  key: openpgp.PublicKey;
  /** The primary key's fingerprint, upper-case hex. */
  fingerprint: string;
}

/** What a part is encrypted to, as configured: the passphrase, recipients, or both. */
export interface EncryptionKeys {
  passphrase?: string;
  recipients: readonly RecipientKey[];
}

/** The manifest's record of the keys one part is encrypted to (what rekey and `list --json` show). */
export interface PartKeys {
  /** Primary-key fingerprint and the key id of the (sub)key each PKESK names. */
  recipients: { fingerprint: string; keyId: string }[];
  /** Whether an SKESK (the vault passphrase) opens it too. */
  passphrase: boolean;
}

/** Reads an OpenPGP key file, armored or binary; a UserError naming `key` when it holds none. */
export async function readKeyFile(file: string, key: string): Promise<openpgp.Key> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new UserError(`${key}: cannot read ${file}; create it or fix the path.`, { cause: err });
  }
  try {
    const text = bytes.toString('latin1');
    return text.includes('-----BEGIN PGP')
      ? await (await loadOpenpgp()).readKey({ armoredKey: text, config: GPG22_CONFIG })
      : await (await loadOpenpgp()).readKey({ binaryKey: bytes, config: GPG22_CONFIG });
  } catch (err) {
    throw new UserError(
      `${key}: ${file} holds no OpenPGP key (${errorMessage(err)}); point it at an exported key, written to a new file (\`gpg --export --armor KEYID > KEYID.pub.asc\` for a public key, \`gpg --export-secret-keys --armor KEYID > KEYID.sec.asc\` for a secret one).`,
      {
        cause: err,
      },
    );
  }
}

/** The bits of an RSA key, or null for other algorithms. */
function rsaBits(key: openpgp.Key | openpgp.Subkey): number | null {
  const info = key.getAlgorithmInfo();
  return info.algorithm.startsWith('rsa') ? (info.bits ?? 0) : null;
}

/**
 * Reads one recipient's public key and checks it can take a session key now: a public key only
 * (a secret key has no place on the server), not expired or revoked, an encryption-capable
 * (sub)key, RSA of at least 3072 bits.
 */
export async function readRecipient(file: string, key = 'vault.recipients'): Promise<RecipientKey> {
  const read = await readKeyFile(file, key);
  if (read.isPrivate()) {
    throw new UserError(
      `${key}: ${file} is a secret key, which must not be on the server; export its public half to a new file (\`gpg --import ${file}; gpg --export --armor KEYID > KEYID.pub.asc\`), list that one, and move the secret key off the server.`,
    );
  }
  const pub = read;
  const fingerprint = pub.getFingerprint().toUpperCase();
  let enc: openpgp.Key | openpgp.Subkey;
  try {
    enc = await pub.getEncryptionKey(undefined, new Date(), undefined, { ...(await loadOpenpgp()).config, ...GPG22_CONFIG });
  } catch (err) {
    throw new UserError(
      `${key}: the key ${fingerprint} in ${file} cannot encrypt now (${errorMessage(err)}); extend or replace it and export it again.`,
      { cause: err },
    );
  }
  const bits = rsaBits(enc);
  if (bits !== null && bits < MIN_RSA_BITS) {
    throw new UserError(
      `${key}: the key ${fingerprint} in ${file} is RSA with ${bits} bits; use RSA of at least ${MIN_RSA_BITS} bits or Curve25519.`,
    );
  }
  return { file, key: pub, fingerprint };
}

/**
 * The configured encryption keys of a server (vault.passphraseFile, read at the job's start, and
 * vault.recipients, or both); one UserError when there are none, so a backup is never made that
 * nothing can decrypt.
 */
export async function loadEncryptionKeys(
  vault: { recipients?: readonly string[] | undefined },
  vaultPassphrase: Secret | undefined,
): Promise<EncryptionKeys> {
  const recipients = await Promise.all((vault.recipients ?? []).map((f) => readRecipient(f)));
  const passphrase = vaultPassphrase?.reveal();
  if (passphrase === undefined && recipients.length === 0) {
    throw new UserError(
      'The config sets neither vault.passphraseFile nor vault.recipients, so nothing could decrypt a backup: set one of them (`permafrost init` creates both).',
    );
  }
  return passphrase === undefined ? { recipients } : { passphrase, recipients };
}

/** The PKESK packets wrapping `sessionKey` (AES-256) for each recipient, as gpg 2.2 reads them. */
async function pkeskPackets(sessionKey: Buffer, recipients: readonly RecipientKey[]): Promise<{ packets: Buffer; keyIds: string[] }> {
  const bytes = await (await loadOpenpgp()).encryptSessionKey({
    data: sessionKey,
    algorithm: 'aes256',
    encryptionKeys: recipients.map((r) => r.key),
    format: 'binary',
    config: GPG22_CONFIG,
  });
  const message = await (await loadOpenpgp()).readMessage({ binaryMessage: bytes });
  return { packets: Buffer.from(bytes), keyIds: message.getEncryptionKeyIDs().map((id) => id.toHex().toUpperCase()) };
}

/**
 * The key packets and session key for one part. A passphrase alone and no `sessionKey` gives what
 * `gpg -c` writes (the S2K-derived key is the session key, as before recipients existed); else the
 * session key (fresh and random unless rekey passes the part's own) is wrapped in a PKESK for each
 * recipient and, with a passphrase, in an SKESK.
 */
export async function messageKeysFor(keys: EncryptionKeys, given?: Buffer): Promise<{ message: MessageKeys; facts: PartKeys }> {
  if (keys.recipients.length === 0) {
    if (keys.passphrase === undefined) throw new Error('messageKeysFor: neither a passphrase nor recipients');
    return { message: skeskPacket(keys.passphrase, given), facts: { recipients: [], passphrase: true } };
  }
  const sessionKey = given ?? randomBytes(32);
  const pkesk = await pkeskPackets(sessionKey, keys.recipients);
  const skesk = keys.passphrase === undefined ? null : skeskPacket(keys.passphrase, sessionKey);
  return {
    message: { packets: Buffer.concat([pkesk.packets, ...(skesk ? [skesk.packets] : [])]), key: sessionKey },
    facts: {
      recipients: keys.recipients.map((r, i) => ({ fingerprint: r.fingerprint, keyId: pkesk.keyIds[i] ?? '' })),
      passphrase: skesk !== null,
    },
  };
}
