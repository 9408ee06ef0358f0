/** Real OpenPGP key pairs made by stock gpg, for the keys tests (recipients, identities, signing). */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface GpgKey {
  /** The GNUPGHOME holding the secret key (stock `gpg -d` with it decrypts). */
  home: string;
  fingerprint: string;
  /** Armored public key file. */
  publicFile: string;
  /** Armored secret key file, mode 0600 (protected by `passphrase` when given). */
  secretFile: string;
  passphrase?: string;
}

function gpg(home: string, args: string[], input?: string) {
  const r = spawnSync('gpg', ['--homedir', home, '--batch', '--no-tty', '--pinentry-mode', 'loopback', ...args], {
    encoding: 'utf8',
    input,
  });
  if (r.status !== 0) throw new Error(`gpg ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** Stops the agent of a test GNUPGHOME (gpg starts one per home). */
export function killGpgAgent(home: string): void {
  spawnSync('gpgconf', ['--homedir', home, '--kill', 'all']);
}

/**
 * Makes a key pair in a fresh GNUPGHOME under `dir`: `algo` is gpg's quick-gen-key algorithm
 * (future-default = ed25519 + cv25519, rsa3072, …).
 */
export function makeGpgKey(dir: string, name: string, opts: { algo?: string; passphrase?: string; expire?: string } = {}): GpgKey {
  const home = mkdtempSync(path.join(dir, `gnupg-${name}-`));
  const pass = opts.passphrase ?? '';
  gpg(home, [
    '--passphrase',
    pass,
    '--quick-gen-key',
    `${name} <${name}@example.invalid>`,
    opts.algo ?? 'future-default',
    'default',
    opts.expire ?? 'never',
  ]);
  const colons = gpg(home, ['--with-colons', '--list-keys']);
  const fingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(colons)![1]!;
  // An explicit algorithm makes a signing primary key only: add the encryption subkey gpg -e would use.
  if (opts.algo) gpg(home, ['--passphrase', pass, '--quick-add-key', fingerprint, opts.algo, 'encr', opts.expire ?? 'never']);
  const publicFile = path.join(dir, `${name}.pub.asc`);
  writeFileSync(publicFile, gpg(home, ['--armor', '--export', fingerprint]));
  const secretFile = path.join(dir, `${name}.sec.asc`);
  writeFileSync(secretFile, gpg(home, ['--passphrase', pass, '--armor', '--export-secret-keys', fingerprint]), { mode: 0o600 });
  killGpgAgent(home);
  return { home, fingerprint, publicFile, secretFile, ...(opts.passphrase ? { passphrase: opts.passphrase } : {}) };
}

/** Stock `gpg -d --output OUT IN` in `home` (a key pair's, or an empty one). */
export function gpgDecryptIn(home: string, input: string, output: string, passphrase = '') {
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const r = spawnSync(
    'gpg',
    ['--homedir', home, '--batch', '--pinentry-mode', 'loopback', '--passphrase', passphrase, '-d', '--output', output, input],
    {
      encoding: 'utf8',
    },
  );
  killGpgAgent(home);
  return r;
}
