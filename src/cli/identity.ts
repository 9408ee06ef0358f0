/** The --identity flags restore and verify share, and the hidden terminal prompt for a protected key. */
import type { Command } from 'commander';
import { UserError } from '../errors.js';
import type { SecretFlags } from '../crypto/keys-identity.js';
import type { Io } from './run.js';

/** Declares --identity and --identity-passphrase-file on `cmd`. */
export function identityOptions(cmd: Command): Command {
  return cmd
    .option(
      '--identity <file>',
      'an armored OpenPGP secret key (0600) that is one of vault.recipients: decrypts snapshots on a host without the passphrase',
    )
    .option(
      '--identity-passphrase-file <file>',
      "the --identity key's passphrase (a 0600 file), when it is protected; else asked on a terminal",
    );
}

/** Reads one line from the terminal without echoing it (raw mode), for a key's passphrase. */
function askHidden(io: Io, prompt: string): Promise<string> {
  const stdin = process.stdin;
  io.raw?.(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  let typed: string[] = [];
  return new Promise((resolve, reject) => {
    const finish = (): void => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      io.raw?.('\n');
    };
    const onData = (data: Buffer): void => {
      for (const ch of data.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          finish();
          resolve(typed.join(''));
          return;
        }
        if (ch === '\u0003' || ch === '\u0004') {
          finish();
          reject(
            new UserError('No passphrase was entered for the --identity key; run again and type it, or pass --identity-passphrase-file.'),
          );
          return;
        }
        if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
        else typed.push(ch);
      }
    };
    stdin.on('data', onData);
  });
}

/** Declares --gpg-agent on `cmd` (restore and verify: gpg itself decrypts there, so its agent can hold the key). */
export function agentOption(cmd: Command): Command {
  return cmd.option(
    '--gpg-agent',
    'decrypt with the secret keys of your own gpg keyring ($GNUPGHOME or ~/.gnupg), through its agent (unlock a protected key first, e.g. with one `gpg -d`)',
  );
}

/** The decrypting flags as the core takes them; the prompt only when stdin is a terminal. */
export function secretFlags(
  io: Io,
  opts: { passphraseFile?: string; identity?: string; identityPassphraseFile?: string; gpgAgent?: boolean },
): SecretFlags {
  return {
    passphraseFile: opts.passphraseFile,
    gpgAgent: opts.gpgAgent,
    identity: opts.identity,
    identityPassphraseFile: opts.identityPassphraseFile,
    ...(process.stdin.isTTY ? { askIdentityPassphrase: (prompt: string) => askHidden(io, prompt) } : {}),
  };
}
