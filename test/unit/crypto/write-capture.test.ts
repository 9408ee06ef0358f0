import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { afterAll, describe, expect, it } from 'vitest';
import { sizeFromIsize, writeEncryptedCapture } from '../../../src/crypto/write-capture.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-capture-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const PASS = 'pässphrase with ünïcode 🐘';
let n = 0;

/** The exact stock command from the README, with the passphrase in a 0600 file. */
function stockGpg(file: string): { status: number | null; out: Buffer | null; stderr: string } {
  const home = mkdtempSync(path.join(dir, 'home-'));
  const passFile = path.join(dir, 'pass');
  writeFileSync(passFile, `${PASS}\n`, { mode: 0o600 });
  const out = path.join(dir, `out${++n}`);
  const r = spawnSync('gpg', ['-d', '--batch', '--passphrase-file', passFile, '--output', out, file], {
    env: { ...process.env, GNUPGHOME: home },
    encoding: 'utf8',
  });
  spawnSync('gpgconf', ['--homedir', home, '--kill', 'all']);
  return { status: r.status, out: existsSync(out) ? readFileSync(out) : null, stderr: r.stderr };
}

const text = Buffer.from('COPY public.statuses (id, text) FROM stdin;\n1\tHello 🐘 مرحبا שלום\n'.repeat(40_000));

// Moved from openpgp-stream.test.ts (issue 19 item 8: the test where a reader looks for it).
describe('writeEncryptedCapture', () => {
  it('writeEncryptedCapture: the tool writes straight into igzip; exact plainBytes; stock gpg -d gives the bytes back', async () => {
    const src = path.join(dir, 'capture-src');
    const data = Buffer.concat([text, randomBytes(2_000_000), text]);
    writeFileSync(src, data);
    const seen: number[] = [];
    // Manifest file names are fixed per part, so each capture gets its own folder.
    const into = mkdtempSync(path.join(dir, 'cap-'));
    const f = await writeEncryptedCapture(
      {
        dir: into,
        part: 'database',
        keys: { passphrase: PASS, recipients: [] },
        progress: (b) => seen.push(b),
        encrypt: { compressLevel: 1 },
      },
      { argv: ['cat', src], what: 'a test file' },
    );
    expect(f.plainBytes).toBe(data.length);
    expect(seen.at(-1)).toBe(data.length);
    expect(f.bytes).toBe(readFileSync(path.join(into, f.name)).length);
    const r = stockGpg(path.join(into, f.name));
    expect(r.status, r.stderr).toBe(0);
    expect(r.out!.equals(data)).toBe(true);
    const js = await openpgp.decrypt({
      message: await openpgp.readMessage({ binaryMessage: readFileSync(path.join(into, f.name)) }),
      passwords: [PASS],
      format: 'binary',
    });
    expect(Buffer.from(js.data).equals(data)).toBe(true);
  });

  it('writeEncryptedCapture: a failing tool rejects with its reason', async () => {
    const err = await writeEncryptedCapture(
      {
        dir: mkdtempSync(path.join(dir, 'cap-')),
        part: 'database',
        keys: { passphrase: PASS, recipients: [] },
        encrypt: { compressLevel: 1 },
      },
      { argv: ['cat', path.join(dir, 'no-such-file')], what: 'a test file' },
    ).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/cat failed while capturing a test file: .*No such file/);
  });

  it.each([
    [5, 5],
    [2 ** 32 + 5, 5],
    [3 * 2 ** 32 + 7, 7],
  ])('size %i is rebuilt from ISIZE and an estimate off by up to 1 GiB', (size, isize) => {
    for (const off of [-(2 ** 30), 0, 2 ** 30]) expect(sizeFromIsize(isize, Math.max(0, size + off))).toBe(size);
  });

  it('at a level igzip does not do (6), the tool\u2019s output goes through Node\u2019s zlib: the same exact bytes back', async () => {
    const src = path.join(dir, 'capture-src-6');
    const data = Buffer.concat([text, randomBytes(300_000)]);
    writeFileSync(src, data);
    const into = mkdtempSync(path.join(dir, 'cap-'));
    const f = await writeEncryptedCapture(
      { dir: into, part: 'database', keys: { passphrase: PASS, recipients: [] }, encrypt: { compressLevel: 6 } },
      { argv: ['cat', src], what: 'a test file' },
    );
    expect(f).toMatchObject({ name: 'database.pgdump.gpg', part: 'database', plainBytes: data.length });
    const r = stockGpg(path.join(into, f.name));
    expect(r.status, r.stderr).toBe(0);
    expect(r.out!.equals(data)).toBe(true);
  });
});
