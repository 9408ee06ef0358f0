/**
 * The secret that decrypts snapshots on a host that restores or verifies: the vault passphrase,
 * or an identity (an armored OpenPGP secret key, `--identity FILE`) for snapshots encrypted to
 * vault.recipients. Read and checked once when the job starts (ops/secrets.ts decryptSecretFor).
 */

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
