/**
 * The secret that decrypts snapshots on a host that restores or verifies: the vault passphrase,
 * or an identity (an armored OpenPGP secret key, `--identity FILE`) for snapshots encrypted to
 * vault.recipients. The identity is checked here (a secret key, unlocked by its passphrase) so a
 * wrong one fails before anything is decrypted; gpg imports it into a throwaway home inside the
 * private temp folder (recover/decrypt.ts).
 */
import { statSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { loadOpenpgp } from './openpgp-load.js';
import { passphraseFor, readPassphraseFile } from '../config/secret-file.js';
import { UserError } from '../errors.js';
import { readKeyFile } from './keys.js';

/** The decrypting flags of restore and verify. */
export interface SecretFlags {
  /** --passphrase-file: wins over vault.passphraseFile (a backup device keeps none). */
  passphraseFile?: string;
  /** --identity: an armored secret key; wins over any passphrase. */
  identity?: string;
  /** --identity-passphrase-file: the identity's passphrase (first line), when it is protected. */
  identityPassphraseFile?: string;
  /** --gpg-agent: the secret keys of the caller's own gpg keyring ($GNUPGHOME or ~/.gnupg), through its agent. */
  gpgAgent?: boolean;
  /** Asks for the identity's passphrase on a terminal (the CLI gives it when stdin is a TTY). */
  askIdentityPassphrase?: (prompt: string) => Promise<string>;
}

/** What decrypts the parts: the vault passphrase, or a secret key (with the passphrase that unlocks it, '' when none). */
export type DecryptSecret =
  /** `from`: where it was read, for the sentence when it is the wrong one (default vault.passphraseFile). */
  | { kind: 'passphrase'; passphrase: string; from?: string }
  | { kind: 'identity'; file: string; fingerprint: string; keyPassphrase: string }
  /** The caller's own keyring: gpg asks its agent, which holds the key unlocked (or unprotected). */
  | { kind: 'agent'; home: string };

/** Refuses a secret key file that group or others can read: it is the key to every snapshot. */
function checkPrivateFile(file: string): void {
  let mode: number;
  try {
    mode = statSync(file).mode & 0o777;
  } catch (err) {
    throw new UserError(`--identity: cannot read ${file}; fix the path.`, { cause: err });
  }
  if ((mode & 0o077) !== 0) {
    throw new UserError(
      `--identity: ${file} is accessible by group or others (mode 0${mode.toString(8)}); run \`chmod 600 ${file}\` and try again.`,
    );
  }
}

/** Reads and unlocks the identity: a secret key, with its passphrase from the file or the terminal when protected. */
async function readIdentity(flags: SecretFlags & { identity: string }): Promise<DecryptSecret> {
  const file = flags.identity;
  checkPrivateFile(file);
  const key = await readKeyFile(file, '--identity');
  if (!key.isPrivate()) {
    throw new UserError(`--identity: ${file} is a public key; pass the secret key (\`gpg --export-secret-keys --armor KEYID > FILE\`).`);
  }
  const fingerprint = key.getFingerprint().toUpperCase();
  if (key.isDecrypted()) return { kind: 'identity', file, fingerprint, keyPassphrase: '' };
  let keyPassphrase: string;
  if (flags.identityPassphraseFile !== undefined)
    keyPassphrase = readPassphraseFile(flags.identityPassphraseFile, '--identity-passphrase-file');
  else if (flags.askIdentityPassphrase) keyPassphrase = await flags.askIdentityPassphrase(`Passphrase of the key ${fingerprint}: `);
  else {
    throw new UserError(
      `--identity: the key ${fingerprint} in ${file} is passphrase-protected; pass --identity-passphrase-file FILE (a 0600 file holding it), or run on a terminal to be asked.`,
    );
  }
  try {
    await (await loadOpenpgp()).decryptKey({ privateKey: key, passphrase: keyPassphrase });
  } catch (err) {
    throw new UserError(`--identity: the passphrase given does not unlock the key ${fingerprint} in ${file}; check it and try again.`, {
      cause: err,
    });
  }
  return { kind: 'identity', file, fingerprint, keyPassphrase };
}

/**
 * The secret a decrypting job uses: --gpg-agent or --identity when given, else the passphrase (--passphrase-file,
 * vault.passphraseFile). On a server that encrypts only to recipients, one UserError says plainly
 * that it holds no secret, as it should, and where the job can run instead.
 */
export async function decryptSecretFor(
  config: { vault: { passphraseFile?: string | undefined; recipients?: readonly string[] | undefined } },
  flags: SecretFlags,
  job: string,
): Promise<DecryptSecret> {
  if (flags.gpgAgent) {
    if (flags.identity !== undefined) throw new UserError('--identity and --gpg-agent each name the secret key: pass one of them.');
    return { kind: 'agent', home: process.env.GNUPGHOME || path.join(homedir(), '.gnupg') };
  }
  if (flags.identity !== undefined) return readIdentity({ ...flags, identity: flags.identity });
  if (flags.passphraseFile === undefined && config.vault.passphraseFile === undefined && config.vault.recipients !== undefined) {
    throw new UserError(
      `permafrost ${job} cannot decrypt here: this host holds no secret (vault.recipients encrypts to public keys only, and no vault.passphraseFile is set); run it where a recipient's secret key is, with --identity FILE.`,
    );
  }
  const from = flags.passphraseFile === undefined ? 'vault.passphraseFile' : `--passphrase-file ${flags.passphraseFile}`;
  return { kind: 'passphrase', passphrase: passphraseFor(config, flags.passphraseFile, job), from };
}
