import { readFileSync, statSync } from 'node:fs';
import { isatty } from 'node:tty';
import { UserError } from '../errors.js';

/** gpg keeps a passphrase in 32 KiB of secure memory; far below that, and far above any real one. */
const MAX_PASSPHRASE_BYTES = 1024;

const HOW_TO_MAKE_ONE = 'a good one is one line of printable text, as `permafrost init` generates (256 random bits, base64url)';

/**
 * Reads the first line of a secret file (as gpg's --passphrase-file does), refusing anything but a
 * regular file that group or others cannot access. The value is never logged or put in an error.
 */
export function readSecretFile(file: string, key: string): string {
  // Passwords and tokens go to libpq, Redis and HTTP headers, where a Windows line end would not fit.
  return firstLine(readGuarded(file, key), file, key).toString('utf8').replace(/\r$/, '');
}

/**
 * The vault passphrase, exactly as stock `gpg --passphrase-file` will read it on the day of a
 * restore, or a UserError: a file whose first line gpg would read differently from us (a NUL byte
 * ends it there, a CR stays in it, invalid UTF-8, more than gpg can hold) could make snapshots
 * that only one of the two decrypts. The file must also belong to the user running permafrost.
 */
export function readPassphraseFile(file: string, key = 'vault.passphraseFile', uid: number | undefined = process.getuid?.()): string {
  // `-`: standard input (`--passphrase-file - < /root/passphrase`), for a user that cannot open root's file.
  const stdin = file === '-' && key !== 'vault.passphraseFile';
  const bytes = stdin ? readStdin(key) : readGuarded(file, key, uid);
  const line = firstLine(bytes, file, key);
  const refuse = (why: string, fix: string): never => {
    throw new UserError(`${key}: ${stdin ? 'standard input' : file} ${why}; ${fix} (${HOW_TO_MAKE_ONE}).`);
  };
  if (line.includes(0)) refuse('contains a NUL byte, where gpg would stop reading the passphrase', 'replace the file');
  if (line.at(-1) === 0x0d) {
    refuse(
      'ends its first line with a carriage return (a Windows line end), which gpg reads as part of the passphrase',
      // On standard input the fix is to the file it came from, whose name only the admin knows.
      stdin
        ? "remove it from the file you gave on standard input (`sed -i 's/\\r$//' FILE`)"
        : `remove it with \`sed -i 's/\\r$//' ${file}\``,
    );
  }
  if (line.length > MAX_PASSPHRASE_BYTES)
    refuse(`has a first line of ${line.length} bytes, more than ${MAX_PASSPHRASE_BYTES}`, 'use a shorter passphrase');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(line);
  } catch {
    return refuse('is not UTF-8 text', 'replace the file');
  }
  return text;
}

/** All of standard input, which must not be a terminal (the passphrase would show as it is typed). */
function readStdin(key: string): Buffer {
  if (isatty(0)) {
    throw new UserError(
      `${key} -: standard input is a terminal; give the passphrase on it from a file (\`${key} - < /root/passphrase\`) or name the file.`,
    );
  }
  try {
    return readFileSync(0);
  } catch (err) {
    throw new UserError(
      `${key} -: cannot read standard input (${(err as NodeJS.ErrnoException).code ?? 'error'}); give the passphrase from a file.`,
      {
        cause: err,
      },
    );
  }
}

function readGuarded(file: string, key: string, owner?: number): Buffer {
  let st;
  try {
    st = statSync(file);
  } catch (err) {
    throw new UserError(`${key}: cannot read ${file}; create it or fix the path.`, { cause: err });
  }
  // A FIFO or device would block the read (or never end): only a regular file holds a secret.
  if (!st.isFile()) throw new UserError(`${key}: ${file} is not a regular file; point ${key} at the file that holds the secret.`);
  const mode = st.mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new UserError(
      `${key}: ${file} is accessible by group or others (mode 0${mode.toString(8)}); run \`chmod 600 ${file}\` and try again.`,
    );
  }
  if (owner !== undefined && st.uid !== owner) {
    throw new UserError(
      `${key}: ${file} is owned by uid ${st.uid}, not by the user running permafrost (uid ${owner}); run \`chown ${owner} ${file}\`, or run permafrost as its owner.`,
    );
  }
  try {
    return readFileSync(file);
  } catch (err) {
    throw new UserError(`${key}: cannot read ${file}; check that this user owns it.`, { cause: err });
  }
}

function firstLine(bytes: Buffer, file: string, key: string): Buffer {
  const nl = bytes.indexOf(0x0a);
  const line = nl === -1 ? bytes : bytes.subarray(0, nl);
  if (line.length === 0) throw new UserError(`${key}: ${file} is empty; its first line must hold the secret.`);
  return line;
}

/**
 * The vault passphrase for a job that decrypts (restore, verify): from `--passphrase-file` when
 * given (a backup device keeps no passphrase on its disk), else from vault.passphraseFile, else
 * one UserError saying to pass the flag.
 */
export function passphraseFor(
  config: { vault: { passphraseFile?: string | undefined } },
  flagValue: string | undefined,
  job: string,
): string {
  if (flagValue !== undefined) return readPassphraseFile(flagValue, '--passphrase-file');
  if (config.vault.passphraseFile !== undefined) return readPassphraseFile(config.vault.passphraseFile);
  throw new UserError(
    `permafrost ${job} needs the vault passphrase, and this config has no vault.passphraseFile (a backup device keeps none): pass --passphrase-file FILE (a 0600 file holding it, e.g. on a USB stick), or --identity FILE for snapshots encrypted to vault.recipients.`,
  );
}
