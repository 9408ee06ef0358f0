import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import * as openpgp from 'openpgp';
import { afterAll, describe, expect, it } from 'vitest';
import { gpgDecryptFile } from '../../../src/tools/gpg.js';
import { definiteLength, encryptOpenPgpStream, s2kCount, skeskPacket } from '../../../src/crypto/openpgp-stream.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-pgp-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const PASS = 'pässphrase with ünïcode 🐘';
let n = 0;

async function encryptToFile(data: Buffer, compressLevel: number): Promise<string> {
  const file = path.join(dir, `m${++n}.gpg`);
  // Feed in odd-sized chunks so framing is exercised across chunk boundaries.
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i += 70_001) chunks.push(data.subarray(i, i + 70_001));
  await pipeline(encryptOpenPgpStream(Readable.from(chunks), skeskPacket(PASS), { compressLevel }), createWriteStream(file));
  return file;
}

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

// Compressible text plus incompressible bytes, sized around the 1 MiB partial-length chunks.
const text = Buffer.from('COPY public.statuses (id, text) FROM stdin;\n1\tHello 🐘 مرحبا שלום\n'.repeat(40_000));
const sizes = [0, 1, 511, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 12345];

describe('OpenPGP stream writer', () => {
  it.each(
    sizes.flatMap((s) => [
      [s, 0],
      [s, 1],
      [s, 6],
    ]),
  )('%i bytes at zlib compression %i: stock gpg -d returns the exact bytes', async (size, level) => {
    const data = Buffer.concat([text, randomBytes(size)]).subarray(0, size);
    const file = await encryptToFile(data, level);
    const r = stockGpg(file);
    expect(r.status, r.stderr).toBe(0);
    expect(r.out!.equals(data)).toBe(true);
  });

  it('openpgp.js, an independent implementation, reads it too (MDC checked)', async () => {
    const data = Buffer.concat([text, randomBytes(200_000)]);
    const file = await encryptToFile(data, 1);
    const message = await openpgp.readMessage({ binaryMessage: readFileSync(file) });
    const { data: plain } = await openpgp.decrypt({ message, passwords: [PASS], format: 'binary' });
    expect(Buffer.from(plain).equals(data)).toBe(true);
  });

  it('compresses: a text archive shrinks at level 1', async () => {
    const file = await encryptToFile(text, 1);
    expect(readFileSync(file).length).toBeLessThan(text.length / 10);
  });

  it('a flipped byte or a truncated file fails stock gpg, and gpgDecryptFile calls it corrupt', async () => {
    const data = Buffer.concat([text, randomBytes(300_000)]);
    const file = await encryptToFile(data, 1);
    const good = readFileSync(file);
    const flipped = Buffer.from(good);
    flipped[Math.floor(flipped.length / 2)]! ^= 0x01;
    const damaged = [flipped, good.subarray(0, good.length - 100)];
    for (const bytes of damaged) {
      const bad = path.join(dir, `bad${++n}.gpg`);
      writeFileSync(bad, bytes);
      expect(stockGpg(bad).status).not.toBe(0);
      const out = path.join(dir, `plain${++n}`);
      const r = await gpgDecryptFile(bad, PASS, out);
      expect(r.ok).toBe(false);
      expect(r.failure).toBe('corrupt');
    }
  });

  it('gpgDecryptFile: wrong passphrase is told apart; right one gives bytes, SHA-256 and a 0600 file; no gpg home or agent left', async () => {
    const data = Buffer.concat([text, randomBytes(100_000)]);
    const file = await encryptToFile(data, 1);
    const wrong = await gpgDecryptFile(file, 'not the passphrase', path.join(dir, `w${++n}`));
    expect(wrong.failure).toBe('wrong-key');
    const homeBase = mkdtempSync(path.join(dir, 'homes-'));
    const out = path.join(dir, `ok${++n}`);
    const r = await gpgDecryptFile(file, PASS, out, { homeBase });
    expect(r.ok).toBe(true);
    expect(readFileSync(out).equals(data)).toBe(true);
    expect(r.plainBytes).toBe(data.length);
    expect(r.bytes).toBe(readFileSync(file).length);
    expect(r.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(spawnSync('stat', ['-c', '%a', out], { encoding: 'utf8' }).stdout.trim()).toBe('600');
    expect(readdirSync(homeBase)).toEqual([]);
    const agents = spawnSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter((l) => l.includes(homeBase));
    expect(agents).toEqual([]);
  });

  it('length encodings and S2K counts follow RFC 4880', () => {
    expect([...definiteLength(100)]).toEqual([100]);
    expect([...definiteLength(1723)]).toEqual([197, 251]);
    expect([...definiteLength(100000)]).toEqual([255, 0, 1, 134, 160]);
    expect(s2kCount(96)).toBe(65536);
    expect(s2kCount(224)).toBe(16 * 2 ** 20);
    expect(s2kCount(255)).toBe(65011712);
  });
});
