import { readFileSync, statSync } from 'node:fs';
import { UserError } from '../errors.js';

/**
 * Reads the first line of a secret file (as gpg's --passphrase-file does), refusing files
 * that group or others can access. The value is never logged or put in an error.
 */
export function readSecretFile(file: string, key: string): string {
  let mode: number;
  try {
    mode = statSync(file).mode & 0o777;
  } catch (err) {
    throw new UserError(`${key}: cannot read ${file}; create it or fix the path.`, { cause: err });
  }
  if ((mode & 0o077) !== 0) {
    throw new UserError(
      `${key}: ${file} is accessible by group or others (mode 0${mode.toString(8)}); run \`chmod 600 ${file}\` and try again.`,
    );
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(`${key}: cannot read ${file}; check that this user owns it.`, { cause: err });
  }
  const firstLine = text.split(/\r?\n/, 1)[0] ?? '';
  if (firstLine.length === 0) throw new UserError(`${key}: ${file} is empty; its first line must hold the secret.`);
  return firstLine;
}
