import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { passphraseFor, readPassphraseFile, readSecretFile } from '../../../src/config/secret-file.js';
import { UserError } from '../../../src/errors.js';

const dir = mkdtempSync(path.join(tmpdir(), 'pf-secret-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function secret(content: string | Buffer, mode = 0o600): string {
  const file = path.join(dir, `s${n++}`);
  writeFileSync(file, content, { mode });
  chmodSync(file, mode);
  return file;
}

/** The UserError `fn` throws; fails the test if it throws none or another kind. */
function refusal(fn: () => unknown): UserError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UserError);
    return err as UserError;
  }
  throw new Error('expected a UserError, got a value');
}

describe('readSecretFile', () => {
  it('reads the first line, without a Windows line end', () => {
    expect(readSecretFile(secret('hunter2\nsecond line\n'), 'k')).toBe('hunter2');
    expect(readSecretFile(secret('hunter2\r\nmore'), 'k')).toBe('hunter2');
    expect(readSecretFile(secret('no newline'), 'k')).toBe('no newline');
  });

  it('refuses a file group or others can read, naming the mode and the fix, never the value', () => {
    const file = secret('s3cret-value\n', 0o640);
    const err = refusal(() => readSecretFile(file, 'redis.passwordFile'));
    expect(err.message).toBe(
      `redis.passwordFile: ${file} is accessible by group or others (mode 0640); run \`chmod 600 ${file}\` and try again.`,
    );
    expect(err.exitCode).toBe(2);
    expect(refusal(() => readSecretFile(secret('x', 0o604), 'k')).message).toContain('(mode 0604)');
  });

  it('refuses an empty file or an empty first line, a missing file and a folder', () => {
    expect(refusal(() => readSecretFile(secret(''), 'k')).message).toMatch(/is empty; its first line must hold the secret\.$/);
    expect(refusal(() => readSecretFile(secret('\nsecret on line 2'), 'k')).message).toContain('is empty');
    expect(refusal(() => readSecretFile(path.join(dir, 'missing'), 'k')).message).toContain('cannot read');
    const folder = path.join(dir, 'folder');
    mkdirSync(folder, { mode: 0o700 });
    expect(refusal(() => readSecretFile(folder, 'k')).message).toBe(
      `k: ${folder} is not a regular file; point k at the file that holds the secret.`,
    );
  });
});

describe('readPassphraseFile: only what stock gpg --passphrase-file reads the same way', () => {
  it('reads a plain first line, UTF-8 included', () => {
    expect(readPassphraseFile(secret('pässwörd\n'))).toBe('pässwörd');
  });

  it('refuses a CR line end, a NUL byte, invalid UTF-8 and a line past 1024 bytes, never quoting the passphrase', () => {
    const crlf = refusal(() => readPassphraseFile(secret('topsecret\r\n')));
    expect(crlf.message).toContain('ends its first line with a carriage return');
    expect(crlf.message).not.toContain('topsecret');
    expect(refusal(() => readPassphraseFile(secret(Buffer.from('top\0secret\n')))).message).toContain('contains a NUL byte');
    expect(refusal(() => readPassphraseFile(secret(Buffer.from([0x70, 0xff, 0x0a])))).message).toContain('is not UTF-8 text');
    expect(refusal(() => readPassphraseFile(secret(`${'a'.repeat(1025)}\n`))).message).toContain(
      'has a first line of 1025 bytes, more than 1024',
    );
    expect(readPassphraseFile(secret(`${'a'.repeat(1024)}\n`))).toHaveLength(1024);
  });

  it("refuses a file another user owns, and reads a file named '-' for vault.passphraseFile (never stdin)", () => {
    const file = secret('pw\n');
    const uid = process.getuid?.() ?? 0;
    expect(refusal(() => readPassphraseFile(file, 'vault.passphraseFile', uid + 1)).message).toContain(
      `is owned by uid ${uid}, not by the user running permafrost (uid ${uid + 1})`,
    );
    expect(refusal(() => readPassphraseFile('-')).message).toBe('vault.passphraseFile: cannot read -; create it or fix the path.');
  });
});

describe('passphraseFor', () => {
  it('the flag first, then the config, else one error naming the flag', () => {
    const fromFlag = secret('from-flag\n');
    const fromConfig = secret('from-config\n');
    expect(passphraseFor({ vault: { passphraseFile: fromConfig } }, fromFlag, 'verify')).toBe('from-flag');
    expect(passphraseFor({ vault: { passphraseFile: fromConfig } }, undefined, 'verify')).toBe('from-config');
    expect(refusal(() => passphraseFor({ vault: {} }, undefined, 'restore')).message).toMatch(
      /^permafrost restore needs the vault passphrase, and this config has no vault.passphraseFile .*: pass --passphrase-file FILE/,
    );
  });
});
