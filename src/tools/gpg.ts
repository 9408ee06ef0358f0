/**
 * Decryption with stock gpg: ~15–20× faster than openpgp.js, and it checks the MDC itself (exit
 * status non-zero on a manipulated or truncated message). The passphrase travels over a pipe
 * (fd 3, --passphrase-fd), never argv; gpg runs in a private, throwaway GNUPGHOME whose agent is
 * killed afterwards; the plaintext goes straight from gpg into a file created 0600 by us.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ToolError } from '../errors.js';
import { sha256File } from '../crypto/hash.js';
import { runTool, startTool } from './run.js';

/** gpg argv for decrypting `encPath` to stdout with the passphrase read from fd 3. No secret in it. */
export function gpgDecryptArgv(home: string, encPath: string, gpg = 'gpg', agent = false): string[] {
  return [
    gpg,
    '--homedir',
    home,
    '--batch',
    '--no-tty',
    '--quiet',
    '--no-options',
    '--no-permission-warning',
    // With the caller's own keyring its agent supplies the (unlocked) key; else the secret comes on fd 3.
    ...(agent ? [] : ['--pinentry-mode', 'loopback', '--passphrase-fd', '3']),
    '--no-symkey-cache',
    '--decrypt',
    encPath,
  ];
}

export type GpgFailure = 'wrong-key' | 'corrupt' | 'missing-tool';

export interface GpgDecryptResult {
  ok: boolean;
  failure?: GpgFailure;
  /** Last lines gpg printed (never holds the passphrase). */
  stderr: string;
  sha256: string;
  bytes: number;
  plainBytes: number;
}

/** gpg's "Bad session key" is what a wrong passphrase looks like, "No secret key" a wrong identity; everything else is damage. */
export function classifyGpgError(stderr: string): GpgFailure {
  return /bad session key|bad passphrase|no secret key/i.test(stderr) ? 'wrong-key' : 'corrupt';
}

/** gpgconf argv that ends every daemon (the agent) of a gpg home. */
function gpgconfKillArgv(home: string): string[] {
  return ['gpgconf', '--homedir', home, '--kill', 'all'];
}

/** Ends the agent gpg started for `home`, if any. */
export async function killAgent(home: string): Promise<void> {
  // gpg 2.2 starts an agent even for symmetric decryption; leave none behind.
  if (!existsSync(path.join(home, 'S.gpg-agent'))) return;
  await runTool({ argv: gpgconfKillArgv(home), doing: 'stopping the gpg agent of a throwaway home' }).catch(() => undefined);
}

/**
 * Imports an armored secret key into `home` (a private GNUPGHOME the caller owns and removes);
 * `passphrase` (over fd 3) unlocks a protected key, '' for none. The agent is stopped afterwards.
 */
export async function gpgImportSecretKey(home: string, keyFile: string, passphrase: string): Promise<void> {
  const argv = ['gpg', '--homedir', home, '--batch', '--no-tty', '--quiet', '--no-options', '--pinentry-mode', 'loopback'];
  try {
    const gpg = startTool(
      {
        argv: [...argv, '--passphrase-fd', '3', '--import', keyFile],
        env: { ...process.env, GNUPGHOME: home },
        doing: 'importing the --identity key',
      },
      { fd3: `${passphrase}\n` },
    );
    await gpg.done;
  } finally {
    await killAgent(home);
  }
}

/**
 * Decrypts `encPath` into `outPath` (created 0600, must not exist) while hashing the ciphertext.
 * `passphrase` goes to gpg over fd 3: the vault passphrase, or the one of the key in `home` (a
 * GNUPGHOME holding an identity, kept, its agent the caller's to stop); without `home` a throwaway
 * one is made in `homeBase`, its agent stopped and the folder removed (a run that may be killed passes its private temp folder, which the next run sweeps).
 * Never throws for a bad message: returns ok=false with the reason; the caller removes `outPath`.
 */
export async function gpgDecryptFile(
  encPath: string,
  passphrase: string,
  outPath: string,
  opts: { homeBase?: string; home?: string; signal?: AbortSignal; agent?: boolean } = {},
): Promise<GpgDecryptResult> {
  const home = opts.home ?? (await mkdtemp(path.join(opts.homeBase ?? tmpdir(), 'permafrost-gnupg-')));
  const out = await open(outPath, 'wx', 0o600);
  try {
    const hashing = sha256File(encPath);
    hashing.catch(() => undefined); // awaited below; a missing file rejects there with ENOENT
    const gpg = startTool(
      {
        argv: gpgDecryptArgv(home, encPath, 'gpg', opts.agent),
        env: { ...process.env, GNUPGHOME: home },
        doing: `decrypting ${encPath}`,
        signal: opts.signal,
      },
      opts.agent ? { stdout: out.fd } : { stdout: out.fd, fd3: `${passphrase}\n` },
    );
    const failure = await gpg.done.then(
      () => null,
      (err: ToolError) => err,
    );
    const { sha256, bytes } = await hashing;
    const plainBytes = (await out.stat()).size;
    const stderr = gpg.stderr().trim();
    if (!failure) return { ok: true, stderr, sha256, bytes, plainBytes };
    // Not started at all: neither an exit status nor a signal.
    if (failure.exitStatus === null && failure.signal === null)
      return { ok: false, failure: 'missing-tool', stderr: 'gpg not found', sha256, bytes, plainBytes };
    return { ok: false, failure: classifyGpgError(stderr), stderr, sha256, bytes, plainBytes };
  } finally {
    await out.close();
    // A home the caller gave (its keyring and agent, or an identity other runs may be using) is the
    // caller's to stop; only the throwaway one is stopped and removed here.
    if (!opts.home) {
      await killAgent(home);
      await rm(home, { recursive: true, force: true });
    }
  }
}
