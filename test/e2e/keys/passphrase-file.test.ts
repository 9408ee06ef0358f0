import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, errorSentence, makeWorkspace, runCli, startCli, stockGpgDecrypt, type Workspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';

const cluster = clusterPerFile('source');
let ws: Workspace;
afterEach(() => ws?.cleanup());

/** What is in the vault besides nothing: snapshots, partial folders, the lock. */
const vaultEntries = (): string[] => readdirSync(ws.vault);

function withPassphrase(bytes: Buffer): void {
  ws = makeWorkspace(cluster.get(), 'source');
  rmSync(ws.passFile);
  writeFileSync(ws.passFile, bytes, { mode: 0o600 });
}

describe('the vault passphrase file is used exactly as stock gpg reads it, or refused', () => {
  // 32 random bytes with a NUL in them: 1 in 8 such files from /dev/urandom has one.
  const randomWithNul = Buffer.concat([Buffer.from('x7Q'), Buffer.from([0]), Buffer.from('k2p9Zr')]);
  const refused: Array<[string, Buffer, RegExp]> = [
    ['a NUL byte', Buffer.concat([randomWithNul, Buffer.from('\n')]), /contains a NUL byte/],
    ['a line of 40,000 characters', Buffer.from(`${'a'.repeat(40_000)}\n`), /first line of 40000 bytes, more than 1024/],
    ['a Windows line end', Buffer.from('correct horse battery staple\r\n'), /carriage return .*sed -i/],
    ['bytes that are not UTF-8', Buffer.from([0x70, 0x61, 0xff, 0xfe, 0x73, 0x0a]), /is not UTF-8 text/],
  ];
  for (const [what, bytes, reason] of refused) {
    it(`refuses ${what}: exit 2, one sentence naming the file and how to make a good one, nothing written`, async () => {
      withPassphrase(bytes);
      const r = await runCli(['--config', ws.configFile, 'backup']);
      expect(r.code).toBe(2);
      const sentence = errorSentence(r.stderr);
      expect(sentence).toContain(`vault.passphraseFile: ${ws.passFile}`);
      expect(sentence).toMatch(reason);
      expect(sentence).toContain('permafrost init');
      expect(vaultEntries()).toEqual([]);
      // restore and verify read the file the same way, before touching anything.
      for (const args of [
        ['restore', 'latest', '--database', 'x'],
        ['verify', 'latest'],
      ]) {
        const again = await runCli(['--config', ws.configFile, ...args]);
        expect(again.code).toBe(2);
        expect(errorSentence(again.stderr)).toMatch(reason);
      }
    });
  }

  it('--passphrase-file - with a Windows line end on standard input: exit 2, the sentence says standard input and how to mend the file it came from', () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const r = spawnSync(
      process.execPath,
      [CLI, '--config', ws.configFile, 'restore', 'latest', '--database', 'x', '--passphrase-file', '-'],
      {
        input: 'correct horse battery staple\r\n',
        encoding: 'utf8',
      },
    );
    expect(r.status).toBe(2);
    expect(errorSentence(r.stderr)).toMatch(
      /^--passphrase-file: standard input ends its first line with a carriage return .*; remove it from the file you gave on standard input \(`sed -i 's\/\\r\$\/\/' FILE`\)/,
    );
  });

  it('refuses a FIFO (the read would block forever) and a file owned by another user', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    rmSync(ws.passFile);
    execFileSync('mkfifo', ['-m', '600', ws.passFile]);
    const fifo = startCli(['--config', ws.configFile, 'backup']);
    const timer = setTimeout(() => fifo.child.kill('SIGKILL'), 20_000);
    const r = await fifo.result.finally(() => clearTimeout(timer));
    expect(r.code).toBe(2);
    expect(errorSentence(r.stderr)).toContain(`${ws.passFile} is not a regular file`);

    rmSync(ws.passFile);
    writeFileSync(ws.passFile, 'correct horse battery staple\n', { mode: 0o600 });
    chownSync(ws.passFile, 65534, 65534);
    const other = await runCli(['--config', ws.configFile, 'backup']);
    expect(other.code).toBe(2);
    expect(errorSentence(other.stderr)).toMatch(/is owned by uid 65534, not by the user running permafrost/);
    expect(vaultEntries()).toEqual([]);
  });

  const accepted: Array<[string, Buffer]> = [
    ['no final newline, inner and trailing spaces, unicode', Buffer.from('  pässphrase mit Leerzeichen 🐘  ')],
    ['a second line (gpg reads only the first)', Buffer.from('first line is the passphrase\nsecond line is not\n')],
  ];
  for (const [what, bytes] of accepted) {
    it(`accepts ${what}, and stock gpg --passphrase-file with the same file decrypts the snapshot`, async () => {
      withPassphrase(bytes);
      const r = await runCli(['--config', ws.configFile, 'backup']);
      expect(r.code, r.stderr).toBe(0);
      const [id] = vaultEntries().filter((n) => /^\d{4}-/.test(n));
      const out = path.join(ws.dir, 'db.pgdump');
      const gpg = stockGpgDecrypt(ws.passFile, path.join(ws.vault, id!, 'database.pgdump.gpg'), out, path.join(ws.dir, 'gnupg'));
      expect(gpg.status, gpg.stderr).toBe(0);
      execFileSync('gpgconf', ['--homedir', path.join(ws.dir, 'gnupg'), '--kill', 'all']);
    });
  }
});
